//! The `client-reuse` experiment: one shared HTTP client to the microservice against a client per request.

use records::names::MetricName;

use super::*;
use records::knob::Knob;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question:
        "What does one shared HTTP client to the microservice save over a client per request?",
    scenario: Scenario::Miss,
    gateways: 1,
    flipped: SettingName::MicroserviceClient,
    values: &["shared", "per-request"],
    fixed: &[(SettingName::MaxInFlight, "0"), (SettingName::DbPoolSize, "20")],
    load: &[Knob::Users(100)],
    compose_only: false,
    counters: &[],
    histograms: &[],
    gauges: &[],
    measurements: &[],
    explain,
};

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let accepted =
        |m: &ExperimentRecord| m.delta("microservice", MetricName::HttpConnectionsAcceptedTotal, &[]);
    let per_request = each(sides, |_, m| ratio(accepted(m), ms_requests(m)));
    let per_second = each(sides, |_, m| rate(m, accepted(m)));
    rows.push(row(
        "TCP connections the microservice accepted per request",
        per_request.clone(),
        2,
    ));
    rows.push(row(
        "TCP connections opened per second",
        per_second.clone(),
        1,
    ));
    let (a, b) = (&sides[0].0, &sides[1].0);
    vec![format!(
        "**Why.** With one shared client (side A) the gateway kept its connections to the \
         microservice open and sent request after request over them: {} new connections \
         per request, {} per second. With a client built per request (side B) each cache \
         miss built a new client and opened a new TCP connection to the microservice that \
         was closed right after: {} per request, {} per second. \
         p50 went from {} to {} ({:+.1} ms): on loopback a connection costs little; across \
         a network each adds a round trip (TLS two or three more), and every closed \
         connection leaves a socket in TIME_WAIT on the gateway's side for a minute.",
        fmt(per_request[0], 2),
        fmt(per_second[0], 1),
        fmt(per_request[1], 2),
        fmt(per_second[1], 1),
        ms(Some(p50(a))),
        ms(Some(p50(b))),
        p50(b) - p50(a),
    )]
}
