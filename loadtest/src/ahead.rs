//! The lab users logged in before the load starts. A login is an argon2id check, about 16 ms
//! of a gateway's core at OWASP's minimum settings (BENCHMARKS.md): the 300 users of a quick
//! run logging in as they start would spend its first seconds, and a small gateway's queue,
//! on logins rather than on the scenario being measured. So each lab user the run's users will
//! be (`user1..userN`, N = LAB_USERS at most) logs in once, here, before the sampler starts,
//! and a user's first request is its scenario's. The `login` scenario, which measures logins,
//! logs in for real; a user whose token is refused mid-run (401) logs in again for real.

use crate::{Options, Scenario};
use http::header::HeaderValue;
use probe::client::Refused;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// Logins in flight at once: fewer than a gateway's queue (MAX_QUEUE, 64 by default) holds.
const AT_ONCE: usize = 4;

/// How long the logins may take in all before the run is refused.
const LIMIT: Duration = Duration::from_secs(120);

/// The token of lab user n at index n - 1.
static TOKENS: RwLock<Vec<HeaderValue>> = RwLock::new(Vec::new());

/// Lab user n's token from the logins made ahead, if any.
pub fn token(n: usize) -> Option<HeaderValue> {
    TOKENS
        .read()
        .expect("not poisoned")
        .get(n.checked_sub(1)?)
        .cloned()
}

/// How many lab users the run's users will be: one per user, at most LAB_USERS; none for the
/// `login` scenario.
pub fn needed(options: &Options) -> usize {
    if options.scenario == Scenario::Login {
        return 0;
    }
    options
        .load()
        .users
        .min((options.lab.lab_users as usize).max(1))
}

/// Logs in lab users 1..=`needed(options)`, `AT_ONCE` at a time; a refusal (a full gateway's
/// 503, a connection cut) is tried again after a pause. An error names the user and the last
/// answer when they cannot all log in within `LIMIT`.
pub async fn log_in(options: &Options) -> anyhow::Result<()> {
    let needed = needed(options);
    // A breakpoint search's later steps: the tokens of its first (an hour's JWT_TTL_SECS).
    if TOKENS.read().expect("not poisoned").len() >= needed {
        return Ok(());
    }
    TOKENS.write().expect("not poisoned").clear();
    let started = std::time::Instant::now();
    let client = probe::client::client(Duration::from_secs(30));
    let next = AtomicUsize::new(1);
    let mut tokens: Vec<Option<HeaderValue>> = vec![None; needed];
    let results = futures::future::join_all((0..AT_ONCE.min(needed)).map(|_| async {
        let mut got = Vec::new();
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n > needed {
                return Ok::<_, anyhow::Error>(got);
            }
            let login = records::wire::Login::lab_user(n, &options.lab.lab_password);
            loop {
                match probe::client::log_in(&client, &options.target, &login).await {
                    Ok(token) => {
                        let mut header = HeaderValue::try_from(format!("Bearer {token}"))
                            .map_err(|_| anyhow::anyhow!("user{n}'s token cannot be a header"))?;
                        header.set_sensitive(true);
                        got.push((n, header));
                        break;
                    }
                    Err(Refused::Finally(e)) => anyhow::bail!(
                        "user{n} cannot log in: {e} (LAB_USERS and LAB_PASSWORD must be the stack's)"
                    ),
                    Err(Refused::ForNow(e)) if started.elapsed() >= LIMIT => anyhow::bail!(
                        "the lab users could not all log in before the load within {} s (user{n}: {e})",
                        LIMIT.as_secs()
                    ),
                    Err(Refused::ForNow(_)) => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                }
            }
        }
    }))
    .await;
    for result in results {
        for (n, header) in result? {
            tokens[n - 1] = Some(header);
        }
    }
    *TOKENS.write().expect("not poisoned") = tokens.into_iter().flatten().collect();
    Ok(())
}
