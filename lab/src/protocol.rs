//! Protocols: sequences of runtime operations and recorded load runs. A single run (`make
//! load`, `make test1-hit`, …) and the seed lab's `benchmark-all` are written here once, for
//! every runtime; experiments reuse `load`.

use crate::runtime::Runtime;
use crate::settings::Name;
use anyhow::{bail, Context};
use common::load::{Profile, Scenario};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What every protocol works with: the runtime the stack runs on, where the lab's binaries
/// are (`loadtest`, `report`), the checkout (`tests/results`, `tests/reports`), and the
/// runs the command has started (FAIL_ON_SLA's verdict reads them).
pub struct Lab<'a> {
    pub rt: &'a mut dyn Runtime,
    pub bin: &'a Path,
    pub root: &'a Path,
    pub runs: crate::sla::Runs,
}

impl<'a> Lab<'a> {
    pub fn new(
        rt: &'a mut dyn Runtime,
        bin: &'a Path,
        root: &'a Path,
        runs: crate::sla::Runs,
    ) -> Self {
        Self {
            rt,
            bin,
            root,
            runs,
        }
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

/// One recorded load-test run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub gateways: usize,
    pub scenario: Scenario,
    pub profile: Profile,
    /// QUICK=1: 300 users, +100/s, 23 s: 3 s to start them, 20 s held (profiles keep their shape).
    pub quick: bool,
    pub run_id: Option<String>,
    pub results_dir: Option<PathBuf>,
    /// Passed to the load generator as they are (USERS, DURATION_SECS, …).
    pub env: Vec<(String, String)>,
}

/// QUICK's load for a profile: enough users that the offered load (300 / 1.5 s think ≈ 200
/// req/s) exceeds what one gateway serves on misses, so a quick run still shows what 3
/// gateways change. Values the caller set win.
pub fn quick_load(profile: Profile) -> Vec<(&'static str, &'static str)> {
    match profile {
        Profile::Warmup => vec![("DURATION_SECS", "5")],
        Profile::Classic => vec![("USERS", "300"), ("RATE", "100"), ("DURATION_SECS", "23")],
        Profile::Breakpoint | Profile::Stages => vec![],
        // 20 → 300 → 20 users over 90 s: long enough after the fall for the scale-down window.
        Profile::Wave => vec![("USERS", "300"), ("DURATION_SECS", "90")],
        // The open model's users follow its ARRIVAL_RATE.
        Profile::Open => vec![("DURATION_SECS", "20")],
        // Burst and ramp keep their own shape (a burst starts everyone at once).
        Profile::Burst | Profile::Ramp => vec![("USERS", "300"), ("DURATION_SECS", "20")],
    }
}

impl LoadSpec {
    /// A run under the profile's own load (QUICK's when `quick`), named and placed by
    /// default; the other fields are set with struct update where a protocol needs them.
    pub fn new(gateways: usize, scenario: Scenario, profile: Profile, quick: bool) -> Self {
        Self {
            gateways,
            scenario,
            profile,
            quick,
            run_id: None,
            results_dir: None,
            env: Vec::new(),
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if self.gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        Ok(())
    }
}

/// Brings the stack to `spec.gateways`, then runs the load generator as a child process (so
/// its CPU is its own, as `run.json` reports it). Returns the run folder.
pub async fn load(lab: &mut Lab<'_>, spec: &LoadSpec) -> anyhow::Result<PathBuf> {
    let (mut child, dir) = spawn_load(lab, spec).await?;
    let status = child.wait().await?;
    if !status.success() {
        bail!("the load test failed ({status})");
    }
    Ok(dir)
}

/// [`load`] with the autoscaler deciding every sync period until the load ends; its
/// decisions go to `autoscaler.jsonl` in the run folder.
pub async fn load_autoscaled(
    lab: &mut Lab<'_>,
    spec: &LoadSpec,
    mut controller: crate::autoscale::Controller,
) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let (mut child, dir) = spawn_load(lab, spec).await?;
    let mut pending: Vec<String> = Vec::new();
    let mut file: Option<std::fs::File> = None;
    // A step is never cut short (a scale-in half done would leave a gateway drained): the
    // load's end is checked between steps.
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        match controller.step(lab.rt).await {
            Ok(sample) => pending.push(serde_json::to_string(&sample)?),
            Err(e) => eprintln!("autoscaler: no decision this period: {e:#}"),
        }
        if file.is_none() && dir.exists() {
            file = Some(std::fs::File::create(dir.join("autoscaler.jsonl"))?);
        }
        if let Some(f) = file.as_mut() {
            for line in pending.drain(..) {
                writeln!(f, "{line}")?;
            }
        }
    };
    if !status.success() {
        bail!("the load test failed ({status})");
    }
    if let Some(f) = file.as_mut() {
        for line in pending.drain(..) {
            writeln!(f, "{line}")?;
        }
    }
    Ok(dir)
}

/// Starts the load generator; returns it and the run folder it will write.
pub(crate) async fn spawn_load(
    lab: &mut Lab<'_>,
    spec: &LoadSpec,
) -> anyhow::Result<(crate::generators::LoadRun, PathBuf)> {
    spec.check()?;
    lab.rt.up(spec.gateways).await?;
    let ends = lab.rt.generator_endpoints();
    let s = lab.rt.settings();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| env.push((k.to_string(), v.to_string()));
    if spec.quick {
        for (k, v) in quick_load(spec.profile) {
            if std::env::var_os(k).is_none() && !spec.env.iter().any(|(n, _)| n == k) {
                set(k, v);
            }
        }
    }
    let results = spec.results_dir.clone().unwrap_or_else(|| {
        std::env::var_os("RESULTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| lab.root.join("tests/results"))
    });
    let results = if results.is_absolute() {
        results
    } else {
        lab.root.join(results)
    };
    let run_id = spec.run_id.clone().unwrap_or_else(|| {
        std::env::var("RUN_ID").unwrap_or_else(|_| {
            format!(
                "{}-{}gw-{}",
                common::time::batch_stamp(),
                spec.gateways,
                spec.scenario
            )
        })
    });
    set("SCENARIO", &spec.scenario.name());
    set("PROFILE", &spec.profile.name());
    set("GATEWAYS", &spec.gateways.to_string());
    set("RUNTIME", lab.rt.kind().name());
    set("TARGET_URL", &ends.target);
    set("LB_METRICS_URL", &ends.lb_metrics);
    set("MICROSERVICE_URL", &ends.microservice);
    set("WORKER_METRICS_URL", &ends.worker_metrics);
    for name in [Name::LabUsers, Name::LabPassword, Name::SlaP95Ms, Name::Sla] {
        set(name.as_str(), s.get(name));
    }
    set("RESULTS_DIR", &results.display().to_string());
    set("RUN_ID", &run_id);
    env.extend(spec.env.iter().cloned());
    let plan = common::plan::Plan::from_lab(&env, std::env::vars())
        .map_err(|e| anyhow::anyhow!("the load generator's settings: {e}"))?;
    let generators = crate::generators::count(&plan)?;
    eprintln!(
        "lab: load: {}, profile {}, {} gateway(s), {} runtime{}",
        spec.scenario,
        spec.profile,
        spec.gateways,
        lab.rt.kind().name(),
        if spec.quick { " (quick)" } else { "" }
    );
    let run = if generators > 1 {
        crate::generators::LoadRun::several(lab.rt, lab.bin, lab.root, &plan, &results, generators)
            .await?
    } else {
        let file = crate::generators::write_plan(&plan)?;
        let mut cmd = lab
            .rt
            .generator(lab.bin, &file, &plan.lab.lab_password, &results)?;
        cmd.current_dir(lab.root);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", lab.bin.join("loadtest").display()))?;
        crate::generators::LoadRun::one(child, results.join(&run_id))
    };
    let dir = results.join(run_id);
    lab.runs.push(dir.clone());
    Ok((run, dir))
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
pub fn banner(k: usize, n: usize, what: &str, started: Instant, after: &str) {
    crate::live::step(k, n, what);
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
pub async fn benchmark_all(lab: &mut Lab<'_>, quick: bool, repeats: u32) -> anyhow::Result<()> {
    let batch = common::time::batch_stamp();
    eprintln!(
        "benchmark-all: {} runtime, batch {batch}, {} protocol{}",
        lab.rt.kind().name(),
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
    lab: &mut Lab<'_>,
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
            Step::Up(n) => lab.rt.up(*n).await?,
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
pub async fn smoke(lab: &mut Lab<'_>) -> anyhow::Result<()> {
    let results = std::env::temp_dir().join(format!("scalelab-smoke-{}", std::process::id()));
    let generators = if lab.rt.kind() == crate::runtime::Kind::Swarm {
        "2"
    } else {
        "1"
    };
    let spec = LoadSpec {
        run_id: Some("smoke".into()),
        results_dir: Some(results.clone()),
        env: [
            ("USERS", "30"),
            ("RATE", "30"),
            ("DURATION_SECS", "10"),
            ("GENERATORS", generators),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..LoadSpec::new(3, Scenario::Hit, Profile::Classic, true)
    };
    let outcome = async {
        let dir = load(lab, &spec).await?;
        let run = common::record::RunRecord::read(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        if generators != "1" {
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
    eprintln!("smoke: {} runtime: ok", lab.rt.kind().name());
    Ok(())
}

/// Three gateways in the load balancer's counters, each within 20 % of a third; errors < 5 %.
pub fn check_even_spread(run: &common::record::RunRecord) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(served: &[f64], error_pct: f64) -> common::record::RunRecord {
        let mut r: common::record::RunRecord =
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

/// A classroom lab's `make load` runs (QUICK), one batch, one after the other from a clean
/// stack; then the stack goes down and the report is written.
pub async fn lab_loads(
    lab: &mut Lab<'_>,
    n: u32,
    loads: &[crate::labs::Load],
) -> anyhow::Result<()> {
    let batch = common::time::batch_stamp();
    let started = Instant::now();
    let result = async {
        lab.rt.down(true).await?;
        for (k, l) in loads.iter().enumerate() {
            let what = format!(
                "lab {n}: {} gateway(s), cache {}, profile {}",
                l.gateways, l.scenario, l.profile
            );
            banner(k, loads.len(), &what, started, "");
            let spec = LoadSpec {
                // A breakpoint search names its own folders (`…-breakpoint`, `…-step01-20u`).
                run_id: Some(match l.profile {
                    Profile::Breakpoint => {
                        format!("{batch}-lab{n}-{}gw-{}", l.gateways, l.scenario)
                    }
                    p => format!("{batch}-lab{n}-{}gw-{}-{p}", l.gateways, l.scenario),
                }),
                env: l
                    .env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
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

/// One run of the autoscaling experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleRun {
    /// `static-1`, `static-3`, `auto`, `auto-burst`, `auto-ramp`.
    pub side: &'static str,
    pub profile: Profile,
    /// Gateways at the start (and throughout, when not autoscaled).
    pub gateways: usize,
    pub autoscaled: bool,
}

/// The same rising-and-falling load on 1 gateway, on 3, and autoscaled from 1; then a burst
/// and a ramp to 300 users, autoscaled.
pub fn autoscale_runs() -> Vec<AutoscaleRun> {
    let run = |side, profile, gateways, autoscaled| AutoscaleRun {
        side,
        profile,
        gateways,
        autoscaled,
    };
    vec![
        run("static-1", Profile::Wave, 1, false),
        run("static-3", Profile::Wave, 3, false),
        run("auto", Profile::Wave, 1, true),
        run("auto-burst", Profile::Burst, 1, true),
        run("auto-ramp", Profile::Ramp, 1, true),
    ]
}

/// `make autoscale`: the runs of [`autoscale_runs`] in one batch (cache misses, so that the
/// gateways' slots fill), then the report.
pub async fn autoscale(lab: &mut Lab<'_>, quick: bool) -> anyhow::Result<()> {
    let config = crate::autoscale::Config::from_settings(lab.rt.settings())?;
    let batch = common::time::batch_stamp();
    let runs = autoscale_runs();
    let started = Instant::now();
    let result = async {
        lab.rt.down(true).await?;
        for (k, run) in runs.iter().enumerate() {
            let what = format!(
                "autoscale: {} ({} profile, {} gateway(s){})",
                run.side,
                run.profile,
                run.gateways,
                if run.autoscaled { ", autoscaled" } else { "" }
            );
            banner(k, runs.len(), &what, started, "");
            lab.rt.up(run.gateways).await?;
            let mut env = vec![
                ("EXPERIMENT".to_string(), "autoscale".to_string()),
                ("EXPERIMENT_SIDE".to_string(), run.side.to_string()),
                (
                    "EXPERIMENT_SETTINGS".to_string(),
                    autoscale_settings(lab.rt.settings(), run),
                ),
            ];
            if run.profile != Profile::Wave {
                // Burst and ramp reach the wave's peak, for as long as its rise and hold.
                env.push(("USERS".into(), "300".into()));
                env.push((
                    "DURATION_SECS".into(),
                    if quick { "45" } else { "60" }.into(),
                ));
            }
            let spec = LoadSpec {
                run_id: Some(format!("{batch}-autoscale-{}", run.side)),
                env,
                ..LoadSpec::new(run.gateways, Scenario::Miss, run.profile, quick)
            };
            if run.autoscaled {
                let controller = crate::autoscale::Controller::new(config.clone());
                load_autoscaled(lab, &spec, controller).await?;
            } else {
                load(lab, &spec).await?;
            }
        }
        lab.rt.down(true).await?;
        lab.report().await
    };
    if let Err(e) = until_interrupted(result).await {
        return lab.stopped("autoscale", e).await;
    }
    eprintln!(
        "autoscale: done in {}: runs in tests/results/{batch}-autoscale-*, report in tests/reports/summary.md (section Autoscaling)",
        min_sec(started.elapsed().as_secs())
    );
    Ok(())
}

/// `NAME=value,…` of what a run of the autoscaling experiment sets.
fn autoscale_settings(s: &crate::settings::Settings, run: &AutoscaleRun) -> String {
    if !run.autoscaled {
        return format!("GATEWAYS={}", run.gateways);
    }
    [
        Name::AutoscaleMetric,
        Name::AutoscaleTarget,
        Name::MinReplicas,
        Name::MaxReplicas,
        Name::SyncPeriodSecs,
        Name::Tolerance,
        Name::ScaleUpStabilizationSecs,
        Name::ScaleDownStabilizationSecs,
    ]
    .iter()
    .map(|k| format!("{k}={}", s.get(*k)))
    .collect::<Vec<_>>()
    .join(",")
}
