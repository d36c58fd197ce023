//! The `lb-algorithm` experiment: the gateways' own listing caches behind a load balancer that
//! deals requests in turn (round robin) or by consistent hashing of the request.

use records::names::MetricName;

use super::*;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question: "Round robin or consistent hashing in front of caches kept in each gateway?",
    scenario: Scenario::Listing,
    gateways: 3,
    flipped: SettingName::LbAlgorithm,
    values: &["round-robin", "consistent"],
    fixed: &[
        (SettingName::ListingCache, "local"),
        (SettingName::ListingDelayMs, "300"),
        (SettingName::ListingTtlSecs, "10"),
    ],
    load: &[],
    compose_only: false,
    counters: &[MetricName::CacheRequestsTotal, MetricName::ListingsTotal],
    histograms: &[],
    gauges: &[],
    measurements: &[],
    explain,
};

/// The listing's cache lookups of one side by result, all gateways together.
fn lookups(m: &ExperimentRecord, result: &str) -> f64 {
    m.delta(
        "gateway",
        MetricName::CacheRequestsTotal,
        &[("route", "listing"), ("result", result)],
    )
}

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let hit_ratio = each(sides, |_, m| {
        let hits = lookups(m, "hit");
        ratio(hits, hits + lookups(m, "miss") + lookups(m, "error"))
    });
    // Copies of each prefix's entry: one per gateway that sees the prefix. Round robin deals
    // every prefix to every gateway; consistent hashing sends a prefix to one gateway only.
    let copies = |r: &Run, m: &ExperimentRecord| match m.value.as_str() {
        "consistent" => 1.0,
        _ => f64::from(r.gateways.max(1)),
    };
    // Each copy misses once per TTL window the run touches, and again for every request that
    // comes while it is refilled (a stampede): the hit ratio is 1 − misses / lookups.
    let predicted = |stampede: bool| {
        each(sides, move |r, m| {
            let lookups = lookups(m, "hit") + lookups(m, "miss") + lookups(m, "error");
            let misses = listing_fills(r, m, copies(r, m), stampede)?;
            (lookups > 0.0).then(|| 1.0 - misses / lookups)
        })
    };
    let made = each(sides, |_, m| {
        Some(m.delta("microservice", MetricName::ListingsTotal, &[]))
    });
    rows.push(row("hit ratio", hit_ratio.clone(), 3));
    rows.push(row(
        "predicted hit ratio: one miss per prefix per TTL per copy",
        predicted(false),
        3,
    ));
    rows.push(row(
        "predicted hit ratio: with every request during a refill missing too",
        predicted(true),
        3,
    ));
    rows.push(row(
        "copies of each listing (gateways that cache it)",
        each(sides, |r, m| Some(copies(r, m))),
        0,
    ));
    rows.push(row("listings the slow source produced", made.clone(), 0));
    rows.push(row(
        "predicted listings: one per prefix per TTL per copy",
        each(sides, |r, m| listing_fills(r, m, copies(r, m), false)),
        0,
    ));
    let mut spread = Vec::new();
    for (_, m) in sides {
        let served = m.delta_by_instance(
            "gateway",
            MetricName::CacheRequestsTotal,
            &[("route", "listing")],
        );
        let total: f64 = served.values().sum();
        let each: Vec<String> = served
            .iter()
            .map(|(gw, n)| format!("{gw} {}", fmt(ratio(*n, total), 2)))
            .collect();
        if !each.is_empty() {
            spread.push(format!("{} ({}): {}", m.side, m.value, each.join(", ")));
        }
    }
    let gateways = sides[0].0.gateways;
    let at = |v: &[Option<f64>], i: usize, digits| fmt(v.get(i).copied().flatten(), digits);
    vec![
        format!(
            "**Why.** Each gateway keeps its own listing cache (LISTING_CACHE=local). Round \
             robin deals requests in turn whatever they ask for, so each of the {gateways} \
             gateways sees every prefix and fills its own copy. Consistent hashing (Pingora's \
             Ketama ring over the request, here `/listing?prefix=P`) sends each prefix to one \
             gateway, which keeps the only copy. The slow source was asked {} times against \
             {}, not {gateways}× fewer: a refill takes LISTING_DELAY_MS, and every request for \
             the prefix that reaches its copy meanwhile misses too; one copy sees \
             {gateways}× the requests of each of {gateways} copies, so each refill costs more \
             misses (the second prediction counts them). The hit ratio went from {} to {}. \
             The price is balance: with only {} prefixes the ring gives the gateways unequal \
             shares (below), and the busiest gateway's slots fill first. When a gateway \
             leaves, only its prefixes move, and miss once more.",
            at(&made, 1, 0),
            at(&made, 0, 0),
            at(&hit_ratio, 0, 3),
            at(&hit_ratio, 1, 3),
            records::wire::LISTING_PREFIXES,
        ),
        format!("Share of the listing requests per gateway: {}.", spread.join("; ")),
    ]
}
