//! The `local-cache` experiment: a slow listing behind no cache, Redis, or a cache in each gateway.

use records::names::MetricName;

use super::*;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question: "Where should a slow listing be cached: nowhere, in Redis, or in each gateway?",
    scenario: Scenario::Listing,
    gateways: 3,
    flipped: SettingName::ListingCache,
    values: &["none", "redis", "local"],
    fixed: &[(SettingName::ListingDelayMs, "300"), (SettingName::ListingTtlSecs, "10")],
    load: &[],
    compose_only: false,
    counters: &[MetricName::CacheRequestsTotal, MetricName::ListingsTotal],
    histograms: &[MetricName::ListingAgeSeconds],
    gauges: &[],
    measurements: &[],
    explain,
};

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let listing = |m: &ExperimentRecord, result: &str| {
        m.delta(
            "gateway",
            MetricName::CacheRequestsTotal,
            &[("route", "listing"), ("result", result)],
        )
    };
    let hit_ratio = each(sides, |_, m| {
        let hits = listing(m, "hit");
        ratio(hits, hits + listing(m, "miss") + listing(m, "error"))
    });
    let made = each(sides, |_, m| {
        Some(m.delta("microservice", MetricName::ListingsTotal, &[]))
    });
    let age = each(sides, |_, m| m.mean("gateway", MetricName::ListingAgeSeconds));
    // Each cache asks the source at least once per prefix per TTL. While a refill is under
    // way (LISTING_DELAY_MS) every other request for that prefix misses too and asks again
    // (a cache stampede): at most its request rate per prefix per cache × the delay more.
    let predicted = |stampede: bool| {
        each(sides, move |r, m| {
            let caches = match m.value.as_str() {
                "redis" => 1.0,
                "local" => r.gateways.max(1) as f64,
                _ => return None,
            };
            listing_fills(r, m, caches, stampede)
        })
    };
    rows.push(row("hit ratio", hit_ratio.clone(), 3));
    rows.push(row("listings the slow source produced", made.clone(), 0));
    rows.push(row(
        "predicted: one fill per prefix per TTL per cache",
        predicted(false),
        0,
    ));
    rows.push(row(
        "predicted: with every miss during a refill asking too",
        predicted(true),
        0,
    ));
    rows.push(row("mean age of an answer (s)", age.clone(), 2));
    let mut per_gateway = Vec::new();
    for (_, m) in sides {
        let hits = m.delta_by_instance(
            "gateway",
            MetricName::CacheRequestsTotal,
            &[("route", "listing"), ("result", "hit")],
        );
        let misses = m.delta_by_instance(
            "gateway",
            MetricName::CacheRequestsTotal,
            &[("route", "listing"), ("result", "miss")],
        );
        let each: Vec<String> = hits
            .iter()
            .map(|(gw, h)| {
                let miss = misses.get(gw).copied().unwrap_or(0.0);
                format!("{gw} {}", fmt(ratio(*h, h + miss), 3))
            })
            .collect();
        if !each.is_empty() && m.value != "none" {
            per_gateway.push(format!("{} ({}): {}", m.side, m.value, each.join(", ")));
        }
    }
    let ttl = sides[0]
        .1
        .settings
        .get("LISTING_TTL_SECS")
        .cloned()
        .unwrap_or_default();
    vec![
        format!(
            "**Why.** The listing takes LISTING_DELAY_MS at the source, like an object \
             store's list call. With no cache every request pays it, and the gateways' slots \
             fill with requests waiting on it. Redis holds one entry per prefix for all \
             gateways: the source is asked about once per prefix per TTL ({ttl} s). A cache \
             in each gateway needs no network hop, but each gateway fills its own ({} here), \
             so the source is asked up to {}× as often and the hit ratio is a little \
             lower; two answers given at the same moment by two gateways may differ in age by \
             up to the TTL. Staleness is the price of every cache here: an answer is at most \
             {ttl} s old (mean age per side in the table).",
            sides[0].0.gateways, sides[0].0.gateways,
        ),
        format!("Hit ratio per gateway: {}.", per_gateway.join("; ")),
    ]
}
