//! The `index` experiment: the slow query with and without an index on the column it filters.

use records::names::MetricName;

use super::*;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question: "What does an index on the filtered column do to the slow query?",
    scenario: Scenario::Miss,
    gateways: 1,
    flipped: SettingName::ItemsIndex,
    values: &["false", "true"],
    // A million rows and no deliberate delay: the scan is the service time.
    fixed: &[(SettingName::SeedRows, "1000000"), (SettingName::DbDelayMs, "0")],
    load: &[],
    compose_only: false,
    counters: &[],
    histograms: &[MetricName::DbQueryDurationSeconds],
    gauges: &[],
    measurements: &[Measurement::QueryPlan],
    explain,
};

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let db = each(sides, |_, m| db_ms(m));
    // The utilisation law: at most `c` requests at the microservice, each holding a connection for
    // the DB time, and never more than the users offer.
    let predicted = each(sides, |r, m| {
        let service_s = db_ms(m)? / 1000.0;
        let bound = microservice_concurrency(r)? / service_s;
        Some(offered(r, service_s).map_or(bound, |o| bound.min(o)))
    });
    rows.push(row("DB time per query (ms)", db.clone(), 2));
    rows.push(row(
        "predicted ok req/s (utilisation law, capped by the offered load)",
        predicted.clone(),
        1,
    ));
    let (a, b) = (&sides[0], &sides[1]);
    let plan = |m: &ExperimentRecord| {
        m.query_plan
            .as_ref()
            .map_or("an unrecorded plan".into(), |p| format!("`{}`", p.scan))
    };
    let rows_in_table = a.1.settings.get("SEED_ROWS").cloned().unwrap_or_default();
    let c = microservice_concurrency(&a.0);
    let mut out = vec![format!(
        "**Why.** The query sums the rows of one bucket out of 1,000. Without the index \
         Postgres ran {} on side A: it read all {rows_in_table} rows to find the ~0.1 % it \
         needs, {} per query. With the index (side B) it ran {}: it reads the index entries \
         of that bucket and then only the table pages that hold them, {} per query ({}). \
         At most {} requests reach the microservice at once (DB_POOL_SIZE, or MAX_IN_FLIGHT \
         × gateways if fewer), so by the utilisation law side A serves at most {} / DB time: \
         {}. Side B's bound is far above what the users offer, so it is bounded by the load \
         itself and the next bottleneck (the gateway): {}.",
        plan(&a.1),
        ms(db[0]),
        plan(&b.1),
        ms(db[1]),
        times(db[0], db[1]),
        fmt(c, 0),
        fmt(c, 0),
        versus(a.0.goodput, predicted[0]),
        versus(b.0.goodput, predicted[1]),
    )];
    for (_, m) in sides {
        if let Some(p) = &m.query_plan {
            out.push(format!(
                "Side {} plan ({}, {} ms in Postgres):\n\n```text\n{}\n```",
                m.side,
                if p.indexed { "indexed" } else { "no index" },
                fmt(Some(p.execution_ms), 2),
                p.plan.join("\n")
            ));
        }
    }
    out
}
