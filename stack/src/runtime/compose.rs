//! The compose runtime: `docker-compose.yml` (project `scalelab`) through whichever compose
//! CLI exists (`docker compose` v2 or `docker-compose` v1), on official images or, where no
//! registry answers, on images built from Debian packages (`docker-compose.offline.yml`).
//! Settings reach compose as the environment it interpolates `${NAME}` from.

use super::docker::{compose_cli, docker, docker_ok, run_checked};
use super::images::Images;
use super::{
    dependency, Action, Dependency, Instance, Kind, Paths, Runtime, Stack, DRAIN_LIMIT, READY_LIMIT,
};
use crate::container;
use crate::settings::Name;
use crate::settings::{Service, Settings};
use anyhow::{bail, Context};
use async_trait::async_trait;
use std::time::Duration;
use tokio::process::Command;

pub const PROJECT: &str = "scalelab";

/// Said when a service cannot log in to Postgres although `up` gave the role `.env`'s
/// password: a volume made by an older offline image, whose socket asks for the password too.
const STALE_PG: &str = "lab: Postgres keeps the password its volume was made with, not .env's POSTGRES_PASSWORD: run `make down DATA=delete` (Docker only: `docker compose run --rm lab down -v`; the data is reseeded at the next start) or put that password back in .env\n";

pub struct Compose {
    paths: Paths,
    /// Its instances are found by [`Compose::discover`] whenever containers start.
    pub(crate) stack: Stack,
    cli: Vec<String>,
    offline: bool,
}

impl Compose {
    /// `offline`: run on the offline images (see [`super::offline::decide_offline`]).
    pub async fn new(paths: Paths, settings: Settings, offline: bool) -> anyhow::Result<Self> {
        let cli = compose_cli().await?;
        let inside = paths.place.inside();
        let mut compose = Self {
            paths,
            stack: Stack::new(Kind::Compose, settings, inside),
            cli,
            offline,
        };
        // A stack already up (from `up` in an earlier container, or `make up`): join it now.
        if inside && docker_ok(&["network", "inspect", &network()]).await {
            container::join(&network()).await?;
        }
        if compose.lb_running().await {
            compose.discover().await;
        }
        Ok(compose)
    }

    /// The image of each compose service (`compose config`, so the file stays their only source).
    async fn services(&self) -> anyhow::Result<Vec<(String, String)>> {
        let text = self
            .compose_checked(&["--profile", "lab", "--profile", "observability", "config"])
            .await?;
        let file: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).context("compose config printed no YAML")?;
        let mut out = Vec::new();
        if let Some(services) = file.get("services").and_then(|s| s.as_mapping()) {
            for (name, service) in services {
                if let (Some(name), Some(image)) =
                    (name.as_str(), service.get("image").and_then(|i| i.as_str()))
                {
                    out.push((name.to_string(), image.to_string()));
                }
            }
        }
        Ok(out)
    }

    /// The released images this checkout's stack runs (pulled, saved and loaded by
    /// `lab images`).
    pub async fn release_images(&self) -> anyhow::Result<Images> {
        Ok(Images::new(
            self.services().await?,
            self.stack.settings.get(Name::ImageRegistry),
            self.paths.place,
            &self.paths.root,
        ))
    }

    /// Whether it runs on the offline images.
    pub(crate) fn offline(&self) -> bool {
        self.offline
    }

    /// `up` of one service alone (`--no-deps`), keeping the gateways at `gateways`;
    /// `recreate`: containers whose settings changed are replaced, else none is.
    async fn up_one(
        &self,
        service: Service,
        gateways: usize,
        recreate: bool,
    ) -> anyhow::Result<()> {
        // The image was built by `up` (offline images by scripts/images-offline).
        let scales = self.scales(gateways);
        let mut args = vec!["up", "-d", "--no-build", "--no-deps"];
        if !recreate {
            args.push("--no-recreate");
        }
        args.extend(scales.iter().map(String::as_str));
        args.push(service.name());
        self.compose_checked(&args).await.map(|_| ())
    }

    /// `--scale` for every scalable service: the gateways asked for, and the microservices
    /// and workers of the settings (MICROSERVICES, WORKERS).
    fn scales(&self, gateways: usize) -> Vec<String> {
        [
            (Service::Gateway, gateways),
            (Service::Microservice, self.wanted(Service::Microservice)),
            (Service::Worker, self.wanted(Service::Worker)),
        ]
        .into_iter()
        .flat_map(|(service, n)| ["--scale".to_string(), format!("{}={n}", service.name())])
        .collect()
    }

    fn wanted(&self, service: Service) -> usize {
        super::replicas_wanted(&self.stack.settings, service)
    }

    /// Finds where the lab reaches each running microservice and worker: from the lab
    /// container, the replica's address on the stack's network; from the host, its port on
    /// the host's loopback (the setting's port for a single replica, else the one the
    /// engine chose: docker-compose.host.yml). A replica it cannot reach (a stack started
    /// from the lab container publishes none; a container gone meanwhile) is said once and
    /// left out of the figures: no command fails for it.
    pub(crate) async fn discover(&mut self) {
        let containers = match self.containers().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("lab: cannot list the stack's containers ({e:#}); per-replica figures are left out");
                return;
            }
        };
        let mut found = Vec::new();
        for (name, service, _, state, id) in containers {
            let Some(inner) = inner_port(service) else {
                continue;
            };
            if state != "running" {
                continue;
            }
            match self.reach(&id, inner).await {
                Ok(url) => found.push((service, url)),
                Err(why) => eprintln!(
                    "lab: {name} cannot be reached from here ({why:#}); its figures are left out"
                ),
            }
        }
        self.stack.instances = found;
    }

    /// Where the lab reaches one container's `inner` port.
    async fn reach(&self, id: &str, inner: u16) -> anyhow::Result<String> {
        if self.paths.place.inside() {
            Ok(format!("http://{}:{inner}", container_ip(id).await?))
        } else {
            let out = docker(&["port", id, &format!("{inner}/tcp")]).await?;
            let port = published_port(&out).context("it publishes no port on this host")?;
            Ok(format!("http://127.0.0.1:{port}"))
        }
    }

    pub(crate) fn compose(&self) -> Command {
        let mut cmd = Command::new(&self.cli[0]);
        cmd.args(&self.cli[1..])
            .current_dir(&self.paths.root)
            .args(["-p", PROJECT, "-f", "docker-compose.yml"]);
        if !self.paths.place.inside() {
            // The ports only a lab on the host reads (the microservice's, the worker's, the
            // load balancer's admin): a student's stack in the container path publishes none.
            cmd.args(["-f", "docker-compose.host.yml"]);
        }
        if self.offline {
            cmd.args(["-f", "docker-compose.offline.yml"]);
        }
        cmd.envs(self.stack.settings.all());
        // Replicas cannot share a host port: an empty one lets the engine choose each.
        for (service, port) in HOST_PORTS {
            if self.wanted(service) > 1 {
                cmd.env(port.as_str(), "");
            }
        }
        cmd
    }

    pub(crate) async fn compose_checked(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = self.compose();
        cmd.args(args);
        run_checked(&mut cmd, &format!("compose {}", args.join(" "))).await
    }

    /// The project's containers: (name, service, number, state, id).
    async fn containers(&self) -> anyhow::Result<Vec<(String, Service, u32, String, String)>> {
        let out = run_checked(
            Command::new("docker").args([
                "ps",
                "-a",
                "--filter",
                &format!("label=com.docker.compose.project={PROJECT}"),
                "--format",
                "{{.Names}}\t{{.Label \"com.docker.compose.service\"}}\t{{.Label \"com.docker.compose.container-number\"}}\t{{.State}}\t{{.ID}}",
            ]),
            "docker ps",
        )
        .await?;
        let mut found = Vec::new();
        for line in out.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 5 {
                continue;
            }
            if let Ok(service) = Service::parse(f[1]) {
                found.push((
                    f[0].to_string(),
                    service,
                    f[2].parse().unwrap_or(0),
                    f[3].to_string(),
                    f[4].to_string(),
                ));
            }
        }
        found.sort_by_key(|c| (c.1, c.2));
        Ok(found)
    }

    /// The address the load balancer knows a gateway container by (`ip:8000`).
    async fn gateway_addr(&self, id: &str) -> anyhow::Result<String> {
        let ip = container_ip(id).await.context("the gateway container")?;
        Ok(format!("{ip}:8000"))
    }

    /// Makes sure the stack's images are here and of the checkout's version: pulled when
    /// missing (never built), or on the offline path the images built here from Debian
    /// packages (by scripts/images-offline from the host's binaries).
    pub(crate) async fn images(&self) -> anyhow::Result<()> {
        if !self.offline {
            return self.release_images().await?.ensure(false).await;
        }
        if self.paths.place.inside() {
            for image in super::offline::IMAGES {
                if !super::images::present(image).await {
                    bail!("the offline image {image} is missing: build the offline images on the Linux host first (sudo make images-offline)");
                }
            }
            return Ok(());
        }
        let status = Command::new(self.paths.root.join("scripts/images-offline"))
            .env(
                "BUILD",
                self.paths
                    .bin
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("release"),
            )
            .status()
            .await
            .context("cannot run scripts/images-offline")?;
        if !status.success() {
            bail!("the offline images could not be built (scripts/images-offline)");
        }
        Ok(())
    }

    /// Postgres started alone and given `.env`'s POSTGRES_PASSWORD before the services log
    /// in: its volume keeps the password it was made with, which another checkout's `.env` (the
    /// project name, hence the volume, is shared) or an older one may not have. psql reaches
    /// the server over the container's socket (trusted, as the official image sets it up);
    /// the statement goes on stdin, never on a command line.
    async fn postgres_takes_the_password(&self) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        if let Err(e) = self
            .compose_checked(&["up", "-d", "--no-build", "postgres"])
            .await
        {
            if let Some(line) =
                super::published::port_taken(&format!("{e:#}"), &self.stack.settings)
            {
                bail!("{line}");
            }
            bail!(
                "{e:#}\n{}Postgres did not start",
                self.show_unhealthy().await
            );
        }
        let password = self
            .stack
            .settings
            .get(Name::PostgresPassword)
            .replace('\'', "''");
        // The server never logs the statement, even if it fails (it holds the password).
        let sql = format!(
            "SET log_min_error_statement = panic;\nALTER ROLE postgres PASSWORD '{password}';\n"
        );
        let deadline = tokio::time::Instant::now() + READY_LIMIT;
        loop {
            let mut cmd = self.compose();
            cmd.args([
                "exec",
                "-T",
                "postgres",
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-U", "postgres", "-d", "postgres"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
            let mut child = cmd
                .spawn()
                .context("cannot run compose exec postgres psql")?;
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(sql.as_bytes()).await;
            }
            let out = child.wait_with_output().await?;
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                return Ok(());
            }
            // A volume whose socket asks for a password (made by an older offline image):
            // the services' failed logins then tell the user what to do (STALE_PG).
            if err.contains("password authentication failed") || err.contains("no password") {
                return Ok(());
            }
            // What an error says, without a line that could quote the statement.
            let said: Vec<&str> = err
                .lines()
                .filter(|l| !l.to_ascii_lowercase().contains("password '"))
                .collect();
            let starting = [
                "connection to server",
                "could not connect",
                "starting up",
                "shutting down",
                "is not running",
                "is restarting",
            ]
            .iter()
            .any(|w| err.contains(w));
            if !starting {
                bail!(
                    "Postgres did not take the password of .env: {}",
                    said.join(" ")
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "Postgres did not answer within {} s: {}\n{}",
                    READY_LIMIT.as_secs(),
                    said.join(" "),
                    self.show_unhealthy().await
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// What went wrong, container by container, for a stack that did not come up.
    async fn show_unhealthy(&self) -> String {
        let mut out = String::new();
        for (name, _, _, state, id) in self.containers().await.unwrap_or_default() {
            let health = Command::new("docker")
                .args([
                    "inspect",
                    "-f",
                    "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                    &id,
                ])
                .output()
                .await
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or(state);
            if health != "healthy" {
                let logs = Command::new("docker")
                    .args(["logs", "--tail", "20", &id])
                    .output()
                    .await
                    .map(|o| {
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .unwrap_or_default();
                out.push_str(&format!("{name} is {health}; its last log lines:\n"));
                for l in logs.lines() {
                    out.push_str(&format!("    {l}\n"));
                }
                if logs.contains("password authentication failed") && !out.contains(STALE_PG) {
                    out.push_str(STALE_PG);
                }
            }
        }
        out
    }

    pub(crate) fn ports_free(&self) -> anyhow::Result<()> {
        if self.paths.place.inside() {
            // The container's loopback is not the host's: compose itself tells a taken port.
            return Ok(());
        }
        let s = &self.stack.settings;
        let chosen_by_the_engine = |name: Name| {
            HOST_PORTS
                .iter()
                .any(|(service, port)| *port == name && self.wanted(*service) > 1)
        };
        let ports: Vec<(&str, u16)> = super::published::PUBLISHED_FROM_THE_HOST
            .into_iter()
            .filter(|name| !chosen_by_the_engine(*name))
            .map(|name| (name.as_str(), s.port(name)))
            .collect();
        super::check_ports_free(&ports)
    }
}

impl Compose {
    /// Whether this project's load balancer container runs.
    async fn lb_running(&self) -> bool {
        self.containers().await.is_ok_and(|c| {
            c.iter()
                .any(|(_, s, _, state, _)| *s == Service::LoadBalancer && state == "running")
        })
    }

    /// Stopping Postgres or Redis stops its container; starting it starts it again.
    async fn cut(&mut self, dependency: Dependency, action: Action) -> anyhow::Result<()> {
        let verb = match action {
            Action::Start | Action::Resume => "start",
            Action::Stop | Action::Kill | Action::Pause => "stop",
        };
        self.compose_checked(&[verb, dependency.name()]).await?;
        Ok(())
    }

    /// `down` from the lab container: `compose down` would stop every container of the
    /// project, the lab's own among them when it runs in this project, so the stack's
    /// services are removed by name, then its volumes (`remove_data`) and its network.
    async fn down_from_inside(&mut self, remove_data: bool) -> anyhow::Result<()> {
        let mut args = vec!["--profile", "observability", "rm", "--stop", "--force"];
        args.extend(STACK_SERVICES);
        args.push("prometheus");
        self.compose_checked(&args).await?;
        if remove_data {
            for volume in ["pgdata", "redisdata"] {
                let name = format!("{PROJECT}_{volume}");
                if docker_ok(&["volume", "inspect", &name]).await {
                    docker(&["volume", "rm", &name]).await?;
                }
            }
        }
        container::leave(&network()).await;
        // Still in use when the lab container is of this project: it goes with the next down.
        let _ = docker(&["network", "rm", &network()]).await;
        let _ = std::fs::remove_file(self.paths.run.join("images"));
        eprintln!("lab: compose stack stopped");
        Ok(())
    }
}

/// The scalable services' host ports (docker-compose.host.yml): the setting's port for one
/// replica, one the engine chooses for each of several.
const HOST_PORTS: [(Service, Name); 2] = [
    (Service::Microservice, Name::MicroservicePort),
    (Service::Worker, Name::WorkerPort),
];

/// Every service of the stack (not the `lab` service, which runs the lab itself).
pub const STACK_SERVICES: [&str; 6] = [
    "load_balancer",
    "gateway",
    "worker",
    "microservice",
    "redis",
    "postgres",
];

/// A container's address on the stack's network.
async fn container_ip(id: &str) -> anyhow::Result<String> {
    let ips = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        id,
    ])
    .await?;
    Ok(ips
        .split_whitespace()
        .next()
        .context("it has no address")?
        .to_string())
}

/// The port a microservice or worker listens on inside its container.
fn inner_port(service: Service) -> Option<u16> {
    match service {
        Service::Microservice => Some(8001),
        Service::Worker => Some(8002),
        _ => None,
    }
}

/// The host port in `docker port`'s answer (`127.0.0.1:49153`, one line per address).
fn published_port(answer: &str) -> Option<u16> {
    answer
        .lines()
        .find_map(|line| line.trim().rsplit_once(':')?.1.parse().ok())
}

/// The stack's network, which the lab container joins.
pub fn network() -> String {
    format!("{PROJECT}_lab")
}

#[async_trait]
impl Runtime for Compose {
    fn stack(&self) -> &Stack {
        &self.stack
    }

    async fn up(&mut self, settings: &Settings, gateways: usize) -> anyhow::Result<()> {
        if gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        self.stack.adopt(settings.clone());
        if self.lb_running().await {
            // The microservices and workers the settings ask for now (`make up WORKERS=3` on
            // a stack that runs one), then the gateways; nothing to do (every load run on a
            // stack already up) costs one `docker ps`, not a `compose up` per service.
            let containers = self.containers().await?;
            let running = |service: Service| {
                containers
                    .iter()
                    .filter(|c| c.1 == service && c.3 == "running")
                    .count()
            };
            // The gateways as they are: `scale` drains the ones that leave.
            let gateways_now = running(Service::Gateway).max(1);
            for service in [Service::Microservice, Service::Worker] {
                if running(service) != self.wanted(service) {
                    self.up_one(service, gateways_now, false).await?;
                }
            }
            return self.scale(gateways).await;
        }
        self.ports_free()?;
        std::fs::create_dir_all(&self.paths.run)?;
        std::fs::write(
            self.paths.run.join("images"),
            if self.offline {
                "offline\n"
            } else {
                "official\n"
            },
        )?;
        self.images().await?;
        if let Some(line) = super::published::loopback_leak().await {
            eprintln!("{line}");
        }
        eprintln!(
            "lab: compose up with {gateways} gateway(s) ({}, {} images)",
            self.cli.join(" "),
            if self.offline { "offline" } else { "official" }
        );
        self.postgres_takes_the_password().await?;
        let mut cmd = self.compose();
        cmd.args(["up", "-d", "--no-build"])
            .args(self.scales(gateways));
        if !self.paths.place.inside() {
            // Inside, the lab's own container may belong to this project: it is no orphan.
            cmd.arg("--remove-orphans");
        }
        if let Err(e) = run_checked(&mut cmd, "compose up").await {
            if let Some(line) =
                super::published::port_taken(&format!("{e:#}"), &self.stack.settings)
            {
                bail!("{line}");
            }
            bail!(
                "{e:#}\n{}the stack did not come up",
                self.show_unhealthy().await
            );
        }
        if self.paths.place.inside() {
            container::join(&network()).await?;
        }
        if let Err(e) = self
            .stack
            .load_balancer
            .wait_in_rotation(gateways, READY_LIMIT)
            .await
        {
            bail!("{e:#}\n{}", self.show_unhealthy().await);
        }
        self.discover().await;
        eprintln!(
            "lab: ready: {gateways} gateway(s) behind http://localhost:{} (compose)",
            self.stack.settings.get(Name::LbPort)
        );
        Ok(())
    }

    async fn scale(&mut self, gateways: usize) -> anyhow::Result<()> {
        if gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        let running: Vec<_> = self
            .containers()
            .await?
            .into_iter()
            .filter(|c| c.1 == Service::Gateway && c.3 == "running")
            .collect();
        if running.len() > gateways {
            // Compose removes the highest-numbered replicas: drain exactly those first.
            let leaving = &running[gateways..];
            let mut addrs = Vec::new();
            for c in leaving {
                addrs.push(self.gateway_addr(&c.4).await?);
            }
            self.stack
                .load_balancer
                .drain_and_wait(&addrs, DRAIN_LIMIT)
                .await?;
            let grace = self.stack.settings.get(Name::ShutdownGraceSecs).to_string();
            for c in leaving {
                run_checked(
                    Command::new("docker").args(["stop", "-t", &grace, &c.4]),
                    "docker stop",
                )
                .await?;
                run_checked(Command::new("docker").args(["rm", &c.4]), "docker rm").await?;
            }
        }
        // Starts missing replicas (a no-op when it already has n); never recreates the rest.
        self.up_one(Service::Gateway, gateways, false).await?;
        self.stack
            .load_balancer
            .wait_in_rotation(gateways, READY_LIMIT)
            .await?;
        // Drained addresses are gone from discovery; clear the list for addresses reused later.
        self.stack.load_balancer.drain(Vec::new()).await?;
        self.discover().await;
        Ok(())
    }

    async fn down(&mut self, remove_data: bool) -> anyhow::Result<()> {
        if remove_data {
            eprintln!("lab: removing the stack's volumes {PROJECT}_pgdata (Postgres: users, items, task results) and {PROJECT}_redisdata (Redis: the cache, the job queue)");
        }
        if self.paths.place.inside() {
            return self.down_from_inside(remove_data).await;
        }
        // Prometheus of the observability profile goes down with the stack it watches.
        let mut args = vec![
            "--profile",
            "observability",
            "down",
            "--remove-orphans",
            "--timeout",
            "10",
        ];
        if remove_data {
            args.push("--volumes");
        }
        let out = self.compose_checked(&args).await;
        let _ = std::fs::remove_file(self.paths.run.join("images"));
        out.map(|_| eprintln!("lab: compose stack stopped"))
    }

    async fn ps(&self) -> anyhow::Result<Vec<Instance>> {
        Ok(self
            .containers()
            .await?
            .into_iter()
            .map(|(_, service, n, state, id)| Instance {
                name: super::replica_name(service, n as usize),
                service,
                state,
                id,
            })
            .collect())
    }

    async fn logs(&self, service: Option<Service>, lines: usize) -> anyhow::Result<String> {
        let tail = format!("--tail={lines}");
        let mut args = vec!["logs", "--no-color", tail.as_str()];
        if let Some(s) = service {
            args.push(s.name());
        }
        let mut cmd = self.compose();
        cmd.args(&args);
        let out = cmd.output().await.context("cannot run compose logs")?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    async fn restart(&mut self, service: Service, settings: Settings) -> anyhow::Result<()> {
        self.stack.adopt(settings);
        let gateways = super::gateways(self).await?.max(1);
        // Recreated with the settings now in force.
        self.up_one(service, gateways, true).await?;
        self.stack
            .load_balancer
            .wait_in_rotation(gateways, READY_LIMIT)
            .await?;
        self.discover().await;
        Ok(())
    }

    async fn act(&mut self, instance: &str, action: Action) -> anyhow::Result<()> {
        if let Some(dependency) = dependency(instance) {
            return self.cut(dependency, action).await;
        }
        let id = self
            .ps()
            .await?
            .into_iter()
            .find(|i| i.name == instance)
            .map(|i| i.id)
            .with_context(|| format!("no instance {instance:?}: `make ps` lists them"))?;
        let verb = match action {
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Resume => "unpause",
            Action::Start => "start",
        };
        run_checked(
            Command::new("docker").args([verb, &id]),
            &format!("docker {verb}"),
        )
        .await?;
        // A container started again may have another address or host port.
        self.discover().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_port_is_read_from_docker_port() {
        assert_eq!(published_port("127.0.0.1:49153\n"), Some(49153));
        // Engines that publish on IPv6 too list both addresses.
        assert_eq!(published_port("0.0.0.0:32768\n[::]:32768\n"), Some(32768));
        assert_eq!(published_port(""), None);
        assert_eq!(
            published_port("Error: No public port '8001/tcp' published"),
            None
        );
    }
}
