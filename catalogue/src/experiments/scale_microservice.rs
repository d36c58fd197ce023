//! The `scale-microservice` experiment: a second microservice behind three gateways.

use records::names::MetricName;

use super::*;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question:
        "Three gateways are not 3x: what does a second microservice, the tier that binds, change?",
    scenario: Scenario::Miss,
    gateways: 3,
    flipped: SettingName::Microservices,
    values: &["1", "2"],
    // A smaller pool, so that the microservice binds before the gateways do.
    fixed: &[(SettingName::DbPoolSize, "5")],
    load: &[],
    compose_only: false,
    counters: &[],
    histograms: &[MetricName::DbQueryDurationSeconds],
    gauges: &[],
    measurements: &[],
    explain,
};

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let b: Vec<Bounds> = sides.iter().map(|(r, m)| bounds(r, m)).collect();
    rows.push(row(
        "DB time per query (ms)",
        each(sides, |_, m| db_ms(m)),
        1,
    ));
    rows.push(row(
        "bound: gateways × MAX_IN_FLIGHT / DB time",
        b.iter().map(|b| b.gateways).collect(),
        1,
    ));
    rows.push(row(
        "bound: microservices × DB_POOL_SIZE / DB time",
        b.iter().map(|b| b.microservices).collect(),
        1,
    ));
    rows.push(row(
        "bound: users / (think + DB time)",
        b.iter().map(|b| b.offered).collect(),
        1,
    ));
    rows.push(row(
        "predicted ok req/s (the smallest bound)",
        b.iter().map(|b| b.binding().1).collect(),
        1,
    ));
    let host_busy = each(sides, |r, _| r.host_cpu_busy.map(|b| b * 100.0));
    rows.push(row("machine CPU busy (%)", host_busy.clone(), 0));
    let spread = spread(
        sides,
        "microservice",
        MetricName::HttpRequestsTotal,
        &[("route", "/data/{key}")],
    );
    let (a, bb) = (&sides[0].0, &sides[1].0);
    let mut out = vec![format!(
        "**Why.** Three gateways were not three times one because the microservice binds: \
         each request holds one of its DB_POOL_SIZE connections for the DB time, so one \
         instance serves at most pool / DB time. On side A the smallest bound was {} ({} \
         req/s), then {}. A second microservice doubles its tier's bound; on side B the \
         smallest was {} ({} req/s), then {}: that is where the bottleneck moves next. \
         Side A: {}. Side B: {}. The gateways send their misses to the instances in turn, \
         so each got about half (requests per instance: {}). The DB time itself went from \
         {} to {}: both instances' queries share one Postgres and the machine's cores.",
        b[0].binding().0,
        fmt(b[0].binding().1, 1),
        b[0].next(),
        b[1].binding().0,
        fmt(b[1].binding().1, 1),
        b[1].next(),
        versus(a.goodput, b[0].binding().1),
        versus(bb.goodput, b[1].binding().1),
        spread,
        ms(db_ms(&sides[0].1)),
        ms(db_ms(&sides[1].1)),
    )];
    if host_busy.iter().flatten().any(|b| *b > 90.0) {
        out.push(format!(
            "The machine's CPUs were {} % / {} % busy: on one laptop the next bottleneck is the \
             laptop itself (every tier shares its cores), which no replica count fixes.",
            fmt(host_busy[0], 0),
            fmt(host_busy[1], 0)
        ));
    }
    out
}
