//! `make report`: reads `tests/results/*/`, writes `tests/reports/summary.md` and
//! `tests/reports/graphs/*.{png,svg}`.

pub mod charts;
pub mod model;
pub mod runs;

use charts::{BarChart, LineChart};
use runs::Run;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What a report run produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: PathBuf,
    pub charts: Vec<PathBuf>,
    pub warnings: Vec<String>,
    pub runs: usize,
}

fn label(run: &Run) -> String {
    format!(
        "{} gateway{} {}",
        run.gateways,
        if run.gateways == 1 { "" } else { "s" },
        run.scenario
    )
}

fn pct(x: f64) -> String {
    format!(
        "{}{:.0} %",
        if x >= 0.0 { "+" } else { "−" },
        (x * 100.0).abs()
    )
}

/// "2.8× the throughput of …, p95 −64 %": the ratios a comparison spells out.
pub fn compare_sentence(a: &Run, b: &Run) -> String {
    let ratio = if a.rps > 0.0 { b.rps / a.rps } else { 0.0 };
    let p95 = if a.latency.p95 > 0.0 {
        b.latency.p95 / a.latency.p95 - 1.0
    } else {
        0.0
    };
    format!(
        "{}: {:.2}× the throughput of {}, p95 {}",
        label(b),
        ratio,
        label(a),
        pct(p95)
    )
}

/// Lowest p50 of the scenario's routes over every run of that scenario: the service time
/// at the lightest load recorded.
pub fn service_time_s(runs: &[Run], scenario: &str) -> Option<f64> {
    runs.iter()
        .filter(|r| r.scenario == scenario)
        .filter_map(|r| r.route_p50_ms)
        .filter(|v| *v > 0.0)
        .reduce(f64::min)
        .map(|ms| ms / 1000.0)
}

pub fn predict_run(run: &Run, service_s: f64) -> model::Prediction {
    model::predict(&model::Inputs {
        users: run.users as f64,
        think_s: run.think_ms / 1000.0,
        service_s,
        gateways: run.gateways.max(1) as f64,
        max_in_flight: run.knobs.max_in_flight as f64,
        misses: run.scenario == "miss" || !run.knobs.cache_enabled,
        microservice_pool: run.knobs.microservice_pool.unwrap_or(0) as f64,
    })
}

/// Writes the report; fails when there is no run to report on.
pub fn generate(results: &Path, out: &Path) -> anyhow::Result<Outcome> {
    let (runs, mut warnings) = runs::load_runs(results);
    if runs.is_empty() {
        anyhow::bail!(
            "no runs to report on in {} (run `make benchmark-all` or a `make test1-hit` first){}",
            results.display(),
            if warnings.is_empty() {
                String::new()
            } else {
                format!("; {}", warnings.join("; "))
            }
        );
    }
    charts::init_font()?;
    let graphs = out.join("graphs");
    std::fs::create_dir_all(&graphs)?;
    let mut written = Vec::new();
    let mut md = String::new();

    // Warnings about the runs themselves.
    for r in &runs {
        if r.generator_saturated {
            warnings.push(format!("{}: the load generator was saturated; its latencies include the generator's own queueing", r.id));
        }
        if r.failures > 0 {
            warnings.push(format!(
                "{}: {} failed requests ({:.2} %)",
                r.id, r.failures, r.error_pct
            ));
        }
        if r.requests < 200 {
            warnings.push(format!(
                "{}: only {} requests; percentiles are rough",
                r.id, r.requests
            ));
        }
    }
    let commits: BTreeSet<&str> = runs.iter().map(|r| r.commit.as_str()).collect();
    let hosts: BTreeSet<&str> = runs.iter().map(|r| r.host.as_str()).collect();
    if commits.len() > 1 {
        warnings.push(format!(
            "runs come from {} different commits: comparisons mix code versions",
            commits.len()
        ));
    }
    if hosts.len() > 1 {
        warnings.push(format!(
            "runs come from {} different hosts: comparisons mix machines",
            hosts.len()
        ));
    }

    let _ = writeln!(md, "# scalelab report\n");
    let _ = writeln!(
        md,
        "{} runs from `{}`; commit{} {}; host {}.\n",
        runs.len(),
        results.display(),
        if commits.len() > 1 { "s" } else { "" },
        commits
            .iter()
            .map(|c| format!("`{}`", &c[..c.len().min(10)]))
            .collect::<Vec<_>>()
            .join(", "),
        hosts.iter().copied().collect::<Vec<_>>().join(", "),
    );
    if !warnings.is_empty() {
        let _ = writeln!(md, "## Warnings\n");
        for w in &warnings {
            let _ = writeln!(md, "- {w}");
        }
        md.push('\n');
    }

    // Summary table.
    let _ = writeln!(md, "## Runs\n");
    let _ = writeln!(md, "| run | scenario | profile | runtime | gateways | users | requests | req/s | avg ms | p50 | p95 | p99 | max | failures | error % | cache hit ratio | SLA |");
    let _ = writeln!(
        md,
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    );
    for r in &runs {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.2} | {} | {} |",
            r.id, r.scenario, r.profile, r.runtime, r.gateways, r.users, r.requests, r.rps,
            r.latency.avg, r.latency.p50, r.latency.p95, r.latency.p99, r.latency.max,
            r.failures, r.error_pct,
            r.hit_ratio.map(|h| format!("{:.1} %", h * 100.0)).unwrap_or_else(|| "–".into()),
            match r.sla_met { Some(true) => "met", Some(false) => "**missed**", None => "–" },
        );
    }
    md.push('\n');

    // The seed lab's comparisons, from the latest classic run of each (scenario, gateways).
    let mut latest: BTreeMap<(String, u32), &Run> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.profile == "classic") {
        latest.insert((r.scenario.clone(), r.gateways), r);
    }
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
    if pairs.iter().any(|p| p.1.is_some() && p.2.is_some()) {
        let _ = writeln!(md, "## Comparisons\n");
        let _ = writeln!(
            md,
            "From the latest `classic` run of each scenario and gateway count.\n"
        );
        for (title, a, b) in &pairs {
            let (Some(a), Some(b)) = (a, b) else { continue };
            let _ = writeln!(md, "### {title}\n");
            let _ = writeln!(
                md,
                "| run | req/s | p50 ms | p95 ms | p99 ms | error % |\n|---|--:|--:|--:|--:|--:|"
            );
            for r in [a, b] {
                let _ = writeln!(
                    md,
                    "| {} (`{}`) | {:.1} | {:.0} | {:.0} | {:.0} | {:.2} |",
                    label(r),
                    r.id,
                    r.rps,
                    r.latency.p50,
                    r.latency.p95,
                    r.latency.p99,
                    r.error_pct
                );
            }
            let _ = writeln!(md, "\n**{}.**\n", compare_sentence(a, b));
        }
        let compared: Vec<&Run> = latest.values().copied().collect();
        let base = graphs.join("compare-throughput");
        charts::write_bars(
            &base,
            &BarChart {
                title: "Throughput by run (latest classic runs)",
                y_label: "requests per second",
                bars: compared.iter().map(|r| (label(r), r.rps)).collect(),
            },
        )?;
        written.push(base.with_extension("png"));
        let base = graphs.join("compare-p95");
        charts::write_bars(
            &base,
            &BarChart {
                title: "p95 latency by run (latest classic runs)",
                y_label: "p95 latency (ms)",
                bars: compared.iter().map(|r| (label(r), r.latency.p95)).collect(),
            },
        )?;
        written.push(base.with_extension("png"));
        let _ = writeln!(
            md,
            "![throughput](graphs/compare-throughput.png)\n![p95](graphs/compare-p95.png)\n"
        );
        for scenario in ["miss", "hit"] {
            let series: Vec<(String, Vec<(f64, f64)>)> = compared
                .iter()
                .filter(|r| r.scenario == scenario && !r.percentiles.is_empty())
                .map(|r| (label(r), r.percentiles.clone()))
                .collect();
            if series.is_empty() {
                continue;
            }
            let name = format!("percentiles-{scenario}");
            let base = graphs.join(&name);
            charts::write_line(
                &base,
                &LineChart {
                    title: &format!("Latency percentiles, cache {scenario}"),
                    x_label: "percentile",
                    y_label: "latency (ms, log scale)",
                    series,
                    reference: None,
                    log_y: true,
                },
            )?;
            written.push(base.with_extension("png"));
            let _ = writeln!(md, "![{name}](graphs/{name}.png)\n");
        }
    }

    // Predicted vs measured.
    let _ = writeln!(md, "## Predicted vs measured\n");
    let _ = writeln!(md, "Each run's throughput bound from its recorded knobs: the offered load of a closed workload \
        (users ÷ (think time + service time), Little's law), the gateways' request slots \
        (gateways × `MAX_IN_FLIGHT` ÷ service time) and, for cache misses, the microservice's \
        connection pool (`DB_POOL_SIZE` ÷ service time), by the utilisation law. The service time \
        is the lowest p50 any run of the scenario recorded. The smallest bound is the bottleneck; \
        a measurement more than 20 % away from it is flagged.\n");
    let _ = writeln!(md, "| run | service time ms | offered | gateway slots | microservice pool | bottleneck | predicted req/s | measured req/s | difference |");
    let _ = writeln!(md, "|---|--:|--:|--:|--:|---|--:|--:|--:|");
    for r in &runs {
        let Some(service) = service_time_s(&runs, &r.scenario) else {
            continue;
        };
        let p = predict_run(r, service);
        let bound = |prefix: &str| {
            p.bounds
                .iter()
                .find(|b| b.0.starts_with(prefix))
                .map(|b| format!("{:.1}", b.1))
                .unwrap_or_else(|| "–".into())
        };
        let d = model::deviation(p.rps, r.rps);
        let _ = writeln!(
            md,
            "| `{}` | {:.1} | {} | {} | {} | {} | {:.1} | {:.1} | {}{} |",
            r.id,
            service * 1000.0,
            bound("offered"),
            bound("gateway"),
            bound("microservice"),
            p.bottleneck.split(" (").next().unwrap_or(""),
            p.rps,
            r.rps,
            pct(d),
            if d.abs() > 0.2 { " ⚠" } else { "" },
        );
    }
    md.push('\n');

    // Per run: over time, and requests per gateway.
    let _ = writeln!(md, "## Each run over time\n");
    for r in &runs {
        let _ = writeln!(
            md,
            "### `{}`: {}, {} users, {} runtime\n",
            r.id,
            label(r),
            r.users,
            r.runtime
        );
        if !r.series.rps.is_empty() {
            let points = |v: &[f64]| {
                v.iter()
                    .enumerate()
                    .map(|(i, y)| (i as f64, *y))
                    .collect::<Vec<_>>()
            };
            let name = format!("timeline-{}", r.id);
            let base = graphs.join(&name);
            charts::write_line(
                &base,
                &LineChart {
                    title: &format!("{}: throughput, users and errors", r.id),
                    x_label: "seconds into the run",
                    y_label: "per second / users",
                    series: vec![
                        ("requests per second".into(), points(&r.series.rps)),
                        ("users".into(), points(&r.series.users)),
                        ("errors per second".into(), points(&r.series.errors)),
                    ],
                    reference: None,
                    log_y: false,
                },
            )?;
            written.push(base.with_extension("png"));
            let lname = format!("latency-{}", r.id);
            let base = graphs.join(&lname);
            charts::write_line(
                &base,
                &LineChart {
                    title: &format!("{}: average latency per second", r.id),
                    x_label: "seconds into the run",
                    y_label: "latency (ms)",
                    series: vec![("average latency".into(), points(&r.series.avg_ms))],
                    reference: r.sla_p95_ms.map(|v| (v, format!("SLA p95 {v:.0} ms"))),
                    log_y: false,
                },
            )?;
            written.push(base.with_extension("png"));
            let _ = writeln!(
                md,
                "![{name}](graphs/{name}.png)\n![{lname}](graphs/{lname}.png)\n"
            );
        }
        if !r.by_backend.is_empty() {
            let name = format!("gateways-{}", r.id);
            let base = graphs.join(&name);
            charts::write_bars(
                &base,
                &BarChart {
                    title: &format!("{}: requests per gateway (load balancer counters)", r.id),
                    y_label: "requests",
                    bars: r.by_backend.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                },
            )?;
            written.push(base.with_extension("png"));
            let _ = writeln!(md, "![{name}](graphs/{name}.png)\n");
        }
    }

    let summary = out.join("summary.md");
    std::fs::write(&summary, md)?;
    Ok(Outcome {
        summary,
        charts: written,
        warnings,
        runs: runs.len(),
    })
}
