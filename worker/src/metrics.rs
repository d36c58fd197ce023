//! What the worker exposes on `/metrics` beyond the shared HTTP series.

use records::names::MetricName;

use common::metrics::{counter, gauge, histogram, Metrics};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Opts};

#[derive(Clone)]
pub struct WorkerMetrics {
    pub processed: IntCounterVec,
    pub reclaimed: IntCounter,
    /// Results a replayed job found already stored (the job-id key kept them single).
    pub duplicates_absorbed: IntCounter,
    pub malformed: IntCounter,
    pub dead_lettered: IntCounter,
    pub released: IntCounter,
    pub in_progress: IntGauge,
    pub batch_size: Histogram,
    pub flush_seconds: Histogram,
    pub queue_length: IntGauge,
    pub queue_pending: IntGauge,
    pub queue_lag: IntGauge,
}

impl WorkerMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let processed = IntCounterVec::new(
            Opts::new(
                MetricName::JobsProcessedTotal.as_str(),
                "Jobs whose result was committed, by status",
            ),
            &["status"],
        )
        .expect("valid metric");
        let m = Self {
            processed,
            reclaimed: counter(
                MetricName::JobsReclaimedTotal,
                "Jobs taken over after the visibility timeout",
            ),
            duplicates_absorbed: counter(
                MetricName::ResultsDuplicatesAbsorbedTotal,
                "Results of replayed jobs not stored because the job's result already was",
            ),
            malformed: counter(
                MetricName::JobsMalformedTotal,
                "Stream entries dropped as unreadable",
            ),
            dead_lettered: counter(
                MetricName::JobsDeadLetteredTotal,
                "Jobs delivered more than MAX_ATTEMPTS times without completing, set aside",
            ),
            released: counter(
                MetricName::JobsReleasedTotal,
                "Finished jobs whose results Postgres did not take in time, left to come back",
            ),
            in_progress: gauge(
                MetricName::JobsInProgress,
                "Jobs being worked on by this worker",
            ),
            batch_size: histogram(
                MetricName::BatchSize,
                "Results per committed batch",
                &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0],
            ),
            flush_seconds: histogram(
                MetricName::BatchFlushDurationSeconds,
                "Time to commit and acknowledge one batch",
                common::metrics::LATENCY_BUCKETS,
            ),
            queue_length: gauge(MetricName::QueueLength, "Entries in the job stream (XLEN)"),
            queue_pending: gauge(
                MetricName::QueuePending,
                "Jobs delivered but not yet acknowledged, all workers",
            ),
            queue_lag: gauge(
                MetricName::QueueLag,
                "Jobs in the stream not yet delivered to any worker",
            ),
        };
        metrics.register(Box::new(m.processed.clone()));
        metrics.register(Box::new(m.reclaimed.clone()));
        metrics.register(Box::new(m.duplicates_absorbed.clone()));
        metrics.register(Box::new(m.malformed.clone()));
        metrics.register(Box::new(m.dead_lettered.clone()));
        metrics.register(Box::new(m.released.clone()));
        metrics.register(Box::new(m.in_progress.clone()));
        metrics.register(Box::new(m.batch_size.clone()));
        metrics.register(Box::new(m.flush_seconds.clone()));
        metrics.register(Box::new(m.queue_length.clone()));
        metrics.register(Box::new(m.queue_pending.clone()));
        metrics.register(Box::new(m.queue_lag.clone()));
        m
    }
}
