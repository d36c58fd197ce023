//! The `offload` experiment: the same long task done inside the request (synchronously, by
//! the gateway) or accepted at once and queued for the worker. The tactic: offload slow work
//! to an asynchronous queue (manage the event rate the slow part sees).

use records::names::MetricName;

use super::*;
use records::knob::Knob;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question: "What does offloading a slow task to a queue change for the client, and what does the queue absorb?",
    scenario: Scenario::Longtask,
    gateways: 1,
    flipped: SettingName::LongtaskMode,
    values: &["inline", "queued"],
    // Four slots per gateway and four jobs per worker: the same capacity for the task on
    // both sides, so what differs is who waits and where.
    fixed: &[(SettingName::MaxInFlight, "4"), (SettingName::WorkerConcurrency, "4")],
    // More users than either side can serve one task each at a time (4 / 0.5 s = 8 tasks/s
    // against 40 / (1.5 s think + 0.5 s task) = 20 offered): the excess waits somewhere.
    load: &[Knob::Users(40), Knob::LongtaskMs(500), Knob::PollMs(500)],
    compose_only: false,
    counters: &[
        MetricName::TasksInlineTotal,
        MetricName::TasksEnqueuedTotal,
        MetricName::JobsProcessedTotal,
        MetricName::LimiterRejectedTotal,
    ],
    histograms: &[],
    gauges: &[MetricName::QueueLag, MetricName::LimiterWaiting],
    measurements: &[],
    explain,
};

/// `POST /longtask` as the client saw it: (p50, p95) in ms, and its failures.
fn submit(r: &Run) -> (Option<f64>, Option<f64>, Option<f64>) {
    r.routes
        .get("POST /longtask")
        .map_or((None, None, None), |route| {
            (
                route.latency_ms.p50,
                route.latency_ms.p95,
                Some(route.failures as f64),
            )
        })
}

/// Tasks per second a side can do (the utilisation law): MAX_IN_FLIGHT slots per gateway inline,
/// WORKER_CONCURRENCY jobs per worker queued, each for the task's time.
fn capacity_of(r: &Run, m: &ExperimentRecord) -> Option<f64> {
    let task_s = number(&m.load, "LONGTASK_MS")? / 1000.0;
    let slots = match m.value.as_str() {
        "inline" => number(&m.settings, "MAX_IN_FLIGHT")? * r.gateways.max(1) as f64,
        _ => number(&m.settings, "WORKER_CONCURRENCY")?,
    };
    (task_s > 0.0).then(|| slots / task_s)
}

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let post_p50 = each(sides, |r, _| submit(r).0);
    let post_p95 = each(sides, |r, _| submit(r).1);
    let post_failed = each(sides, |r, _| submit(r).2);
    let done = each(sides, |_, m| {
        let inline = m.delta("gateway", MetricName::TasksInlineTotal, &[]);
        let queued = m.delta("worker", MetricName::JobsProcessedTotal, &[]);
        rate(m, inline + queued)
    });
    let accepted = each(sides, |_, m| {
        let inline = m.delta("gateway", MetricName::TasksInlineTotal, &[]);
        let queued = m.delta("gateway", MetricName::TasksEnqueuedTotal, &[]);
        rate(m, inline + queued)
    });
    let shed = each(sides, |_, m| {
        Some(m.delta("gateway", MetricName::LimiterRejectedTotal, &[]))
    });
    let waiting = each(sides, |_, m| m.peak("gateway", MetricName::LimiterWaiting));
    let lag = each(sides, |_, m| m.peak_shared("worker", MetricName::QueueLag));
    let e2e = each(sides, |r, _| r.longtask.as_ref()?.end_to_end_ms.p50);
    // Either side does at most 4 tasks at a time: MAX_IN_FLIGHT slots per gateway inline,
    // WORKER_CONCURRENCY jobs per worker queued, each for the task's time (the utilisation law).
    let capacity = each(sides, capacity_of);
    let offered = each(sides, |r, m| {
        let task_s = number(&m.load, "LONGTASK_MS")? / 1000.0;
        offered(r, task_s)
    });
    // A closed loop at its capacity X: each of the N users is thinking (Z) or waiting for its
    // task, so by Little's law a task's time in the system is N / X − Z, and never less than
    // the task itself.
    let in_system = each(sides, |r, m| {
        let task_ms = number(&m.load, "LONGTASK_MS")?;
        let x = capacity_of(r, m)?;
        Some((r.users as f64 / x * 1000.0 - r.think_ms).max(task_ms))
    });
    rows.push(row("POST /longtask p50 (ms)", post_p50.clone(), 1));
    rows.push(row("POST /longtask p95 (ms)", post_p95.clone(), 1));
    rows.push(row("POST /longtask failed", post_failed.clone(), 0));
    rows.push(row("tasks accepted per second", accepted.clone(), 1));
    rows.push(row("tasks done per second", done.clone(), 1));
    rows.push(row(
        "capacity: 4 at a time / task time (tasks/s)",
        capacity.clone(),
        1,
    ));
    rows.push(row(
        "offered: users / (think + task time) (tasks/s)",
        offered.clone(),
        1,
    ));
    rows.push(row("end-to-end task time p50 (ms)", e2e.clone(), 0));
    rows.push(row(
        "predicted time in the system: users / capacity − think (ms)",
        in_system.clone(),
        0,
    ));
    rows.push(row("requests waiting for a gateway slot, peak", waiting.clone(), 0));
    rows.push(row("requests shed by the gateway (503)", shed.clone(), 0));
    rows.push(row(
        "queue lag, peak (jobs not yet delivered)",
        lag.clone(),
        0,
    ));
    let task_ms = sides[0]
        .1
        .load
        .get("LONGTASK_MS")
        .cloned()
        .unwrap_or_default();
    let shed_words = match shed[0] {
        Some(n) if n > 0.0 => {
            format!("{n:.0} of them shed with a 503 past MAX_QUEUE or QUEUE_TIMEOUT_MS")
        }
        _ => "none shed: the gateway's queue (MAX_QUEUE) held them all within QUEUE_TIMEOUT_MS"
            .into(),
    };
    vec![
        format!(
            "**Why.** Inline (side A), the gateway does the task inside the request: each \
             `POST /longtask` holds one of its MAX_IN_FLIGHT slots for the task's {task_ms} ms, \
             so at most {} tasks/s get done and no answer comes sooner than the task. The \
             users offer {} tasks/s, so the rest wait in the gateway for a slot (peak {} \
             waiting; {shed_words}), and every other request of the gateway (logins, status \
             reads, cache hits) waits behind the tasks with them. The answer took {} at p50. \
             Queued (side B), the gateway only appends the task to the stream and answers \
             202: {} at p50, whatever the task costs, and its slots stay free. The work did \
             not go away: the worker still does at most {} tasks/s, so the waiting moved into \
             the queue (peak lag {} jobs).",
            fmt(capacity[0], 1),
            fmt(offered[0], 1),
            fmt(waiting[0], 0),
            ms(post_p50[0]),
            ms(post_p50[1]),
            fmt(capacity[1], 1),
            fmt(lag[1], 0),
        ),
        format!(
            "**Predicted against measured.** Both sides run at their capacity ({} and {} \
             tasks/s predicted; {} and {} done). These users wait for their task before the \
             next one (a closed loop), so by Little's law a task spends users / capacity − \
             think in the system on both sides: predicted {} and {}, measured end to end {} \
             and {} at p50. Offloading did not make the work faster for a user who waits for \
             it; it made the request fast and reliable, freed the gateway for everything \
             else, and let the queue absorb a burst the workers catch up on later. Throughput \
             comes from capacity: more workers (`scale-workers`).",
            fmt(capacity[0], 1),
            fmt(capacity[1], 1),
            fmt(done[0], 1),
            fmt(done[1], 1),
            ms(in_system[0]),
            ms(in_system[1]),
            ms(e2e[0]),
            ms(e2e[1]),
        ),
    ]
}
