//! The `lb-stall` fault: the load balancer paused (SIGSTOP, `docker pause`) for ten seconds
//! and resumed: alive, holding every connection, answering nothing. Lab 15 runs it under the
//! closed model and under the open one, to show what each measures of the same stall.

use super::*;
use records::knob::Knob;

pub const SPEC: Spec = Spec {
    promise: "nothing lost: every request the stall held is answered after it (a 503 with Retry-After where the released burst overflows the gateway's queue, no other failure); the latency shows the stall",
    scenario: Scenario::Hit,
    gateways: 1,
    fault: Step::Act("load_balancer", Action::Pause),
    repair: Step::Act("load_balancer", Action::Resume),
    // 150 users thinking 1–2 s offer about 100 requests per second (the open side's rate).
    load: &[Knob::Users(150), Knob::ArrivalRate(100.0)],
    fixed: &[],
    checks,
    detect_recover,
    mechanism,
    why: "**Why.** A paused process keeps its sockets: the kernel still completes new \
          connections into its backlog and buffers the requests sent on open ones, so \
          nothing fails, it only waits. What the load test reports depends on its model. \
          A closed model's users each wait for their answer before sending again: within a \
          think time every user is stuck on one request, the load stops, and the run counts \
          one slow request per user, so most of its percentiles never see the stall. An \
          open model keeps sending on its schedule whatever the answers do, so every \
          request meant for the stall waits for it, and its latency (from when it should \
          have gone) says so.",
};

fn checks(r: &Run, _: &FaultRecord, w: Window) -> Vec<Check> {
    let stall_ms = (w.up - w.down) * 1000.0;
    let slowest = r.latency.max;
    let other = answers(r, |s| !(200..300).contains(&s) && s != 503, 0, w.len);
    vec![
        check(
            "nothing unanswered, no failure but the gateway's shedding",
            other == 0 && r.shed.without_retry_after == 0,
            format!(
                "{} failed of {} ({}); {} 503 without Retry-After{}",
                r.failures,
                r.requests,
                failed_by_status(r),
                r.shed.without_retry_after,
                // Not the stack's doing, but said: arrivals the open model could not send.
                r.arrivals.as_ref().map_or(String::new(), |a| format!(
                    "; {} arrivals dropped (all MAX_IN_FLIGHT slots busy)",
                    a.dropped
                ))
            ),
        ),
        check(
            "the latency shows the stall",
            // Requests held from its start wait for all of it (less a second of sampling).
            slowest >= stall_ms - 1000.0,
            format!("slowest {:.0} ms for a {:.0}-ms stall", slowest, stall_ms),
        ),
    ]
}

/// Nothing detects a stall but the silence: the first second without an answer, and the
/// first second answering again.
fn detect_recover(r: &Run, _: &FaultRecord, w: Window) -> (String, String) {
    let silent = first_second(w.down, w.len, |s| answers(r, |_| true, s, s + 1) == 0);
    (
        secs(silent, "first second without an answer"),
        secs(serving_again(r, w.up, w.len), "90 % answered 2xx again"),
    )
}

fn mechanism(r: &Run) -> (&'static str, Vec<Series>) {
    let per_second = |v: &[f64]| v.iter().enumerate().map(|(t, n)| (t as f64 + 0.5, *n)).collect();
    let answered: Vec<f64> = r.series.rps.clone();
    (
        "requests per second",
        vec![
            ("requests sent".into(), per_second(&r.series.sent)),
            ("requests answered".into(), per_second(&answered)),
        ],
    )
}
