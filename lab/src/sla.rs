//! FAIL_ON_SLA: the verdict of a whole lab command on the runs it made. Every run folder
//! the command started a load for is remembered; at the end, a run (warm-ups and fault runs
//! aside) that missed a rule of its SLA makes the command fail with [`SlaMissed`], which
//! `main` turns into exit status 99, as k6 does for failed thresholds.

use stack::settings::Name;
use std::path::PathBuf;

/// Every run folder a command started a load for, in order (FAIL_ON_SLA reads them): a
/// handle the protocols' context carries, one per command.
#[derive(Debug, Clone, Default)]
pub struct Runs(std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>>);

impl Runs {
    pub fn push(&self, dir: PathBuf) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(dir);
    }

    pub fn all(&self) -> Vec<PathBuf> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A command whose runs missed their SLA while FAIL_ON_SLA is set: `main` exits 99, as k6
/// does for failed thresholds.
#[derive(Debug)]
pub struct SlaMissed(pub Vec<String>);

impl std::fmt::Display for SlaMissed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SLA missed (FAIL_ON_SLA): {}", self.0.join("; "))
    }
}

impl std::error::Error for SlaMissed {}

/// The exit status of a command whose runs missed their SLA under FAIL_ON_SLA.
pub const SLA_EXIT: i32 = 99;

/// Under FAIL_ON_SLA, the runs of this command (warm-ups aside) that missed their SLA, each
/// with the rules it broke; an error when there are any.
pub fn check_sla(settings: &stack::settings::Settings, runs: &Runs) -> anyhow::Result<()> {
    if !matches!(settings.get(Name::FailOnSla), "1" | "true") {
        return Ok(());
    }
    sla_verdict(&runs.all()).map_err(anyhow::Error::new)
}

/// The runs of `dirs` that missed their SLA, warm-ups aside (a run without a record is
/// no verdict: its failure was reported already).
pub fn sla_verdict(dirs: &[PathBuf]) -> Result<(), SlaMissed> {
    let mut missed = Vec::new();
    for dir in dirs {
        // A breakpoint search is meant to break the SLA at its last step: it misses only
        // when not even its first step met it.
        let search = dir.with_file_name(format!(
            "{}-breakpoint",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        if let Ok(text) = std::fs::read_to_string(search.join("breakpoint.json")) {
            if let Ok(b) = serde_json::from_str::<records::record::BreakpointRecord>(&text) {
                if b.highest_passing.is_none() {
                    let first = b.steps.first().map_or(0, |s| s.users);
                    missed.push(format!(
                        "{}: no step met the SLA, not even the first ({first} users)",
                        search.file_name().unwrap_or_default().to_string_lossy()
                    ));
                }
            }
            continue;
        }
        // A fault run is judged by its promise (`make fault`), not by the steady-state SLA.
        if dir.join("fault.json").exists() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join("run.json")) else {
            continue;
        };
        let Ok(run) = serde_json::from_str::<records::record::RunRecord>(&text) else {
            continue;
        };
        if run.profile == "warmup" || run.sla.met != Some(false) {
            continue;
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        missed.push(format!(
            "{}: {}",
            name.unwrap_or_default(),
            run.sla.failed_rules.join(", ")
        ));
    }
    if missed.is_empty() {
        Ok(())
    } else {
        Err(SlaMissed(missed))
    }
}
