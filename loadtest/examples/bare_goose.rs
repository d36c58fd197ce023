//! The floor of a Goose load generator: the same `GET /data?key=hot` with the same Bearer
//! token that the `hit` scenario sends, under the same users and think time, and nothing of
//! scalelab's around it (no login per user, no request log, no reports, no sampler). What it
//! spends per request is what Goose itself costs; `bench/generator` compares ours with it.
//!
//! `TOKEN=… bare_goose --host http://127.0.0.1:8080 --users 1000 --increase-rate 200
//! --run-time 20s` (Goose's own flags); prints one JSON line: requests and CPU seconds.

use goose::prelude::*;
use std::time::Duration;

/// The token, read from the environment once (not on every request: the floor must carry
/// no cost ours does not).
fn token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| std::env::var("TOKEN").unwrap_or_default())
}

async fn hit(user: &mut GooseUser) -> TransactionResult {
    let token = token();
    let path = "/data?key=hot";
    let builder = user
        .get_request_builder(&GooseMethod::Get, path)?
        .bearer_auth(token);
    let request = GooseRequest::builder()
        .path(path)
        .name("/data")
        .set_request_builder(builder)
        .build();
    user.request(request).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let think_ms = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let scenario = scenario!("bare")
        .register_transaction(transaction!(hit))
        .set_wait_time(
            Duration::from_millis(think_ms("THINK_MIN_MS", 1000)),
            Duration::from_millis(think_ms("THINK_MAX_MS", 2000)),
        )?;
    let before = probe::host::process_cpu_seconds();
    let mut attack = GooseAttack::initialize()?;
    // SHARED_CLIENT=1: one HTTP client (and connection pool) for every user.
    if std::env::var("SHARED_CLIENT").is_ok_and(|v| v == "1") {
        attack = attack.set_client_builder_without_cookies(
            goose::client::GooseClientBuilder::new().without_cookies(),
        )?;
    }
    let metrics = attack
        .register_scenario(scenario)
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::Quiet, 1)?
        .execute()
        .await?;
    let cpu = probe::host::process_cpu_seconds() - before;
    let requests: usize = metrics
        .requests
        .values()
        .map(|r| r.success_count + r.fail_count)
        .sum();
    println!(
        "{}",
        serde_json::json!({"requests": requests, "cpu_seconds": cpu, "cpu_per_request_us": cpu * 1e6 / requests.max(1) as f64})
    );
    Ok(())
}
