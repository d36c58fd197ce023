//! Prometheus beside the stack.

use super::{compose_words, lab_on_compose, root, run, say, Down};
use records::names::MetricName;
use std::process::Command;
use std::time::{Duration, Instant};

/// The compose CLI on the offline files and the observability profile.
fn compose() -> Command {
    let words = compose_words();
    let mut cmd = Command::new(words[0]);
    cmd.args(&words[1..])
        .args(["-p", "scalelab", "-f", "docker-compose.yml", "-f"])
        .args(["docker-compose.offline.yml", "--profile", "observability"])
        .current_dir(root());
    cmd
}

/// Prometheus's answer to an instant query: its `data.result`, when it answered.
async fn prometheus(http: &reqwest::Client, port: u16, query: &str) -> Option<serde_json::Value> {
    let answer: serde_json::Value = http
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    (answer["status"] == "success").then(|| answer["data"]["result"].clone())
}

/// The jobs whose `up` is 1, sorted.
fn up_jobs(result: &serde_json::Value) -> Vec<String> {
    let mut jobs: Vec<String> = result
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["value"][1] == "1")
        .map(|r| r["metric"]["job"].as_str().unwrap_or_default().to_string())
        .collect();
    jobs.sort();
    jobs
}

/// The observability profile: Prometheus (the offline image, from Debian's package) beside
/// a compose stack of 3 gateways answers `up` = 1 for the load balancer, the microservice,
/// the worker and each gateway replica, with the services' own `instance` labels kept
/// (honor_labels); the README's queries run.
#[tokio::test]
#[ignore = "needs Docker and the offline images: make smoke-observability"]
async fn prometheus_sees_every_service_and_runs_the_readmes_queries() {
    let started = Instant::now();
    let smoke = "smoke-observability";
    let port: u16 = std::env::var("PROMETHEUS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9090);
    say(
        smoke,
        "offline images with Prometheus (target/debug)",
        started,
    );
    run(Command::new(root().join("scripts/images-offline"))
        .env("BUILD", "debug")
        .env("WITH_PROMETHEUS", "1"));
    struct Prometheus;
    impl Drop for Prometheus {
        fn drop(&mut self) {
            let _ = compose().args(["rm", "-sf", "prometheus"]).output();
        }
    }
    let _down = Down;
    say(smoke, "the stack with 3 gateways", started);
    run(lab_on_compose().args(["up", "3"]));
    let _prometheus = Prometheus;
    run(compose().args(["up", "-d", "prometheus"]));

    // Every target up: 1 load balancer, 1 microservice, 1 worker, 3 gateways.
    let want = [
        "gateway",
        "gateway",
        "gateway",
        "load_balancer",
        "microservice",
        "worker",
    ];
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = serde_json::Value::Null;
    while Instant::now() < deadline {
        if let Some(result) = prometheus(&http, port, "up").await {
            seen = result;
            if up_jobs(&seen) == want {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(up_jobs(&seen), want, "not every target is up: {seen}");
    for r in seen.as_array().into_iter().flatten() {
        eprintln!(
            "  up{{job={}, instance={}}} = {}",
            r["metric"]["job"], r["metric"]["instance"], r["value"][1]
        );
    }
    // The services' own labels, kept: three gateways by their own instance names.
    let by_instance = "count by (instance) (http_requests_total{service=\"gateway\"})";
    let names = prometheus(&http, port, by_instance).await;
    assert_eq!(
        names.as_ref().and_then(|n| n.as_array()).map(Vec::len),
        Some(3),
        "the gateways' own instance labels: {names:?}"
    );
    let cpu = MetricName::ProcessCpuSecondsTotal.as_str();
    let metadata: serde_json::Value = http
        .get(format!("http://127.0.0.1:{port}/api/v1/metadata"))
        .query(&[("metric", cpu)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["data"][cpu][0]["type"], "counter", "{metadata}");
    // The README's queries run (what it tells a class to type).
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let queries: Vec<&str> = readme
        .split("```promql\n")
        .skip(1)
        .flat_map(|block| block.split("\n```").next().unwrap_or("").lines())
        .collect();
    assert!(
        queries.len() >= 3,
        "the README's promql block lost its queries"
    );
    for query in queries {
        assert!(
            prometheus(&http, port, query).await.is_some(),
            "the README's query failed: {query}"
        );
        say(smoke, &format!("query ok: {query}"), started);
    }
    say(smoke, "ok: every target up, 3 gateways by their own instance labels, process_cpu_seconds_total a counter", started);
}
