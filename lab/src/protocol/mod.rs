//! Protocols: sequences of runtime operations and recorded load runs. A single run (`make
//! load`, `make test1-hit`, …) and the seed lab's `benchmark-all` are written here once, for
//! every runtime; experiments reuse `load`.

mod autoscaling;
mod run;

pub use autoscaling::{autoscale, autoscale_runs, AutoscaleRun};
pub(crate) use run::spawn_load;
pub use run::{load, load_autoscaled, quick_load, LoadSpec};

use anyhow::{bail, Context};
use live::LiveBoard;
use records::knob::Knob;
use records::load::{Profile, Scenario};
use stack::runtime::Runtime;
use stack::settings::Settings;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What every protocol works with: the runtime the stack runs on, where the lab's binaries
/// are (`loadtest`, `report`), the checkout (`tests/results`, `tests/reports`), and the
/// runs the command has started (FAIL_ON_SLA's verdict reads them).
pub struct Workbench<'a> {
    pub rt: &'a mut dyn Runtime,
    /// The settings the next `up` brings the stack to (an experiment's side changes them).
    pub settings: Settings,
    pub bin: &'a Path,
    pub root: &'a Path,
    pub runs: crate::sla::Runs,
    /// The live page's board, which the protocols' steps, faults and notes are drawn on.
    pub live: LiveBoard,
}

impl<'a> Workbench<'a> {
    pub fn new(
        rt: &'a mut dyn Runtime,
        bin: &'a Path,
        root: &'a Path,
        runs: crate::sla::Runs,
        live: LiveBoard,
    ) -> Self {
        Self {
            settings: rt.stack().settings.clone(),
            rt,
            bin,
            root,
            runs,
            live,
        }
    }

    /// Starts the stack with the workbench's settings and n gateways, or brings a running
    /// one to them.
    pub async fn up(&mut self, gateways: usize) -> anyhow::Result<()> {
        self.rt.up(&self.settings, gateways).await
    }

    /// Writes the report of every run so far.
    pub async fn report(&self) -> anyhow::Result<()> {
        report(self.bin, self.root).await
    }

    /// A protocol stopped before its end (a failed step, Ctrl-C): the stack goes down, the
    /// error goes on.
    pub async fn stopped<T>(&mut self, what: &str, e: anyhow::Error) -> anyhow::Result<T> {
        stopped(self.rt, what, e).await
    }
}

/// `make report`: the summary from every run folder.
pub async fn report(bin: &Path, root: &Path) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(bin.join("report"))
        .current_dir(root)
        .status()
        .await
        .context("cannot run the report")?;
    if !status.success() {
        bail!("the report failed ({status})");
    }
    Ok(())
}

/// One step of a protocol, with the seconds it is expected to take (for the time left).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Clean,
    Up(usize),
    Warmup(usize),
    /// N gateways, a scenario, and which repeat of it (1 when the protocol runs each once).
    Run(usize, Scenario, u32),
    Down,
    Report,
}

/// The seed lab's protocol: clean → 1 gateway → warm-up → miss, hit → 3 gateways → warm-up
/// → miss, hit → down → report.
pub fn benchmark_steps(repeats: u32) -> Vec<Step> {
    use Step::*;
    let mut steps = vec![Clean];
    for n in [1, 3] {
        steps.extend([Up(n), Warmup(n)]);
        // Repeats interleave the scenarios (miss, hit, miss, hit, …), so that a drift of the
        // machine over the minutes touches both alike.
        for k in 1..=repeats.max(1) {
            steps.extend([Run(n, Scenario::Miss, k), Run(n, Scenario::Hit, k)]);
        }
    }
    steps.extend([Down, Report]);
    steps
}

/// The run id of a benchmark run: `<batch>-<n>gw-<scenario>`, and `-r<k>` when repeated.
pub fn benchmark_run_id(batch: &str, n: usize, scenario: Scenario, k: u32, repeats: u32) -> String {
    if repeats > 1 {
        format!("{batch}-{n}gw-{scenario}-r{k}")
    } else {
        format!("{batch}-{n}gw-{scenario}")
    }
}

fn expected_secs(step: &Step, quick: bool) -> u64 {
    let (run, warm) = if quick { (20, 5) } else { (60, 10) };
    match step {
        Step::Clean | Step::Down => 15,
        Step::Up(1) => 60,
        Step::Up(_) => 30,
        Step::Warmup(_) => warm + 10,
        Step::Run(..) => run + 20,
        Step::Report => 10,
    }
}

fn describe(step: &Step) -> String {
    match step {
        Step::Clean => "clean".into(),
        Step::Up(n) => format!("up {n}"),
        Step::Warmup(n) => format!("warm-up {n}"),
        Step::Run(n, s, 1) => format!("run {n} {s}"),
        Step::Run(n, s, k) => format!("run {n} {s} (repeat {k})"),
        Step::Down => "down".into(),
        Step::Report => "report".into(),
    }
}

/// `3m07s`.
pub fn min_sec(secs: u64) -> String {
    format!("{}m{:02}s", secs / 60, secs % 60)
}

/// The banner of step `k` (0-based) of `n` of a protocol, with the time it has taken so far
/// and anything after it (`, about 3m00s left`).
pub fn banner(live: &LiveBoard, k: usize, n: usize, what: &str, started: Instant, after: &str) {
    live.step(k, n, what);
    eprintln!(
        "\n\x1b[1m== [{}/{n}] {what}\x1b[0m  (elapsed {}{after})",
        k + 1,
        min_sec(started.elapsed().as_secs())
    );
}

/// A protocol's steps until they end or Ctrl-C. A protocol that stops before its end takes
/// the stack down (what it started) and keeps the error: `outcome.or_else(|e| stopped(…))`.
pub async fn until_interrupted<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    }
}

/// A protocol stopped before its end: the stack goes down, the error is returned.
pub async fn stopped<T>(rt: &mut dyn Runtime, what: &str, e: anyhow::Error) -> anyhow::Result<T> {
    eprintln!("{what}: stopped before the end ({e:#}): taking the stack down");
    let _ = rt.down(false).await;
    Err(e)
}

/// Runs `benchmark-all`, with step k of n and the time left; the stack is taken down when a
/// step fails or on Ctrl-C.
pub async fn benchmark_all(
    lab: &mut Workbench<'_>,
    quick: bool,
    repeats: u32,
) -> anyhow::Result<()> {
    let batch = records::time::batch_stamp();
    eprintln!(
        "benchmark-all: {} runtime, batch {batch}, {} protocol{}",
        lab.rt.stack().kind.name(),
        if quick { "quick" } else { "full" },
        if repeats > 1 {
            format!(", each run {repeats} times")
        } else {
            String::new()
        }
    );
    let result = until_interrupted(run_steps(lab, quick, repeats, &batch)).await;
    if let Err(e) = result {
        return lab.stopped("benchmark-all", e).await;
    }
    Ok(())
}

async fn run_steps(
    lab: &mut Workbench<'_>,
    quick: bool,
    repeats: u32,
    batch: &str,
) -> anyhow::Result<()> {
    let steps = benchmark_steps(repeats);
    let total: u64 = steps.iter().map(|s| expected_secs(s, quick)).sum();
    let started = Instant::now();
    let mut done = 0;
    for (k, step) in steps.iter().enumerate() {
        let left = total.saturating_sub(done);
        banner(
            &lab.live,
            k,
            steps.len(),
            &describe(step),
            started,
            &format!(", about {} left", min_sec(left)),
        );
        let run = |gateways: usize,
                   scenario: Scenario,
                   profile: Profile,
                   id: String,
                   dir: Option<PathBuf>| {
            LoadSpec {
                run_id: Some(id),
                results_dir: dir,
                ..LoadSpec::new(gateways, scenario, profile, quick)
            }
        };
        match step {
            Step::Clean | Step::Down => lab.rt.down(true).await?,
            Step::Up(n) => lab.up(*n).await?,
            Step::Warmup(n) => {
                let spec = run(
                    *n,
                    Scenario::Hit,
                    Profile::Warmup,
                    format!("{batch}-{n}gw-warmup"),
                    Some(lab.root.join(".scalelab/warmup")),
                );
                load(lab, &spec).await?;
            }
            Step::Run(n, scenario, k) => {
                let spec = run(
                    *n,
                    *scenario,
                    Profile::Classic,
                    benchmark_run_id(batch, *n, *scenario, *k, repeats),
                    None,
                );
                load(lab, &spec).await?;
            }
            Step::Report => lab.report().await?,
        }
        done += expected_secs(step, quick);
    }
    eprintln!(
        "benchmark-all: done in {}: runs in tests/results/{batch}-*, report in tests/reports/summary.md",
        min_sec(started.elapsed().as_secs())
    );
    Ok(())
}

/// CI's check of a runtime end to end: 3 gateways, a short `hit` run whose requests the load
/// balancer must have spread evenly (each gateway within 20 % of a third), under 5 % errors;
/// the stack is taken down (with its data) whatever happens.
/// On Swarm the load comes from two generators (containers on the stack's network), so
/// the smoke also checks their merge: the run's requests are the sum of the parts'.
pub async fn smoke(lab: &mut Workbench<'_>) -> anyhow::Result<()> {
    let results = std::env::temp_dir().join(format!("scalelab-smoke-{}", std::process::id()));
    let generators = if lab.rt.stack().kind == stack::runtime::Kind::Swarm {
        2
    } else {
        1
    };
    let spec = LoadSpec {
        run_id: Some("smoke".into()),
        results_dir: Some(results.clone()),
        knobs: vec![
            Knob::Users(30),
            Knob::Rate(30.0),
            Knob::DurationSecs(10),
            Knob::Generators(generators),
        ],
        ..LoadSpec::new(3, Scenario::Hit, Profile::Classic, true)
    };
    let outcome = async {
        let dir = load(lab, &spec).await?;
        let run = records::record::RunRecord::read(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        if generators != 1 {
            let parts: u64 = run.generators.iter().map(|g| g.requests).sum();
            if run.generators.len() != 2 || parts != run.requests {
                bail!(
                    "the generators' parts ({parts} requests in {}) do not make the run's {}",
                    run.generators.len(),
                    run.requests
                );
            }
        }
        check_even_spread(&run)
    }
    .await;
    let down = lab.rt.down(true).await;
    let _ = std::fs::remove_dir_all(&results);
    outcome?;
    down?;
    eprintln!("smoke: {} runtime: ok", lab.rt.stack().kind.name());
    Ok(())
}

/// Three gateways in the load balancer's counters, each within 20 % of a third; errors < 5 %.
pub fn check_even_spread(run: &records::record::RunRecord) -> anyhow::Result<()> {
    let served = run.server.requests_by_backend.clone().unwrap_or_default();
    let total: f64 = served.values().sum();
    eprintln!(
        "smoke: {} requests, {:.1} req/s, errors {:.2} %, per gateway {served:?}",
        run.requests, run.rps, run.error_pct
    );
    if served.len() != 3 {
        bail!("expected 3 gateways in the load balancer's counters, found {served:?}");
    }
    if let Some((gw, n)) = served.iter().find(|(_, n)| **n < total / 3.0 * 0.8) {
        bail!("round robin is uneven: {gw} served {n} of {total}");
    }
    if run.error_pct >= 5.0 {
        bail!("error rate {:.2} %", run.error_pct);
    }
    Ok(())
}

/// A classroom lab's `make load` runs (QUICK), one batch, one after the other from a clean
/// stack; then the stack goes down and the report is written.
pub async fn lab_loads(
    lab: &mut Workbench<'_>,
    n: u32,
    loads: &[crate::labs::Load],
) -> anyhow::Result<()> {
    let batch = records::time::batch_stamp();
    let started = Instant::now();
    let result = async {
        lab.rt.down(true).await?;
        for (k, l) in loads.iter().enumerate() {
            let what = format!(
                "lab {n}: {} gateway(s), cache {}, profile {}",
                l.gateways, l.scenario, l.profile
            );
            banner(&lab.live, k, loads.len(), &what, started, "");
            let spec = LoadSpec {
                // A breakpoint search names its own folders (`…-breakpoint`, `…-step01-20u`).
                run_id: Some(match l.profile {
                    Profile::Breakpoint => {
                        format!("{batch}-lab{n}-{}gw-{}", l.gateways, l.scenario)
                    }
                    p => format!("{batch}-lab{n}-{}gw-{}-{p}", l.gateways, l.scenario),
                }),
                knobs: l.knobs.to_vec(),
                ..LoadSpec::new(l.gateways, l.scenario, l.profile, true)
            };
            load(lab, &spec).await?;
        }
        lab.rt.down(true).await?;
        lab.report().await
    };
    if let Err(e) = until_interrupted(result).await {
        return lab.stopped(&format!("lab {n}"), e).await;
    }
    eprintln!(
        "lab {n}: runs in tests/results/{batch}-lab{n}-*, done in {}",
        min_sec(started.elapsed().as_secs())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(served: &[f64], error_pct: f64) -> records::record::RunRecord {
        let mut r: records::record::RunRecord =
            serde_json::from_str(r#"{"scenario":"hit","requests":300,"rps":30,"latency_ms":{}}"#)
                .unwrap();
        r.error_pct = error_pct;
        r.server.requests_by_backend = Some(
            served
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("10.0.0.{i}:8000"), *n))
                .collect(),
        );
        r
    }

    #[test]
    fn the_smoke_check_wants_three_even_gateways_and_few_errors() {
        assert!(check_even_spread(&run(&[100.0, 100.0, 100.0], 0.0)).is_ok());
        assert!(check_even_spread(&run(&[100.0, 100.0], 0.0)).is_err());
        let uneven = check_even_spread(&run(&[200.0, 50.0, 50.0], 0.0)).unwrap_err();
        assert!(uneven.to_string().contains("uneven"), "{uneven}");
        assert!(check_even_spread(&run(&[100.0, 100.0, 100.0], 6.0)).is_err());
    }

    #[test]
    fn the_benchmark_runs_each_scenario_on_one_then_three_gateways() {
        let runs = |repeats| -> Vec<Step> {
            benchmark_steps(repeats)
                .into_iter()
                .filter(|s| matches!(s, Step::Run(..)))
                .collect()
        };
        assert_eq!(
            runs(1),
            vec![
                Step::Run(1, Scenario::Miss, 1),
                Step::Run(1, Scenario::Hit, 1),
                Step::Run(3, Scenario::Miss, 1),
                Step::Run(3, Scenario::Hit, 1)
            ]
        );
        assert_eq!(benchmark_steps(1).last(), Some(&Step::Report));
        // Repeats interleave the scenarios on each stack and name each run.
        let three = runs(3);
        assert_eq!(three.len(), 12);
        assert_eq!(
            &three[..3],
            &[
                Step::Run(1, Scenario::Miss, 1),
                Step::Run(1, Scenario::Hit, 1),
                Step::Run(1, Scenario::Miss, 2)
            ]
        );
        assert_eq!(
            benchmark_run_id("b", 3, Scenario::Hit, 2, 3),
            "b-3gw-hit-r2"
        );
        assert_eq!(benchmark_run_id("b", 3, Scenario::Hit, 1, 1), "b-3gw-hit");
        assert_eq!(min_sec(187), "3m07s");
    }

    #[test]
    fn a_load_needs_a_gateway() {
        let spec = |gateways| LoadSpec::new(gateways, Scenario::Hit, Profile::Classic, false);
        assert!(spec(1).check().is_ok());
        assert!(spec(0).check().is_err());
    }
}
