//! The `batch` experiment: the worker's results written one by one or in batches.

use records::names::MetricName;

use super::*;
use records::knob::Knob;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question: "What does writing results in batches do to the worker's throughput?",
    scenario: Scenario::Longtask,
    gateways: 1,
    flipped: SettingName::BatchSize,
    values: &["1", "20"],
    // Short tasks and many at once: the commits, not the work, bound the worker.
    fixed: &[(SettingName::WorkerConcurrency, "64"), (SettingName::LongtaskMode, "queued")],
    load: &[Knob::LongtaskMs(10), Knob::PollMs(250)],
    compose_only: false,
    counters: &[MetricName::JobsProcessedTotal],
    histograms: &[MetricName::BatchSize, MetricName::BatchFlushDurationSeconds],
    gauges: &[MetricName::QueueLag],
    measurements: &[],
    explain,
};

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let jobs = each(sides, |_, m| {
        rate(m, m.delta("worker", MetricName::JobsProcessedTotal, &[]))
    });
    let commits = each(sides, |_, m| {
        rate(m, m.delta("worker", MetricName::BatchSize.count(), &[]))
    });
    let per_commit = each(sides, |_, m| m.mean("worker", MetricName::BatchSize));
    let commit_ms = each(sides, |_, m| {
        m.mean("worker", MetricName::BatchFlushDurationSeconds)
            .map(|s| s * 1000.0)
    });
    let lag = each(sides, |_, m| m.peak_shared("worker", MetricName::QueueLag));
    let e2e = each(sides, |r, _| r.longtask.as_ref()?.end_to_end_ms.p50);
    // One batch is committed at a time: jobs/s ≤ jobs per commit / commit time.
    let bound = each(sides, |_, m| {
        let per = m.mean("worker", MetricName::BatchSize)?;
        let secs = m.mean("worker", MetricName::BatchFlushDurationSeconds)?;
        ratio(per, secs)
    });
    rows.push(row("jobs done per second", jobs.clone(), 1));
    rows.push(row("commits per second", commits.clone(), 1));
    rows.push(row("jobs per commit, mean", per_commit.clone(), 1));
    rows.push(row(
        "commit + acknowledge time, mean (ms)",
        commit_ms.clone(),
        2,
    ));
    rows.push(row(
        "bound: jobs per commit / commit time (jobs/s)",
        bound.clone(),
        0,
    ));
    rows.push(row("queue lag, peak (jobs not yet delivered)", lag, 0));
    rows.push(row("end-to-end job time p50 (ms)", e2e, 0));
    let mut out = vec![format!(
        "**Why.** The worker writes results through one batcher that commits one batch at a \
         time, so it can finish at most (jobs per commit) / (commit time) jobs per second. \
         With BATCH_SIZE=1 every job is its own transaction and its own acknowledgement: \
         {} commits per second of {} each bound it at {} jobs/s. With batches the same \
         commit carries {} jobs on average, and the bound rises to {} jobs/s. Whether \
         throughput follows depends on whether the commits were the bottleneck: the jobs \
         themselves took LONGTASK_MS and at most WORKER_CONCURRENCY run at once, and the \
         users offer only so many. Measured {} vs {} jobs/s. The price of batching is \
         latency: a job waits for its batch to fill or for FLUSH_INTERVAL_MS.",
        fmt(commits[0], 1),
        ms(commit_ms[0]),
        fmt(bound[0], 0),
        fmt(per_commit[1], 1),
        fmt(bound[1], 0),
        fmt(jobs[0], 1),
        fmt(jobs[1], 1),
    )];
    let below = |i: usize| matches!((jobs[i], bound[i]), (Some(j), Some(b)) if j < 0.5 * b);
    if below(0) && below(1) {
        out.push(format!(
            "Here the commits were not the bottleneck on either side (jobs/s well under each \
             bound): the users' pace was, so throughput stayed the same. What batching \
             changed is the database's work for the same jobs: {} transactions per second \
             instead of {} ({}). On a Postgres that flushes every commit to disk (this lab's \
             runs with fsync off) each commit costs milliseconds, and the bound on side A \
             falls to a few hundred jobs/s.",
            fmt(commits[1], 1),
            fmt(commits[0], 1),
            times(commits[0], commits[1]),
        ));
    }
    out
}
