//! A fixed pool of "server workers" per gateway instance: at most `MAX_IN_FLIGHT` requests
//! are served at once, at most `MAX_QUEUE` more wait (up to `QUEUE_TIMEOUT_MS`), the rest get
//! `503` + `Retry-After`. Off by default; it is what makes 3 gateways out-serve 1 on a host
//! where one async gateway would otherwise never be the bottleneck.

use records::names::MetricName;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clap::Args;
use common::metrics::Metrics;
use common::ApiError;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Args, Serialize)]
pub struct LimitConfig {
    /// Requests served at once by this instance (0 = no limit).
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 4)]
    pub max_in_flight: usize,
    /// Requests allowed to wait for a slot; beyond that, an immediate 503.
    #[arg(long, env = "MAX_QUEUE", default_value_t = 64)]
    pub max_queue: usize,
    /// Longest wait for a slot before a 503.
    #[arg(long, env = "QUEUE_TIMEOUT_MS", default_value_t = 5000)]
    pub queue_timeout_ms: u64,
}

#[derive(Clone)]
pub struct Limiter(Option<Arc<Inner>>);

pub struct Inner {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_queue: usize,
    queue_timeout: Duration,
    rejected: prometheus::IntCounterVec,
    queued: prometheus::IntGauge,
    in_service: prometheus::IntGauge,
    held: prometheus::Histogram,
}

/// A request holding a slot, counted in `limiter_in_service` until it is dropped (also
/// when the client goes away mid-request), and how long it held it in `limiter_slot_seconds`:
/// with the slots, the throughput they allow under the load of the moment (Little's law).
struct InService<'a> {
    inner: &'a Inner,
    since: std::time::Instant,
}

impl<'a> InService<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.in_service.inc();
        Self {
            inner,
            since: std::time::Instant::now(),
        }
    }
}

impl Drop for InService<'_> {
    fn drop(&mut self) {
        self.inner.in_service.dec();
        self.inner.held.observe(self.since.elapsed().as_secs_f64());
    }
}

impl Limiter {
    pub fn new(config: &LimitConfig, metrics: &Metrics) -> Self {
        if config.max_in_flight == 0 {
            return Self(None);
        }
        let rejected = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                MetricName::LimiterRejectedTotal.as_str(),
                "Requests refused by the concurrency limit, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let queued =
            common::metrics::gauge(MetricName::LimiterWaiting, "Requests waiting for a slot");
        let capacity =
            common::metrics::gauge(MetricName::LimiterMaxInFlight, "Configured MAX_IN_FLIGHT");
        // With limiter_waiting, what the autoscaler's utilization metric is made of.
        let in_service =
            common::metrics::gauge(MetricName::LimiterInService, "Requests holding a slot");
        metrics.register(Box::new(in_service.clone()));
        let held = common::metrics::histogram(
            MetricName::LimiterSlotSeconds,
            "Time a request held its slot",
            common::metrics::LATENCY_BUCKETS,
        );
        metrics.register(Box::new(held.clone()));
        capacity.set(config.max_in_flight as i64);
        metrics.register(Box::new(rejected.clone()));
        metrics.register(Box::new(queued.clone()));
        metrics.register(Box::new(capacity));
        Self(Some(Arc::new(Inner {
            slots: Semaphore::new(config.max_in_flight),
            waiting: AtomicUsize::new(0),
            max_queue: config.max_queue,
            queue_timeout: Duration::from_millis(config.queue_timeout_ms),
            rejected,
            queued,
            in_service,
            held,
        })))
    }
}

pub async fn enforce(State(limiter): State<Limiter>, req: Request, next: Next) -> Response {
    let Some(limiter) = limiter.0 else {
        return next.run(req).await;
    };
    let _permit = match limiter.slots.try_acquire() {
        Ok(permit) => permit,
        Err(_) => {
            if limiter.waiting.fetch_add(1, Ordering::SeqCst) >= limiter.max_queue {
                limiter.waiting.fetch_sub(1, Ordering::SeqCst);
                limiter.rejected.with_label_values(&["queue_full"]).inc();
                return ApiError::unavailable("gateway at its concurrency limit, queue full")
                    .into_response();
            }
            limiter.queued.inc();
            let waited = tokio::time::timeout(limiter.queue_timeout, limiter.slots.acquire()).await;
            limiter.waiting.fetch_sub(1, Ordering::SeqCst);
            limiter.queued.dec();
            match waited {
                Ok(Ok(permit)) => permit,
                _ => {
                    limiter.rejected.with_label_values(&["queue_timeout"]).inc();
                    return ApiError::unavailable(
                        "gateway at its concurrency limit, no slot within the queue timeout",
                    )
                    .into_response();
                }
            }
        }
    };
    let _in_service = InService::new(&limiter);
    next.run(req).await
}
