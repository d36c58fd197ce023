//! "Comparisons": the seed lab's 1 vs 3 gateways and miss vs hit, per batch and runtime, with
//! repeats' means and intervals, and the words of each comparison.

use crate::charts::{BarChart, LineChart};
use crate::runs::{self, Run};
use crate::{honest, label, ms, words, Writer};
use std::collections::BTreeMap;

/// "3 gateways miss against 1 gateway miss: 2.50× the throughput; p95 of successful requests
/// 1248 → 2.0 ms (624× lower)": throughput is successful requests of the scenario per
/// second; a difference inside the runs' own noise is said to be none.
pub fn compare_sentence(a: &Run, b: &Run) -> String {
    let ((_, pa, _), (_, pb, _), which) = compared_latency(a, b);
    // Goose's whole-run percentiles are whole milliseconds; the successful requests' are not.
    let whole_ms = which.is_empty();
    format!(
        "{} against {}: {}; {}",
        label(b),
        label(a),
        honest::throughput_change(honest::goodput(a), honest::goodput(b)),
        honest::latency_change(
            &format!("p95{which}"),
            honest::latency(pa, &a.series.p95_ms, whole_ms),
            honest::latency(pb, &b.series.p95_ms, whole_ms),
        )
    )
}

/// The p95 a comparison uses for a run: of successful requests when recorded.
fn p95_of(r: &Run) -> f64 {
    r.ok_latency.map_or(r.latency.p95, |l| l.1)
}

/// Mean, CV and 95 % interval of each configuration's throughput and p95 over its repeats.
fn repeats_table(w: &mut Writer, repeats: &BTreeMap<(String, u32), Vec<&Run>>) {
    w.line(
        "Each configuration was run several times (`REPEATS`): the mean, the coefficient of \
         variation (CV: the spread over the mean) and the 95 % confidence interval of the mean \
         (Student's t). Comparisons below use the means; where the two intervals overlap, the \
         difference is not measurable.\n",
    );
    w.line(
        "| configuration | runs | ok req/s | CV | 95 % interval | p95 ms | CV | 95 % interval |",
    );
    w.line("|---|--:|--:|--:|---|--:|--:|---|");
    for ((scenario, gateways), rs) in repeats {
        let good: Vec<f64> = rs.iter().map(|r| r.goodput).collect();
        let p95: Vec<f64> = rs.iter().map(|r| p95_of(r)).collect();
        let (Some(g), Some(p)) = (honest::repeated(&good), honest::repeated(&p95)) else {
            continue;
        };
        w.line(&format!(
            "| {gateways} gateway{} {scenario} | {} | {:.1} | {:.1} % | {:.1} – {:.1} | {} | {:.1} % | {} – {} |",
            if *gateways == 1 { "" } else { "s" },
            g.n,
            g.mean,
            g.cv * 100.0,
            g.ci.0,
            g.ci.1,
            honest::ms(p.mean),
            p.cv * 100.0,
            honest::ms(p.ci.0.max(0.0)),
            honest::ms(p.ci.1),
        ));
    }
    w.line("");
}

/// The comparison sentence from repeats: means, and "no measurable difference" where the
/// 95 % intervals overlap.
fn compare_repeats(a: &[&Run], b: &[&Run]) -> Option<String> {
    let figure = |rs: &[&Run], f: fn(&Run) -> f64| {
        honest::repeated(&rs.iter().map(|r| f(r)).collect::<Vec<f64>>())
    };
    let (ga, gb) = (figure(a, |r| r.goodput)?, figure(b, |r| r.goodput)?);
    let (pa, pb) = (figure(a, p95_of)?, figure(b, p95_of)?);
    let throughput = if ga.overlaps(&gb) {
        format!(
            "no measurable difference in throughput ({:.1} vs {:.1} ok req/s, the 95 % intervals overlap)",
            ga.mean, gb.mean
        )
    } else {
        format!(
            "{:.2}× the throughput",
            gb.mean / ga.mean.max(f64::MIN_POSITIVE)
        )
    };
    let figures = format!("p95 {} → {} ms", honest::ms(pa.mean), honest::ms(pb.mean));
    let latency = if pa.overlaps(&pb) {
        format!("{figures}: no measurable difference (the 95 % intervals overlap)")
    } else {
        format!(
            "{figures} ({})",
            honest::ratio_words(pa.mean, pb.mean, "higher", "lower")
        )
    };
    Some(format!(
        "{} against {}, means of {} and {} runs: {throughput}; {latency}",
        label(b[0]),
        label(a[0]),
        b.len(),
        a.len()
    ))
}

/// The (p50, p95, p99) two runs are compared on: of successful requests when both recorded
/// them (fast rejections would flatter a saturated run), else Goose's whole-run figures.
fn compared_latency(a: &Run, b: &Run) -> (runs::Percentiles, runs::Percentiles, &'static str) {
    let all = |r: &Run| (r.latency.p50, r.latency.p95, r.latency.p99);
    match (a.ok_latency, b.ok_latency) {
        (Some(x), Some(y)) => (x, y, " of successful requests"),
        _ => (all(a), all(b), ""),
    }
}

/// The batch a run belongs to: its id up to the gateway count (`20261123-150000-3gw-miss` →
/// `20261123-150000`, one `make benchmark-all`); the id itself otherwise.
pub fn batch_of(id: &str) -> &str {
    let parts: Vec<&str> = id.split('-').collect();
    let gw = parts.iter().position(|p| {
        p.strip_suffix("gw")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    match gw {
        Some(k) if k > 0 => &id[..parts[..k].iter().map(|p| p.len() + 1).sum::<usize>() - 1],
        _ => id,
    }
}

/// The classic hit and miss runs in groups to compare: one per batch and runtime; runs that
/// are alone in their batch (made one at a time) form one group per runtime, latest of each
/// kind.
fn comparison_groups(runs: &[Run]) -> Vec<(String, String, Vec<&Run>)> {
    let classic: Vec<&Run> = runs
        .iter()
        .filter(|r| r.profile == "classic" && (r.scenario == "miss" || r.scenario == "hit"))
        .collect();
    let mut groups: Vec<(String, String, Vec<&Run>)> = Vec::new();
    for r in &classic {
        let batch = batch_of(&r.id).to_string();
        match groups.iter_mut().find(|g| g.0 == batch && g.1 == r.runtime) {
            Some(g) => g.2.push(r),
            None => groups.push((batch, r.runtime.clone(), vec![r])),
        }
    }
    let (mut kept, alone): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| g.2.len() > 1);
    for (_, runtime, rs) in alone {
        match kept
            .iter_mut()
            .find(|g| g.0 == "separate runs" && g.1 == runtime)
        {
            Some(g) => g.2.extend(rs),
            None => kept.push(("separate runs".into(), runtime, rs)),
        }
    }
    kept
}

/// The seed lab's comparisons (1 vs 3 gateways, miss vs hit), per batch and runtime.
pub(crate) fn section(w: &mut Writer, runs: &[Run]) -> anyhow::Result<()> {
    let groups = comparison_groups(runs);
    let mut heading = false;
    for (batch, runtime, rs) in &groups {
        let mut latest: BTreeMap<(String, u32), &Run> = BTreeMap::new();
        let mut repeats: BTreeMap<(String, u32), Vec<&Run>> = BTreeMap::new();
        for r in rs {
            latest.insert((r.scenario.clone(), r.gateways), r);
            repeats
                .entry((r.scenario.clone(), r.gateways))
                .or_default()
                .push(r);
        }
        let repeated = |r: &Run| {
            repeats
                .get(&(r.scenario.clone(), r.gateways))
                .filter(|v| v.len() > 1)
        };
        let get = |s: &str, g: u32| latest.get(&(s.to_string(), g)).copied();
        let pairs = [
            (
                "1 vs 3 gateways, cache miss",
                get("miss", 1),
                get("miss", 3),
            ),
            ("1 vs 3 gateways, cache hit", get("hit", 1), get("hit", 3)),
            (
                "Cache miss vs hit, 1 gateway",
                get("miss", 1),
                get("hit", 1),
            ),
            (
                "Cache miss vs hit, 3 gateways",
                get("miss", 3),
                get("hit", 3),
            ),
        ];
        if !pairs.iter().any(|p| p.1.is_some() && p.2.is_some()) {
            continue;
        }
        if !heading {
            w.line("## Comparisons\n");
            w.line(
                "One set per batch (one `make benchmark-all`) and runtime; runs made one at a \
                time are compared as *separate runs*, the latest of each kind. Throughput is \
                successful requests of the scenario per second; latencies are of successful \
                requests where both runs recorded them (a saturated gateway's fast 503s would \
                flatter it). A difference within two standard errors of the runs' own \
                per-second figures is written *no measurable difference*.\n",
            );
            heading = true;
        }
        let name = if batch == "separate runs" {
            format!("separate runs, {runtime}")
        } else {
            format!("batch `{batch}`, {runtime}")
        };
        // Chart titles are pictures: no Markdown in them.
        let plain = name.replace('`', "");
        let slug = format!("{}-{runtime}", batch.replace(' ', "-"));
        w.line(&format!("### Comparisons: {name}\n"));
        if repeats.values().any(|v| v.len() > 1) {
            repeats_table(w, &repeats);
        }
        for (title, a, b) in &pairs {
            let (Some(a), Some(b)) = (a, b) else { continue };
            w.line(&format!("#### {title}\n"));
            let (la, lb, which) = compared_latency(a, b);
            w.line(&format!(
                "| run | ok req/s | p50 ms{which} | p95 ms | p99 ms | error % |\n|---|--:|--:|--:|--:|--:|"
            ));
            for (r, (p50, p95, p99)) in [(a, la), (b, lb)] {
                w.line(&format!(
                    "| {} (`{}`) | {:.1} | {} | {} | {} | {:.2} |",
                    label(r),
                    r.id,
                    r.goodput,
                    ms(p50),
                    ms(p95),
                    ms(p99),
                    r.error_pct
                ));
            }
            let sentence = match (repeated(a), repeated(b)) {
                (Some(ra), Some(rb)) => compare_repeats(ra, rb),
                _ => None,
            };
            w.line(&format!(
                "\n**{}.**",
                sentence.unwrap_or_else(|| compare_sentence(a, b))
            ));
            if let Some(why) = words::comparison_why(runs, a, b) {
                w.line(&why);
            }
            w.line("");
        }
        let compared: Vec<&Run> = latest.values().copied().collect();
        let ids: Vec<&str> = compared.iter().map(|r| r.id.as_str()).collect();
        w.line(&format!("Charts of {}.\n", ids.join(", ")));
        w.bar_chart(
            &format!("compare-throughput-{slug}"),
            &BarChart {
                title: &format!("Successful requests per second ({plain})"),
                y_label: "successful requests per second",
                bars: compared.iter().map(|r| (label(r), r.goodput)).collect(),
            },
        )?;
        // The same p95 as the tables: of successful requests when every run recorded it.
        let ok_p95: Option<Vec<f64>> = compared.iter().map(|r| r.ok_latency.map(|l| l.1)).collect();
        let (what, p95s) = match ok_p95 {
            Some(v) => ("p95 of successful requests", v),
            None => (
                "p95 of all requests (failures included)",
                compared.iter().map(|r| r.latency.p95).collect(),
            ),
        };
        w.bar_chart(
            &format!("compare-p95-{slug}"),
            &BarChart {
                title: &format!("{what} ({plain})"),
                y_label: "ms",
                bars: compared
                    .iter()
                    .zip(p95s)
                    .map(|(r, v)| (label(r), v))
                    .collect(),
            },
        )?;
        w.line("");
        for scenario in ["miss", "hit"] {
            // Successful requests' curves: failed ones are counted in the legend, not drawn
            // (a 1-gateway run's fast 503s would make it look faster).
            let series: Vec<(String, Vec<(f64, f64)>)> = compared
                .iter()
                .filter(|r| r.scenario == scenario)
                .filter_map(|r| {
                    if !r.ok_percentiles.is_empty() {
                        let failed = if r.failures > 0 {
                            format!(" ({:.1} % failed, not drawn)", r.error_pct)
                        } else {
                            String::new()
                        };
                        Some((format!("{}{failed}", label(r)), r.ok_percentiles.clone()))
                    } else if !r.percentiles.is_empty() {
                        Some((
                            format!("{} (all requests)", label(r)),
                            r.percentiles.clone(),
                        ))
                    } else {
                        None
                    }
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            w.line_chart(
                &format!("percentiles-{scenario}-{slug}"),
                &LineChart::new(
                    &format!(
                        "Latency percentiles of successful requests, cache {scenario} ({plain})"
                    ),
                    "percentile",
                    "latency (ms, log scale)",
                    series,
                )
                .log_y(),
            )?;
            w.line("");
        }
    }
    Ok(())
}
