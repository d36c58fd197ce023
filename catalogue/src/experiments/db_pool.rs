//! The `db-pool` experiment: a pool of open Postgres connections against a connection per request.

use records::names::MetricName;

use super::*;
use records::knob::Knob;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question: "What does a pool of open Postgres connections save over a connection per request?",
    scenario: Scenario::Miss,
    gateways: 1,
    flipped: SettingName::DbPoolMode,
    values: &["pooled", "per-request"],
    // Below saturation, and nothing in front of the microservice holding requests back:
    // latency shows the connect, and the connections follow the load.
    fixed: &[(SettingName::MaxInFlight, "0"), (SettingName::DbPoolSize, "20")],
    load: &[Knob::Users(100)],
    compose_only: false,
    counters: &[MetricName::DbConnectionsOpenedTotal],
    histograms: &[MetricName::DbConnectDurationSeconds, MetricName::DbQueryDurationSeconds],
    gauges: &[MetricName::DbRequestConnectionsOpen],
    measurements: &[],
    explain,
};

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let opened = each(sides, |_, m| {
        ratio(
            m.delta("microservice", MetricName::DbConnectionsOpenedTotal, &[]),
            ms_requests(m),
        )
    });
    let connect = each(sides, |_, m| {
        m.mean("microservice", MetricName::DbConnectDurationSeconds)
            .map(|s| s * 1000.0)
    });
    let peak = each(sides, |_, m| {
        m.peak("microservice", MetricName::DbRequestConnectionsOpen)
    });
    rows.push(row(
        "Postgres connections opened per request",
        opened.clone(),
        2,
    ));
    rows.push(row("connect time, mean (ms)", connect.clone(), 2));
    rows.push(row(
        "per-request connections open at once, peak",
        peak.clone(),
        0,
    ));
    rows.push(row(
        "DB time per query (ms)",
        each(sides, |_, m| db_ms(m)),
        1,
    ));
    let (a, b) = (&sides[0].0, &sides[1].0);
    let predicted_b = connect[1].map(|c| p50(a) + c);
    let mut out = vec![format!(
        "**Why.** With the pool (side A) the microservice opened its connections once and \
         lent them out: {} opened per request during the run. Without it (side B) every \
         request opened its own ({} per request): a TCP handshake, SCRAM authentication \
         and a new Postgres backend process, {} each on average, then closed it. So B's p50 \
         should be about A's plus one connect: {} + {} = {}; {}. The cost is not only \
         latency: nothing bounds B's connections but the load ({} open at once at the peak, \
         against DB_POOL_SIZE={} pooled). Past Postgres's `max_connections` (100 by default, \
         200 in the compose stack, 300 in the native lab's) a new connection is refused with \"too many clients\", \
         and the microservice answers those requests with a 503; a pool caps each instance \
         at its size instead.",
        fmt(opened[0], 2),
        fmt(opened[1], 2),
        ms(connect[1]),
        ms(Some(p50(a))),
        ms(connect[1]),
        ms(predicted_b),
        versus(p50(b), predicted_b).replace("measured", "measured p50"),
        fmt(peak[1], 0),
        fmt(a.knobs.microservice_pool.map(f64::from), 0),
    )];
    if let (Some(da), Some(dbb)) = (db_ms(&sides[0].1), db_ms(&sides[1].1)) {
        if dbb > 1.1 * da {
            out.push(format!(
                "The queries themselves also took longer on side B ({} → {}): Postgres starts \
                 a backend process and authenticates for every connection, CPU the queries \
                 then share, which is why B's p50 exceeds the prediction.",
                ms(Some(da)),
                ms(Some(dbb))
            ));
        }
    }
    if db_ms(&sides[0].1).is_some_and(|db| p50(a) > 3.0 * db) {
        out.push(
            "Side A's p50 is mostly waiting, not database time: the requests queued (at the \
             gateways or for the pool), so the connect shows less in the latency than in the \
             throughput, and the prediction above holds only below saturation."
                .into(),
        );
    }
    out
}
