//! The `scale-workers` experiment: one worker against three on the same queue.

use records::names::MetricName;

use super::*;
use records::knob::Knob;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question: "What do 3 workers do for the queue that 1 cannot?",
    scenario: Scenario::Longtask,
    gateways: 1,
    flipped: SettingName::Workers,
    values: &["1", "3"],
    fixed: &[(SettingName::WorkerConcurrency, "4"), (SettingName::LongtaskMode, "queued")],
    load: &[Knob::LongtaskMs(500), Knob::PollMs(500)],
    compose_only: false,
    counters: &[MetricName::JobsProcessedTotal],
    histograms: &[],
    gauges: &[MetricName::QueueLag],
    measurements: &[],
    explain,
};

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let jobs = each(sides, |_, m| {
        rate(m, m.delta("worker", MetricName::JobsProcessedTotal, &[]))
    });
    // Each worker runs WORKER_CONCURRENCY jobs of LONGTASK_MS at once (the utilisation law).
    let capacity = each(sides, |_, m| {
        let workers: f64 = m.value.parse().ok()?;
        let concurrency = number(&m.settings, "WORKER_CONCURRENCY")?;
        let task_s = number(&m.load, "LONGTASK_MS")? / 1000.0;
        Some(workers * concurrency / task_s)
    });
    let lag = each(sides, |_, m| m.peak_shared("worker", MetricName::QueueLag));
    let e2e = each(sides, |r, _| r.longtask.as_ref()?.end_to_end_ms.p50);
    let timed_out = each(sides, |r, _| Some(r.longtask.as_ref()?.timed_out as f64));
    rows.push(row("jobs done per second", jobs.clone(), 1));
    rows.push(row(
        "capacity: workers × WORKER_CONCURRENCY / task time (jobs/s)",
        capacity.clone(),
        1,
    ));
    rows.push(row(
        "queue lag, peak (jobs not yet delivered)",
        lag.clone(),
        0,
    ));
    rows.push(row("end-to-end job time p50 (ms)", e2e.clone(), 0));
    rows.push(row("jobs the users gave up waiting for", timed_out, 0));
    let spread = spread(sides, "worker", MetricName::JobsProcessedTotal, &[]);
    vec![
        format!(
            "**Why.** A worker runs at most WORKER_CONCURRENCY jobs at once, each taking the \
             task's time, so by the utilisation law one worker finishes at most {} jobs/s and three \
             {}. While the users submit faster than that, the queue grows (peak lag {} vs {} \
             jobs) and every job waits behind the ones before it: end-to-end p50 {} vs {}. \
             The workers share one consumer group, so each job goes to exactly one of them \
             and they split the work without coordination. Measured {} vs {} jobs/s; a worker \
             tier scales out until the users' own pace (or Postgres, or Redis) binds. (Ok \
             req/s above counts the users' status polls too: a job that waits longer is \
             polled more often, so it falls as the jobs speed up.)",
            fmt(capacity[0], 1),
            fmt(capacity[1], 1),
            fmt(lag[0], 0),
            fmt(lag[1], 0),
            ms(e2e[0]),
            ms(e2e[1]),
            fmt(jobs[0], 1),
            fmt(jobs[1], 1),
        ),
        format!("Jobs per worker: {spread}."),
    ]
}
