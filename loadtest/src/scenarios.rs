//! The virtual users: each logs in on start as one of the lab users and sends its token as
//! a Bearer header; a 401 mid-run triggers one re-login. Requests are named by route, so a
//! report has one row per endpoint, not one per key.

use crate::{Options, Scenario};
use goose::prelude::*;
use rand::Rng;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// What every user of a run needs to know.
#[derive(Clone)]
struct Settings {
    lab_users: usize,
    lab_password: String,
    /// The `mixed` scenario's key law: ranks 1..=KEY_SPACE, Zipf of exponent ZIPF_S.
    keys: rand_distr::Zipf<f64>,
    /// Makes `miss` keys unique across runs, not only within one.
    nonce: u32,
    longtask_ms: u64,
    poll_ms: u64,
    longtask_timeout_ms: u64,
    /// `[min, max]` ms after each iteration (`Plan::think_ms`).
    think_ms: Option<[u64; 2]>,
    /// The whole load's length (DURATION_SECS), from the first login.
    duration: std::time::Duration,
}

/// Shared, not copied: the scenarios read them on every request.
static SETTINGS: RwLock<Option<Arc<Settings>>> = RwLock::new(None);

/// Client-side view of the cache: the `X-Cache` header of every `/data` and `/process` answer.
pub static CACHE_HITS: AtomicU64 = AtomicU64::new(0);
pub static CACHE_MISSES: AtomicU64 = AtomicU64::new(0);
pub static RELOGINS: AtomicU64 = AtomicU64::new(0);
/// 503 answers to the scenario's requests, and those without `Retry-After`.
pub static SHED: AtomicU64 = AtomicU64::new(0);
pub static SHED_WITHOUT_RETRY_AFTER: AtomicU64 = AtomicU64::new(0);

/// End-to-end times of long tasks: from `POST /longtask` to the poll that saw them finished.
#[derive(Default, Clone)]
pub struct Jobs {
    pub submitted: u64,
    pub done: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub end_to_end_ms: Vec<f64>,
}

pub static JOBS: std::sync::Mutex<Jobs> = std::sync::Mutex::new(Jobs {
    submitted: 0,
    done: 0,
    failed: 0,
    timed_out: 0,
    end_to_end_ms: Vec::new(),
});

pub fn configure(options: &Options) {
    *SETTINGS.write().expect("not poisoned") = Some(Arc::new(Settings {
        lab_users: (options.lab.lab_users as usize).max(1),
        lab_password: options.lab.lab_password.clone(),
        keys: key_law(options.key_space, options.zipf_s),
        nonce: rand::rng().random(),
        longtask_ms: options.longtask_ms,
        poll_ms: options.poll_ms.max(10),
        longtask_timeout_ms: options.longtask_timeout_secs * 1000,
        think_ms: options.think_ms(),
        duration: std::time::Duration::from_secs(options.load().duration_secs),
    }));
    // Each run (a breakpoint search makes several) has its own first login.
    *FIRST_LOGIN.lock().expect("not poisoned") = None;
    for counter in [
        &CACHE_HITS,
        &CACHE_MISSES,
        &RELOGINS,
        &SHED,
        &SHED_WITHOUT_RETRY_AFTER,
    ] {
        counter.store(0, Ordering::SeqCst);
    }
    *JOBS.lock().expect("not poisoned") = Jobs::default();
}

/// When the run's first user sent its first request (a login), on both clocks: the monotonic
/// one ends the load DURATION_SECS later (`load_over`, `think`); unix time, with that
/// request's `elapsed` in the log, places second 0 of the per-second series on the wall
/// clock, where the lab's fault events are.
static FIRST_LOGIN: Mutex<Option<FirstLogin>> = Mutex::new(None);

#[derive(Clone, Copy)]
struct FirstLogin {
    at: tokio::time::Instant,
    unix: f64,
}

/// The run's raw request log (`requests.json`): a JSON line per request, written by the
/// scenarios as each answer comes (into a buffer, to the file in blocks), with the fields
/// the readers use, in Goose's own names (`latency::read_logs`). Goose's `--request-log`
/// formatted every request's headers and whole metric (BENCHMARKS.md, "The load
/// generator's cost"); this holds the same requests, each once, in its final state.
static REQUEST_LOG: std::sync::Mutex<Option<RequestLog>> = std::sync::Mutex::new(None);

struct RequestLog {
    out: std::io::BufWriter<std::fs::File>,
    /// The first write that failed (a full disk): the run fails with it at the end rather
    /// than keep a log with lines missing.
    failed: Option<std::io::Error>,
}

#[derive(serde::Serialize)]
struct LogLine<'a> {
    elapsed: u64,
    name: &'a str,
    response_time: u64,
    response_time_fraction_us: u16,
    success: bool,
    status_code: u16,
    user: usize,
    raw: LogRaw,
}

#[derive(serde::Serialize)]
struct LogRaw {
    method: GooseMethod,
}

/// Starts the request log of a run at `path` (a new file).
pub fn open_request_log(path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    *REQUEST_LOG.lock().expect("not poisoned") = Some(RequestLog {
        out: std::io::BufWriter::with_capacity(1 << 16, file),
        failed: None,
    });
    Ok(())
}

/// Writes what the request log holds and closes it; the first write that failed, if any.
pub fn close_request_log() -> std::io::Result<()> {
    use std::io::Write;
    match REQUEST_LOG.lock().expect("not poisoned").take() {
        Some(RequestLog {
            failed: Some(e), ..
        }) => Err(std::io::Error::new(
            e.kind(),
            format!("the request log lost lines: {e}"),
        )),
        Some(mut log) => log.out.flush(),
        None => Ok(()),
    }
}

/// One request, as it ended, into the run's request log.
fn log_request(request: &goose::metrics::GooseRequestMetric) {
    use std::io::Write;
    let mut log = REQUEST_LOG.lock().expect("not poisoned");
    let Some(log) = log.as_mut().filter(|l| l.failed.is_none()) else {
        return;
    };
    let line = LogLine {
        elapsed: request.elapsed,
        name: &request.name,
        response_time: request.response_time,
        response_time_fraction_us: request.response_time_fraction_us,
        success: request.success,
        status_code: request.status_code,
        user: request.user,
        raw: LogRaw {
            method: request.raw.method,
        },
    };
    let written = serde_json::to_writer(&mut log.out, &line)
        .map_err(std::io::Error::from)
        .and_then(|()| log.out.write_all(b"\n"));
    if let Err(e) = written {
        log.failed = Some(e);
    }
}

/// When the first login of the attack was sent (unix seconds).
pub fn first_login_at() -> Option<f64> {
    FIRST_LOGIN
        .lock()
        .expect("not poisoned")
        .map(|first| first.unix)
}

/// The first login starts the run's clock (later ones leave it).
fn note_a_login() {
    FIRST_LOGIN
        .lock()
        .expect("not poisoned")
        .get_or_insert_with(|| FirstLogin {
            at: tokio::time::Instant::now(),
            unix: records::time::now_unix(),
        });
}

/// When the load ends: DURATION_SECS after the first login (none before it).
fn load_ends(s: &Settings) -> Option<tokio::time::Instant> {
    FIRST_LOGIN
        .lock()
        .expect("not poisoned")
        .map(|first| first.at + s.duration)
}

/// The one key every `hit` request asks for (and the calibration warms).
pub const HIT_KEY: &str = "hot";

/// The body of `POST /login` as lab user `n` (user1..userN).
pub fn login_body(n: usize, password: &str) -> records::wire::Login {
    records::wire::Login {
        username: format!("user{n}"),
        password: password.to_string(),
    }
}

fn settings() -> Arc<Settings> {
    SETTINGS
        .read()
        .expect("not poisoned")
        .clone()
        .expect("scenarios::configure runs before the attack")
}

pub fn scenario(which: Scenario) -> goose::goose::Scenario {
    let name = match which {
        Scenario::Hit => "hit",
        Scenario::Miss => "miss",
        Scenario::Mixed => "mixed",
        Scenario::Login => "login",
        Scenario::Longtask => "longtask",
        Scenario::Listing => "listing",
    };
    let base = goose::goose::Scenario::new(name)
        .register_transaction(transaction!(log_in).set_on_start().set_name("log in"));
    match which {
        Scenario::Hit => base.register_transaction(transaction!(hit).set_name("hit")),
        Scenario::Miss => base.register_transaction(transaction!(miss).set_name("miss")),
        Scenario::Mixed => base.register_transaction(transaction!(mixed).set_name("mixed")),
        Scenario::Login => base.register_transaction(transaction!(login_storm).set_name("login")),
        Scenario::Longtask => {
            base.register_transaction(transaction!(long_task).set_name("longtask"))
        }
        Scenario::Listing => base.register_transaction(transaction!(listing).set_name("listing")),
    }
}

/// Whether the load is over (DURATION_SECS since the first login): then the user sends
/// nothing and waits a tenth of a second for Goose, which stops its users on a half-second
/// tick of its own, to tell it to stop.
async fn load_over() -> bool {
    let over = load_ends(&settings()).is_some_and(|end| tokio::time::Instant::now() >= end);
    if over {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    over
}

/// The user's think time after an iteration, drawn from [min, max], in one sleep that ends
/// with the load at the latest. (Goose's own wait time sleeps in half-second steps, to check
/// whether it is told to stop: more than a quarter of its CPU per request.)
async fn think() {
    let s = settings();
    let Some([min, max]) = s.think_ms else {
        return;
    };
    let ms = rand::rng().random_range(min..=max.max(min));
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
    tokio::time::sleep_until(load_ends(&s).map_or(until, |end| until.min(end))).await;
}

/// One iteration of a user: nothing once the load is over, else the scenario's step and then
/// the think time, whatever the step's outcome. A step begun before the end finishes (a long
/// task already submitted is polled until it is done, failed or timed out).
macro_rules! iteration {
    ($step:expr) => {{
        if load_over().await {
            return Ok(());
        }
        let result = $step.await;
        think().await;
        result
    }};
}

#[derive(Clone)]
struct Session {
    /// `Bearer <token>`, built once at login: each request clones it without copying.
    authorization: HeaderValue,
    sent: u64,
}

async fn log_in(user: &mut GooseUser) -> TransactionResult {
    let s = settings();
    note_a_login();
    let n = user.weighted_users_index % s.lab_users + 1;
    let body = login_body(n, &s.lab_password);
    let mut goose = user.post_json("/login", &body).await?;
    let token = match goose.response {
        Ok(r) if r.status().is_success() => r
            .json::<records::wire::LoginAnswer>()
            .await
            .ok()
            .and_then(|answer| authorization(&answer.token)),
        _ => None,
    };
    let result = match token {
        Some(authorization) => {
            user.set_session_data(Session {
                authorization,
                sent: 0,
            });
            Ok(())
        }
        None => user.set_failure("login failed", &mut goose.request, None, None),
    };
    // After set_failure: the log holds the login as it ended.
    log_request(&goose.request);
    result
}

async fn login_storm(user: &mut GooseUser) -> TransactionResult {
    iteration!(log_in(user))
}

/// The `Authorization` header of a token, marked sensitive as reqwest's `bearer_auth` marks it;
/// none for a token a header cannot carry.
fn authorization(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// GET a cacheable route with the user's token; on a 401, log in again once and retry.
async fn get_cached(user: &mut GooseUser, route: &'static str, key: &str) -> TransactionResult {
    for attempt in 0..2 {
        let token = match user.get_session_data::<Session>() {
            Some(session) => session.authorization.clone(),
            None => {
                log_in(user).await?;
                continue;
            }
        };
        let param = if route == "/listing" { "prefix" } else { "key" };
        let path = format!("{route}?{param}={key}");
        let builder = user
            .get_request_builder(&GooseMethod::Get, &path)?
            .header(AUTHORIZATION, token);
        let request = GooseRequest::builder()
            .path(path.as_str())
            .name(route)
            .set_request_builder(builder)
            .build();
        let goose = user.request(request).await?;
        log_request(&goose.request);
        if let Ok(response) = &goose.response {
            if response.status().as_u16() == 401 && attempt == 0 {
                RELOGINS.fetch_add(1, Ordering::Relaxed);
                log_in(user).await?;
                continue;
            }
            if response.status().as_u16() == 503 {
                SHED.fetch_add(1, Ordering::Relaxed);
                if !response.headers().contains_key("retry-after") {
                    SHED_WITHOUT_RETRY_AFTER.fetch_add(1, Ordering::Relaxed);
                }
            }
            match response.headers().get("x-cache").map(|v| v.as_bytes()) {
                Some(b"HIT") => CACHE_HITS.fetch_add(1, Ordering::Relaxed),
                Some(b"MISS") => CACHE_MISSES.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        if let Some(session) = user.get_session_data_mut::<Session>() {
            session.sent += 1;
        }
        return Ok(());
    }
    Ok(())
}

fn bearer(user: &GooseUser) -> Option<HeaderValue> {
    user.get_session_data::<Session>()
        .map(|s| s.authorization.clone())
}

async fn long_task(user: &mut GooseUser) -> TransactionResult {
    iteration!(submit_and_wait(user))
}

/// Submits a job, then polls its status until it is done or failed (or the timeout passes),
/// and records the end-to-end time the user waited.
async fn submit_and_wait(user: &mut GooseUser) -> TransactionResult {
    let s = settings();
    let Some(token) = bearer(user) else {
        return log_in(user).await;
    };
    let started = std::time::Instant::now();
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/longtask")?
        .header(AUTHORIZATION, token.clone())
        .json(&records::wire::NewTask {
            task: "report".into(),
            payload: json!({"duration_ms": s.longtask_ms}),
        });
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/longtask")
        .name("/longtask")
        .set_request_builder(builder)
        .build();
    let goose = user.request(request).await?;
    log_request(&goose.request);
    let status_url = match goose.response {
        Ok(r) if r.status().as_u16() == 202 => r
            .json::<records::wire::TaskAccepted>()
            .await
            .ok()
            .map(|a| a.status_url),
        // Done inside the request (LONGTASK_MODE=inline): the answer is the result.
        Ok(r) if r.status().as_u16() == 200 => {
            let state = r.json::<records::wire::TaskStatus>().await.ok();
            let waited = started.elapsed().as_secs_f64() * 1000.0;
            let mut jobs = JOBS.lock().expect("not poisoned");
            jobs.submitted += 1;
            match state.as_ref().map(|t| t.status.as_str()) {
                Some("done") => jobs.done += 1,
                // Failed, or an answer that is not a task's status: not done either way.
                _ => jobs.failed += 1,
            }
            jobs.end_to_end_ms.push(waited);
            return Ok(());
        }
        Ok(r) if r.status().as_u16() == 401 => {
            RELOGINS.fetch_add(1, Ordering::Relaxed);
            return log_in(user).await;
        }
        _ => None,
    };
    let Some(status_url) = status_url else {
        return Ok(());
    };
    JOBS.lock().expect("not poisoned").submitted += 1;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(s.poll_ms)).await;
        let builder = user
            .get_request_builder(&GooseMethod::Get, &status_url)?
            .header(AUTHORIZATION, token.clone());
        let request = GooseRequest::builder()
            .path(status_url.as_str())
            .name("/tasks/{id}")
            .set_request_builder(builder)
            .build();
        let goose = user.request(request).await?;
        log_request(&goose.request);
        let state = match goose.response {
            Ok(r) => r
                .json::<records::wire::TaskStatus>()
                .await
                .ok()
                .map(|t| t.status),
            Err(_) => None,
        };
        let waited = started.elapsed().as_secs_f64() * 1000.0;
        let mut jobs = JOBS.lock().expect("not poisoned");
        match state.as_deref() {
            Some("done") => {
                jobs.done += 1;
                jobs.end_to_end_ms.push(waited);
                return Ok(());
            }
            Some("failed") => {
                jobs.failed += 1;
                jobs.end_to_end_ms.push(waited);
                return Ok(());
            }
            _ if waited > s.longtask_timeout_ms as f64 => {
                jobs.timed_out += 1;
                return Ok(());
            }
            _ => {}
        }
    }
}

fn route() -> &'static str {
    if rand::rng().random_bool(0.5) {
        "/data"
    } else {
        "/process"
    }
}

async fn hit(user: &mut GooseUser) -> TransactionResult {
    iteration!(get_cached(user, route(), HIT_KEY))
}

async fn miss(user: &mut GooseUser) -> TransactionResult {
    let s = settings();
    let sent = user.get_session_data::<Session>().map_or(0, |x| x.sent);
    let key = format!("m{:x}-{}-{sent}", s.nonce, user.weighted_users_index);
    iteration!(get_cached(user, route(), &key))
}

async fn mixed(user: &mut GooseUser) -> TransactionResult {
    let s = settings();
    let key = format!("k{}", key_index(&s.keys, &mut rand::rng()));
    iteration!(get_cached(user, route(), &key))
}

async fn listing(user: &mut GooseUser) -> TransactionResult {
    let prefix = format!(
        "p{}",
        rand::rng().random_range(0..records::wire::LISTING_PREFIXES)
    );
    iteration!(get_cached(user, "/listing", &prefix))
}

/// The Zipf law of exponent `s` over ranks 1..=`n` (`s` = 0: uniform), sampled exactly
/// (rand_distr's rejection-inversion). `n` and `s` are checked by the plan; out of range
/// they fall back to the nearest valid law.
pub fn key_law(n: u64, s: f64) -> rand_distr::Zipf<f64> {
    rand_distr::Zipf::new(n.max(1) as f64, s.max(0.0)).expect("n >= 1 and s >= 0")
}

/// A key index in `0..n`: rank k is index k − 1 (index 0 is the hottest key).
pub fn key_index(law: &rand_distr::Zipf<f64>, rng: &mut impl rand::Rng) -> u64 {
    use rand_distr::Distribution;
    (law.sample(rng) as u64).saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::{key_index, key_law};
    use rand::SeedableRng;
    use records::record::Keys;

    fn shares(n: u64, s: f64, draws: usize) -> Vec<f64> {
        let law = key_law(n, s);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = vec![0u64; n as usize];
        for _ in 0..draws {
            let k = key_index(&law, &mut rng);
            assert!(k < n, "index {k} out of 0..{n}");
            counts[k as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    /// The hottest of 1000 keys at s = 1 gets 1 / H(1000) = 13.4 % of the draws (the
    /// continuous approximation gave 10.0 %), within 1 % of it.
    #[test]
    fn the_hottest_key_gets_one_over_the_harmonic_number() {
        let expected = Keys::zipf(1000, 1.0);
        assert!((expected.hottest_share - 0.1336).abs() < 0.0005);
        let got = shares(1000, 1.0, 400_000);
        let err = (got[0] - expected.hottest_share).abs() / expected.hottest_share;
        assert!(
            err < 0.01,
            "hottest {:.4} against {:.4}",
            got[0],
            expected.hottest_share
        );
        // And the ten hottest together: H(10) / H(1000).
        let top10: f64 = got[..10].iter().sum();
        let want = expected.top_share(10);
        assert!(
            (top10 - want).abs() / want < 0.01,
            "top 10 {top10:.4} against {want:.4}"
        );
    }

    #[test]
    fn exponent_zero_is_uniform_and_a_steeper_one_is_hotter() {
        let flat = shares(10, 0.0, 100_000);
        assert!(flat.iter().all(|&p| (p - 0.1).abs() < 0.005), "{flat:?}");
        let steep = shares(1000, 1.5, 100_000);
        let want = Keys::zipf(1000, 1.5).hottest_share;
        assert!(
            (steep[0] - want).abs() / want < 0.02,
            "{} against {want}",
            steep[0]
        );
        // One key: always it.
        assert_eq!(shares(1, 1.0, 100), vec![1.0]);
    }
}
