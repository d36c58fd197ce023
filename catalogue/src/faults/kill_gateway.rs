//! The `kill-gateway` fault: one of three gateways SIGKILLed under load, then started again.

use super::*;
use records::knob::Knob;

pub const SPEC: Spec = Spec {
    promise: "0 failed requests; the killed gateway out of rotation within one health interval, back after it is healthy",
    scenario: Scenario::Hit,
    gateways: 3,
    fault: Step::Act("gateway-2", Action::Kill),
    repair: Step::Act("gateway-2", Action::Start),
    load: &[Knob::Users(100)],
    fixed: &[],
    checks,
    detect_recover,
    mechanism,
    why: "**Why.** A killed gateway refuses connections at once, so the load balancer takes \
          it out of rotation on the first refused connect and sends that request to the \
          next gateway (a refused connect is always safe to retry); requests already \
          inside the dead gateway are retried only because they are idempotent GETs. The \
          restarted gateway returns only after it passes a health check, so no request \
          meets it half-started.",
};

fn checks(r: &Run, f: &FaultRecord, w: Window) -> Vec<Check> {
    let gateways = r.gateways as f64;
    let interval = f.health_interval_ms / 1000.0;
    let rotation = rotation(r);
    let out = rotation
        .iter()
        .find(|(t, n)| *t >= w.down && *n < gateways)
        .map(|(t, _)| t - w.down);
    let back = rotation
        .iter()
        .find(|(t, n)| *t >= w.up && *n >= gateways)
        .map(|(t, _)| t - w.up);
    vec![
        check(
            "0 failed requests",
            r.failures == 0,
            format!("{} failed of {}", r.failures, r.requests),
        ),
        check(
            "out of rotation within one health interval",
            // Rotation is sampled once a second: one second of slack.
            out.is_some_and(|s| s <= interval + 1.0),
            out.map_or("never left the rotation".into(), |s| {
                format!("{s:.1} s after the kill (interval {interval:.1} s, sampled each second)")
            }),
        ),
        check(
            "back in rotation once healthy",
            back.is_some(),
            back.map_or("not back before the run ended".into(), |s| {
                format!("{s:.1} s after the restart")
            }),
        ),
    ]
}

fn detect_recover(r: &Run, _: &FaultRecord, w: Window) -> (String, String) {
    let rot = rotation(r);
    let g = r.gateways as f64;
    (
        secs(
            signals::first_after(&rot, w.down, |n| n < g),
            "out of rotation",
        ),
        secs(
            signals::first_after(&rot, w.up, |n| n >= g),
            "back in rotation",
        ),
    )
}

fn mechanism(r: &Run) -> (&'static str, Vec<Series>) {
    (
        "gateways; requests per second",
        vec![
            ("gateways in rotation".to_string(), rotation(r)),
            (
                "requests sent to a second gateway per second".into(),
                signals::rate(r, |x| x.retries),
            ),
        ],
    )
}
