//! The compose runtime: `docker-compose.yml` (project `scalelab`) through whichever compose
//! CLI exists (`docker compose` v2 or `docker-compose` v1), on official images or, where no
//! registry answers, on images built from Debian packages (`docker-compose.offline.yml`).
//! Settings reach compose as the environment it interpolates `${NAME}` from.

use super::{
    run_checked, Action, Dependency, Instance, Kind, Paths, Runtime, DRAIN_LIMIT, READY_LIMIT,
};
use crate::lb::LoadBalancer;
use crate::settings::{Service, Settings};
use anyhow::{bail, Context};
use async_trait::async_trait;
use std::time::Duration;
use tokio::process::Command;

pub const PROJECT: &str = "scalelab";

pub async fn engine_answers() -> bool {
    let probe = Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    matches!(tokio::time::timeout(Duration::from_secs(10), probe).await, Ok(Ok(s)) if s.success())
}

/// `docker compose` when the plugin answers, else `docker-compose`.
async fn compose_cli() -> anyhow::Result<Vec<String>> {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if v2 {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    let v1 = Command::new("docker-compose")
        .arg("version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if v1 {
        return Ok(vec!["docker-compose".into()]);
    }
    bail!("neither `docker compose` nor `docker-compose` found; install one: sudo apt-get install -y docker-compose")
}

pub struct Compose {
    paths: Paths,
    settings: Settings,
    cli: Vec<String>,
    offline: bool,
    lb: LoadBalancer,
}

impl Compose {
    /// `offline`: run on the offline images (see [`decide_offline`]).
    pub async fn new(paths: Paths, settings: Settings, offline: bool) -> anyhow::Result<Self> {
        let cli = compose_cli().await?;
        let lb = LoadBalancer::new(
            settings.port("LB_METRICS_PORT"),
            settings.port("LB_ADMIN_PORT"),
        );
        Ok(Self {
            paths,
            settings,
            cli,
            offline,
            lb,
        })
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
        // Offline images are built by scripts/images-offline, never by compose.
        let build = if self.offline {
            "--no-build"
        } else {
            "--build"
        };
        let scale = format!("gateway={gateways}");
        let mut args = vec!["up", "-d", build, "--no-deps"];
        if !recreate {
            args.push("--no-recreate");
        }
        args.extend(["--scale", &scale, service.name()]);
        self.compose_checked(&args).await.map(|_| ())
    }

    pub(crate) fn compose(&self) -> Command {
        let mut cmd = Command::new(&self.cli[0]);
        cmd.args(&self.cli[1..])
            .current_dir(&self.paths.root)
            .args(["-p", PROJECT, "-f", "docker-compose.yml"]);
        if self.offline {
            cmd.args(["-f", "docker-compose.offline.yml"]);
        }
        cmd.envs(self.settings.all());
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
        let ip = super::docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            id,
        ])
        .await?;
        let ip = ip
            .split_whitespace()
            .next()
            .context("the gateway container has no address")?;
        Ok(format!("{ip}:8000"))
    }

    /// Builds what the stack's images need: offline images from the host's release binaries.
    pub(crate) async fn images(&self) -> anyhow::Result<()> {
        if !self.offline {
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
            }
        }
        out
    }

    pub(crate) fn ports_free(&self) -> anyhow::Result<()> {
        let s = &self.settings;
        super::check_ports_free(&[
            ("LB_PORT", s.port("LB_PORT")),
            ("LB_METRICS_PORT", s.port("LB_METRICS_PORT")),
            ("LB_ADMIN_PORT", s.port("LB_ADMIN_PORT")),
            ("MICROSERVICE_PORT", s.port("MICROSERVICE_PORT")),
            ("WORKER_PORT", s.port("WORKER_PORT")),
        ])
    }
}

/// Offline images or official ones: `IMAGES` when set; else the choice of the stack that is
/// up (kept in `.scalelab/run/images`); else, when `may_pull`, official if the Postgres image
/// is present or can be pulled; else official.
pub async fn decide_offline(
    images: Option<&str>,
    paths: &Paths,
    settings: &Settings,
    may_pull: bool,
) -> anyhow::Result<bool> {
    Ok(match images.filter(|i| !i.is_empty()) {
        Some("official") => false,
        Some("offline") => true,
        Some(other) => bail!("IMAGES must be official or offline, not {other:?}"),
        None => match std::fs::read_to_string(paths.run.join("images")) {
            Ok(text) => text.trim() == "offline",
            Err(_) if may_pull => !official_images_available(settings.get("POSTGRES_IMAGE")).await,
            Err(_) => false,
        },
    })
}

/// Whether the official images can be had: present, or pulled within two minutes.
async fn official_images_available(image: &str) -> bool {
    if super::docker_ok(&["image", "inspect", image]).await {
        return true;
    }
    let pull = Command::new("docker").args(["pull", "-q", image]).output();
    let pulled = matches!(tokio::time::timeout(Duration::from_secs(120), pull).await, Ok(Ok(o)) if o.status.success());
    if !pulled {
        eprintln!("lab: cannot pull {image} (no registry): using images built from Debian packages (IMAGES=offline)");
    }
    pulled
}

/// The container runtimes publish one port per service and run one microservice and one
/// worker: more needs the native runtime.
pub(crate) fn one_of_each(settings: &Settings, runtime: &str) -> anyhow::Result<()> {
    for name in ["WORKERS", "MICROSERVICES"] {
        if settings.get(name) != "1" {
            bail!(
                "{name}={} needs the native runtime (RUNTIME=native): the {runtime} stack runs one of each",
                settings.get(name)
            );
        }
    }
    Ok(())
}

/// What the compose runtime needs on this machine before anything is built.
pub fn prerequisites(offline: bool) -> Vec<String> {
    let mut missing = Vec::new();
    if offline {
        let have_debootstrap = std::process::Command::new("sh")
            .args([
                "-c",
                "command -v debootstrap || test -x /usr/sbin/debootstrap",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        let have_base = std::process::Command::new("docker")
            .args(["image", "inspect", "scalelab-offline/base:bookworm"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_base && !have_debootstrap {
            missing.push("debootstrap (the offline images are built from Debian packages): sudo apt-get install -y debootstrap".into());
        }
        // SAFETY: geteuid has no preconditions.
        if !have_base && unsafe { libc::geteuid() } != 0 {
            missing.push("root, for debootstrap: run it with sudo".into());
        }
    }
    missing
}

#[async_trait]
impl Runtime for Compose {
    fn kind(&self) -> Kind {
        Kind::Compose
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    fn load_balancer(&self) -> &LoadBalancer {
        &self.lb
    }

    async fn is_up(&self) -> bool {
        self.containers().await.is_ok_and(|c| {
            c.iter()
                .any(|(_, s, _, state, _)| *s == Service::LoadBalancer && state == "running")
        })
    }

    async fn up(&mut self, gateways: usize) -> anyhow::Result<()> {
        one_of_each(&self.settings, "compose")?;
        if gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        if self.is_up().await {
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
        let n = gateways.to_string();
        let build = if self.offline {
            "--no-build"
        } else {
            "--build"
        };
        eprintln!(
            "lab: compose up with {gateways} gateway(s) ({}, {} images)",
            self.cli.join(" "),
            if self.offline { "offline" } else { "official" }
        );
        let mut cmd = self.compose();
        cmd.args([
            "up",
            "-d",
            build,
            "--remove-orphans",
            "--scale",
            &format!("gateway={n}"),
        ]);
        if let Err(e) = run_checked(&mut cmd, "compose up").await {
            bail!(
                "{e:#}\n{}the stack did not come up",
                self.show_unhealthy().await
            );
        }
        if let Err(e) = self.lb.wait_in_rotation(gateways, READY_LIMIT).await {
            bail!("{e:#}\n{}", self.show_unhealthy().await);
        }
        eprintln!(
            "lab: ready: {gateways} gateway(s) behind http://127.0.0.1:{} (compose)",
            self.settings.get("LB_PORT")
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
            self.lb.drain_and_wait(&addrs, DRAIN_LIMIT).await?;
            let grace = self.settings.get("SHUTDOWN_GRACE_SECS").to_string();
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
        self.lb.wait_in_rotation(gateways, READY_LIMIT).await?;
        // Drained addresses are gone from discovery; clear the list for addresses reused later.
        self.lb.drain(Vec::new()).await?;
        Ok(())
    }

    async fn down(&mut self, remove_data: bool) -> anyhow::Result<()> {
        let mut args = vec!["down", "--remove-orphans", "--timeout", "10"];
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
                name: if service == Service::Gateway {
                    format!("gateway-{n}")
                } else {
                    service.name().to_string()
                },
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
        self.settings = settings;
        let gateways = self.gateways().await?.max(1);
        // Recreated with the settings now in force.
        self.up_one(service, gateways, true).await?;
        self.lb.wait_in_rotation(gateways, READY_LIMIT).await
    }

    async fn act(&mut self, instance: &str, action: Action) -> anyhow::Result<()> {
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
        Ok(())
    }

    async fn cut(&mut self, dependency: Dependency, cut: bool) -> anyhow::Result<()> {
        let verb = if cut { "stop" } else { "start" };
        self.compose_checked(&[verb, dependency.name()]).await?;
        Ok(())
    }
}
