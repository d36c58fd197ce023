//! Protocols: sequences of runtime operations and recorded load runs. A single run (`make
//! load`, `make test1-hit`, …) and the seed lab's `benchmark-all` are written here once, for
//! every runtime; experiments reuse `load`.

use crate::runtime::Runtime;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One recorded load-test run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub gateways: usize,
    pub scenario: String,
    pub profile: String,
    /// QUICK=1: 300 users, +100/s, 20 s (profiles keep their shape).
    pub quick: bool,
    pub run_id: Option<String>,
    pub results_dir: Option<PathBuf>,
    /// Passed to the load generator as they are (USERS, DURATION_SECS, …).
    pub env: Vec<(String, String)>,
}

/// QUICK's load for a profile: enough users that the offered load (300 / 1.5 s think ≈ 200
/// req/s) exceeds what one gateway serves on misses, so a quick run still shows what 3
/// gateways change. Values the caller set win.
pub fn quick_load(profile: &str) -> Vec<(&'static str, &'static str)> {
    match profile {
        "warmup" => vec![("DURATION_SECS", "5")],
        "classic" => vec![("USERS", "300"), ("RATE", "100"), ("DURATION_SECS", "20")],
        "breakpoint" | "stages" => vec![],
        // Burst and ramp keep their own shape (a burst starts everyone at once).
        _ => vec![("USERS", "300"), ("DURATION_SECS", "20")],
    }
}

const SCENARIOS: &[&str] = &["hit", "miss", "mixed", "login", "longtask"];
const PROFILES: &[&str] = &["classic", "warmup", "burst", "ramp", "stages", "breakpoint"];

impl LoadSpec {
    pub fn check(&self) -> anyhow::Result<()> {
        if !SCENARIOS.contains(&self.scenario.as_str()) {
            bail!(
                "SCENARIO must be one of {}, not {:?}",
                SCENARIOS.join(", "),
                self.scenario
            );
        }
        if !PROFILES.contains(&self.profile.as_str()) {
            bail!(
                "PROFILE must be one of {}, not {:?}",
                PROFILES.join(", "),
                self.profile
            );
        }
        if self.gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        Ok(())
    }
}

/// Brings the stack to `spec.gateways`, then runs the load generator as a child process (so
/// its CPU is its own, as `run.json` reports it). Returns the run folder.
pub async fn load(
    rt: &mut dyn Runtime,
    bin: &Path,
    root: &Path,
    spec: &LoadSpec,
) -> anyhow::Result<PathBuf> {
    spec.check()?;
    rt.up(spec.gateways).await?;
    let ends = rt.endpoints();
    let s = rt.settings();
    let mut cmd = tokio::process::Command::new(bin.join("loadtest"));
    cmd.current_dir(root);
    if spec.quick {
        for (k, v) in quick_load(&spec.profile) {
            if std::env::var_os(k).is_none() && !spec.env.iter().any(|(n, _)| n == k) {
                cmd.env(k, v);
            }
        }
    }
    let results = spec.results_dir.clone().unwrap_or_else(|| {
        std::env::var_os("RESULTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("tests/results"))
    });
    let run_id = spec.run_id.clone().unwrap_or_else(|| {
        std::env::var("RUN_ID")
            .unwrap_or_else(|_| format!("{}-{}gw-{}", utc_stamp(), spec.gateways, spec.scenario))
    });
    cmd.env("SCENARIO", &spec.scenario)
        .env("PROFILE", &spec.profile)
        .env("GATEWAYS", spec.gateways.to_string())
        .env("RUNTIME", rt.kind().name())
        .env("TARGET_URL", &ends.target)
        .env("LB_METRICS_URL", &ends.lb_metrics)
        .env("MICROSERVICE_URL", &ends.microservice)
        .env("WORKER_METRICS_URL", &ends.worker_metrics)
        .env("LAB_USERS", s.get("LAB_USERS"))
        .env("LAB_PASSWORD", s.get("LAB_PASSWORD"))
        .env("RESULTS_DIR", &results)
        .env("RUN_ID", &run_id)
        .envs(spec.env.iter().cloned());
    eprintln!(
        "lab: load: {}, profile {}, {} gateway(s), {} runtime{}",
        spec.scenario,
        spec.profile,
        spec.gateways,
        rt.kind().name(),
        if spec.quick { " (quick)" } else { "" }
    );
    let status = cmd
        .status()
        .await
        .with_context(|| format!("cannot run {}", bin.join("loadtest").display()))?;
    if !status.success() {
        bail!("the load test failed ({status})");
    }
    Ok(results.join(run_id))
}

/// `20261123-121500`: a batch's name, sorting by time.
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (y, mo, d, h, mi, s) = common::time::civil(secs);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// One step of a protocol, with the seconds it is expected to take (for the time left).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Clean,
    Up(usize),
    Warmup(usize),
    Run(usize, &'static str),
    Down,
    Report,
}

/// The seed lab's protocol: clean → 1 gateway → warm-up → miss, hit → 3 gateways → warm-up
/// → miss, hit → down → report.
pub fn benchmark_steps() -> Vec<Step> {
    use Step::*;
    vec![
        Clean,
        Up(1),
        Warmup(1),
        Run(1, "miss"),
        Run(1, "hit"),
        Up(3),
        Warmup(3),
        Run(3, "miss"),
        Run(3, "hit"),
        Down,
        Report,
    ]
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
        Step::Run(n, s) => format!("run {n} {s}"),
        Step::Down => "down".into(),
        Step::Report => "report".into(),
    }
}

/// Runs `benchmark-all`, with step k of n and the time left; the stack is taken down when a
/// step fails or on Ctrl-C.
pub async fn benchmark_all(
    rt: &mut dyn Runtime,
    bin: &Path,
    root: &Path,
    quick: bool,
) -> anyhow::Result<()> {
    let batch = utc_stamp();
    eprintln!(
        "benchmark-all: {} runtime, batch {batch}, {} protocol",
        rt.kind().name(),
        if quick { "quick" } else { "full" }
    );
    let result = tokio::select! {
        r = run_steps(rt, bin, root, quick, &batch) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Err(e) = result {
        eprintln!("benchmark-all: stopped before the end ({e:#}): taking the stack down");
        let _ = rt.down(false).await;
        return Err(e);
    }
    Ok(())
}

async fn run_steps(
    rt: &mut dyn Runtime,
    bin: &Path,
    root: &Path,
    quick: bool,
    batch: &str,
) -> anyhow::Result<()> {
    let steps = benchmark_steps();
    let total: u64 = steps.iter().map(|s| expected_secs(s, quick)).sum();
    let started = Instant::now();
    let mut done = 0;
    for (k, step) in steps.iter().enumerate() {
        let elapsed = started.elapsed().as_secs();
        let left = total.saturating_sub(done);
        eprintln!(
            "\n\x1b[1m== [{}/{}] {}\x1b[0m  (elapsed {}m{:02}s, about {}m{:02}s left)",
            k + 1,
            steps.len(),
            describe(step),
            elapsed / 60,
            elapsed % 60,
            left / 60,
            left % 60
        );
        let run =
            |gateways: usize, scenario: &str, profile: &str, id: String, dir: Option<PathBuf>| {
                LoadSpec {
                    gateways,
                    scenario: scenario.into(),
                    profile: profile.into(),
                    quick,
                    run_id: Some(id),
                    results_dir: dir,
                    env: Vec::new(),
                }
            };
        match step {
            Step::Clean | Step::Down => rt.down(true).await?,
            Step::Up(n) => rt.up(*n).await?,
            Step::Warmup(n) => {
                let spec = run(
                    *n,
                    "hit",
                    "warmup",
                    format!("{batch}-{n}gw-warmup"),
                    Some(root.join(".scalelab/warmup")),
                );
                load(rt, bin, root, &spec).await?;
            }
            Step::Run(n, scenario) => {
                let spec = run(
                    *n,
                    scenario,
                    "classic",
                    format!("{batch}-{n}gw-{scenario}"),
                    None,
                );
                load(rt, bin, root, &spec).await?;
            }
            Step::Report => {
                let status = tokio::process::Command::new(bin.join("report"))
                    .current_dir(root)
                    .status()
                    .await
                    .context("cannot run the report")?;
                if !status.success() {
                    bail!("the report failed ({status})");
                }
            }
        }
        done += expected_secs(step, quick);
    }
    let secs = started.elapsed().as_secs();
    eprintln!(
        "benchmark-all: done in {}m{:02}s: runs in tests/results/{batch}-*, report in tests/reports/summary.md",
        secs / 60,
        secs % 60
    );
    Ok(())
}
