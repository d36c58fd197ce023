//! The floor under Goose: the same `GET /data?key=hot` with the same Bearer token, under the
//! same users and think time, sent by tokio tasks through one shared reqwest client, the
//! HTTP client Goose uses, with no load-testing framework at all. What it spends per request
//! is what the HTTP client, the runtime and the kernel cost; `bench/generator` sets it beside
//! ours, bare Goose, Locust and wrk.
//!
//! With `CLIENT=connection`, each task holds its own HTTP/1.1 connection and polls it itself
//! (`loadtest::http1`, what the lab's scenarios send with) instead of the shared reqwest
//! client: what that client costs, bare.
//!
//! `TOKEN=… bare_client http://127.0.0.1:8080 USERS RATE SECONDS`: USERS tasks started at
//! RATE per second, each sending, reading the answer, then thinking 1–2 s, until SECONDS from
//! the first start; prints one JSON line: requests, failures and CPU seconds.

use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static FAILURES: AtomicU64 = AtomicU64::new(0);

/// How a user sends: through the shared reqwest client, or on its own connection.
#[derive(Clone)]
enum Client {
    Shared(reqwest::Client),
    Connection(loadtest::http1::Target),
}

async fn user(client: Client, base: String, token: String, start: Instant, end: Instant) {
    tokio::time::sleep_until(start).await;
    let bearer = http::HeaderValue::try_from(format!("Bearer {token}")).expect("a token");
    // What this user sends with: the shared client and the URL, or its own connection.
    let mut sender = match client {
        Client::Shared(shared) => Sender::Shared(shared, format!("{base}{PATH}")),
        Client::Connection(target) => {
            let own = loadtest::http1::User::new(target.clone(), Duration::from_secs(60));
            Sender::Own(target, own)
        }
    };
    while Instant::now() < end {
        let ok = match &mut sender {
            Sender::Shared(shared, url) => match shared.get(&*url).bearer_auth(&token).send().await
            {
                Ok(answer) => answer.status().is_success() && answer.bytes().await.is_ok(),
                Err(_) => false,
            },
            Sender::Own(target, own) => {
                let mut request = target
                    .request(http::Method::GET, PATH, bytes::Bytes::new())
                    .expect("a valid path");
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, bearer.clone());
                matches!(own.send(request).await, Ok(a) if a.status.is_success())
            }
        };
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        if !ok {
            FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        let think = Duration::from_millis(rand::rng().random_range(1000..=2000));
        tokio::time::sleep_until((Instant::now() + think).min(end)).await;
    }
}

enum Sender {
    Shared(reqwest::Client, String),
    Own(loadtest::http1::Target, loadtest::http1::User),
}

const PATH: &str = "/data?key=hot";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, users, rate, secs] = &args[..] else {
        return Err("usage: bare_client HOST USERS RATE SECONDS".into());
    };
    let number = |s: &str| s.parse::<f64>().map_err(|_| format!("not a number: {s}"));
    let (users, rate, secs) = (number(users)? as usize, number(rate)?, number(secs)?);
    if rate <= 0.0 || secs <= 0.0 {
        return Err("RATE and SECONDS must be above 0".into());
    }
    let token = std::env::var("TOKEN").unwrap_or_default();
    let base = host.trim_end_matches('/').to_string();
    let client = match std::env::var("CLIENT").as_deref() {
        Ok("connection") => Client::Connection(loadtest::http1::Target::parse(&base)?),
        Ok("shared") | Err(_) => Client::Shared(reqwest::Client::new()),
        Ok(other) => return Err(format!("CLIENT is shared or connection, not {other}")),
    };
    let before = probe::host::process_cpu_seconds();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..users)
        .map(|i| {
            let start = t0 + Duration::from_secs_f64(i as f64 / rate);
            tokio::spawn(user(
                client.clone(),
                base.clone(),
                token.clone(),
                start,
                end,
            ))
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    let cpu = probe::host::process_cpu_seconds() - before;
    let requests = REQUESTS.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({"requests": requests, "failures": FAILURES.load(Ordering::Relaxed), "cpu_seconds": cpu, "cpu_per_request_us": cpu * 1e6 / requests.max(1) as f64})
    );
    Ok(())
}
