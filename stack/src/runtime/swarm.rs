//! The swarm runtime: the compose stack deployed on Docker Swarm (`docker stack deploy`), on
//! one node here or on every machine of a lab room (README, "Beyond one laptop").
//!
//! - The stack file is generated from the same compose definition (`compose config`, so the
//!   settings are interpolated the same way) by [`stack_file`]: what Swarm ignores is dropped,
//!   a service's `cpus` becomes `deploy.resources`, a service's name resolves to its tasks'
//!   addresses (`endpoint_mode: dnsrr`: the load balancer sees every gateway), and only the load balancer publishes a port,
//!   in host mode (this kind of machine's ingress routing mesh refuses connections; one load
//!   balancer per node is what a lab wants anyway).
//! - Published ports bind on every interface in Swarm, so the ports only the lab should reach
//!   (the load balancer's metrics and admin API, the microservice's and the worker's) go
//!   through an edge container on the stack's attachable network that publishes them on
//!   the host's loopback alone (`relay`, a binary of the app image).
//! - The load generator runs in a container on that network: it reaches every gateway task
//!   the load balancer lists, which the host cannot on an overlay network.
//! - Swarm, not the lab, picks which gateway leaves on a scale-in: gateways serve on for
//!   `SHUTDOWN_DELAY_MS` after SIGTERM, and the lab drains the tasks Swarm picked through the
//!   load balancer in that time.
//! - `docker swarm init` only when this node is in no swarm, and `down` leaves it again only
//!   then (a marker in `.scalelab/run/`).

use super::compose::Compose;
use super::docker::{docker, docker_ok, run_checked};
pub use super::stack::stack_file;
use super::{
    dependency, Action, Dependency, Instance, Kind, Paths, Runtime, Stack, DRAIN_LIMIT, READY_LIMIT,
};
use crate::settings::Name;
use crate::settings::{Service, Settings};
use anyhow::{bail, Context};
use async_trait::async_trait;
use serde_yaml_ng::Value;
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

/// The stack's name: its services are `scalelab-swarm_gateway`, …, its network
/// `scalelab-swarm_lab`.
pub const STACK: &str = "scalelab-swarm";
pub(crate) const EDGE: &str = "scalelab-swarm-edge";
/// In `.scalelab/run/`: present when the lab initialised the swarm (and so may leave it).
const MARKER: &str = "swarm-initialised";

/// A stack service's full name from its compose name (`gateway`, `redis`, …).
fn service_name(name: &str) -> String {
    format!("{STACK}_{name}")
}

fn network() -> String {
    format!("{STACK}_lab")
}

/// This node's swarm state (`inactive`, `active`, …) and whether it is a manager.
pub async fn node_state() -> anyhow::Result<(String, bool)> {
    let out = docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ])
    .await?;
    let mut words = out.split_whitespace();
    let state = words.next().unwrap_or("unknown").to_string();
    Ok((state, words.next() == Some("true")))
}

/// Whether the lab deployed a swarm stack that it has not taken down (its stack file is kept
/// in `.scalelab/run/` while it runs).
pub fn marked_up(paths: &Paths) -> bool {
    paths.run.join("stack.yml").exists()
}

pub struct Swarm {
    paths: Paths,
    compose: Compose,
    stack: Stack,
}

impl Swarm {
    pub async fn new(paths: Paths, settings: Settings, offline: bool) -> anyhow::Result<Self> {
        let compose = Compose::new(paths.clone(), settings.clone(), offline).await?;
        let mut swarm = Self {
            paths,
            compose,
            stack: Stack::new(Kind::Swarm, settings.clone(), false),
        };
        swarm.adopt(settings);
        Ok(swarm)
    }

    /// The settings in force from now on, for the stack file too; one microservice and one
    /// worker, on the settings' ports through the edge.
    fn adopt(&mut self, settings: Settings) {
        self.compose.stack.adopt(settings.clone());
        self.stack.instances = [
            (Service::Microservice, Name::MicroservicePort),
            (Service::Worker, Name::WorkerPort),
        ]
        .into_iter()
        .map(|(service, port)| (service, format!("http://127.0.0.1:{}", settings.get(port))))
        .collect();
        self.stack.adopt(settings);
    }

    /// Whether the stack's load balancer service exists.
    async fn deployed(&self) -> bool {
        docker_ok(&[
            "service",
            "inspect",
            "--format",
            "{{.ID}}",
            &service_name(Service::LoadBalancer.name()),
        ])
        .await
    }

    /// Postgres or Redis scaled to 0 tasks (stop) or back to 1 (start).
    async fn cut(&mut self, dependency: Dependency, action: Action) -> anyhow::Result<()> {
        let service = dependency.name();
        let restore = matches!(action, Action::Start | Action::Resume);
        self.scale_service(service, usize::from(restore)).await?;
        if restore {
            self.converged(service, READY_LIMIT).await?;
        }
        Ok(())
    }

    fn app_image(&self) -> String {
        if self.compose.offline() {
            "scalelab/app:offline".into()
        } else {
            self.stack.settings.scalelab_image("app")
        }
    }

    /// Joins a swarm of one when this node is in none; refuses a node that is a worker.
    async fn ensure_swarm(&self) -> anyhow::Result<()> {
        let (state, manager) = node_state().await?;
        match state.as_str() {
            "active" if manager => Ok(()),
            "active" => bail!("this node is a swarm worker: run the lab on a manager node (docker node ls there)"),
            "inactive" => {
                docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"])
                .await?;
                std::fs::create_dir_all(&self.paths.run)?;
                std::fs::write(self.paths.run.join(MARKER), "the lab ran docker swarm init; make down leaves the swarm\n")?;
                eprintln!("lab: this node was in no swarm: initialised a swarm of one (make down leaves it)");
                Ok(())
            }
            other => bail!("this node's swarm state is {other:?}: fix it (docker swarm leave --force, or finish joining) and try again"),
        }
    }

    /// Writes the stack file for `gateways` gateways and deploys it (creating or updating).
    async fn deploy(&self, gateways: usize) -> anyhow::Result<()> {
        let config = self.compose.compose_checked(&["config"]).await?;
        let file = self.paths.run.join("stack.yml");
        std::fs::create_dir_all(&self.paths.run)?;
        // It holds the secrets (JWT_SECRET, ADMIN_TOKEN): its owner's alone.
        crate::platform::write_private(
            &file,
            &stack_file(&config, &self.stack.settings, gateways)?,
        )?;
        run_checked(
            Command::new("docker")
                .args([
                    "stack",
                    "deploy",
                    "--resolve-image",
                    "never",
                    "--prune",
                    "-c",
                ])
                .arg(&file)
                .arg(STACK),
            "docker stack deploy",
        )
        .await?;
        Ok(())
    }

    /// The edge: the lab's ports on the host's loopback, relayed into the stack's network.
    async fn start_edge(&self) -> anyhow::Result<()> {
        let _ = docker_ok(&["rm", "-f", EDGE]).await;
        let s = &self.stack.settings;
        let publish = |name: Name, inner: u16| format!("127.0.0.1:{}:{inner}", s.get(name));
        docker(&[
            "run",
            "-d",
            "--name",
            EDGE,
            "--restart",
            "unless-stopped",
            "--network",
            &network(),
            "--label",
            &format!("scalelab.stack={STACK}"),
            "-p",
            &publish(Name::LbMetricsPort, 9100),
            "-p",
            &publish(Name::LbAdminPort, 9101),
            "-p",
            &publish(Name::MicroservicePort, 8001),
            "-p",
            &publish(Name::WorkerPort, 8002),
            &self.app_image(),
            "relay",
            "9100=load_balancer:9100",
            "9101=load_balancer:9101",
            "8001=microservice:8001",
            "8002=worker:8002",
        ])
        .await?;
        Ok(())
    }

    /// The stack's running tasks of the lab's services, in service and slot order:
    /// (service, slot, task id, container id). One `docker ps` for all of them.
    async fn running_tasks(&self) -> anyhow::Result<Vec<(Service, u32, String, String)>> {
        let out = docker(&[
                "ps",
                "--filter",
                &format!("label=com.docker.stack.namespace={STACK}"),
                "--format",
                "{{.Label \"com.docker.swarm.task.name\"}}\t{{.Label \"com.docker.swarm.task.id\"}}\t{{.ID}}",
            ])
        .await?;
        let prefix = format!("{STACK}_");
        let mut tasks: Vec<_> = out
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                // `scalelab-swarm_gateway.2.<id>`: service, slot; Postgres and Redis are
                // not the lab's services and are left out.
                let mut name = f.first()?.strip_prefix(&prefix)?.split('.');
                let service = Service::parse(name.next()?).ok()?;
                let slot = name.next()?.parse().ok()?;
                Some((service, slot, f.get(1)?.to_string(), f.get(2)?.to_string()))
            })
            .collect();
        tasks.sort();
        Ok(tasks)
    }

    /// Running tasks of one service: (slot, task id, container id).
    async fn tasks(&self, service: Service) -> anyhow::Result<Vec<(u32, String, String)>> {
        Ok(self
            .running_tasks()
            .await?
            .into_iter()
            .filter(|t| t.0 == service)
            .map(|(_, slot, task, id)| (slot, task, id))
            .collect())
    }

    /// A task's address on the stack's network, as the load balancer knows it (`ip:8000`).
    async fn task_addr(&self, task: &str) -> anyhow::Result<String> {
        let out = docker(&[
            "inspect",
            "-f",
            "{{range .NetworksAttachments}}{{.Network.Spec.Name}}={{range .Addresses}}{{.}}{{end}} {{end}}",
            task,
        ])
        .await?;
        let want = format!("{}=", network());
        let cidr = out
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&want))
            .with_context(|| format!("task {task} has no address on {}", network()))?;
        Ok(format!("{}:8000", cidr.split('/').next().unwrap_or(cidr)))
    }

    async fn desired_shutdown(&self) -> anyhow::Result<Vec<String>> {
        let out = docker(&[
            "service",
            "ps",
            &service_name(Service::Gateway.name()),
            "--filter",
            "desired-state=shutdown",
            "--format",
            "{{.ID}}",
            "--no-trunc",
        ])
        .await?;
        Ok(out.lines().map(str::to_string).collect())
    }

    async fn replicas(&self, service: &str) -> anyhow::Result<(usize, usize)> {
        let out = docker(&[
            "service",
            "ls",
            "--filter",
            &format!("name={}", service_name(service)),
            "--format",
            "{{.Name}} {{.Replicas}}",
        ])
        .await?;
        let want = service_name(service);
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(want.as_str()))
            .with_context(|| format!("no service {want}: is the swarm stack up?"))?;
        let replicas = line.split_whitespace().nth(1).unwrap_or("0/0");
        let (running, desired) = replicas.split_once('/').unwrap_or(("0", "0"));
        Ok((
            running.parse().unwrap_or(0),
            desired
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0),
        ))
    }

    /// Waits until a service runs as many tasks as it wants.
    async fn converged(&self, service: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (running, desired) = self.replicas(service).await?;
            if running == desired {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} runs {running} of {desired} tasks after {}s:\n{}",
                    service_name(service),
                    limit.as_secs(),
                    self.logs(Service::parse(service).ok(), 20)
                        .await
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn scale_service(&self, service: &str, n: usize) -> anyhow::Result<()> {
        docker(&[
            "service",
            "scale",
            "--detach",
            &format!("{}={n}", service_name(service)),
        ])
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Runtime for Swarm {
    fn stack(&self) -> &Stack {
        &self.stack
    }

    async fn up(&mut self, settings: &Settings, gateways: usize) -> anyhow::Result<()> {
        one_of_each(settings, "swarm")?;
        self.adopt(settings.clone());
        if gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        if self.deployed().await {
            return self.scale(gateways).await;
        }
        self.compose.ports_free()?;
        self.ensure_swarm().await?;
        std::fs::create_dir_all(&self.paths.run)?;
        std::fs::write(
            self.paths.run.join("images"),
            if self.compose.offline() {
                "offline\n"
            } else {
                "official\n"
            },
        )?;
        // Swarm pulls nothing: the images are made present here first.
        self.compose.images().await?;
        eprintln!(
            "lab: swarm stack {STACK} with {gateways} gateway(s) ({} images)",
            if self.compose.offline() {
                "offline"
            } else {
                "official"
            }
        );
        self.deploy(gateways).await?;
        self.start_edge().await?;
        self.stack
            .load_balancer
            .wait_in_rotation(gateways, READY_LIMIT)
            .await?;
        eprintln!(
            "lab: ready: {gateways} gateway(s) behind http://127.0.0.1:{} (swarm)",
            &self.stack.settings.get(Name::LbPort)
        );
        Ok(())
    }

    async fn scale(&mut self, gateways: usize) -> anyhow::Result<()> {
        if gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        let before = self.tasks(Service::Gateway).await?;
        if before.len() > gateways {
            // Swarm picks the tasks that leave; each serves on for SHUTDOWN_DELAY_MS after
            // its SIGTERM, time to take exactly those out of rotation and let the load
            // balancer's requests to them finish.
            let was_shutting: Vec<String> = self.desired_shutdown().await?;
            self.scale_service(Service::Gateway.name(), gateways)
                .await?;
            let want = before.len() - gateways;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let leaving = loop {
                let now: Vec<String> = self
                    .desired_shutdown()
                    .await?
                    .into_iter()
                    .filter(|t| !was_shutting.contains(t))
                    .filter(|t| before.iter().any(|(_, id, _)| id == t))
                    .collect();
                if now.len() >= want || tokio::time::Instant::now() >= deadline {
                    break now;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let mut addrs = Vec::new();
            for task in &leaving {
                addrs.push(self.task_addr(task).await?);
            }
            self.stack
                .load_balancer
                .drain_and_wait(&addrs, DRAIN_LIMIT)
                .await?;
        } else if before.len() < gateways {
            self.scale_service(Service::Gateway.name(), gateways)
                .await?;
        }
        self.stack
            .load_balancer
            .wait_in_rotation(gateways, READY_LIMIT)
            .await?;
        self.converged(Service::Gateway.name(), READY_LIMIT).await?;
        // Drained addresses are gone from discovery; clear the list for addresses reused later.
        self.stack.load_balancer.drain(Vec::new()).await?;
        Ok(())
    }

    async fn down(&mut self, remove_data: bool) -> anyhow::Result<()> {
        let _ = docker_ok(&["rm", "-f", EDGE]).await;
        if self.deployed().await {
            docker(&["stack", "rm", STACK]).await?;
        }
        // `stack rm` returns at once: wait for its containers and network to go.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let left = Command::new("docker")
                .args([
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=com.docker.stack.namespace={STACK}"),
                ])
                .output()
                .await
                .map(|o| !o.stdout.is_empty())
                .unwrap_or(false);
            let net = docker_ok(&["network", "inspect", &network()]).await;
            if !left && !net {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the swarm stack's containers or network are still there after 90 s (docker stack ps {STACK})");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if remove_data {
            for v in ["pgdata", "redisdata"] {
                let _ = docker_ok(&["volume", "rm", &format!("{STACK}_{v}")]).await;
            }
        }
        let _ = std::fs::remove_file(self.paths.run.join("images"));
        let _ = std::fs::remove_file(self.paths.run.join("stack.yml"));
        let marker = self.paths.run.join(MARKER);
        if marker.exists() {
            docker(&["swarm", "leave", "--force"]).await?;
            std::fs::remove_file(&marker)?;
            eprintln!("lab: left the swarm the lab had initialised");
        }
        eprintln!("lab: swarm stack stopped");
        Ok(())
    }

    async fn ps(&self) -> anyhow::Result<Vec<Instance>> {
        if !self.deployed().await {
            return Ok(Vec::new());
        }
        Ok(self
            .running_tasks()
            .await?
            .into_iter()
            .map(|(service, slot, _, id)| Instance {
                name: if service == Service::Gateway {
                    format!("gateway-{slot}")
                } else {
                    service.name().to_string()
                },
                service,
                state: "running".into(),
                id,
            })
            .collect())
    }

    async fn logs(&self, service: Option<Service>, lines: usize) -> anyhow::Result<String> {
        let mut out = String::new();
        for s in Service::ALL
            .iter()
            .filter(|s| service.is_none_or(|w| w == **s))
        {
            let o = Command::new("docker")
                .args([
                    "service",
                    "logs",
                    "--no-trunc",
                    "--tail",
                    &lines.to_string(),
                    &service_name(s.name()),
                ])
                .output()
                .await
                .context("cannot run docker service logs")?;
            out.push_str(&String::from_utf8_lossy(&o.stdout));
            out.push_str(&String::from_utf8_lossy(&o.stderr));
        }
        Ok(out)
    }

    async fn restart(&mut self, service: Service, settings: Settings) -> anyhow::Result<()> {
        self.adopt(settings);
        let gateways = self.tasks(Service::Gateway).await?.len().max(1);
        // The whole stack file is written again (a later deploy keeps these settings); the
        // service is updated alone and waited for (`--detach=false`).
        let config = self.compose.compose_checked(&["config"]).await?;
        let stack = stack_file(&config, &self.stack.settings, gateways)?;
        crate::platform::write_private(&self.paths.run.join("stack.yml"), &stack)?;
        let doc: Value = serde_yaml_ng::from_str(&stack)?;
        let env = doc["services"][service.name()]["environment"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        let mut cmd = Command::new("docker");
        cmd.args(["service", "update", "--detach=false", "--quiet"]);
        for (k, v) in env {
            let v = match v {
                Value::String(s) => s,
                other => serde_yaml_ng::to_string(&other)?.trim().to_string(),
            };
            cmd.arg("--env-add")
                .arg(format!("{}={v}", k.as_str().unwrap_or_default()));
        }
        cmd.arg(service_name(service.name()));
        run_checked(&mut cmd, "docker service update").await?;
        self.stack
            .load_balancer
            .wait_in_rotation(gateways, READY_LIMIT)
            .await
    }

    async fn act(&mut self, instance: &str, action: Action) -> anyhow::Result<()> {
        if let Some(dependency) = dependency(instance) {
            return self.cut(dependency, action).await;
        }
        let inst = self
            .ps()
            .await?
            .into_iter()
            .find(|i| i.name == instance)
            .with_context(|| format!("no running instance {instance:?}: `make ps` lists them"));
        let verb = match action {
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Resume => "unpause",
            Action::Start => {
                // Swarm starts a stopped task again on its own: wait for the service to run
                // every task it wants.
                let service = match instance.split_once('-') {
                    Some(("gateway", _)) => Service::Gateway,
                    _ => Service::parse(instance)?,
                };
                return self.converged(service.name(), READY_LIMIT).await;
            }
        };
        let id = inst?.id;
        run_checked(
            Command::new("docker").args([verb, &id]),
            &format!("docker {verb}"),
        )
        .await?;
        Ok(())
    }

    fn generator(
        &self,
        _bin: &Path,
        plan: &Path,
        password: &str,
        results: &Path,
    ) -> anyhow::Result<Command> {
        std::fs::create_dir_all(results)?;
        let results = results.display().to_string();
        let user = crate::platform::user_and_group().unwrap_or_else(|| "0:0".into());
        let mut cmd = Command::new("docker");
        cmd.args([
            "run",
            "--rm",
            "--network",
            &network(),
            "--label",
            &format!("scalelab.stack={STACK}"),
            "--user",
            &user,
            "-v",
            &format!("{results}:{results}"),
            "-w",
            &results,
        ]);
        // The plan is in the run folder, which the container sees at the same path.
        let (set, _) = records::load::launch(plan, password, Vec::new());
        for (name, _) in &set {
            // `-e NAME` alone: the value comes from this command's environment.
            cmd.arg("-e").arg(name);
        }
        cmd.envs(set);
        cmd.args([self.app_image().as_str(), "loadtest"]);
        Ok(cmd)
    }
}

/// Swarm publishes one port per service through its edge and runs one microservice and one
/// worker: more needs compose or the native runtime.
fn one_of_each(settings: &Settings, runtime: &str) -> anyhow::Result<()> {
    for name in [Name::Workers, Name::Microservices] {
        if settings.get(name) != "1" {
            bail!(
                "{name}={} needs RUNTIME=compose or RUNTIME=native: the {runtime} stack runs one of each",
                settings.get(name)
            );
        }
    }
    Ok(())
}
