//! `make benchmark-all`, the seed lab's protocol: clean, then 1 and 3 gateways, each warmed
//! up and loaded with the miss and hit scenarios, then down and the report.

use super::{banner, load, min_sec, until_interrupted, LoadSpec, Workbench};
use records::load::{Profile, Scenario};
use std::path::PathBuf;
use std::time::Instant;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
