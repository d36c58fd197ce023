//! The `slow-microservice` fault: the microservice ten times slower, past the gateway's
//! timeout, for ten seconds.

use super::*;
use records::knob::Knob;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    promise: "slowness becomes fast 504s and 503s (no wait past the timeouts, no 500); the load balancer does not multiply the load (no retry); serving again after the repair",
    scenario: Scenario::Miss,
    gateways: 1,
    fault: Step::SlowBy(10),
    repair: Step::SlowBy(1),
    // Well under the gateway's capacity (4 slots / 0.2 s) before the fault.
    load: &[Knob::Users(20)],
    // 200 ms becomes 2 s, past the gateway's 1 s timeout.
    fixed: &[(SettingName::DbDelayMs, "200"), (SettingName::MicroserviceTimeoutMs, "1000")],
    checks,
    detect_recover: by_answers,
    mechanism: database_connections,
    why: "**Why.** A slow dependency is worse than a dead one: it holds every caller's \
          resources. The gateway bounds it twice: it stops waiting for the microservice \
          after MICROSERVICE_TIMEOUT_MS (a 504, fast compared with the slowness), and its \
          limiter admits MAX_IN_FLIGHT requests at once and sheds the queue past \
          QUEUE_TIMEOUT_MS with 503s, so the gateway stays responsive. The load balancer \
          never re-sends a request that timed out or was shed: a second copy would only \
          double the load on the part that is already too slow.",
};

fn checks(r: &Run, f: &FaultRecord, w: Window) -> Vec<Check> {
    let len = w.len;
    let unanswered = answers(r, |s| s == 0, 0, len);
    let limit = |k: &str| f.settings.get(k).copied();
    let bound = limit("QUEUE_TIMEOUT_MS").zip(limit("MICROSERVICE_TIMEOUT_MS"));
    let worst_p99 = worst_p99(r);
    let others = answers(r, |s| s >= 500 && s != 503 && s != 504, 0, len) + unanswered;
    let (d, u) = (w.down.floor() as usize, w.up.ceil() as usize + 1);
    let timeouts = answers(r, |s| s == 504, d, u);
    let shed = answers(r, |s| s == 503, d, u);
    let serving = serving_again(r, w.up, len);
    vec![
        check(
            "slowness becomes fast 504s and 503s",
            timeouts > 0 && others == 0,
            format!(
                "{timeouts} 504s and {shed} 503s in the window, {others} other 5xx or unanswered"
            ),
        ),
        check(
            "no wait past the timeouts",
            bound.is_some_and(|(q, m)| worst_p99 <= q + m + 500.0),
            format!(
                "worst p99 of a second {worst_p99:.0} ms (QUEUE_TIMEOUT_MS {} + MICROSERVICE_TIMEOUT_MS {})",
                fmt(bound.map(|b| b.0), 0),
                fmt(bound.map(|b| b.1), 0)
            ),
        ),
        check(
            "the load balancer does not multiply the load",
            r.lb_retries == Some(0.0),
            r.lb_retries.map_or("retries not recorded".into(), |n| {
                format!("{n:.0} requests sent to a second gateway")
            }),
        ),
        check(
            "serving again after the repair",
            serving.is_some_and(|s| s <= 10.0),
            serving.map_or("not serving by the end of the run".into(), |s| {
                format!("{s:.0} s after the delay came back")
            }),
        ),
    ]
}
