//! Prometheus metrics. Each service instance owns a registry (not the global one), so several
//! instances in one test process keep separate counts. Every series carries `service` and
//! `instance` labels, which is how the load test attributes requests to gateways.

use records::names::MetricName;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::collections::HashMap;
use std::time::Instant;

/// Latency buckets in seconds: fine around the cache-hit range (sub-ms) and the miss range
/// (tens to hundreds of ms), coarse up to the seconds a saturated service shows.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub in_flight: IntGauge,
    /// The process's CPU time, read at each scrape: with request counts, the CPU each
    /// request costs.
    /// A counter, as Prometheus names `_total` series: only ever goes up (`rate()` works).
    pub cpu_seconds: prometheus::Counter,
    /// TCP connections this service accepted: with requests, how often clients reconnect.
    pub connections: prometheus::IntCounter,
    /// When the process started (unix seconds): a fault run checks that no service restarted.
    pub started_at: prometheus::Gauge,
}

/// Unix time of the process's first metrics registry: its start, as far as a scrape can tell.
fn process_started_at() -> f64 {
    static STARTED: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(records::time::now_unix)
}

impl Metrics {
    pub fn new(service: &str, instance: &str) -> Self {
        let labels = HashMap::from([
            ("service".to_string(), service.to_string()),
            ("instance".to_string(), instance.to_string()),
        ]);
        let registry = Registry::new_custom(None, Some(labels)).expect("valid registry labels");
        let requests = IntCounterVec::new(
            Opts::new(
                MetricName::HttpRequestsTotal.as_str(),
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                MetricName::HttpRequestDurationSeconds.as_str(),
                "HTTP request latency by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new(
            MetricName::HttpRequestsInFlight.as_str(),
            "HTTP requests being served",
        )
        .expect("valid metric");
        let cpu_seconds = prometheus::Counter::new(
            MetricName::ProcessCpuSecondsTotal.as_str(),
            "CPU time (user + system) of the process, in seconds",
        )
        .expect("valid metric");
        let metrics = Self {
            registry,
            requests,
            latency,
            in_flight,
            cpu_seconds,
            connections: counter(
                MetricName::HttpConnectionsAcceptedTotal,
                "TCP connections accepted by the HTTP server",
            ),
            started_at: prometheus::Gauge::new(
                MetricName::ProcessStartTimeSeconds.as_str(),
                "Start time of the process since the unix epoch, in seconds",
            )
            .expect("valid metric"),
        };
        metrics.started_at.set(process_started_at());
        metrics.register(Box::new(metrics.requests.clone()));
        metrics.register(Box::new(metrics.latency.clone()));
        metrics.register(Box::new(metrics.in_flight.clone()));
        metrics.register(Box::new(metrics.cpu_seconds.clone()));
        metrics.register(Box::new(metrics.connections.clone()));
        metrics.register(Box::new(metrics.started_at.clone()));
        metrics
    }

    /// Registers a service-specific collector. Names are fixed in code, so a clash is a bug.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        self.registry
            .register(collector)
            .expect("metric registered once");
    }

    pub fn render(&self) -> String {
        // The counter catches up with the process's CPU time at each scrape; one scrape at
        // a time, or two would add the same seconds.
        {
            static CATCH_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _one = CATCH_UP.lock().unwrap_or_else(|e| e.into_inner());
            let gained = crate::host::process_cpu_seconds() - self.cpu_seconds.get();
            if gained > 0.0 {
                self.cpu_seconds.inc_by(gained);
            }
        }
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is utf-8")
    }
}

pub fn counter(name: MetricName, help: &str) -> prometheus::IntCounter {
    prometheus::IntCounter::new(name.as_str(), help).expect("valid metric")
}

pub fn gauge(name: MetricName, help: &str) -> IntGauge {
    IntGauge::new(name.as_str(), help).expect("valid metric")
}

pub fn histogram(name: MetricName, help: &str, buckets: &[f64]) -> prometheus::Histogram {
    prometheus::Histogram::with_opts(
        HistogramOpts::new(name.as_str(), help).buckets(buckets.to_vec()),
    )
    .expect("valid metric")
}

/// Middleware: counts every request by its route template (`/tasks/{id}`, not the raw path,
/// so series stay bounded) and status, and times it.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    // MatchedPath holds an Arc<str>: cloning it costs no allocation per request.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let started = Instant::now();
    metrics.in_flight.inc();
    let response = next.run(req).await;
    metrics.in_flight.dec();
    metrics
        .latency
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    response
}

pub use probe::exposition::{parse_text, scrape, sum, Sample};
pub use probe::sampler::{Reading, Targets};

#[cfg(test)]
mod tests {
    use super::*;

    /// One reading of real HTTP peers: the services' own `/metrics` (two gateways' worth,
    /// one worker) answer with their samples, a port nobody listens on with an error, each
    /// in its place.
    #[tokio::test]
    async fn a_reading_scrapes_every_target_and_keeps_each_answer_in_its_place() {
        async fn serve(metrics: Metrics) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let m = metrics.clone();
                    async move { m.render() }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            addr
        }
        let gw = Metrics::new("gateway", "gw-1");
        gw.requests.with_label_values(&["/data", "200"]).inc_by(5);
        let wk = Metrics::new("worker", "wk-1");
        wk.requests.with_label_values(&["/health", "200"]).inc_by(2);
        let (gw_addr, wk_addr) = (serve(gw).await, serve(wk).await);
        let dead = format!("127.0.0.1:{}", crate::testing::free_port());
        let targets = Targets {
            load_balancer: None,
            gateways: vec![gw_addr.clone(), dead.clone()],
            workers: vec![format!("http://{wk_addr}/metrics")],
            microservices: Vec::new(),
            only: None,
        };
        let client = crate::http::client(std::time::Duration::from_secs(2));
        let reading = targets.read(&client).await;
        assert!(reading.load_balancer.is_none());
        assert_eq!(reading.gateways[0].0, gw_addr);
        let gw_samples = reading.gateways[0].1.as_ref().unwrap();
        assert_eq!(
            sum(
                gw_samples,
                MetricName::HttpRequestsTotal,
                &[("route", "/data")]
            ),
            5.0
        );
        assert_eq!(reading.gateways[1].0, dead);
        assert!(reading.gateways[1].1.is_err());
        let all: Vec<&Sample> = reading.samples().collect();
        assert!(all
            .iter()
            .any(|s| s.labels.get("instance").map(String::as_str) == Some("wk-1")));
        assert!(all
            .iter()
            .any(|s| s.labels.get("instance").map(String::as_str) == Some("gw-1")));
    }

    #[test]
    fn parses_what_the_registry_renders() {
        let metrics = Metrics::new("svc", "i-1");
        metrics.requests.with_label_values(&["/a", "200"]).inc_by(3);
        metrics.requests.with_label_values(&["/a", "503"]).inc();
        let samples = parse_text(&metrics.render());
        assert_eq!(
            sum(&samples, MetricName::HttpRequestsTotal, &[("route", "/a")]),
            4.0
        );
        assert_eq!(
            sum(
                &samples,
                MetricName::HttpRequestsTotal,
                &[("status", "200"), ("instance", "i-1"), ("service", "svc")]
            ),
            3.0
        );
    }

    #[test]
    fn cpu_time_is_a_counter() {
        let text = Metrics::new("svc", "i-1").render();
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter"),
            "{text}"
        );
    }

    #[test]
    fn exposition_timestamps_are_not_values() {
        let s = parse_text(
            "a_total 5 1700000000000\nb{l=\"x y} z\"} 3.5 -12\nc 1 2 3\nd{l=\"v\"} 7\ne 1 notatime\n",
        );
        let got: Vec<(&str, f64)> = s.iter().map(|x| (x.name.as_str(), x.value)).collect();
        assert_eq!(got, vec![("a_total", 5.0), ("b", 3.5), ("d", 7.0)]);
        assert_eq!(s[1].labels["l"], "x y} z");
    }

    #[test]
    fn handles_escapes_and_infinities() {
        let s = parse_text("x{a=\"q\\\"uote\",le=\"+Inf\"} +Inf\n# c\ny 2.5\nbroken");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["a"], "q\"uote");
        assert!(s[0].value.is_infinite());
        assert_eq!(s[1].name, "y");
    }
}
