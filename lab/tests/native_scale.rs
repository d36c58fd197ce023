//! The native runtime scales in place under load: 1 → 3 → 1 gateways while clients keep
//! sending requests through the load balancer, and not one request fails. Real binaries
//! (target/debug, built by `make test`), a fresh Postgres database, a fresh Redis key prefix.

use records::names::MetricName;

use common::testing::free_port;
use stack::runtime::native::{Native, Options};
use stack::runtime::{Action, Paths, Runtime};
use stack::settings::{Service, Settings};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// target/debug, where `cargo build --workspace` put the services' binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/debug")
        .to_path_buf();
    for b in ["gateway", "microservice", "worker", "load_balancer"] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: build the workspace first (make test does)",
            dir.join(b).display()
        );
    }
    dir
}

/// `n` consecutive free ports.
fn free_range(n: u16) -> u16 {
    loop {
        let base = free_port();
        if base < 65000
            && (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

struct Stack {
    rt: Native,
    target: String,
    _db: common::testing::TestDb,
    run: PathBuf,
}

async fn stack(overrides: &[(&str, &str)]) -> Stack {
    stack_with(overrides, false).await
}

/// `relays`: Postgres and Redis reached through relays the lab can cut.
async fn stack_with(overrides: &[(&str, &str)], relays: bool) -> Stack {
    let db = common::testing::TestDb::create().await;
    let run = std::env::temp_dir().join(format!("lab-native-{}", uuid_like()));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let lb_port = free_port();
    let env: Vec<(String, String)> = [
        ("JWT_SECRET", "a-test-secret-of-enough-length".to_string()),
        (
            "ADMIN_TOKEN",
            "a-test-admin-token-of-enough-length".to_string(),
        ),
        // The stack logs in with the test's own database URL.
        ("POSTGRES_PASSWORD", "unused-by-the-test".to_string()),
        ("LB_PORT", lb_port.to_string()),
        ("LB_METRICS_PORT", free_port().to_string()),
        ("LB_ADMIN_PORT", free_port().to_string()),
        ("MICROSERVICE_PORT", free_port().to_string()),
        ("WORKER_PORT", free_port().to_string()),
        // No concurrency limit: a 503 from a full gateway would hide a failure of scaling.
        ("MAX_IN_FLIGHT", "0".to_string()),
        ("SEED_ROWS", "2000".to_string()),
        ("DB_DELAY_MS", "20".to_string()),
        ("LAB_USERS", "3".to_string()),
        ("SHUTDOWN_GRACE_SECS", "3".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .collect();
    let settings = Settings::resolve(None, env).expect("settings");
    let redis = common::testing::redis_config();
    let options = Options {
        manage_deps: false,
        database_url: Some(db.url.clone()),
        redis_url: redis.redis_url.clone(),
        extra_env: vec![("REDIS_KEY_PREFIX".into(), redis.redis_key_prefix.clone())],
        gateway_base_port: free_range(3),
        relays,
    };
    let paths = Paths {
        root,
        run: run.clone(),
        bin: bin_dir(),
        place: stack::container::Place::Host,
    };
    Stack {
        rt: Native::new(paths, settings, options),
        target: format!("http://127.0.0.1:{lb_port}"),
        _db: db,
        run,
    }
}

/// The test stack's own settings, up with n gateways.
async fn up(s: &mut Stack, gateways: usize) -> anyhow::Result<()> {
    let settings = s.rt.stack().settings.clone();
    s.rt.up(&settings, gateways).await
}

/// Unique per stack: tests of this binary run at once, in one process.
fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Requests the load balancer had to send again (refused or cut off by a stopping gateway).
async fn lb_retries(rt: &Native) -> f64 {
    let http = reqwest::Client::new();
    let samples = common::metrics::scrape(
        &http,
        &format!("{}/metrics", rt.stack().load_balancer.metrics),
    )
    .await
    .expect("load balancer metrics");
    common::metrics::sum(&samples, MetricName::LbRetriesTotal, &[])
}

#[derive(Default)]
struct Tally {
    by_status: BTreeMap<u16, u64>,
    by_gateway: BTreeMap<String, u64>,
    errors: Vec<String>,
}

/// Clients that log in, then alternate cache misses (each holds a connection ~20 ms) with
/// logins until told to stop. A login is a POST: once it reached a gateway the load balancer
/// may not send it again, so a gateway stopped without a drain shows up as a failed login.
fn start_load(
    target: &str,
    clients: usize,
    logins: bool,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Tally>>, Vec<tokio::task::JoinHandle<()>>) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (target, stop, tally) = (target.to_string(), stop.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let login = records::wire::Login::lab_user(c % 3 + 1, "scalelab");
            let answer: records::wire::LoginAnswer = http
                .post(format!("{target}/login"))
                .json(&login)
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("login answer");
            let token = answer.token;
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let answer = if !logins || i % 2 == 0 {
                    http.get(format!("{target}/data"))
                        .query(&[("key", format!("c{c}-{i}"))])
                        .bearer_auth(&token)
                        .send()
                        .await
                } else {
                    http.post(format!("{target}/login"))
                        .json(&serde_json::json!({"username": "user1", "password": "scalelab"}))
                        .send()
                        .await
                };
                let mut t = tally.lock().unwrap();
                match answer {
                    Ok(r) => {
                        *t.by_status.entry(r.status().as_u16()).or_default() += 1;
                        if let Some(gw) =
                            r.headers().get("x-served-by").and_then(|v| v.to_str().ok())
                        {
                            *t.by_gateway.entry(gw.to_string()).or_default() += 1;
                        }
                    }
                    Err(e) => t.errors.push(e.to_string()),
                }
            }
        }));
    }
    (tally, tasks)
}

/// Stops the clients and checks every request they sent got a 200; returns the tally.
async fn finish(
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    tally: Arc<Mutex<Tally>>,
) -> Tally {
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let t = std::mem::take(&mut *tally.lock().unwrap());
    assert!(
        t.errors.is_empty(),
        "transport errors: {:?}",
        &t.errors[..t.errors.len().min(5)]
    );
    assert_eq!(
        t.by_status.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "statuses: {:?}",
        t.by_status
    );
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateways_scale_up_and_back_down_under_load_without_a_failed_request() {
    let mut s = stack(&[]).await;
    up(&mut s, 1).await.expect("up with 1 gateway");
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, tasks) = start_load(&s.target, 6, true, stop.clone());

    tokio::time::sleep(Duration::from_secs(2)).await;
    s.rt.scale(3).await.expect("scale to 3");
    assert_eq!(stack::runtime::gateways(&s.rt).await.unwrap(), 3);
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.rt.scale(1).await.expect("scale back to 1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = finish(stop, tasks, tally).await;
    let total: u64 = t.by_status.values().sum();
    assert!(total > 100, "only {total} requests");
    // Not even hidden failures: no request was refused or cut off and sent again.
    assert_eq!(
        lb_retries(&s.rt).await,
        0.0,
        "the load balancer retried requests"
    );
    // All three gateways served while they were up.
    assert_eq!(t.by_gateway.len(), 3, "served by {:?}", t.by_gateway);

    // One gateway left, the others stopped (their pid files gone).
    let ps = s.rt.ps().await.unwrap();
    let gateways: Vec<_> = ps
        .iter()
        .filter(|i| i.service == Service::Gateway)
        .collect();
    assert_eq!(gateways.len(), 1, "{ps:?}");
    assert_eq!(gateways[0].name, "gateway-1");
    let view = s.rt.stack().load_balancer.backends().await.unwrap();
    assert_eq!(view.backends.len(), 1, "{view:?}");
    assert!(
        view.backends
            .iter()
            .all(|b| !b.draining && b.in_flight == 0),
        "{view:?}"
    );

    s.rt.down(false).await.unwrap();
    assert!(s.rt.ps().await.unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&s.run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_gateway_is_reported_and_started_again() {
    let mut s = stack(&[]).await;
    up(&mut s, 2).await.expect("up with 2 gateways");
    s.rt.act("gateway-2", Action::Kill).await.unwrap();
    let ps = s.rt.ps().await.unwrap();
    let gw2 = ps.iter().find(|i| i.name == "gateway-2").expect("listed");
    assert_eq!(gw2.state, "exited", "{ps:?}");
    // The load balancer takes it out of rotation by itself (refused health check).
    s.rt.stack()
        .load_balancer
        .wait_in_rotation(1, Duration::from_secs(10))
        .await
        .expect("out of rotation");
    s.rt.act("gateway-2", Action::Start).await.unwrap();
    s.rt.stack()
        .load_balancer
        .wait_in_rotation(2, Duration::from_secs(10))
        .await
        .expect("back in rotation");
    let err =
        s.rt.act("gateway-9", Action::Stop)
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("gateway-9 is not running"), "{err}");
    let err =
        s.rt.act("nonsense", Action::Stop)
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("no instance"), "{err}");
    let logs = s.rt.logs(Some(Service::Gateway), 5).await.unwrap();
    assert!(
        logs.contains("== gateway-1") && logs.contains("== gateway-2"),
        "{logs}"
    );
    s.rt.down(false).await.unwrap();
    let _ = std::fs::remove_dir_all(&s.run);
}

/// Requests that outlast a gateway's own shutdown grace period: only a drain that waits for
/// them before the stop keeps them from being cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaving_gateway_finishes_requests_longer_than_its_grace_period() {
    let mut s = stack(&[("DB_DELAY_MS", "2500"), ("SHUTDOWN_GRACE_SECS", "1")]).await;
    up(&mut s, 2).await.expect("up with 2 gateways");
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, tasks) = start_load(&s.target, 6, false, stop.clone());
    // Every client has a 2.5 s request in flight, half of them on gateway-2.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    s.rt.scale(1).await.expect("scale to 1");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let t = finish(stop, tasks, tally).await;
    assert_eq!(t.by_gateway.len(), 2, "served by {:?}", t.by_gateway);
    assert_eq!(
        lb_retries(&s.rt).await,
        0.0,
        "requests were cut off and retried"
    );
    s.rt.down(false).await.unwrap();
    let _ = std::fs::remove_dir_all(&s.run);
}

/// The autoscaler on the native stack: slots fill under load, it scales 1 → 3; the load
/// stops, it scales back to 1 after its (short) scale-down window; no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_autoscaler_scales_up_under_load_and_back_down_after_it() {
    let mut s = stack(&[
        ("MAX_IN_FLIGHT", "2"),
        ("DB_DELAY_MS", "100"),
        ("SYNC_PERIOD_SECS", "1"),
        ("AUTOSCALE_TARGET", "0.5"),
        ("SCALE_DOWN_STABILIZATION_SECS", "5"),
    ])
    .await;
    up(&mut s, 1).await.expect("up with 1 gateway");
    let config = lab::autoscale::Config::from_settings(&s.rt.stack().settings).unwrap();
    let mut controller = lab::autoscale::Controller::new(config, live::LiveBoard::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, tasks) = start_load(&s.target, 8, false, stop.clone());

    let mut decisions = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stack::runtime::gateways(&s.rt).await.unwrap() < 3
        && tokio::time::Instant::now() < deadline
    {
        decisions.push(controller.step(&mut s.rt).await.expect("a decision"));
    }
    assert_eq!(
        stack::runtime::gateways(&s.rt).await.unwrap(),
        3,
        "scaled out: {decisions:#?}"
    );
    let up = decisions
        .iter()
        .find(|d| d.desired > d.current)
        .expect("a scale-up");
    assert!(up.metric.unwrap() > 0.5 * 1.1, "{up:?}");
    assert!(up.scale_secs.is_some() && up.error.is_none(), "{up:?}");
    // The load goes on a little on three gateways.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let t = finish(stop, tasks, tally).await;
    assert_eq!(
        t.by_gateway.len(),
        3,
        "the new gateways served: {:?}",
        t.by_gateway
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stack::runtime::gateways(&s.rt).await.unwrap() > 1
        && tokio::time::Instant::now() < deadline
    {
        decisions.push(controller.step(&mut s.rt).await.expect("a decision"));
    }
    assert_eq!(
        stack::runtime::gateways(&s.rt).await.unwrap(),
        1,
        "scaled back in: {decisions:#?}"
    );
    // The window held the first lower proposal back.
    let down = decisions
        .iter()
        .position(|d| d.desired < d.current)
        .unwrap();
    let first_lower = decisions
        .iter()
        .position(|d| d.proposed < d.current)
        .unwrap();
    assert!(first_lower < down, "{decisions:#?}");
    assert_eq!(
        lb_retries(&s.rt).await,
        0.0,
        "no request was cut off by scaling"
    );
    s.rt.down(false).await.unwrap();
    let _ = std::fs::remove_dir_all(&s.run);
}

/// The instances running now.
async fn running_instances(rt: &Native) -> Vec<String> {
    rt.ps()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.state == "running")
        .map(|i| i.name)
        .collect()
}

/// Data misses each microservice answered, by its base URL.
async fn misses_by_instance(rt: &Native) -> Vec<f64> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for base in rt.stack().instance_urls(Service::Microservice) {
        let samples = common::metrics::scrape(&http, &format!("{base}/metrics"))
            .await
            .expect("microservice metrics");
        out.push(common::metrics::sum(
            &samples,
            MetricName::HttpRequestsTotal,
            &[("route", "/data/{key}")],
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_and_microservices_run_as_replicas_and_the_gateways_use_each() {
    // No cache: every request below is a miss the microservices answer.
    let mut s = stack(&[
        ("WORKERS", "2"),
        ("MICROSERVICES", "2"),
        ("CACHE_ENABLED", "false"),
    ])
    .await;
    up(&mut s, 2)
        .await
        .expect("up with 2 microservices and 2 workers");
    let running = running_instances(&s.rt).await;
    for name in ["microservice", "microservice-2", "worker", "worker-2"] {
        assert!(running.contains(&name.to_string()), "{name}: {running:?}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, tasks) = start_load(&s.target, 4, false, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    finish(stop, tasks, tally).await;
    // Round robin at each gateway: each instance gets about half of the misses.
    let misses = misses_by_instance(&s.rt).await;
    let total: f64 = misses.iter().sum();
    assert!(total >= 20.0, "{misses:?}");
    assert!(misses.iter().all(|m| *m >= total * 0.35), "{misses:?}");

    // Back to one of each: the extra instances stop and the gateways forget the second.
    let mut one = s.rt.stack().settings.clone();
    one.set("MICROSERVICES", "1").unwrap();
    one.set("WORKERS", "1").unwrap();
    s.rt.up(&one, 2).await.expect("back to one microservice");
    let running = running_instances(&s.rt).await;
    assert!(
        !running
            .iter()
            .any(|n| n.ends_with("-2") && !n.starts_with("gateway")),
        "{running:?}"
    );
    let before = misses_by_instance(&s.rt).await[0];
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, tasks) = start_load(&s.target, 2, false, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let served = finish(stop, tasks, tally).await.by_status[&200];
    assert_eq!(misses_by_instance(&s.rt).await[0] - before, served as f64);
    s.rt.down(false).await.unwrap();
    let _ = std::fs::remove_dir_all(&s.run);
}

/// One `/data` miss through the load balancer: its status.
async fn one_miss(target: &str, token: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{target}/data"))
        .query(&[("key", key)])
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_cut_postgres_and_redis_through_the_labs_relays_and_restore_them() {
    use Action::{Start, Stop};
    // Without relays there is nothing the lab may cut.
    let mut direct = stack(&[]).await;
    let e = direct.rt.act("redis", Stop).await.unwrap_err().to_string();
    assert!(e.contains("relays"), "{e}");
    let mut s = stack_with(&[("CACHE_ENABLED", "true")], true).await;
    up(&mut s, 1).await.expect("up behind the relays");
    let login: records::wire::LoginAnswer = reqwest::Client::new()
        .post(format!("{}/login", s.target))
        .json(&records::wire::Login {
            username: "user1".into(),
            password: "scalelab".into(),
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login.token;
    assert_eq!(one_miss(&s.target, &token, "before").await, 200);

    // Redis away: still answered, from the microservice.
    s.rt.act("redis", Stop).await.unwrap();
    assert_eq!(one_miss(&s.target, &token, "no-redis").await, 200);
    s.rt.act("redis", Start).await.unwrap();

    // Postgres away: a 503 (shed, retryable), never a 500; back without a restart.
    s.rt.act("postgres", Stop).await.unwrap();
    assert_eq!(one_miss(&s.target, &token, "no-postgres").await, 503);
    s.rt.act("postgres", Start).await.unwrap();
    let back = common::testing::wait_until(Duration::from_secs(10), || {
        let (target, token) = (s.target.clone(), token.clone());
        async move { one_miss(&target, &token, "after").await == 200 }
    })
    .await;
    assert!(
        back,
        "the stack did not serve again after Postgres returned"
    );
    s.rt.down(false).await.unwrap();
    let _ = std::fs::remove_dir_all(&s.run);
}

/// Lab 0 on a real stack: the tour sees a miss then a hit, the three gateways in turn, a
/// queued task done by the worker, gateway 2 out of rotation after its kill without a failed
/// request and back after its start; then the handout's POSIX lines, pasted into a shell one
/// after the other, answer the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lab_0_tour_and_its_curl_lines_show_the_stack_one_request_at_a_time() {
    let mut s = stack(&[("HEALTH_INTERVAL_MS", "500")]).await;
    let seen = lab::tour::run(&mut s.rt, &lab::tour::fresh_key())
        .await
        .expect("the tour");
    assert_eq!(seen.miss.cache.as_deref(), Some("MISS"), "{seen:?}");
    assert_eq!(seen.hit.cache.as_deref(), Some("HIT"), "{seen:?}");
    assert_ne!(seen.miss.served_by, seen.hit.served_by, "round robin");
    // Round robin over 3 gateways, each with its own listing cache: the 4th lands where the
    // 1st did, 3 s later.
    let caches: Vec<_> = seen.listing.iter().map(|a| a.cache.as_deref()).collect();
    assert_eq!(
        caches,
        [Some("MISS"), Some("MISS"), Some("MISS"), Some("HIT")],
        "{seen:?}"
    );
    assert_eq!(seen.listing[3].served_by, seen.listing[0].served_by);
    assert!(
        (2..=4).contains(&seen.listing[3].age.unwrap_or(0)),
        "{seen:?}"
    );
    assert_eq!(seen.accepted, 202);
    // Accepted, not done: the task takes 3 s.
    assert!(seen.accepted_ms < 2500.0, "{seen:?}");
    assert!(seen.location.starts_with("/tasks/"), "{seen:?}");
    let last = seen.last_status.as_ref().expect("a status");
    assert_eq!(last.status, "done", "{seen:?}");
    assert!(last.worker.is_some(), "{seen:?}");
    assert_eq!(seen.in_rotation, 3);
    assert_eq!(
        seen.served.len(),
        3,
        "six requests over 3 gateways: {seen:?}"
    );
    assert!(seen.served.values().all(|&n| n == 2), "{seen:?}");
    assert_eq!(seen.in_rotation_without, 2);
    assert_eq!(seen.served_without.len(), 2, "{seen:?}");
    assert!(!seen.served_without.contains_key("gateway-2"), "{seen:?}");
    assert!(
        seen.left_rotation_after <= Duration::from_secs(3),
        "{seen:?}"
    );
    assert_eq!(seen.in_rotation_again, 3);

    // The handout's lines, as a student pastes them (the lab's own commands left out).
    let dir = std::env::temp_dir().join(format!("lab0-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let script =
        lab::tour::posix_script(&s.rt.stack().settings, &lab::tour::fresh_key()).join("\n");
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&dir)
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        out.status.success(),
        "{script}\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let miss = text.find("x-cache: miss").expect("a miss");
    let hit = text.find("x-cache: hit").expect("a hit");
    assert!(miss < hit, "{text}");
    assert!(text.contains("http/1.1 202"), "{text}");
    assert!(
        text.contains("age: 3") || text.contains("age: 4"),
        "the 4th listing, 3 s after the 1st: {text}"
    );
    assert!(text.contains("\"status\":\"queued\"") || text.contains("\"status\":\"running\""));
    assert!(
        text.matches("x-served-by: gateway-").count() >= 6 + 2,
        "{text}"
    );
    assert!(text.contains("\"healthy\":true"), "{text}");
    s.rt.down(false).await.unwrap();
    let _ = std::fs::remove_dir_all(&s.run);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Debian's headless Chromium (`chromium`), or Ubuntu's name for it.
fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("headless Chromium is needed for this test: sudo apt-get install -y chromium")
}

/// The live page during real load on a real stack, read as a browser renders it: charts
/// whose points grow each second, the gateways in rotation, gateway 2 out of it after its
/// kill, the fault's window on the time axis; and a picture of it beside the test's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_page_follows_the_stack_second_by_second_in_a_browser() {
    let mut s = stack(&[("HEALTH_INTERVAL_MS", "500")]).await;
    up(&mut s, 3).await.expect("up with 3 gateways");
    let port = free_port();
    let address = live::address(port, stack::container::Place::Host);
    let live = live::LiveBoard::default();
    let url = live
        .start(address, &s.rt.stack().endpoints())
        .await
        .expect("the page listens");
    live.step(0, 2, "test load, 3 gateways");
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, tasks) = start_load(&s.target, 6, false, stop.clone());
    let http = reqwest::Client::new();
    let board = || async {
        http.get(format!("{url}board.json"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = board().await;
    let points = before["points"].as_array().unwrap().len();
    assert!(points >= 3, "{points} points after 4 s");
    let last = before["points"].as_array().unwrap().last().unwrap().clone();
    let states: Vec<&str> = last["gateways"]
        .as_object()
        .unwrap()
        .values()
        .map(|g| g["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["in rotation"; 3], "{last}");
    assert!(last["answers"]["2xx"].as_f64().unwrap() > 0.0, "{last}");
    assert!(last["p95_ms"].as_f64().is_some(), "{last}");

    live.fault(Some("kill-gateway: gateway-2 killed"));
    s.rt.act("gateway-2", Action::Kill).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = board().await;
    assert!(after["points"].as_array().unwrap().len() >= points + 2);
    let last = after["points"].as_array().unwrap().last().unwrap().clone();
    let in_rotation = last["gateways"]
        .as_object()
        .unwrap()
        .values()
        .filter(|g| g["state"] == "in rotation")
        .count();
    assert_eq!(in_rotation, 2, "{last}");
    assert_eq!(
        after["bands"].as_array().unwrap().last().unwrap()["kind"],
        "fault"
    );

    // As a browser renders it, after its script has fetched the board a few times.
    let dom = std::process::Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .args(["--virtual-time-budget=3500", "--dump-dom", &url])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    let updates: u32 = dom
        .split("data-updates=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(updates >= 1, "the page's script never refreshed the board");
    let most = dom
        .split("data-series=\"2xx\" data-points=\"")
        .skip(1)
        .filter_map(|r| r.split('"').next()?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    assert!(most >= points + 2, "the 2xx line holds {most} points");
    assert_eq!(dom.matches("data-state=\"in rotation\"").count(), 2);
    assert!(
        dom.contains("kill-gateway: gateway-2 killed"),
        "the fault's window"
    );
    let png = s.run.join("live.png");
    std::fs::create_dir_all(&s.run).unwrap();
    let shot = std::process::Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .args(["--window-size=1400,1700", "--virtual-time-budget=1500"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(shot.status.success());
    assert!(
        std::fs::metadata(&png).unwrap().len() > 30_000,
        "a blank page"
    );
    if let Ok(keep) = std::env::var("LIVE_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
    finish(stop, tasks, tally).await;
    s.rt.down(false).await.unwrap();
    let _ = std::fs::remove_dir_all(&s.run);
}
