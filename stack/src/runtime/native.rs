//! The native runtime: the stack's binaries as processes on loopback. Pids and logs live in
//! `.scalelab/run/` (`pids/<instance>.pid`, `logs/<instance>.log`); gateways are
//! `gateway-1..N` on consecutive ports; the load balancer's backend list is set through its
//! admin port, so rescaling never restarts it. Postgres and Redis are used where they answer,
//! else started by `lab deps up` (`crate::deps`; never stopped by `down`).

use super::{
    check_ports_free, dependency, replica_index, replica_name, wait_http_ok, Action, Dependency,
    Instance, Kind, Paths, Runtime, Stack, DRAIN_LIMIT, READY_LIMIT,
};
use crate::platform::{self, Signal};
use crate::settings::Name;
use crate::settings::{Service, Settings};
use anyhow::{bail, Context};
use async_trait::async_trait;
use common::relay::TcpRelay;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

/// What differs between the lab's own stack and a test's.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start Postgres and Redis (`lab deps up`) when they do not answer.
    pub manage_deps: bool,
    /// Default: the lab's database on 127.0.0.1:5432 with POSTGRES_PASSWORD.
    pub database_url: Option<String>,
    pub redis_url: String,
    /// Added to every service's environment (a test's key prefix, say).
    pub extra_env: Vec<(String, String)>,
    /// Gateway i listens on `gateway_base_port + i - 1`.
    pub gateway_base_port: u16,
    /// Reach Postgres and Redis through relays the lab can cut (a fault experiment's
    /// `act postgres stop`), set up by the next `up` of a stack that is down.
    pub relays: bool,
}

impl Options {
    pub fn lab() -> Self {
        Self {
            manage_deps: true,
            database_url: None,
            // Its own database (1) of a Redis it may share with other work on this machine:
            // `down -v` deletes the lab's keys there and nowhere else.
            redis_url: "redis://127.0.0.1:6379/1".into(),
            extra_env: Vec::new(),
            gateway_base_port: 8010,
            relays: false,
        }
    }
}

pub struct Native {
    paths: Paths,
    stack: Stack,
    options: Options,
    /// Processes this lab process started: reaped when they exit.
    children: HashMap<String, Child>,
    /// Relays in front of Postgres and Redis, when a fault experiment asked for them.
    relays: Option<(TcpRelay, TcpRelay)>,
}

/// Whether a native stack is up (its marker and a live load balancer).
pub fn marked_up(paths: &Paths) -> bool {
    paths.run.join("runtime").exists() && pid_alive(&paths.run, "load_balancer")
}

fn pid_of(run: &std::path::Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(run.join("pids").join(format!("{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Alive, not a zombie, and still our binary (a recycled pid is not ours).
fn pid_alive(run: &std::path::Path, name: &str) -> bool {
    let Some(pid) = pid_of(run, name) else {
        return false;
    };
    let Some((state, comm)) = platform::process_state(pid) else {
        return false;
    };
    let binary = service_of(name).map(|s| s.name()).unwrap_or("");
    // Linux's comm is the first 15 bytes of the name; ps on macOS gives it whole.
    state != 'Z' && state != 'X' && !comm.is_empty() && binary.starts_with(comm.as_str())
}

/// `gateway-2` → gateway.
fn service_of(instance: &str) -> Option<Service> {
    let base = instance.split('-').next().unwrap_or(instance);
    Service::parse(base).ok()
}

impl Native {
    pub fn new(paths: Paths, settings: Settings, options: Options) -> Self {
        let mut native = Self {
            paths,
            stack: Stack::new(Kind::Native, settings, false),
            options,
            children: HashMap::new(),
            relays: None,
        };
        native.adopt(native.stack.settings.clone());
        native
    }

    /// The settings in force from now on, and the instances they ask for.
    fn adopt(&mut self, settings: Settings) {
        self.stack.adopt(settings);
        self.stack.instances = [Service::Microservice, Service::Worker]
            .into_iter()
            .flat_map(|service| (1..=self.replicas(service)).map(move |i| (service, i)))
            .map(|(service, i)| {
                let url = format!("http://127.0.0.1:{}", self.replica_port(service, i));
                (service, url)
            })
            .collect();
    }

    fn alive(&mut self, name: &str) -> bool {
        if let Some(child) = self.children.get_mut(name) {
            if !matches!(child.try_wait(), Ok(None)) {
                self.children.remove(name);
                return false;
            }
        }
        pid_alive(&self.paths.run, name)
    }

    fn gateway_port(&self, i: usize) -> u16 {
        self.options.gateway_base_port + (i as u16) - 1
    }

    fn gateway_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.gateway_port(i))
    }

    /// Indices of the gateways whose process is alive, ascending.
    fn live_gateways(&mut self) -> Vec<usize> {
        self.live(Service::Gateway)
    }

    /// Indices of a service's live instances, ascending (`worker` is 1, `worker-2` is 2).
    fn live(&mut self, service: Service) -> Vec<usize> {
        let mut found: Vec<usize> = std::fs::read_dir(self.paths.run.join("pids"))
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                replica_index(service, name.strip_suffix(".pid")?)
            })
            .collect();
        found.sort_unstable();
        found.retain(|i| self.alive(&replica_name(service, *i)));
        found
    }

    /// The microservice's base URLs, one per instance the stack runs.
    fn microservice_urls(&self) -> String {
        (1..=self.replicas(Service::Microservice))
            .map(|i| {
                format!(
                    "http://127.0.0.1:{}",
                    self.replica_port(Service::Microservice, i)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Instances of the microservice or the worker the settings ask for.
    fn replicas(&self, service: Service) -> usize {
        super::replicas_wanted(&self.stack.settings, service)
    }

    /// Instance i of the microservice or the worker listens 100 ports above instance i-1.
    fn replica_port(&self, service: Service, i: usize) -> u16 {
        self.port_of(service) + 100 * (i as u16 - 1)
    }

    /// Starts the missing instances of the microservice or the worker up to the settings'
    /// count, and stops the ones beyond it.
    async fn ensure_replicas(&mut self, service: Service) -> anyhow::Result<()> {
        let wanted = self.replicas(service);
        for i in 1..=wanted {
            let name = replica_name(service, i);
            if !self.alive(&name) {
                let port = self.replica_port(service, i);
                self.start(&name, service, port, Vec::new())?;
                self.wait_ready(&name, &format!("http://127.0.0.1:{port}/ready"))
                    .await?;
            }
        }
        for i in self.live(service) {
            if i > wanted {
                self.stop(&replica_name(service, i)).await?;
            }
        }
        Ok(())
    }

    fn database_url(&self) -> String {
        self.options.database_url.clone().unwrap_or_else(|| {
            common::db::local_url(
                self.stack.settings.get(Name::PostgresPassword),
                "127.0.0.1:5432",
                "scalelab",
            )
        })
    }

    fn port_of(&self, service: Service) -> u16 {
        match service {
            Service::LoadBalancer => self.stack.settings.port(Name::LbPort),
            Service::Microservice => self.stack.settings.port(Name::MicroservicePort),
            Service::Worker => self.stack.settings.port(Name::WorkerPort),
            Service::Gateway => unreachable!("gateways have one port each"),
        }
    }

    /// Starts one instance in its own process group, its output in its log file.
    fn start(
        &mut self,
        name: &str,
        service: Service,
        port: u16,
        extra: Vec<(String, String)>,
    ) -> anyhow::Result<()> {
        let bin = self.paths.bin.join(service.name());
        if !bin.exists() {
            bail!("{} is missing; build it first: make release", bin.display());
        }
        check_ports_free(&[(name, port)])?;
        std::fs::create_dir_all(self.paths.run.join("pids"))?;
        std::fs::create_dir_all(self.paths.run.join("logs"))?;
        let log = std::fs::File::create(self.log_path(name))?;
        let mut cmd = std::process::Command::new(&bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.stack.settings.env_for(service))
            .env("INSTANCE_ID", name)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", self.database_url())
            .env("REDIS_URL", &self.options.redis_url)
            .envs(self.options.extra_env.iter().cloned())
            .envs(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group: Ctrl-C on `make` does not reach the stack.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        std::fs::write(
            self.paths.run.join("pids").join(format!("{name}.pid")),
            child.id().to_string(),
        )?;
        self.children.insert(name.to_string(), child);
        Ok(())
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.paths.run.join("logs").join(format!("{name}.log"))
    }

    fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits for `url`; on failure, the instance's last log lines.
    async fn wait_ready(&mut self, name: &str, url: &str) -> anyhow::Result<()> {
        let run = self.paths.run.clone();
        let owned = name.to_string();
        let result = wait_http_ok(url, READY_LIMIT, || pid_alive(&run, &owned)).await;
        if let Err(e) = result {
            bail!(
                "{name} did not become ready ({e}); its last log lines:\n{}",
                indent(&self.log_tail(name, 30))
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it outlives its grace period by 5 s.
    async fn stop(&mut self, name: &str) -> anyhow::Result<()> {
        if self.alive(name) {
            let pid = pid_of(&self.paths.run, name).expect("alive has a pid");
            platform::signal(pid, Signal::Term);
            let grace: u64 = self
                .stack
                .settings
                .get(Name::ShutdownGraceSecs)
                .parse()
                .unwrap_or(5);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(grace + 5);
            while self.alive(name) {
                if tokio::time::Instant::now() >= deadline {
                    eprintln!("lab: {name} outlived its grace period: SIGKILL");
                    platform::signal(pid, Signal::Kill);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let _ = std::fs::remove_file(self.paths.run.join("pids").join(format!("{name}.pid")));
        self.children.remove(name);
        Ok(())
    }

    async fn start_gateway(&mut self, i: usize) -> anyhow::Result<()> {
        let name = format!("gateway-{i}");
        let port = self.gateway_port(i);
        let microservices = self.microservice_urls();
        std::fs::write(self.paths.run.join("gateway-microservices"), &microservices)?;
        self.start(
            &name,
            Service::Gateway,
            port,
            vec![("MICROSERVICE_URL".into(), microservices)],
        )?;
        self.wait_ready(&name, &format!("http://127.0.0.1:{port}/ready"))
            .await
    }

    async fn start_load_balancer(&mut self, gateways: &[usize]) -> anyhow::Result<()> {
        let s = &self.stack.settings;
        let extra = vec![
            (
                "METRICS_ADDR".into(),
                format!("127.0.0.1:{}", s.get(Name::LbMetricsPort)),
            ),
            (
                "ADMIN_ADDR".into(),
                format!("127.0.0.1:{}", s.get(Name::LbAdminPort)),
            ),
            (
                "BACKENDS".into(),
                gateways
                    .iter()
                    .map(|i| self.gateway_addr(*i))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ];
        let metrics = s.port(Name::LbMetricsPort);
        check_ports_free(&[
            (Name::LbMetricsPort.as_str(), metrics),
            (Name::LbAdminPort.as_str(), s.port(Name::LbAdminPort)),
        ])?;
        self.start(
            "load_balancer",
            Service::LoadBalancer,
            s.port(Name::LbPort),
            extra,
        )?;
        self.wait_ready(
            "load_balancer",
            &format!("http://127.0.0.1:{metrics}/health"),
        )
        .await
    }

    async fn deps_up(&self) -> anyhow::Result<()> {
        if !self.options.manage_deps {
            return Ok(());
        }
        let deps = crate::deps::Deps::new(
            &self.paths.root,
            Some(self.stack.settings.get(Name::PostgresPassword)),
        )?
        .quiet();
        tokio::task::spawn_blocking(move || deps.up())
            .await?
            .context("Postgres or Redis could not be started (lab deps up)")
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[async_trait]
impl Runtime for Native {
    fn stack(&self) -> &Stack {
        &self.stack
    }

    async fn up(&mut self, settings: &Settings, gateways: usize) -> anyhow::Result<()> {
        if gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        self.adopt(settings.clone());
        std::fs::create_dir_all(&self.paths.run)?;
        if !self.alive("load_balancer") {
            if self.options.relays {
                self.relays_up().await?;
            }
            let s = &self.stack.settings;
            let port = |name: Name| (name.as_str(), s.port(name));
            check_ports_free(&[
                port(Name::LbPort),
                port(Name::LbMetricsPort),
                port(Name::LbAdminPort),
            ])?;
        }
        std::fs::write(self.paths.run.join("runtime"), "native\n")?;
        self.deps_up().await?;
        self.ensure_replicas(Service::Microservice).await?;
        self.ensure_replicas(Service::Worker).await?;
        // Gateways started with another list of microservices are restarted (rolling).
        let listed = std::fs::read_to_string(self.paths.run.join("gateway-microservices"))
            .unwrap_or_default();
        if !self.live_gateways().is_empty() && listed != self.microservice_urls() {
            self.restart(Service::Gateway, self.stack.settings.clone())
                .await?;
        }
        self.scale(gateways).await?;
        eprintln!(
            "lab: ready: {gateways} gateway(s) behind http://127.0.0.1:{} (native)",
            self.stack.settings.get(Name::LbPort)
        );
        Ok(())
    }

    async fn scale(&mut self, gateways: usize) -> anyhow::Result<()> {
        if gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        let live = self.live_gateways();
        for i in 1..=gateways {
            if !live.contains(&i) {
                self.start_gateway(i).await?;
            }
        }
        let leaving: Vec<usize> = live.into_iter().filter(|i| *i > gateways).collect();
        let kept: Vec<usize> = (1..=gateways).collect();
        if !self.alive("load_balancer") {
            self.start_load_balancer(&kept).await?;
        } else {
            // New gateways join the list; the load balancer admits each after a passing
            // health check. Leaving ones stay listed until drained and stopped.
            let mut listed: Vec<String> = kept.iter().map(|i| self.gateway_addr(*i)).collect();
            listed.extend(leaving.iter().map(|i| self.gateway_addr(*i)));
            self.stack.load_balancer.set_backends(listed).await?;
        }
        if !leaving.is_empty() {
            // Out of rotation first, in-flight requests completed, then stopped.
            let addrs: Vec<String> = leaving.iter().map(|i| self.gateway_addr(*i)).collect();
            self.stack
                .load_balancer
                .drain_and_wait(&addrs, DRAIN_LIMIT)
                .await?;
            for i in &leaving {
                self.stop(&format!("gateway-{i}")).await?;
            }
            let kept_addrs = kept.iter().map(|i| self.gateway_addr(*i)).collect();
            self.stack.load_balancer.set_backends(kept_addrs).await?;
            self.stack.load_balancer.drain(Vec::new()).await?;
        }
        self.stack
            .load_balancer
            .wait_in_rotation(gateways, READY_LIMIT)
            .await
    }

    async fn down(&mut self, remove_data: bool) -> anyhow::Result<()> {
        self.stop("load_balancer").await?;
        for i in self.live_gateways() {
            self.stop(&format!("gateway-{i}")).await?;
        }
        for service in [Service::Worker, Service::Microservice] {
            for i in self.live(service) {
                self.stop(&replica_name(service, i)).await?;
            }
        }
        // Pid files of instances that died on their own.
        if let Ok(entries) = std::fs::read_dir(self.paths.run.join("pids")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        if remove_data {
            // The lab's keys only (cache, job stream, task statuses) in the lab's own
            // database, never the rest of a shared Redis; said before it is done.
            let url = self.options.redis_url.clone();
            eprintln!("lab: deleting the lab's Redis keys (scalelab:*: the cache, the job stream, task statuses) in {url}");
            let deleted = std::process::Command::new("sh")
                .arg("-c")
                .arg("redis-cli -u \"$URL\" --scan --pattern 'scalelab:*' | xargs -r redis-cli -u \"$URL\" del | awk '{n += $1} END {print n + 0}'")
                .env("URL", &url)
                .output();
            match deleted {
                Ok(out) if out.status.success() => eprintln!(
                    "lab: {} key(s) deleted; Postgres's data is kept (make deps-down stops it, its data stays in .scalelab/)",
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
                _ => eprintln!("lab: the lab's Redis keys could not be deleted (is redis-cli installed?)"),
            }
        }
        let _ = std::fs::remove_file(self.paths.run.join("runtime"));
        eprintln!("lab: native stack stopped");
        Ok(())
    }

    async fn ps(&self) -> anyhow::Result<Vec<Instance>> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.paths.run.join("pids")) else {
            return Ok(out);
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .into_string()
                    .ok()?
                    .strip_suffix(".pid")
                    .map(String::from)
            })
            .collect();
        names.sort();
        for name in names {
            let Some(service) = service_of(&name) else {
                continue;
            };
            let pid = pid_of(&self.paths.run, &name).unwrap_or(0);
            let state = if pid_alive(&self.paths.run, &name) {
                if platform::process_state(pid).is_some_and(|(state, _)| state == 'T') {
                    "paused"
                } else {
                    "running"
                }
            } else {
                "exited"
            };
            out.push(Instance {
                name,
                service,
                state: state.into(),
                id: pid.to_string(),
            });
        }
        Ok(out)
    }

    async fn logs(&self, service: Option<Service>, lines: usize) -> anyhow::Result<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.paths.run.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .into_string()
                    .ok()?
                    .strip_suffix(".log")
                    .map(String::from)
            })
            .filter(|n| service.is_none() || service_of(n) == service)
            .collect();
        names.sort();
        if names.is_empty() {
            bail!(
                "no logs in {}: is the native stack up?",
                self.paths.run.join("logs").display()
            );
        }
        Ok(names
            .iter()
            .map(|n| format!("== {n}\n{}\n", self.log_tail(n, lines)))
            .collect())
    }

    async fn restart(&mut self, service: Service, settings: Settings) -> anyhow::Result<()> {
        self.adopt(settings);
        match service {
            Service::Gateway => {
                // Rolling: one gateway at a time leaves the rotation, restarts, and returns.
                let live = self.live_gateways();
                for i in &live {
                    let addr = self.gateway_addr(*i);
                    if live.len() > 1 {
                        self.stack
                            .load_balancer
                            .drain_and_wait(std::slice::from_ref(&addr), DRAIN_LIMIT)
                            .await?;
                    }
                    self.stop(&format!("gateway-{i}")).await?;
                    self.start_gateway(*i).await?;
                    self.stack.load_balancer.drain(Vec::new()).await?;
                    self.stack
                        .load_balancer
                        .wait_in_rotation(live.len(), READY_LIMIT)
                        .await?;
                }
                Ok(())
            }
            Service::LoadBalancer => {
                let live = self.live_gateways();
                self.stop("load_balancer").await?;
                self.start_load_balancer(&live).await?;
                self.stack
                    .load_balancer
                    .wait_in_rotation(live.len(), READY_LIMIT)
                    .await
            }
            other => {
                for i in self.live(other) {
                    self.stop(&replica_name(other, i)).await?;
                }
                self.ensure_replicas(other).await
            }
        }
    }

    async fn act(&mut self, instance: &str, action: Action) -> anyhow::Result<()> {
        if let Some(dependency) = dependency(instance) {
            return self.cut(dependency, action);
        }
        let service = service_of(instance).with_context(|| {
            format!("no instance {instance:?}: `make ps` lists them (gateway-1, microservice, ...)")
        })?;
        if action == Action::Start {
            if self.alive(instance) {
                return Ok(());
            }
            return match service {
                Service::Gateway => {
                    let i: usize = instance
                        .strip_prefix("gateway-")
                        .and_then(|n| n.parse().ok())
                        .with_context(|| {
                            format!("a gateway instance is gateway-N, not {instance:?}")
                        })?;
                    self.start_gateway(i).await
                }
                Service::LoadBalancer => {
                    let live = self.live_gateways();
                    self.start_load_balancer(&live).await
                }
                other => {
                    let i = replica_index(other, instance).with_context(|| {
                        format!("no instance {instance:?}: `make ps` lists them")
                    })?;
                    let port = self.replica_port(other, i);
                    self.start(instance, other, port, Vec::new())?;
                    self.wait_ready(instance, &format!("http://127.0.0.1:{port}/ready"))
                        .await
                }
            };
        }
        let pid = pid_of(&self.paths.run, instance)
            .filter(|_| pid_alive(&self.paths.run, instance))
            .with_context(|| format!("{instance} is not running"))?;
        let sig = match action {
            Action::Stop => Signal::Term,
            Action::Kill => Signal::Kill,
            Action::Pause => Signal::Stop,
            Action::Resume => Signal::Cont,
            Action::Start => unreachable!(),
        };
        if !platform::signal(pid, sig) {
            bail!("cannot signal {instance} (pid {pid})");
        }
        if action == Action::Kill {
            // Reap it now, so that `alive` sees it gone.
            if let Some(mut child) = self.children.remove(instance) {
                let _ = child.wait();
            }
        }
        Ok(())
    }
}

impl Native {
    /// Routes the stack's connections to Postgres and Redis through relays the lab can cut
    /// (with the stack down: the services started next connect through them).
    async fn relays_up(&mut self) -> anyhow::Result<()> {
        if self.relays.is_some() {
            return Ok(());
        }
        let database = self.database_url();
        let redis = self.options.redis_url.clone();
        let relay = |url: String| async move {
            let target = common::relay::socket_of(&url)
                .await
                .with_context(|| format!("cannot resolve {}", common::db::describe(&url)))?;
            TcpRelay::bind(target)
                .await
                .context("no loopback port for a relay")
        };
        let postgres = relay(database.clone()).await?;
        let redis_relay = relay(redis.clone()).await?;
        self.options.database_url = Some(postgres.rewrite_url(&database));
        self.options.redis_url = redis_relay.rewrite_url(&redis);
        self.relays = Some((postgres, redis_relay));
        Ok(())
    }

    /// Stopping Postgres or Redis cuts the relay in front of it; starting it restores it.
    fn cut(&mut self, dependency: Dependency, action: Action) -> anyhow::Result<()> {
        let (postgres, redis) = self.relays.as_ref().context(
            "the native stack reaches Postgres and Redis directly: a fault needs the lab's relays (make fault sets them up)",
        )?;
        let relay = match dependency {
            Dependency::Postgres => postgres,
            Dependency::Redis => redis,
        };
        match action {
            Action::Stop | Action::Kill | Action::Pause => relay.cut(),
            Action::Start | Action::Resume => relay.restore(),
        }
        Ok(())
    }
}
