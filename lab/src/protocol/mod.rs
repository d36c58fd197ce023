//! Protocols: sequences of runtime operations and recorded load runs. A single run (`make
//! load`, `make test1-hit`, …) and the seed lab's `benchmark-all` are written here once, for
//! every runtime; experiments reuse `load`.

mod autoscaling;
mod benchmark;
mod lab_loads;
mod run;
mod smoke;

pub use autoscaling::{autoscale, autoscale_runs, AutoscaleRun};
pub use benchmark::{benchmark_all, benchmark_run_id, benchmark_steps, Step};
pub use lab_loads::lab_loads;
pub(crate) use run::spawn_load;
pub use run::{load, load_autoscaled, quick_load, LoadSpec};
pub use smoke::{check_even_spread, smoke};

use anyhow::{bail, Context};
use live::LiveBoard;
use stack::runtime::Runtime;
use stack::settings::Settings;
use std::path::Path;
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

#[cfg(test)]
mod tests {
    use super::*;
    use records::load::{Profile, Scenario};

    #[test]
    fn a_load_needs_a_gateway() {
        assert_eq!(min_sec(187), "3m07s");
        let spec = |gateways| LoadSpec::new(gateways, Scenario::Hit, Profile::Classic, false);
        assert!(spec(1).check().is_ok());
        assert!(spec(0).check().is_err());
    }
}
