//! scalelab's lab, in Rust like rust-analyzer's `xtask`: the protocols (a recorded load run,
//! `benchmark-all`), experiments, faults, the autoscaler, the classroom labs and hand-ins,
//! driving the stack (the `stack` crate: settings, runtimes) and drawing on the live page
//! (the `live` crate). The Makefile is the front door and calls the `lab` binary.

pub mod autoscale;
pub mod experiments;
pub mod faults;
pub mod generators;
pub mod handin;
pub mod labs;
pub mod protocol;
pub mod sla;
pub mod tour;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use stack::runtime::{self, Action, Kind, Paths};
use stack::settings::Name;
use stack::settings::{self, Service, Settings};
use stack::{container, prereq};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    version,
    name = "lab",
    about = "Run the scalelab stack and its protocols (the Makefile calls this)"
)]
pub struct Cli {
    /// native or compose (default: the one whose stack is up, else compose where a Docker
    /// engine answers, else native).
    #[arg(long, env = "RUNTIME", global = true)]
    pub runtime: Option<String>,
    /// Compose images: official or offline (default: official when they can be pulled).
    #[arg(long, env = "IMAGES", global = true)]
    pub images: Option<String>,
    /// Which binaries the stack runs: release or debug.
    #[arg(long, env = "BUILD", default_value = "release", global = true)]
    pub build: String,
    /// Shorter runs: 300 users, +100/s, 23 s (3 s to start them, 20 s held).
    #[arg(long, env = "QUICK", global = true, value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    pub quick: bool,
    /// `make benchmark-all`: run each configuration this many times (1..=10), so the
    /// report can give each figure's spread.
    #[arg(long, env = "REPEATS", global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub repeats: u32,
    /// Do not run `cargo build` first (the binaries are already built).
    #[arg(long, env = "SKIP_BUILD", global = true, value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    pub skip_build: bool,
    /// The checkout (default: found from the current folder).
    #[arg(long, env = "LAB_ROOT", global = true)]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the runtime that would be used.
    Runtime,
    /// The lab settings in force, with their defaults and meanings.
    Settings,
    /// Print `.env.example` as generated from the settings table.
    EnvExample,
    /// Check this machine has what the chosen runtime needs, then build the binaries.
    Build,
    /// Start the stack with N gateways, or bring a running one to N in place.
    Up {
        #[arg(env = "GATEWAYS", default_value_t = 1)]
        gateways: usize,
    },
    /// Scale the gateways of a running stack to N in place (drained before they stop).
    Scale {
        #[arg(env = "GATEWAYS")]
        gateways: usize,
    },
    /// Stop the stack (only what the lab started).
    Down {
        /// Also remove its data: volumes (compose) or the lab's Redis keys (native).
        /// `make down DATA=delete` (make would read `-v` as its own).
        #[arg(short = 'v', long)]
        remove_data: bool,
    },
    /// What runs.
    Ps,
    /// The live page on its own, against the stack that runs, until Ctrl-C.
    Watch,
    /// Last log lines of every instance, or of every instance of one service.
    Logs {
        #[arg(env = "SERVICE")]
        service: Option<String>,
        #[arg(long, default_value_t = 50)]
        lines: usize,
    },
    /// Restart one service with changed settings: `lab restart gateway MAX_IN_FLIGHT=8`.
    Restart { service: String, set: Vec<String> },
    /// stop, kill, pause, resume or start one instance (`gateway-2`, `worker`, …).
    Act {
        #[arg(env = "INSTANCE")]
        instance: String,
        #[arg(env = "ACTION")]
        action: String,
    },
    /// Bring the stack to N gateways, then one recorded load-test run.
    Load {
        #[arg(env = "GATEWAYS", default_value_t = 1)]
        gateways: usize,
        #[arg(env = "SCENARIO", value_enum, default_value = "hit")]
        scenario: records::load::Scenario,
        #[arg(env = "PROFILE", value_enum, default_value = "classic")]
        profile: records::load::Profile,
    },
    /// The seed lab's protocol: 1 then 3 gateways, miss and hit, then the report.
    BenchmarkAll,
    /// CI's end-to-end check: 3 gateways, a short run spread evenly, then down.
    Smoke,
    /// The autoscaling experiment: static 1, static 3 and autoscaled under a rising and
    /// falling load, then burst and ramp autoscaled; then the report.
    Autoscale,
    /// One tactic as an A/B experiment (`index`, `db-pool`, …), then the report.
    Experiment {
        /// Without one (or empty): the list.
        #[arg(env = "NAME", default_value = "")]
        name: String,
    },
    /// Every experiment this runtime can run, then the report.
    Experiments,
    /// One fault under load (`kill-gateway`, `redis-outage`, `postgres-restart`), then the
    /// report; fails when the stack broke its promise.
    Fault {
        /// Without one (or empty): the list.
        #[arg(env = "NAME", default_value = "")]
        name: String,
    },
    /// Every fault, then the report.
    Faults,
    /// A classroom lab (`labs/`): its experiment in QUICK form, then where to look.
    Lab {
        #[arg(env = "N")]
        n: u32,
    },
    /// `tests/reports/summary.md` and its charts from every run folder.
    Report,
    /// Write lab N's answer sheet (`answers/<handout>`), its questions from the handout.
    Answers {
        #[arg(env = "N")]
        n: u32,
    },
    /// Bundle lab N's filled answer sheet, its latest runs and the report into
    /// `handin/lab<N>-<STUDENT>.tar.gz`.
    Handin {
        #[arg(env = "N")]
        n: u32,
    },
    /// The images a lab runs: `list`, `pull`, `save FILE`, `load FILE` (a room without a
    /// registry: one archive and its SHA-256, checked before anything is loaded).
    Images {
        #[command(subcommand)]
        action: ImagesAction,
    },
    /// The Postgres and Redis of the tests and the native runtime, on loopback (data in
    /// `.scalelab/`): `up` starts what does not answer, `down` stops only what `up` started.
    Deps {
        #[command(subcommand)]
        action: DepsAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum DepsAction {
    /// Start what does not answer, and wait until both do.
    Up,
    /// Stop only what `up` started (a server it found running is left alone).
    Down,
    /// Whether each answers.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum ImagesAction {
    /// Each image a lab needs, whether it is here and its version.
    List,
    /// Pull every image a lab needs, with progress (on the host: docker compose --profile lab pull).
    Pull,
    /// Write every image a lab needs to FILE, and FILE.sha256 beside it.
    Save { file: PathBuf },
    /// Check FILE against FILE.sha256, then load its images.
    Load { file: PathBuf },
}

impl Command {
    /// Whether the command drives load: the live page runs for as long as it does.
    pub fn drives_load(&self) -> bool {
        matches!(
            self,
            Command::Load { .. }
                | Command::BenchmarkAll
                | Command::Smoke
                | Command::Autoscale
                | Command::Experiment { .. }
                | Command::Experiments
                | Command::Fault { .. }
                | Command::Faults
                | Command::Lab { .. }
        )
    }

    /// Whether the command may start services: then the binaries are built first and the
    /// compose runtime may try to pull the official images. Exhaustive on purpose: a new
    /// command must say.
    pub fn may_start_the_stack(&self) -> bool {
        match self {
            Command::Build
            | Command::Up { .. }
            | Command::Load { .. }
            | Command::BenchmarkAll
            | Command::Smoke
            | Command::Autoscale
            | Command::Experiment { .. }
            | Command::Experiments
            | Command::Fault { .. }
            | Command::Faults
            | Command::Lab { .. }
            | Command::Restart { .. }
            | Command::Act { .. } => true,
            Command::Runtime
            | Command::Settings
            | Command::EnvExample
            | Command::Scale { .. }
            | Command::Down { .. }
            | Command::Ps
            | Command::Watch
            | Command::Logs { .. }
            | Command::Answers { .. }
            | Command::Handin { .. }
            | Command::Images { .. }
            | Command::Deps { .. }
            | Command::Report => false,
        }
    }
}

/// The lab's own variables besides the settings table's (make's): what a `NAME=value`
/// argument or the environment may set.
pub const VARIABLES: [&str; 15] = [
    "RUNTIME",
    "IMAGES",
    "BUILD",
    "QUICK",
    "REPEATS",
    "SKIP_BUILD",
    "LAB_ROOT",
    "NAME",
    "N",
    "GATEWAYS",
    "SERVICE",
    "SCENARIO",
    "PROFILE",
    "INSTANCE",
    "ACTION",
];

/// The checkout: the nearest folder upwards holding `docker-compose.yml` and `Cargo.toml`.
pub fn find_root(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(root) = explicit {
        return Ok(root);
    }
    let mut dir = std::env::current_dir()?;
    loop {
        if dir.join("docker-compose.yml").exists() && dir.join("Cargo.toml").exists() {
            return Ok(dir);
        }
        if !dir.pop() {
            bail!(
                "not inside the scalelab checkout (no docker-compose.yml above the current folder)"
            );
        }
    }
}

/// Runs the command where the lab runs (`place`: the host, or its container); under
/// FAIL_ON_SLA, a run of it that missed its SLA is a [`sla::SlaMissed`] error once
/// everything (runs, report) is written.
pub async fn run(cli: Cli, place: container::Place) -> anyhow::Result<()> {
    let root = find_root(cli.root.clone())?;
    let runs = sla::Runs::default();
    // `deps` runs no load and must not make `.env` (its password is the servers' business).
    let deps = matches!(cli.command, Command::Deps { .. });
    run_command(cli, place, &runs).await?;
    if deps {
        return Ok(());
    }
    sla::check_sla(&Settings::load(&root)?, &runs)
}

async fn run_command(cli: Cli, place: container::Place, runs: &sla::Runs) -> anyhow::Result<()> {
    let root = find_root(cli.root.clone())?;
    if !matches!(cli.build.as_str(), "release" | "debug") {
        bail!("BUILD must be release or debug, not {:?}", cli.build);
    }
    // A lab, experiment or fault that does not exist is said before anything is built.
    let lab = match &cli.command {
        Command::Lab { n } => Some(labs::find(*n)?),
        _ => None,
    };
    let experiment = match &cli.command {
        Command::Experiment { name } => Some(experiments::find(name)?),
        _ => None,
    };
    let fault = match &cli.command {
        Command::Fault { name } => Some(faults::find(name)?),
        _ => None,
    };
    if let Command::Act { action, .. } = &cli.command {
        Action::parse(action).map_err(anyhow::Error::msg)?;
    }
    let paths = Paths::new(&root, &cli.build, place);
    match &cli.command {
        Command::Report => return protocol::report(&paths.bin, &root).await,
        Command::Deps { action } => {
            let deps = stack::deps::Deps::new(&root, None)?;
            return match action {
                DepsAction::Up => deps.up(),
                DepsAction::Down => deps.down(),
                DepsAction::Status => {
                    print!("{}", deps.status());
                    Ok(())
                }
            };
        }
        Command::EnvExample => {
            print!("{}", settings::env_example());
            return Ok(());
        }
        Command::Settings => {
            print!("{}", settings::describe(&Settings::load(&root)?));
            return Ok(());
        }
        Command::Answers { n } => {
            let path = handin::write_sheet(&root, labs::find(*n)?)?;
            container::hand_back(&root);
            println!(
                "answer sheet: {} (fill in every {}, then make handin N={n} STUDENT=<your name>)",
                path.display(),
                handin::PLACEHOLDER
            );
            return Ok(());
        }
        Command::Handin { n } => {
            let settings = Settings::load(&root)?;
            let path = handin::handin(&root, labs::find(*n)?, settings.get(Name::Student))?;
            container::hand_back(&root);
            println!("hand in {}", path.display());
            return Ok(());
        }
        _ => {}
    }
    let settings = Settings::load(&root)?;
    if place.inside() {
        // `.env` may be new: the user's now, even if this command is interrupted later.
        container::hand_back(&root);
    }
    if let Command::Images { action } = &cli.command {
        // The released images, whatever runs: what a class pulls, saves and loads.
        let compose = runtime::compose::Compose::new(paths.clone(), settings, false).await?;
        let images = compose.release_images().await?;
        return match action {
            ImagesAction::List => images.list().await,
            ImagesAction::Pull => images.ensure(true).await,
            ImagesAction::Save { file } => images.save(file).await,
            ImagesAction::Load { file } => images.load(file).await,
        };
    }
    // A classroom lab runs on its own runtime (`Lab::runtime`) unless RUNTIME says otherwise.
    let requested = cli.runtime.as_deref().filter(|r| !r.is_empty());
    // In the lab container every lab runs on the compose stack beside it.
    let lab_runtime = lab.filter(|_| !place.inside()).map(|l| l.runtime().name());
    let kind = runtime::choice::choose(requested.or(lab_runtime), &paths).await?;
    if let Command::Runtime = cli.command {
        println!("{}", kind.name());
        return Ok(());
    }
    // down, ps and logs act on what runs: no build, no image choice.
    let needs_build = cli.command.may_start_the_stack();
    // Only a command that may start the stack may try to pull the official images.
    let offline =
        kind.containers() && runtime::offline::decide_offline(cli.images.as_deref(), &paths)?;
    if needs_build && !offline && kind.containers() {
        // Never a measurement with images of another version than the checkout's, whether
        // the stack is up already or not.
        runtime::images::check_versions(&[settings.scalelab_image("app")], &root, place).await?;
    }
    // A fault cuts Postgres or Redis: natively, the stack then reaches them through relays.
    let cuts = matches!(cli.command, Command::Fault { .. } | Command::Faults)
        || lab.is_some_and(|l| matches!(l.run, labs::Run::Faults));
    let mut rt =
        runtime::choice::open(kind, paths.clone(), settings.clone(), offline, cuts).await?;
    if needs_build {
        // Everything the runtime needs is checked before the long build, not after it.
        // The lab container's binaries come with its image: nothing to build.
        let skip_build = cli.skip_build || place.inside();
        // The lab container checks for the offline images; it never builds them.
        prereq::check(kind, offline && !place.inside(), skip_build)?;
        if !skip_build {
            prereq::build(&root, &cli.build).await?;
        }
    }
    // The live page, for as long as a command that drives load runs (and `lab watch`).
    let live = live::LiveBoard::default();
    if cli.command.drives_load() || matches!(cli.command, Command::Watch) {
        let port = if place.inside() {
            // The lab container's own port, which compose publishes as LIVE_PORT.
            live::CONTAINER_PORT
        } else {
            settings.port(Name::LivePort)
        };
        if live
            .start(live::address(port, place), &rt.stack().endpoints())
            .await
            .is_some()
        {
            // In the container the page answers on the host only where the port is
            // published: its address is printed only then.
            let host_port = if place.inside() {
                container::published_port(live::CONTAINER_PORT).await
            } else {
                Some(port)
            };
            match host_port {
                Some(p) => eprintln!(
                    "lab: live page on http://127.0.0.1:{p}/ (open it in a browser; it follows the run)"
                ),
                None => eprintln!(
                    "lab: no live page on this computer: its port is not published; add --service-ports (docker compose run --rm --service-ports lab …)"
                ),
            }
        }
    }
    // The protocols' context: the runtime, the binaries, the checkout.
    macro_rules! lab {
        () => {
            &mut protocol::Workbench::new(
                rt.as_mut(),
                &paths.bin,
                &root,
                runs.clone(),
                live.clone(),
            )
        };
    }
    let drives_load = cli.command.drives_load();
    let result: anyhow::Result<()> = async {
        match cli.command {
            Command::Runtime
            | Command::Settings
            | Command::EnvExample
            | Command::Report
            | Command::Answers { .. }
            | Command::Handin { .. }
            | Command::Images { .. }
            | Command::Deps { .. } => {
                unreachable!("handled above")
            }
            Command::Build => Ok(()),
            Command::Up { gateways } => rt.up(&settings, gateways).await,
            Command::Scale { gateways } => {
                if !runtime::is_up(rt.as_ref()).await {
                    bail!("no {} stack is up: start one with make up", kind.name());
                }
                rt.scale(gateways).await
            }
            Command::Down { remove_data } => {
                down(rt.as_mut(), kind, &paths, &settings, remove_data).await
            }
            Command::Watch => {
                eprintln!("lab: watching the {} stack; Ctrl-C ends it", kind.name());
                live.step(0, 1, "watching the stack that runs");
                let _ = tokio::signal::ctrl_c().await;
                Ok(())
            }
            Command::Ps => {
                let instances = rt.ps().await?;
                if instances.is_empty() {
                    println!("nothing runs ({} runtime)", kind.name());
                } else {
                    println!("INSTANCE         SERVICE        ID         STATE");
                    for i in instances {
                        let id: String = i.id.chars().take(10).collect();
                        println!(
                            "{:<16} {:<14} {:<10} {}",
                            i.name,
                            i.service.name(),
                            id,
                            i.state
                        );
                    }
                }
                Ok(())
            }
            Command::Logs { service, lines } => {
                let service = service
                    .filter(|s| !s.is_empty())
                    .map(|s| Service::parse(&s))
                    .transpose()?;
                print!("{}", rt.logs(service, lines).await?);
                Ok(())
            }
            Command::Restart { service, set } => {
                let service = Service::parse(&service)?;
                let mut changed = rt.stack().settings.clone();
                for pair in &set {
                    let (k, v) = pair
                        .split_once('=')
                        .with_context(|| format!("expected NAME=value, not {pair:?}"))?;
                    changed.set(k, v)?;
                }
                rt.restart(service, changed).await
            }
            Command::Act { instance, action } => {
                rt.act(
                    &instance,
                    Action::parse(&action).map_err(anyhow::Error::msg)?,
                )
                .await
            }
            Command::Load {
                gateways,
                scenario,
                profile,
            } => {
                let spec = protocol::LoadSpec::new(gateways, scenario, profile, cli.quick);
                protocol::load(lab!(), &spec).await.map(|_| ())
            }
            Command::BenchmarkAll => protocol::benchmark_all(lab!(), cli.quick, cli.repeats).await,
            Command::Smoke => protocol::smoke(lab!()).await,
            Command::Autoscale => protocol::autoscale(lab!(), cli.quick).await,
            Command::Experiment { .. } => {
                experiments::protocol(lab!(), experiment, cli.quick).await
            }
            Command::Experiments => experiments::protocol(lab!(), None, cli.quick).await,
            Command::Fault { .. } => faults::protocol(lab!(), fault, cli.quick).await,
            Command::Faults => faults::protocol(lab!(), None, cli.quick).await,
            Command::Lab { .. } => {
                let lab = lab.context("the lab is looked up before the build")?;
                eprintln!("lab {}: {}\nhandout: {}", lab.n, lab.question, lab.handout);
                match lab.run {
                    labs::Run::Benchmark { repeats } => {
                        protocol::benchmark_all(lab!(), true, repeats).await?
                    }
                    labs::Run::Faults => faults::protocol(lab!(), None, true).await?,
                    labs::Run::Stall => faults::stall(lab!(), true).await?,
                    labs::Run::Experiment(e) => {
                        experiments::protocol(lab!(), Some(e), true).await?
                    }
                    labs::Run::Autoscale => protocol::autoscale(lab!(), true).await?,
                    labs::Run::Loads(loads) => protocol::lab_loads(lab!(), lab.n, loads).await?,
                    labs::Run::Tour => {
                        tour::run(rt.as_mut(), &tour::fresh_key()).await?;
                    }
                }
                eprintln!(
                    "lab {}: done. Read {}\nAnswer the analysis questions in {}",
                    lab.n, lab.look, lab.handout
                );
                Ok(())
            }
        }
    }
    .await;
    if drives_load && live.serving() {
        // The board as the command left it, to open and talk through after the run.
        live.finished("the command ended; this page no longer updates");
        if let Ok(path) = live.save(&root.join("tests/reports")) {
            eprintln!("lab: the live page as it ended: {}", path.display());
        }
    }
    result
}

/// Stops whichever runtime has a stack up: the chosen one, and the other one too when it
/// runs (so `make down` never leaves half a lab behind).
async fn down(
    rt: &mut dyn runtime::Runtime,
    kind: Kind,
    paths: &Paths,
    settings: &Settings,
    remove_data: bool,
) -> anyhow::Result<()> {
    rt.down(remove_data).await?;
    for other in Kind::ALL.into_iter().filter(|k| *k != kind) {
        if !runtime::choice::maybe_up(other, paths).await {
            continue;
        }
        let offline = runtime::offline::decide_offline(None, paths).unwrap_or(false);
        if let Ok(mut o) =
            runtime::choice::open(other, paths.clone(), settings.clone(), offline, false).await
        {
            if runtime::is_up(o.as_ref()).await {
                o.down(remove_data).await?;
            }
        }
    }
    Ok(())
}
