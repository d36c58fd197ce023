//! What a fault is: [`Spec`], which each module under `faults/` fills in once: the steps the
//! lab takes (fault, repair), the load meanwhile, the promise, and how the report checks it,
//! times it and explains it.

use crate::record::FaultRecord;
use crate::run::Run;
use records::knob::Knob;
use records::load::Scenario;
use records::names::SettingName;

/// What a fault experiment does to one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGTERM: a graceful stop.
    Stop,
    /// SIGKILL: a crash.
    Kill,
    /// SIGSTOP / docker pause: alive but silent.
    Pause,
    Resume,
    /// Start a stopped instance again with the settings in force.
    Start,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Stop,
        Action::Kill,
        Action::Pause,
        Action::Resume,
        Action::Start,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Start => "start",
        }
    }

    /// By its word, or a one-line error listing them.
    pub fn parse(word: &str) -> Result<Action, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.word() == word)
            .ok_or_else(|| {
                format!("unknown action {word:?}: one of stop, kill, pause, resume, start")
            })
    }
}

/// What a fault experiment cuts the stack off from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Postgres,
    Redis,
}

impl Dependency {
    pub fn name(self) -> &'static str {
        match self {
            Dependency::Postgres => "postgres",
            Dependency::Redis => "redis",
        }
    }
}

/// One thing the lab does to the stack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Act(&'static str, Action),
    Cut(Dependency),
    Restore(Dependency),
    /// Every microservice's delay set to DB_DELAY_MS × this (`PUT /delay`).
    SlowBy(u64),
    /// Queue this many short jobs through the load balancer, then SIGKILL the worker.
    BacklogThenKillWorker(u64),
}

impl Step {
    pub fn describe(self) -> String {
        match self {
            Step::Act(instance, action) => format!("{} {instance}", action.word()),
            Step::Cut(d) => format!("cut {}", d.name()),
            Step::Restore(d) => format!("restore {}", d.name()),
            Step::SlowBy(1) => "microservice delay back to DB_DELAY_MS".into(),
            Step::SlowBy(n) => format!("microservice delay × {n}"),
            Step::BacklogThenKillWorker(n) => format!("queue {n} jobs, kill worker"),
        }
    }
}

/// One promise of a fault experiment and what the run showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub promise: String,
    pub observed: String,
    pub passed: bool,
}

/// A named line of a chart.
pub type Series = (String, Vec<(f64, f64)>);

/// Seconds into the run's per-second series when the fault came and when it was repaired.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub down: f64,
    pub up: f64,
    /// Seconds in the per-second answer series.
    pub len: usize,
}

/// One fault: the steps, the load, the promise, and how the report reads the run.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// What the stack promises while the part is down, as [`Spec::checks`] checks it.
    pub promise: &'static str,
    pub scenario: Scenario,
    pub gateways: usize,
    pub fault: Step,
    pub repair: Step,
    /// The load generator's own knobs.
    pub load: &'static [Knob],
    /// Lab settings the run sets (the rest stay as they are).
    pub fixed: &'static [(SettingName, &'static str)],
    /// The promise, checked on the run: the lab fails `make fault` on these.
    pub checks: fn(&Run, &FaultRecord, Window) -> Vec<Check>,
    /// Time to detect and time to recover, in words with their figures.
    pub detect_recover: fn(&Run, &FaultRecord, Window) -> (String, String),
    /// The stack's own counters behind the answers (y label, series).
    pub mechanism: fn(&Run) -> (&'static str, Vec<Series>),
    /// Why the stack behaved as it did.
    pub why: &'static str,
}

/// The fault's window on the run's per-second clock; None for a run that is not a fault
/// experiment or lacks a time.
pub fn window(r: &Run) -> Option<Window> {
    let f = r.fault.as_ref()?;
    let t0 = crate::signals::t0(r)?;
    Some(Window {
        down: f.at("fault")? - t0,
        up: f.at("repair")? - t0,
        len: r.statuses.values().map(Vec::len).max().unwrap_or(0),
    })
}

/// The scenario's requests sent in the whole seconds of the fault's window; None when the
/// run did not record its sends.
pub fn sent_during(r: &Run, w: Window) -> Option<f64> {
    let sent = &r.series.sent;
    let (from, to) = (
        (w.down.ceil() as usize).min(sent.len()),
        (w.up.floor() as usize).min(sent.len()),
    );
    (!sent.is_empty() && to > from).then(|| sent[from..to].iter().sum())
}

/// The checks of the run's promise; none for a run that is not a fault experiment.
pub fn checks(r: &Run) -> Vec<Check> {
    match (r.fault.as_ref(), window(r)) {
        (Some(f), Some(w)) => (f.name.spec().checks)(r, f, w),
        _ => Vec::new(),
    }
}

/// One row of the fault's outcome: failed requests by status, time to detect, time to
/// recover, jobs lost or stored twice.
pub fn outcome(r: &Run) -> Option<[String; 4]> {
    let f = r.fault.as_ref()?;
    let w = window(r)?;
    let (detect, recover) = (f.name.spec().detect_recover)(r, f, w);
    let jobs = f.jobs.as_ref().map_or("–".into(), |j| {
        let absorbed =
            crate::signals::total(r, |x| Some(x.worker.as_ref()?.ok()?.duplicates_absorbed));
        format!(
            "{} lost; {} ran again after the crash, {absorbed:.0} replays found their result \
             already stored and stored nothing",
            (j.queued - j.accepted.min(j.queued)) + j.unfinished,
            j.taken_over
        )
    });
    Some([crate::faults::failed_by_status(r), detect, recover, jobs])
}

/// The stack's own counters behind the fault's answers: what a student watches to see the
/// mechanism work (y label, the series that have points).
pub fn mechanism(r: &Run) -> Option<(&'static str, Vec<Series>)> {
    let f = r.fault.as_ref()?;
    let (label, series) = (f.name.spec().mechanism)(r);
    let series: Vec<Series> = series.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    (!series.is_empty()).then_some((label, series))
}

/// Gateways in rotation each second, on the per-second series' clock.
pub fn rotation(r: &Run) -> Vec<(f64, f64)> {
    let shift = crate::signals::shift(r);
    r.in_rotation.iter().map(|(t, n)| (t + shift, *n)).collect()
}
