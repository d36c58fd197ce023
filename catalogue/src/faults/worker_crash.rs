//! The `worker-crash` fault: the worker SIGKILLed mid-batch with a backlog of jobs.

use super::*;
use records::knob::Knob;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    promise: "0 jobs lost and 0 failed when the worker dies mid-batch with a backlog; results keyed by job id, so a replay stores nothing twice",
    scenario: Scenario::Longtask,
    gateways: 1,
    fault: Step::BacklogThenKillWorker(1000),
    repair: Step::Act("worker", Action::Start),
    load: &[Knob::Users(20), Knob::LongtaskMs(20)],
    // A crashed worker's jobs are taken over 3 s after their delivery, within the run.
    fixed: &[(SettingName::VisibilityTimeoutMs, "3000"), (SettingName::LongtaskMode, "queued")],
    checks,
    detect_recover,
    mechanism,
    why: "**Why.** A job leaves the stream's pending list only after its result row is \
          committed. The killed worker's delivered-but-unacknowledged jobs stay pending; \
          once they are older than VISIBILITY_TIMEOUT_MS a live worker (here the restarted \
          one) claims them and runs them again (`attempts` > 1). The result is inserted \
          with the job id as its key and ON CONFLICT DO NOTHING, so a job that was \
          committed before the crash but not yet acknowledged is stored once, not twice. \
          The run's queue chart (under *Each run over time*) shows the backlog waiting \
          while no worker runs.",
};

fn checks(_: &Run, f: &FaultRecord, _: Window) -> Vec<Check> {
    let Some(j) = f.jobs.as_ref() else {
        return vec![check(
            "0 jobs lost",
            false,
            "the jobs were not followed".into(),
        )];
    };
    vec![
        check(
            "0 jobs lost",
            j.accepted == j.queued && j.unfinished == 0 && j.done + j.failed == j.accepted,
            format!(
                "{} queued, {} accepted, {} done, {} failed, {} unfinished; {} taken over from the killed worker",
                j.queued, j.accepted, j.done, j.failed, j.unfinished, j.taken_over
            ),
        ),
        check(
            "0 jobs failed",
            j.failed == 0,
            format!("{} failed", j.failed),
        ),
    ]
}

fn detect_recover(r: &Run, f: &FaultRecord, w: Window) -> (String, String) {
    let reclaimed = signals::gauge(r, |x| Some(x.worker.as_ref()?.ok()?.jobs_reclaimed));
    let queued = signals::gauge(r, |x| {
        let w = x.worker.as_ref()?.ok()?;
        Some(w.queue_lag + w.queue_pending)
    });
    // The backlog may outlive the load: the lab followed every job to its end.
    let all_done = f.jobs.as_ref().and_then(|j| j.all_finished_at);
    let recover = match (all_done, f.at("repair")) {
        (Some(done), Some(at)) => secs(Some(done - at), "every queued job finished"),
        _ => secs(
            signals::first_after(&queued, w.up, |n| n == 0.0),
            "queue empty",
        ),
    };
    (
        secs(
            signals::first_after(&reclaimed, w.down, |n| n > 0.0),
            "first job taken over",
        ),
        recover,
    )
}

fn mechanism(r: &Run) -> (&'static str, Vec<Series>) {
    let worker = |read: fn(&records::record::WorkerSample) -> f64| {
        signals::gauge(r, move |x| Some(read(x.worker.as_ref()?.ok()?)))
    };
    (
        "jobs (none drawn while the worker is down)",
        vec![
            ("jobs waiting".into(), worker(|w| w.queue_lag)),
            (
                "delivered, not acknowledged".into(),
                worker(|w| w.queue_pending),
            ),
            ("taken over (total)".into(), worker(|w| w.jobs_reclaimed)),
        ],
    )
}
