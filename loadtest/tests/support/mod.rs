//! What the load generator's integration tests share: the real binaries (the load balancer,
//! `loadtest`) and services (a microservice on the test database) they start, and how.
//! Each test binary uses a part of them.
#![allow(dead_code)]

use common::testing::free_port;
use common::testing::{self, TestDb};
use records::names::MetricName;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The load balancer binary, built with the workspace.
pub fn load_balancer_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("load_balancer");
    assert!(
        bin.exists(),
        "{} missing: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

/// The load balancer binary in front of `backends`, once it has them all in rotation: the
/// process (killed when dropped), its port and its metrics URL.
pub async fn load_balancer(backends: &[String]) -> (Killed, u16, String) {
    let (port, metrics, admin) = (free_port(), free_port(), free_port());
    let lb = Killed(
        Command::new(load_balancer_bin())
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics}"))
            .env("ADMIN_ADDR", format!("127.0.0.1:{admin}"))
            .env("BACKENDS", backends.join(","))
            .env("HEALTH_INTERVAL_MS", "300")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lb_metrics = format!("http://127.0.0.1:{metrics}/metrics");
    let all_healthy = testing::wait_until(Duration::from_secs(15), || async {
        common::metrics::scrape(&reqwest::Client::new(), &lb_metrics)
            .await
            .map(|s| {
                common::metrics::sum(&s, MetricName::LbBackendsHealthy, &[])
                    == backends.len() as f64
            })
            .unwrap_or(false)
    })
    .await;
    assert!(all_healthy, "every gateway in rotation: {backends:?}");
    (lb, port, lb_metrics)
}

/// A microservice on a port-0 listener taking `db_delay_ms` a query, running for the rest
/// of the test: its base URL.
pub async fn microservice(db: &TestDb, name: &str, db_delay_ms: u64) -> String {
    let ms = microservice::build(microservice::Config {
        db_delay_ms,
        ..microservice::Config::for_tests(name, db.config())
    })
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}", ms.port());
    spawn(ms.run_until(std::future::pending())).await;
    url
}

pub async fn spawn<F>(fut: F)
where
    F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let _ = fut.await;
    });
}

pub fn loadtest(dir: &Path, run_id: &str, scenario: &str, target: &str, lb_metrics: &str) -> Value {
    loadtest_with(dir, run_id, scenario, target, lb_metrics, &[]);
    let folder = dir.join(run_id);
    for file in [
        "goose.html",
        "goose.json",
        "goose.md",
        "run.json",
        "server.jsonl",
    ] {
        let path = folder.join(file);
        assert!(
            path.metadata().map(|m| m.len() > 0).unwrap_or(false),
            "{} missing or empty",
            path.display()
        );
    }
    run_json(dir, run_id)
}

pub fn loadtest_with(
    dir: &Path,
    run_id: &str,
    scenario: &str,
    target: &str,
    lb_metrics: &str,
    extra: &[(&str, &str)],
) {
    let status = loadtest_command(dir, run_id, scenario, target, lb_metrics, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("run loadtest");
    assert!(status.success(), "loadtest {scenario} exited {status}");
}

/// The load generator with the tests' settings, `extra` winning over them.
pub fn loadtest_command(
    dir: &Path,
    run_id: &str,
    scenario: &str,
    target: &str,
    lb_metrics: &str,
    extra: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    cmd.env("LOADTEST_SCENARIO", scenario)
        .env("LOADTEST_PROFILE", "burst")
        .env("LOADTEST_USERS", "4")
        .env("LOADTEST_DURATION_SECS", "3")
        .env("LOADTEST_NO_THINK", "true")
        .env("LOADTEST_TARGET_URL", target)
        .env("LOADTEST_LB_METRICS_URL", lb_metrics)
        .env("LOADTEST_RESULTS_DIR", dir)
        .env("LOADTEST_RUN_ID", run_id)
        .env("LAB_USERS", "3")
        .env("LOADTEST_GATEWAYS", "2")
        .env("LOADTEST_RUNTIME", "test")
        .env("LOADTEST_READY_TIMEOUT_SECS", "20");
    // The test's own settings win over the defaults above.
    for (k, v) in extra {
        match records::load::ENV_NAMES.contains(k) {
            true => cmd.env(format!("{}{k}", records::load::ENV_PREFIX), v),
            false => cmd.env(k, v),
        };
    }
    cmd
}

/// A run's `run.json` as it was written.
pub fn run_json(results: &Path, id: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(results.join(id).join("run.json")).unwrap())
        .unwrap()
}

pub fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scalelab-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
