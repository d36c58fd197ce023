//! The faults, one module each (its `SPEC`: the steps, the load, the promise, its checks,
//! its timing, its mechanism chart and its words), and what their checks share: answers by
//! status over a span of seconds, the p95 over a span, "serving again", "no restart".

// The faults, in the order `make faults` runs them: adding one is its module beside this
// file and one line here.
names! {
    /// A fault under a steady load (`make fault NAME=…`).
    Fault, "fault", crate::fault::Spec {
        KillGateway => "kill-gateway", kill_gateway;
        RedisOutage => "redis-outage", redis_outage;
        PostgresRestart => "postgres-restart", postgres_restart;
        WorkerCrash => "worker-crash", worker_crash;
        SlowMicroservice => "slow-microservice", slow_microservice;
        LbStall => "lb-stall", lb_stall;
    }
}

pub(crate) use crate::fault::{rotation, Action, Check, Dependency, Series, Spec, Step, Window};
pub(crate) use crate::record::FaultRecord;
pub(crate) use crate::run::Run;
pub(crate) use crate::signals;
pub(crate) use crate::words::fmt;
pub(crate) use records::load::Scenario;
use records::stats::median;

pub(super) fn check(promise: &str, passed: bool, observed: String) -> Check {
    Check {
        promise: promise.into(),
        observed,
        passed,
    }
}

/// "No service restarted", where the run recorded the processes' start times.
pub(super) fn no_restart(r: &Run) -> Check {
    let restarts = crate::signals::restarts(r);
    check(
        "no restart",
        crate::signals::knows_restarts(r) && restarts.is_empty(),
        if !crate::signals::knows_restarts(r) {
            "the run did not record the processes' start times".into()
        } else if restarts.is_empty() {
            "every gateway and the microservice kept their process".into()
        } else {
            restarts.join(", ")
        },
    )
}

/// The hit ratio over the 5 s before the outage and over the run's last 5 s.
pub(super) fn hit_ratio_before_after(r: &Run, down: f64, len: usize) -> (Option<f64>, Option<f64>) {
    let ratio = crate::signals::hit_ratio(r);
    (
        crate::signals::mean_over(&ratio, down - 5.0, down),
        crate::signals::mean_over(&ratio, len as f64 - 5.0, len as f64 + 1.0),
    )
}

/// Answers of these statuses over the seconds `from..to` of the run.
pub(super) fn answers(r: &Run, matching: impl Fn(u16) -> bool, from: usize, to: usize) -> u64 {
    r.statuses
        .iter()
        .filter(|(s, _)| matching(**s))
        .map(|(_, v)| {
            v.iter()
                .skip(from)
                .take(to.saturating_sub(from))
                .sum::<u64>()
        })
        .sum()
}

/// The median of the per-second p95s over seconds `from..to`.
pub(super) fn p95_over(r: &Run, from: usize, to: usize) -> Option<f64> {
    median(
        r.series
            .p95_ms
            .iter()
            .skip(from)
            .take(to.saturating_sub(from))
            .flatten()
            .copied()
            .collect(),
    )
}

/// The first second at or after `from` where `ok` holds, as seconds after `from`.
pub(super) fn first_second(from: f64, len: usize, ok: impl Fn(usize) -> bool) -> Option<f64> {
    (from.ceil() as usize..len)
        .find(|s| ok(*s))
        .map(|s| s as f64 - from)
}

/// Seconds after `from` until the first second whose answers are at least 90 % 2xx.
pub(super) fn serving_again(r: &Run, from: f64, len: usize) -> Option<f64> {
    first_second(from, len, |s| {
        let total = answers(r, |_| true, s, s + 1);
        let ok = answers(r, |c| (200..300).contains(&c), s, s + 1);
        total > 0 && ok as f64 >= 0.9 * total as f64
    })
}

/// The highest p99 of any second of the run (ms).
pub(super) fn worst_p99(r: &Run) -> f64 {
    r.series
        .p99_ms
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
}

/// Non-2xx answers over the run by status, e.g. "503 × 1,204, 504 × 12" (`none`: no answer).
pub(crate) fn failed_by_status(r: &Run) -> String {
    let parts: Vec<String> = r
        .statuses
        .iter()
        .filter(|(s, _)| !(200..300).contains(*s))
        .map(|(s, v)| (s, v.iter().sum::<u64>()))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| match s {
            0 => format!("no answer × {n}"),
            s => format!("{s} × {n}"),
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

pub(super) fn secs(v: Option<f64>, what: &str) -> String {
    v.map_or("–".into(), |s| format!("{s:.0} s ({what})"))
}

/// Time to detect and to recover as the answers show them: the first failed answer after
/// the fault, and the first second 90 % answered 2xx after the repair.
pub(super) fn by_answers(r: &Run, _: &FaultRecord, w: Window) -> (String, String) {
    let first_failed = first_second(w.down, w.len, |s| {
        answers(r, |c| !(200..300).contains(&c), s, s + 1) > 0
    });
    (
        secs(first_failed, "first failed answer"),
        secs(serving_again(r, w.up, w.len), "90 % answered 2xx again"),
    )
}

/// The microservice's side of a fault in its dependency: requests waiting for a database
/// connection, connections open, its 503s and its requests per second.
pub(super) fn database_connections(r: &Run) -> (&'static str, Vec<Series>) {
    let micro = |read: fn(&records::record::MicroserviceSample) -> f64| {
        signals::gauge(r, move |x| Some(read(x.microservice.as_ref()?.ok()?)))
    };
    (
        "requests or connections",
        vec![
            (
                "requests waiting for a database connection".into(),
                micro(|m| m.pool_waiting),
            ),
            ("open database connections".into(), micro(|m| m.pool_open)),
            (
                "microservice 503s per second".into(),
                signals::rate(r, |x| Some(x.microservice.as_ref()?.ok()?.unavailable)),
            ),
            (
                "microservice requests per second".into(),
                signals::rate(r, |x| Some(x.microservice.as_ref()?.ok()?.requests)),
            ),
        ],
    )
}
