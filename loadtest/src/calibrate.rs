//! The service time at low load, measured before the load starts: one client logs in and
//! sends the scenario's requests one at a time through the load balancer, so nothing queues.
//! The report's predictions divide capacities by this time; a run's own latencies cannot
//! stand in for it, since under load they hold the queueing the prediction is meant to explain.

use crate::{Options, Scenario};
use rand::Rng;
use records::record::Calibration;
use std::time::{Duration, Instant};

/// `calibration` of run.json: p50 of `CALIBRATION_REQUESTS` sequential requests (after one
/// that opens the connection and, for `hit`, fills the cache), or why there is none.
pub async fn service_time(options: &Options) -> Option<Calibration> {
    let nonce: u32 = rand::rng().random();
    let key = |i: usize| match options.scenario {
        // The key the `hit` scenario asks for, so the cache it warms is the one the run uses.
        Scenario::Hit => Some(crate::scenarios::HIT_KEY.to_string()),
        Scenario::Miss => Some(format!("cal{nonce:x}-{i}")),
        _ => None,
    };
    if options.calibration_requests == 0 || key(0).is_none() {
        return None;
    }
    Some(measure(options, key).await.unwrap_or_else(|e| Calibration {
        error: Some(e.to_string()),
        ..Calibration::default()
    }))
}

async fn measure(
    options: &Options,
    key: impl Fn(usize) -> Option<String>,
) -> anyhow::Result<Calibration> {
    let base = options.target.trim_end_matches('/');
    let client = probe::client::client(Duration::from_secs(10));
    let token = probe::client::log_in(
        &client,
        base,
        &records::wire::Login::lab_user(1, &options.lab.lab_password),
    )
    .await?;
    let mut times = Vec::new();
    let mut failed = 0;
    for i in 0..=options.calibration_requests {
        let route = if i % 2 == 0 { "/data" } else { "/process" };
        let started = Instant::now();
        let response = client
            .get(format!("{base}{route}"))
            .query(&[("key", key(i).unwrap_or_default())])
            .bearer_auth(&token)
            .send()
            .await?;
        let ok = response.status().is_success();
        let _ = response.bytes().await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match (i, ok) {
            (0, _) => {}
            (_, true) => times.push(ms),
            (_, false) => failed += 1,
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(Calibration {
        requests: times.len(),
        failed,
        p50_ms: records::stats::percentile(&times, 0.5),
        min_ms: times.first().copied(),
        max_ms: times.last().copied(),
        error: None,
    })
}
