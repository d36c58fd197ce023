//! Where the stack runs. Every runtime offers the same operations, so protocols,
//! experiments and the autoscaler are written once:
//!
//! - `up(settings, n)`: start the stack with these settings and n gateways, or bring a running
//!   one to n in place;
//! - `scale(n)`: gateways only, in place: a new gateway takes traffic only once the load
//!   balancer has seen it healthy; a leaving one is drained first (out of rotation, its
//!   in-flight requests completed), then stopped; no client request fails for it;
//! - `down`: stop only what the lab started;
//! - `ps`, `logs`; `restart` one service with changed settings; `act` on one instance
//!   (stop, kill, pause, resume, start; Postgres and Redis included) for fault experiments;
//! - `generator`: the load generator's command on a plan.
//!
//! What the lab knows of a stack (its settings, addresses, the load balancer's client) is
//! data, [`Stack`], which each runtime keeps up to date.

pub mod choice;
pub mod compose;
pub mod docker;
pub mod images;
pub mod native;
pub mod offline;
pub mod published;
pub mod stack;
pub mod swarm;

use crate::container::Place;
use crate::lb::LoadBalancerClient;
use crate::settings::Name;
use crate::settings::{Service, Settings};
use anyhow::bail;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Native,
    Compose,
    Swarm,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Native, Kind::Compose, Kind::Swarm];

    /// Whether the stack runs in containers: Docker places them (no CPU pinning), their
    /// images are pulled or built, and each can have a CPU limit.
    pub fn containers(self) -> bool {
        match self {
            Kind::Native => false,
            Kind::Compose | Kind::Swarm => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::Compose => "compose",
            Kind::Swarm => "swarm",
        }
    }
}

/// One process or container of the stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// `gateway-2`: the name `act` and `logs` take.
    pub name: String,
    pub service: Service,
    /// `running`, `exited`, `paused`, or the container's status line.
    pub state: String,
    /// pid or container id.
    pub id: String,
}

/// What a fault experiment does to an instance, and what it cuts the stack off from: one
/// definition, the catalogue's, for the faults and the runtimes.
pub use catalogue::fault::{Action, Dependency};

/// Longest wait for a service to become ready or a gateway to enter the rotation.
pub const READY_LIMIT: Duration = Duration::from_secs(120);
/// Longest wait for the load balancer's requests to a draining gateway to complete.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// What a runtime is: the operations a protocol, an experiment or the autoscaler asks of
/// the stack, whatever runs it. A new runtime is one module implementing this and one arm
/// in [`choice`].
#[async_trait]
pub trait Runtime: Send + Sync {
    /// What the lab knows of the stack: the runtime, the settings in force, its addresses.
    fn stack(&self) -> &Stack;
    /// Starts the stack with `settings` (which become the ones in force) and n gateways, or
    /// brings a running one to n in place.
    async fn up(&mut self, settings: &Settings, gateways: usize) -> anyhow::Result<()>;
    async fn scale(&mut self, gateways: usize) -> anyhow::Result<()>;
    async fn down(&mut self, remove_data: bool) -> anyhow::Result<()>;
    /// Every instance, running or not; none when no stack of this runtime is up.
    async fn ps(&self) -> anyhow::Result<Vec<Instance>>;
    /// The last `lines` of each matching instance's log (every instance of the service).
    async fn logs(&self, service: Option<Service>, lines: usize) -> anyhow::Result<String>;
    /// Restarts every instance of a service with `settings` (which become the ones in force).
    async fn restart(&mut self, service: Service, settings: Settings) -> anyhow::Result<()>;
    /// Stops, kills, pauses, resumes or starts one instance. `postgres` and `redis` are
    /// instances too: stopping one cuts the stack off from it, starting it restores it; the
    /// lab never stops a server it did not start (natively it cuts the relay in front of it,
    /// which the runtime must have been opened with).
    async fn act(&mut self, instance: &str, action: Action) -> anyhow::Result<()>;
    /// The load generator's command on the plan in `plan` (a file in its run folder, under
    /// `results`), the lab users' `password` beside it: the host's binary, or (Swarm) a
    /// container on the stack's network.
    fn generator(
        &self,
        bin: &Path,
        plan: &Path,
        password: &str,
        _results: &Path,
    ) -> anyhow::Result<tokio::process::Command> {
        Ok(host_generator(bin, plan, password))
    }
}

/// Whether a stack of this runtime is up: its load balancer runs (a stopped project, a
/// crashed load balancer's pid file, is not a stack that is up).
pub async fn is_up(rt: &dyn Runtime) -> bool {
    rt.ps().await.is_ok_and(|all| {
        all.iter()
            .any(|i| i.service == Service::LoadBalancer && i.state.starts_with("running"))
    })
}

/// Gateways running now.
pub async fn gateways(rt: &dyn Runtime) -> anyhow::Result<usize> {
    Ok(rt
        .ps()
        .await?
        .iter()
        .filter(|i| i.service == Service::Gateway && i.state.starts_with("running"))
        .count())
}

/// The dependency `instance` names (`postgres`, `redis`), if it names one.
pub fn dependency(instance: &str) -> Option<Dependency> {
    [Dependency::Postgres, Dependency::Redis]
        .into_iter()
        .find(|d| d.name() == instance)
}

/// The host's load generator on a plan: `loadtest` beside the lab, given the plan's file and
/// the password, and none of the load settings this process inherited.
fn host_generator(bin: &Path, plan: &Path, password: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin.join("loadtest"));
    let (set, stray) = records::load::launch(plan, password, std::env::vars().map(|(k, _)| k));
    for name in stray {
        cmd.env_remove(name);
    }
    cmd.envs(set);
    cmd
}

/// What the lab knows of a stack, whatever runs it: which runtime, the settings in force,
/// and where the lab, the load generator and the load balancer's client reach it.
#[derive(Debug, Clone)]
pub struct Stack {
    pub kind: Kind,
    pub settings: Settings,
    pub load_balancer: LoadBalancerClient,
    /// Where each microservice and worker instance answers, in replica order.
    pub instances: Vec<(Service, String)>,
    /// The lab reaches the stack from inside its network (the lab container), by name.
    inside: bool,
}

impl Stack {
    pub fn new(kind: Kind, settings: Settings, inside: bool) -> Self {
        let load_balancer = load_balancer_client(&settings, inside);
        Self {
            kind,
            settings,
            load_balancer,
            instances: Vec::new(),
            inside,
        }
    }

    /// The settings in force from now on (the load balancer's client follows them).
    pub fn adopt(&mut self, settings: Settings) {
        self.load_balancer = load_balancer_client(&settings, self.inside);
        self.settings = settings;
    }

    /// Where the lab reaches the stack: by name from inside its network; from the host, the
    /// published ports (each first instance's where the engine chose them).
    pub fn endpoints(&self) -> Endpoints {
        if self.inside {
            return Endpoints::inside_the_network();
        }
        let mut ends = Endpoints::from_settings(&self.settings);
        if let Some(url) = self.instance_urls(Service::Microservice).first() {
            ends.microservice = url.clone();
        }
        if let Some(url) = self.instance_urls(Service::Worker).first() {
            ends.worker_metrics = format!("{url}/metrics");
        }
        ends
    }

    /// Where the load generator sends load and reads the stack's metrics (on Swarm, from a
    /// container on the stack's network).
    pub fn generator_endpoints(&self) -> Endpoints {
        match self.kind {
            Kind::Swarm => Endpoints::inside_the_network(),
            _ => self.endpoints(),
        }
    }

    /// Base URLs of every instance of the microservice or the worker.
    pub fn instance_urls(&self, service: Service) -> Vec<String> {
        self.instances
            .iter()
            .filter(|(s, _)| *s == service)
            .map(|(_, url)| url.clone())
            .collect()
    }
}

fn load_balancer_client(settings: &Settings, inside: bool) -> LoadBalancerClient {
    if inside {
        LoadBalancerClient::at(
            "http://load_balancer:9100",
            "http://load_balancer:9101",
            settings.get(Name::AdminToken),
        )
    } else {
        LoadBalancerClient::new(settings)
    }
}

/// The name of instance i: `gateway-i`; `microservice`, `worker` for the first of those and
/// `worker-2`, … for the rest.
pub(crate) fn replica_name(service: Service, i: usize) -> String {
    match (service, i) {
        (Service::Gateway, i) => format!("gateway-{i}"),
        (s, 1) => s.name().to_string(),
        (s, i) => format!("{}-{i}", s.name()),
    }
}

/// Instances of the microservice or the worker the settings ask for (`MICROSERVICES`,
/// `WORKERS`); one of anything else.
pub(crate) fn replicas_wanted(settings: &Settings, service: Service) -> usize {
    match service {
        Service::Microservice => settings.number(Name::Microservices) as usize,
        Service::Worker => settings.number(Name::Workers) as usize,
        _ => 1,
    }
}

/// The inverse of [`replica_name`].
pub(crate) fn replica_index(service: Service, name: &str) -> Option<usize> {
    if service != Service::Gateway && name == service.name() {
        return Some(1);
    }
    name.strip_prefix(service.name())?
        .strip_prefix('-')?
        .parse()
        .ok()
        .filter(|i| *i >= 1)
}

/// Addresses of the stack (on the host the same in every runtime: compose publishes them on
/// loopback, Swarm through its edge container).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub target: String,
    pub lb_metrics: String,
    pub microservice: String,
    pub worker_metrics: String,
}

impl Endpoints {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            target: format!("http://127.0.0.1:{}", s.get(Name::LbPort)),
            lb_metrics: format!("http://127.0.0.1:{}/metrics", s.get(Name::LbMetricsPort)),
            microservice: format!("http://127.0.0.1:{}", s.get(Name::MicroservicePort)),
            worker_metrics: format!("http://127.0.0.1:{}/metrics", s.get(Name::WorkerPort)),
        }
    }
}

impl Endpoints {
    /// From inside the stack's network (the lab container, a generator on Swarm): the
    /// services by name, on the ports they listen on.
    pub fn inside_the_network() -> Self {
        Self {
            target: "http://load_balancer:8080".into(),
            lb_metrics: "http://load_balancer:9100/metrics".into(),
            microservice: "http://microservice:8001".into(),
            worker_metrics: "http://worker:8002/metrics".into(),
        }
    }
}

/// The project's folders: the checkout, and `.scalelab/` under it.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    /// Native pids and logs, the compose image choice.
    pub run: PathBuf,
    /// Where the stack's binaries are (`target/release`).
    pub bin: PathBuf,
    /// Where the lab runs: on the host or in its container.
    pub place: Place,
}

impl Paths {
    pub fn new(root: &Path, build: &str, place: Place) -> Self {
        Self {
            root: root.to_path_buf(),
            run: root.join(".scalelab/run"),
            // In the lab container the binaries come with the image, beside the lab.
            bin: if place.inside() {
                crate::container::bin_dir()
            } else {
                root.join("target").join(build)
            },
            place,
        }
    }
}

/// Fails with a line naming the holder when any of the ports is taken.
pub fn check_ports_free(ports: &[(&str, u16)]) -> anyhow::Result<()> {
    for (name, port) in ports {
        if std::net::TcpListener::bind(("127.0.0.1", *port)).is_err() {
            let who =
                crate::platform::port_holder(*port).unwrap_or_else(|| "another process".into());
            bail!(
                "port {port} ({name}) is taken by {who}; stop that process or set {name} in .env"
            );
        }
    }
    Ok(())
}

/// Polls `url` until it answers 2xx, `alive()` turns false, or the limit passes.
pub async fn wait_http_ok(
    url: &str,
    limit: Duration,
    mut alive: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let client = common::http::client(Duration::from_secs(2));
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if !alive() {
            bail!("it exited");
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{url} did not answer 200 within {}s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
