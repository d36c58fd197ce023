//! The virtual users: each starts as one of the lab users, with the token that user got
//! before the load ([`crate::ahead`]; the `login` scenario logs in for real), and sends it as
//! a Bearer header; a 401 mid-run triggers one re-login. Requests are named by route, so a
//! report has one row per endpoint, not one per key.
//!
//! Goose runs the users (their launch, their stop, the open profile's pace) and aggregates
//! every request; the requests themselves go out on each user's own HTTP/1.1 connection
//! ([`crate::http1`]), not through Goose's shared reqwest client, and are recorded with Goose
//! by route as its own requests are (`GET /data`, a non-2xx answer a failure named
//! `503 Service Unavailable: /data`). A user's requests all use its one connection, as a
//! browser's or a Locust user's do. A request's time runs to its whole answer (Goose's own
//! requests stopped at the headers; the lab's answers are small), and Goose's per-second
//! graphs count it in the second it was answered, as the request log's series does.

use crate::http1;
use crate::{Options, Scenario};
use bytes::Bytes;
use goose::prelude::*;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::Method;
use rand::Rng;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// What every user of a run needs to know.
#[derive(Clone)]
struct Settings {
    /// The load balancer (LOADTEST_TARGET_URL), where every user connects.
    target: http1::Target,
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
    /// The open model: each iteration serves an arrival of the schedule
    /// ([`crate::dispatch`]).
    open: bool,
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

/// A request with no whole answer after this long fails (Goose's own default timeout).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Sets the run's users up; a target the users cannot connect to is an error.
pub fn configure(options: &Options) -> anyhow::Result<()> {
    let target = http1::Target::parse(&options.target).map_err(anyhow::Error::msg)?;
    *SETTINGS.write().expect("not poisoned") = Some(Arc::new(Settings {
        target,
        lab_users: (options.lab.lab_users as usize).max(1),
        lab_password: options.lab.lab_password.clone(),
        keys: key_law(options.key_space, options.zipf_s),
        nonce: rand::rng().random(),
        longtask_ms: options.longtask_ms,
        poll_ms: options.poll_ms.max(10),
        longtask_timeout_ms: options.longtask_timeout_secs * 1000,
        think_ms: options.think_ms(),
        duration: std::time::Duration::from_secs(options.load().duration_secs),
        open: options.profile == crate::Profile::Open,
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
    Ok(())
}

/// When the run's first user started (with its token from before the load, or its login), on
/// three clocks: the monotonic one ends the load DURATION_SECS later (`load_over`, `think`);
/// unix time, with the attack's own (`elapsed` in the request log), places second 0 of the
/// per-second series on the wall clock, where the lab's fault events are.
static FIRST_LOGIN: Mutex<Option<FirstLogin>> = Mutex::new(None);

#[derive(Clone, Copy)]
struct FirstLogin {
    at: tokio::time::Instant,
    unix: f64,
    /// Milliseconds into the attack (Goose's clock, shared by every user).
    elapsed_ms: u64,
}

/// When the attack's first user started: unix seconds, and milliseconds into the attack.
pub fn first_login_at() -> Option<(f64, u64)> {
    FIRST_LOGIN
        .lock()
        .expect("not poisoned")
        .map(|first| (first.unix, first.elapsed_ms))
}

/// The first user's start (its token from before the load, or its login) starts the run's
/// clock (later ones leave it).
fn note_a_login() {
    FIRST_LOGIN
        .lock()
        .expect("not poisoned")
        .get_or_insert_with(|| FirstLogin {
            at: tokio::time::Instant::now(),
            unix: records::time::now_unix(),
            elapsed_ms: crate::dispatch::now_us() / 1000,
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
        .register_transaction(transaction!(start).set_on_start().set_name("log in"));
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

/// One iteration of a user: under the open model, the scenario's step for the next arrival
/// of the schedule (timed from when it was meant to go), nothing once the schedule has ended;
/// under the closed model, nothing once the load is over, else the step and then the think
/// time, whatever the step's outcome. A step begun before the end finishes (a long task
/// already submitted is polled until it is done, failed or timed out).
macro_rules! iteration {
    ($user:expr, $step:expr) => {{
        if settings().open {
            // Back to Goose every second, to hear it stop the run (Ctrl-C, its end).
            let next =
                tokio::time::timeout(std::time::Duration::from_secs(1), crate::dispatch::next());
            let Ok(next) = next.await else {
                return Ok(());
            };
            let Some(arrival) = next else {
                // Goose stops its users on a half-second tick of its own.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                return Ok(());
            };
            session($user).intended_us = Some(arrival.intended_us);
            let result = $step.await;
            drop(arrival);
            return result;
        }
        if load_over().await {
            return Ok(());
        }
        let result = $step.await;
        think().await;
        result
    }};
}

/// A user's own state: its connection, and its token once logged in.
#[derive(Default)]
struct Session {
    /// The user's HTTP/1.1 connection. In a lock only because Goose's session data must be
    /// `Sync`; reached through `&mut` (`Mutex::get_mut`), it is never locked.
    connection: Mutex<Option<http1::User>>,
    /// `Bearer <token>`, built once at login: each request clones it without copying.
    authorization: Option<HeaderValue>,
    sent: u64,
    /// The open model: when the arrival being served was meant to go (µs on the run's
    /// clock), for the iteration's first request.
    intended_us: Option<u64>,
}

/// A copy has its own connection, none yet (a socket is one user's).
impl Clone for Session {
    fn clone(&self) -> Self {
        Self {
            connection: Mutex::default(),
            authorization: self.authorization.clone(),
            sent: self.sent,
            intended_us: None,
        }
    }
}

/// The user's session, a new one before its first request.
fn session(user: &mut GooseUser) -> &mut Session {
    if user.get_session_data::<Session>().is_none() {
        user.set_session_data(Session::default());
    }
    user.get_session_data_mut::<Session>()
        .expect("set just above")
}

/// One request of a scenario, on the user's own connection.
struct Call<'a> {
    method: Method,
    /// Path and query, `/data?key=hot`.
    path: &'a str,
    /// The route it is counted under, `/data`.
    name: &'static str,
    /// A JSON body, if any.
    json: Option<Vec<u8>>,
    authorization: Option<HeaderValue>,
}

impl<'a> Call<'a> {
    fn get(path: &'a str, name: &'static str, authorization: HeaderValue) -> Self {
        Self {
            method: Method::GET,
            path,
            name,
            json: None,
            authorization: Some(authorization),
        }
    }

    /// A POST of a JSON body, counted under its path (`/login`, `/longtask`).
    fn post(
        path: &'static str,
        body: &impl serde::Serialize,
        authorization: Option<HeaderValue>,
    ) -> Result<Self, Box<TransactionError>> {
        let json = serde_json::to_vec(body).map_err(|e| custom(e.to_string()))?;
        Ok(Self {
            method: Method::POST,
            name: path,
            path,
            json: Some(json),
            authorization,
        })
    }
}

/// A request as it went: when it was sent, how long its answer took, the answer or why none.
struct Sent {
    method: &'static str,
    name: &'static str,
    /// When it was meant to go and when it went, µs on the run's clock; `scheduled` when it
    /// served an arrival of the open model's schedule.
    intended_us: u64,
    scheduled: bool,
    sent_us: u64,
    took: std::time::Duration,
    answer: Result<http1::Answer, http1::Failure>,
}

/// Sends a request on the user's connection and waits for its whole answer (not recorded:
/// [`record`] does that).
async fn transmit(user: &mut GooseUser, call: Call<'_>) -> Result<Sent, Box<TransactionError>> {
    let s = settings();
    let body = call.json.map(Bytes::from).unwrap_or_default();
    let has_body = !body.is_empty();
    let mut request = s
        .target
        .request(call.method.clone(), call.path, body)
        .map_err(custom)?;
    let headers = request.headers_mut();
    if has_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Some(authorization) = call.authorization {
        headers.insert(AUTHORIZATION, authorization);
    }
    // The arrival's intended time goes to the scenario's request, not to a login before it.
    let intended_us = if records::record::is_login(call.name) {
        None
    } else {
        session(user).intended_us.take()
    };
    let connection = session(user)
        .connection
        .get_mut()
        .expect("not poisoned")
        .get_or_insert_with(|| http1::User::new(s.target.clone(), REQUEST_TIMEOUT));
    let sent_us = crate::dispatch::now_us();
    let clock = std::time::Instant::now();
    let answer = connection.send(request).await;
    Ok(Sent {
        method: if call.method == Method::POST {
            "POST"
        } else {
            "GET"
        },
        name: call.name,
        intended_us: intended_us.unwrap_or(sent_us).min(sent_us),
        scheduled: intended_us.is_some(),
        sent_us,
        took: clock.elapsed(),
        answer,
    })
}

/// Records a request with Goose, by route, and in the run's request log. A non-2xx answer
/// is the failure `503 Service Unavailable: /data`, no answer one with status 0, as Goose
/// records its own; `refused` is the failure of a 2xx answer that lacks what the scenario
/// needs from it.
async fn record(
    user: &mut GooseUser,
    sent: &Sent,
    refused: Option<&str>,
) -> Result<(), Box<TransactionError>> {
    let (status, error) = match &sent.answer {
        Ok(a) if a.status.is_success() => (a.status.as_u16(), refused.map(str::to_string)),
        Ok(a) => (
            a.status.as_u16(),
            Some(format!("{}: {}", a.status, sent.name)),
        ),
        Err(failure) => (0, Some(format!("{failure}: {}", sent.name))),
    };
    let success = error.is_none();
    user.record_custom_request_duration(
        sent.method,
        sent.name,
        sent.took,
        success,
        (status != 0).then_some(status),
        error.as_deref(),
    )
    .await?;
    let us = sent.took.as_micros() as u64;
    let ended = crate::tally::Ended {
        name: sent.name,
        method: sent.method,
        intended_us: sent.intended_us,
        scheduled: sent.scheduled,
        sent_us: sent.sent_us,
        service_us: us,
        success,
        status,
    };
    crate::ended::request(&ended, user.weighted_users_index);
    Ok(())
}

/// Sends a request, waits for its whole answer and records it. `None` when no answer came
/// (refused, reset, timed out).
async fn send(
    user: &mut GooseUser,
    call: Call<'_>,
) -> Result<Option<http1::Answer>, Box<TransactionError>> {
    let sent = transmit(user, call).await?;
    record(user, &sent, None).await?;
    Ok(sent.answer.ok())
}

fn custom(message: impl Into<String>) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(message.into()))
}

/// A user's start: the token its lab user got before the load, else a login (the `login`
/// scenario's first).
async fn start(user: &mut GooseUser) -> TransactionResult {
    let n = user.weighted_users_index % settings().lab_users + 1;
    if let Some(token) = crate::ahead::token(n) {
        note_a_login();
        session(user).authorization = Some(token);
        return Ok(());
    }
    log_in(user).await
}

async fn log_in(user: &mut GooseUser) -> TransactionResult {
    logged_in(user).await.map(|_| ())
}

/// Logs the user in; whether it now has a token. A 2xx answer without a token a header can
/// carry is recorded as the failure `login failed`.
async fn logged_in(user: &mut GooseUser) -> Result<bool, Box<TransactionError>> {
    let s = settings();
    note_a_login();
    let n = user.weighted_users_index % s.lab_users + 1;
    let call = Call::post(
        "/login",
        &records::wire::Login::lab_user(n, &s.lab_password),
        None,
    )?;
    let sent = transmit(user, call).await?;
    let token = sent
        .answer
        .as_ref()
        .ok()
        .filter(|a| a.status.is_success())
        .and_then(token);
    record(user, &sent, token.is_none().then_some("login failed")).await?;
    let got = token.is_some();
    session(user).authorization = token;
    Ok(got)
}

/// The `Authorization` header a login's answer gives, if any.
fn token(answer: &http1::Answer) -> Option<HeaderValue> {
    serde_json::from_slice::<records::wire::LoginAnswer>(&answer.body)
        .ok()
        .and_then(|answer| authorization(&answer.token))
}

async fn login_storm(user: &mut GooseUser) -> TransactionResult {
    iteration!(user, log_in(user))
}

/// The `Authorization` header of a token, marked sensitive; none for a token a header
/// cannot carry.
fn authorization(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// GET a cacheable route with the user's token; on a 401, log in again once and retry. A
/// login that fails ends the iteration (one login per iteration at most, whatever fails).
async fn get_cached(user: &mut GooseUser, route: &'static str, key: &str) -> TransactionResult {
    let param = if route == "/listing" { "prefix" } else { "key" };
    let path = format!("{route}?{param}={key}");
    for attempt in 0..2 {
        let Some(token) = bearer(user) else {
            if !logged_in(user).await? {
                return Ok(());
            }
            continue;
        };
        let answer = send(user, Call::get(&path, route, token)).await?;
        if let Some(answer) = &answer {
            if answer.status.as_u16() == 401 && attempt == 0 {
                RELOGINS.fetch_add(1, Ordering::Relaxed);
                if !logged_in(user).await? {
                    return Ok(());
                }
                continue;
            }
            if answer.status.as_u16() == 503 {
                SHED.fetch_add(1, Ordering::Relaxed);
                if !answer.headers.contains_key("retry-after") {
                    SHED_WITHOUT_RETRY_AFTER.fetch_add(1, Ordering::Relaxed);
                }
            }
            match answer.headers.get("x-cache").map(|v| v.as_bytes()) {
                Some(b"HIT") => CACHE_HITS.fetch_add(1, Ordering::Relaxed),
                Some(b"MISS") => CACHE_MISSES.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        session(user).sent += 1;
        return Ok(());
    }
    Ok(())
}

fn bearer(user: &GooseUser) -> Option<HeaderValue> {
    user.get_session_data::<Session>()
        .and_then(|s| s.authorization.clone())
}

async fn long_task(user: &mut GooseUser) -> TransactionResult {
    iteration!(user, submit_and_wait(user))
}

/// Submits a job, then polls its status until it is done or failed (or the timeout passes),
/// and records the end-to-end time the user waited.
async fn submit_and_wait(user: &mut GooseUser) -> TransactionResult {
    let s = settings();
    let Some(token) = bearer(user) else {
        return log_in(user).await;
    };
    let started = std::time::Instant::now();
    let task = records::wire::NewTask {
        task: "report".into(),
        payload: json!({"duration_ms": s.longtask_ms}),
    };
    let answer = send(user, Call::post("/longtask", &task, Some(token.clone()))?).await?;
    let status_url = match answer {
        Some(a) if a.status.as_u16() == 202 => {
            serde_json::from_slice::<records::wire::TaskAccepted>(&a.body)
                .ok()
                .map(|a| a.status_url)
        }
        // Done inside the request (LONGTASK_MODE=inline): the answer is the result.
        Some(a) if a.status.as_u16() == 200 => {
            let state = serde_json::from_slice::<records::wire::TaskStatus>(&a.body).ok();
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
        Some(a) if a.status.as_u16() == 401 => {
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
        let state = send(user, Call::get(&status_url, "/tasks/{id}", token.clone()))
            .await?
            .and_then(|a| serde_json::from_slice::<records::wire::TaskStatus>(&a.body).ok())
            .map(|t| t.status);
        let waited = started.elapsed().as_secs_f64() * 1000.0;
        let mut jobs = JOBS.lock().expect("not poisoned");
        match state.as_deref() {
            Some("done") => {
                jobs.done += 1;
                jobs.end_to_end_ms.push(waited);
                return Ok(());
            }
            // `dead`: dead-lettered by the worker after MAX_ATTEMPTS deliveries.
            Some("failed" | "dead") => {
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
    iteration!(user, get_cached(user, route(), HIT_KEY))
}

async fn miss(user: &mut GooseUser) -> TransactionResult {
    let s = settings();
    let sent = session(user).sent;
    let key = format!("m{:x}-{}-{sent}", s.nonce, user.weighted_users_index);
    iteration!(user, get_cached(user, route(), &key))
}

async fn mixed(user: &mut GooseUser) -> TransactionResult {
    let s = settings();
    let key = format!("k{}", key_index(&s.keys, &mut rand::rng()));
    iteration!(user, get_cached(user, route(), &key))
}

async fn listing(user: &mut GooseUser) -> TransactionResult {
    let prefix = format!(
        "p{}",
        rand::rng().random_range(0..records::wire::LISTING_PREFIXES)
    );
    iteration!(user, get_cached(user, "/listing", &prefix))
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
