//! The `redis-outage` fault: the gateways cut off from Redis, their cache, for ten seconds.

use super::*;
use records::knob::Knob;

pub const SPEC: Spec = Spec {
    promise: "0 5xx: cache misses served from the microservice; latency back by itself after Redis returns",
    scenario: Scenario::Hit,
    gateways: 3,
    fault: Step::Cut(Dependency::Redis),
    repair: Step::Restore(Dependency::Redis),
    load: &[Knob::Users(100)],
    fixed: &[],
    checks,
    detect_recover,
    mechanism,
    why: "**Why.** The cache is an accelerator, not a dependency: every Redis command is \
          bounded by REDIS_TIMEOUT_MS, a failure counts as a cache error, and the request \
          is served from the microservice instead. Latency rises to a miss's for the \
          outage (hits became misses) and falls back once the gateways reconnect and the \
          first miss refills the entry.",
};

fn checks(r: &Run, _: &FaultRecord, w: Window) -> Vec<Check> {
    let (down, up, len) = (w.down, w.up, w.len);
    let fives = answers(r, |s| s >= 500, 0, len);
    let unanswered = answers(r, |s| s == 0, 0, len);
    let d = down.floor() as usize;
    let before = p95_over(r, d.saturating_sub(5), d);
    let after = p95_over(r, len.saturating_sub(5), len);
    let recovered = matches!((before, after), (Some(b), Some(a)) if a <= 2.0 * b + 5.0);
    let errors = signals::gateway_rate(r, |g| g.cache_error);
    let felt = signals::mean_over(&errors, down, up + 1.0).is_some_and(|e| e > 0.0);
    let (hits_before, hits_after) = hit_ratio_before_after(r, down, len);
    vec![
        check(
            "the outage was felt (cache errors while Redis was away)",
            felt,
            format!(
                "{} cache errors in the window",
                errors
                    .iter()
                    .filter(|(t, _)| *t >= down && *t < up + 1.0)
                    .map(|(_, v)| v)
                    .sum::<f64>()
                    .round()
            ),
        ),
        check(
            "0 5xx",
            fives == 0 && unanswered == 0,
            format!("{fives} 5xx, {unanswered} without an answer"),
        ),
        check(
            "latency back by itself",
            recovered,
            format!(
                "p95 {} ms in the 5 s before the outage, {} ms in the last 5 s",
                fmt(before, 1),
                fmt(after, 1)
            ),
        ),
        check(
            "hit ratio back by itself",
            matches!((hits_before, hits_after), (Some(b), Some(a)) if a >= 0.9 * b),
            format!(
                "{} in the 5 s before the outage, {} in the last 5 s",
                fmt(hits_before, 3),
                fmt(hits_after, 3)
            ),
        ),
        no_restart(r),
    ]
}

fn detect_recover(r: &Run, _: &FaultRecord, w: Window) -> (String, String) {
    let errors = signals::gateway_rate(r, |g| g.cache_error);
    let (before, _) = hit_ratio_before_after(r, w.down, w.len);
    let ratio = signals::hit_ratio(r);
    (
        secs(
            signals::first_after(&errors, w.down, |e| e > 0.0),
            "first cache errors",
        ),
        secs(
            before.and_then(|b| signals::first_after(&ratio, w.up, |h| h >= 0.9 * b)),
            "hit ratio back to 90 % of before",
        ),
    )
}

fn mechanism(r: &Run) -> (&'static str, Vec<Series>) {
    (
        "errors per second; hit ratio (%)",
        vec![
            (
                "cache errors per second".into(),
                signals::gateway_rate(r, |g| g.cache_error),
            ),
            (
                "hit ratio (%)".into(),
                signals::hit_ratio(r)
                    .into_iter()
                    .map(|(t, h)| (t, h * 100.0))
                    .collect(),
            ),
        ],
    )
}
