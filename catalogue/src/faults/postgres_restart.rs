//! The `postgres-restart` fault: the microservice cut off from Postgres for ten seconds.

use super::*;
use records::knob::Knob;

pub const SPEC: Spec = Spec {
    promise: "only 503s while Postgres is away (no 500, no hang past the timeouts); serving again within 5 s of its return, no restart",
    scenario: Scenario::Miss,
    gateways: 1,
    fault: Step::Cut(Dependency::Postgres),
    repair: Step::Restore(Dependency::Postgres),
    load: &[Knob::Users(100)],
    fixed: &[],
    checks,
    detect_recover: by_answers,
    mechanism: database_connections,
    why: "**Why.** Without Postgres the microservice cannot get a connection: its pool \
          gives up after DB_CONNECT_TIMEOUT_MS and it answers 503 with Retry-After, which \
          the gateway passes on as an overload signal, never as a 500 and never by \
          waiting forever. The pool opens new connections on demand, so when Postgres \
          returns the next requests succeed without restarting anything.",
};

fn checks(r: &Run, _: &FaultRecord, w: Window) -> Vec<Check> {
    let unanswered = answers(r, |s| s == 0, 0, w.len);
    let others = answers(r, |s| s >= 500 && s != 503, 0, w.len) + unanswered;
    let worst_p99 = worst_p99(r);
    let serving = serving_again(r, w.up, w.len);
    vec![
        check(
            "only 503s while Postgres is away",
            others == 0,
            format!(
                "{} 503s, {others} other 5xx or unanswered",
                answers(r, |s| s == 503, 0, w.len)
            ),
        ),
        check(
            "no hang past the timeouts",
            worst_p99 <= 5_500.0,
            format!("worst p99 of a second {worst_p99:.0} ms (MICROSERVICE_TIMEOUT_MS 5000)"),
        ),
        check(
            "503s say when to come back (Retry-After)",
            r.shed.answers_503 > 0 && r.shed.without_retry_after == 0,
            format!(
                "{} of {} 503s without Retry-After",
                r.shed.without_retry_after, r.shed.answers_503
            ),
        ),
        check(
            "serving again within 5 s of its return",
            serving.is_some_and(|s| s <= 5.0),
            serving.map_or("not serving by the end of the run".into(), |s| {
                format!("{s:.0} s after Postgres returned")
            }),
        ),
        no_restart(r),
    ]
}
