//! `make report`: reads `tests/results/*/`, writes `tests/reports/summary.md` and
//! `tests/reports/graphs/*.{png,svg}`.

pub mod autoscale;
pub mod charts;
pub mod experiments;
pub mod faults;
pub mod honest;
pub mod model;
pub mod runs;
pub mod signals;
mod tactics;
mod timelines;
pub mod words;

use charts::{BarChart, LineChart};
use runs::Run;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a report run produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: PathBuf,
    pub charts: Vec<PathBuf>,
    pub warnings: Vec<String>,
    pub runs: usize,
}

pub(crate) fn label(run: &Run) -> String {
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

/// Goose's whole-run percentiles are whole milliseconds: 0 means under one.
fn ms(v: f64) -> String {
    if (0.0..1.0).contains(&v) {
        "<1".into()
    } else {
        format!("{v:.0}")
    }
}

pub(crate) fn points(v: &[f64]) -> Vec<(f64, f64)> {
    v.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect()
}

/// Seconds with a value only: a gap stays a gap rather than a drop to zero.
pub(crate) fn some_points(v: &[Option<f64>]) -> Vec<(f64, f64)> {
    v.iter()
        .enumerate()
        .filter_map(|(i, y)| y.map(|y| (i as f64, y)))
        .collect()
}

/// The run's p95 per second where it was recorded, else its average per second.
fn tail_series(r: &Run) -> (&'static str, Vec<(f64, f64)>) {
    if r.series.p95_ms.iter().any(Option::is_some) {
        ("p95", some_points(&r.series.p95_ms))
    } else {
        ("average", points(&r.series.avg_ms))
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[(v.len() - 1) / 2])
}

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

/// A run's service time at low load: its own calibration (requests sent one at a time before
/// the load), else the lowest p50 of the scenario's routes over every run of that scenario on
/// that runtime (the lightest load recorded; queueing-inflated when every run was loaded).
pub fn service_time_s(runs: &[Run], run: &Run) -> Option<f64> {
    if let Some(ms) = run.calibrated_ms {
        return Some(ms / 1000.0);
    }
    let (scenario, runtime) = (run.scenario.as_str(), run.runtime.as_str());
    runs.iter()
        .filter(|r| r.scenario == scenario && r.runtime == runtime)
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
        gateway_cpus: match (run.knobs.gateway_cpu_limit, run.knobs.gateway_host_cores) {
            (Some(limit), _) => limit * run.gateways.max(1) as f64,
            // No limit: the gateways share the host's cores (with everything else on it).
            (None, Some(cores)) => cores as f64,
            (None, None) => 0.0,
        },
        gateway_cpu_s: run.gateway_cpu_ms.unwrap_or(0.0) / 1000.0,
        slot_hold_s: run.slot_hold_ms.unwrap_or(0.0) / 1000.0,
        slot_share: run.slot_share.unwrap_or(0.0),
        machine_cores: run.machine_cores.unwrap_or(0) as f64,
        machine_cpu_s: machine_cpu_per_ok_s(run).unwrap_or(0.0),
    })
}

/// CPU seconds the whole machine spent per successful request of the run: its mean busy
/// share × cores ÷ successful requests per second (the load generator, the logins and the
/// failed requests are all in the numerator).
pub fn machine_cpu_per_ok_s(run: &Run) -> Option<f64> {
    let busy = run.host_cpu_busy?;
    let cores = run.machine_cores? as f64;
    (run.goodput > 0.0 && busy > 0.0).then(|| busy * cores / run.goodput)
}

/// Writes the report; fails when there is no run to report on.
pub fn generate(results: &Path, out: &Path) -> anyhow::Result<Outcome> {
    let (runs, mut warnings) = runs::load_runs(results);
    let (breakpoints, bp_warnings) = runs::load_breakpoints(results);
    warnings.extend(bp_warnings);
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
        if let Some(busy) = r.host_cpu_busy.filter(|b| *b > 0.9) {
            warnings.push(format!(
                "{}: the machine's CPUs were {:.0} % busy on average: every service was short of CPU, so throughput below the modelled bounds is expected",
                r.id,
                busy * 100.0
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

    let mut report = Writer {
        md: String::new(),
        graphs,
        written: Vec::new(),
    };
    report.line("# scalelab report\n");
    report.line(&format!(
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
    ));
    if !warnings.is_empty() {
        report.line("## Warnings\n");
        for w in &warnings {
            report.line(&format!("- {w}"));
        }
        report.line("");
    }
    runs_table(&mut report, &runs);
    settings_table(&mut report, &runs);
    comparisons(&mut report, &runs)?;
    load_shapes(&mut report, &runs)?;
    breakpoint_sections(&mut report, &breakpoints)?;
    predictions(&mut report, &runs);
    autoscale::section(&mut report, &runs)?;
    experiments::section(&mut report, &runs)?;
    faults::section(&mut report, &runs)?;
    timelines::each_run(&mut report, &runs)?;

    let summary = out.join("summary.md");
    std::fs::write(&summary, &report.md)?;
    Ok(Outcome {
        summary,
        charts: report.written,
        warnings,
        runs: runs.len(),
    })
}

/// The Markdown being written and the charts written so far.
pub(crate) struct Writer {
    md: String,
    graphs: PathBuf,
    written: Vec<PathBuf>,
}

impl Writer {
    pub(crate) fn line(&mut self, text: &str) {
        self.md.push_str(text);
        self.md.push('\n');
    }

    /// Writes a line chart as `graphs/<name>.{png,svg}` and links the PNG.
    pub(crate) fn line_chart(&mut self, name: &str, chart: &LineChart) -> anyhow::Result<()> {
        self.chart(name, |base| charts::write_line(base, chart))
    }

    pub(crate) fn bar_chart(&mut self, name: &str, chart: &BarChart) -> anyhow::Result<()> {
        self.chart(name, |base| charts::write_bars(base, chart))
    }

    fn chart(
        &mut self,
        name: &str,
        write: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let base = self.graphs.join(name);
        write(&base)?;
        self.written.push(base.with_extension("png"));
        self.line(&format!("![{name}](graphs/{name}.png)"));
        Ok(())
    }
}

fn runs_table(w: &mut Writer, runs: &[Run]) {
    w.line("## Runs\n");
    w.line(
        "`ok req/s` counts successful requests of the scenario (logins left out); `req/s` \
        counts every request Goose sent. Latencies are Goose's whole-run figures in ms.\n",
    );
    w.line("| run | scenario | profile | runtime | gateways | users | requests | req/s | ok req/s | avg ms | p50 | p95 | p99 | max | failures | error % | cache hit ratio | SLA |");
    w.line("|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    for r in runs {
        w.line(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            r.id, r.scenario, r.profile, r.runtime, r.gateways, r.users, r.requests, r.rps,
            r.goodput, r.latency.avg, ms(r.latency.p50), ms(r.latency.p95), ms(r.latency.p99),
            ms(r.latency.max), r.failures, r.error_pct,
            r.hit_ratio.map(|h| format!("{:.1} %", h * 100.0)).unwrap_or_else(|| "–".into()),
            match r.sla_met { Some(true) => "met", Some(false) => "**missed**", None => "–" },
        ));
    }
    w.line("");
}

/// The knobs each run recorded from the services' `/config`, and where it ran.
fn settings_table(w: &mut Writer, runs: &[Run]) {
    let opt = |v: Option<u32>| v.map_or_else(|| "–".to_string(), |v| v.to_string());
    w.line("### Stack settings of each run\n");
    w.line("As the services reported them at the start of the run (`/config`).\n");
    w.line("| run | MAX_IN_FLIGHT | MAX_QUEUE | gateway CPU limit | cache TTL s | DB pool | DB delay ms | think ms | commit |");
    w.line("|---|--:|--:|--:|--:|--:|--:|--:|---|");
    for r in runs {
        let k = &r.knobs;
        w.line(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {:.0} | `{}` |",
            r.id,
            if k.max_in_flight == 0 {
                "unlimited".to_string()
            } else {
                k.max_in_flight.to_string()
            },
            opt(k.max_queue),
            k.gateway_cpu_limit
                .map_or_else(|| "none".to_string(), |c| format!("{c} CPU")),
            if k.cache_enabled {
                opt(k.cache_ttl_secs)
            } else {
                "off".to_string()
            },
            opt(k.microservice_pool),
            opt(k.db_delay_ms),
            r.think_ms,
            &r.commit[..r.commit.len().min(10)],
        ));
    }
    w.line("");
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
fn comparisons(w: &mut Writer, runs: &[Run]) -> anyhow::Result<()> {
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

/// Burst vs ramp (the same users started at once or gradually), and the phases of stages runs.
fn load_shapes(w: &mut Writer, runs: &[Run]) -> anyhow::Result<()> {
    // The latest burst and ramp run of each (scenario, gateways, runtime).
    let mut shapes: BTreeMap<(String, u32, String), [Option<&Run>; 2]> = BTreeMap::new();
    for r in runs {
        let slot = match r.profile.as_str() {
            "burst" => 0,
            "ramp" => 1,
            _ => continue,
        };
        shapes
            .entry((r.scenario.clone(), r.gateways, r.runtime.clone()))
            .or_default()[slot] = Some(r);
    }
    let pairs: Vec<_> = shapes
        .into_iter()
        .filter_map(|(k, [b, r])| Some((k, b?, r?)))
        .collect();
    let stages: Vec<&Run> = runs.iter().filter(|r| r.profile == "stages").collect();
    if pairs.is_empty() && stages.is_empty() {
        return Ok(());
    }
    w.line("## Load shapes\n");
    for ((scenario, gateways, runtime), burst, ramp) in pairs {
        w.line(&format!(
            "### Burst vs ramp: {gateways} gateway{}, cache {scenario}, {runtime}\n",
            if gateways == 1 { "" } else { "s" }
        ));
        w.line(
            "Burst starts every user at once; ramp adds them steadily over the first half \
            of the run. The same users arrive either way: what differs is the queue a burst builds \
            before the first answers come back.\n",
        );
        w.line("| run | profile | users | started per s | ok req/s | p50 ms | p95 ms | p99 ms | max ms | error % | worst p95 in a second |");
        w.line("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        let mut worst = Vec::new();
        for r in [burst, ramp] {
            let (kind, series) = tail_series(r);
            let peak =
                series
                    .iter()
                    .copied()
                    .fold(None, |best: Option<(f64, f64)>, p| match best {
                        Some(b) if b.1 >= p.1 => Some(b),
                        _ => Some(p),
                    });
            worst.push(peak);
            w.line(&format!(
                "| `{}` | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {:.2} | {} |",
                r.id,
                r.profile,
                r.users,
                r.rate,
                r.goodput,
                ms(r.latency.p50),
                ms(r.latency.p95),
                ms(r.latency.p99),
                ms(r.latency.max),
                r.error_pct,
                peak.map(|(t, v)| format!("{v:.0} ({kind}, second {t:.0})"))
                    .unwrap_or_else(|| "–".into()),
            ));
        }
        if let (Some((bt, bv)), Some((rt, rv))) = (worst[0], worst[1]) {
            let ratio = if rv > 0.0 { bv / rv } else { 0.0 };
            // The first seconds are where the shapes differ most.
            let early = |r: &Run| {
                let (_, s) = tail_series(r);
                median(s.iter().filter(|p| p.0 < 5.0).map(|p| p.1).collect())
                    .map(|v| format!("{v:.0} ms"))
                    .unwrap_or_else(|| "–".into())
            };
            w.line(&format!(
                "\n**The burst's worst second (p95 {bv:.0} ms at second {bt:.0}) is {ratio:.1}× the ramp's ({rv:.0} ms at second {rt:.0}); over the first 5 seconds the median per-second p95 is {} against {}; whole-run p95 {} vs {} ms.**\n",
                early(burst),
                early(ramp),
                ms(burst.latency.p95),
                ms(ramp.latency.p95)
            ));
        } else {
            w.line("");
        }
        let key = format!("{gateways}gw-{scenario}-{runtime}");
        w.line_chart(
            &format!("shape-users-{key}"),
            &LineChart::new(
                "Users over time: burst vs ramp",
                "seconds into the run",
                "users",
                vec![
                    ("burst".into(), points(&burst.series.users)),
                    ("ramp".into(), points(&ramp.series.users)),
                ],
            ),
        )?;
        let (kind, b) = tail_series(burst);
        let (_, r) = tail_series(ramp);
        w.line_chart(
            &format!("shape-latency-{key}"),
            &LineChart::new(
                &format!("{kind} latency per second: burst vs ramp"),
                "seconds into the run",
                &format!("{kind} latency (ms)"),
                vec![("burst".into(), b), ("ramp".into(), r)],
            )
            .reference(burst.sla_p95_ms.map(|v| (v, format!("SLA p95 {v:.0} ms")))),
        )?;
        w.line("");
    }
    for r in stages {
        stage_phases(w, r);
    }
    Ok(())
}

/// A stages run split where its users stop rising and start falling.
fn stage_phases(w: &mut Writer, r: &Run) {
    w.line(&format!("### Stages: `{}` ({})\n", r.id, label(r)));
    let users = &r.series.users;
    let top = users.iter().copied().fold(0.0, f64::max);
    let (Some(first), Some(last)) = (
        users.iter().position(|u| *u >= top && top > 0.0),
        users.iter().rposition(|u| *u >= top && top > 0.0),
    ) else {
        w.line("No per-second users were recorded for this run.\n");
        return;
    };
    w.line(
        "Ramp-up, hold and ramp-down, read from the users Goose ran each second. A system \
        with headroom keeps p95 flat through the hold; one that queues shows p95 climbing while \
        the users stay constant.\n",
    );
    w.line("| phase | seconds | users | req/s (mean) | p95 per second (median) ms |");
    w.line("|---|--:|--:|--:|--:|");
    let phases = [
        ("ramp-up", 0, first),
        ("hold", first, last + 1),
        ("ramp-down", last + 1, users.len()),
    ];
    for (name, from, to) in phases {
        if from >= to {
            continue;
        }
        let rps: Vec<f64> = r
            .series
            .rps
            .get(from..to.min(r.series.rps.len()))
            .unwrap_or(&[])
            .to_vec();
        let mean = if rps.is_empty() {
            0.0
        } else {
            rps.iter().sum::<f64>() / rps.len() as f64
        };
        let p95 = median(
            r.series
                .p95_ms
                .get(from..to.min(r.series.p95_ms.len()))
                .unwrap_or(&[])
                .iter()
                .flatten()
                .copied()
                .collect(),
        );
        w.line(&format!(
            "| {name} | {from}–{} | {:.0} → {:.0} | {mean:.1} | {} |",
            to - 1,
            users[from],
            users[to - 1],
            p95.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into()),
        ));
    }
    w.line("\nIts charts are in its own section under *Each run over time*.\n");
}

/// Step-load searches: load vs p95 with the SLA line and the knee marked.
fn breakpoint_sections(w: &mut Writer, found: &[runs::Breakpoint]) -> anyhow::Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    w.line("## Breaking point\n");
    for b in found {
        w.line(&format!("### `{}`: cache {}\n", b.id, b.scenario));
        w.line(&format!(
            "Each step is a run of its own with more users; the search stops at the first step \
             that breaks the SLA (p95 ≤ {:.0} ms and error rate ≤ {} %).\n",
            b.sla_p95_ms, b.sla_error_pct
        ));
        w.line("| step | users | req/s | p95 ms | error % | SLA |\n|--:|--:|--:|--:|--:|---|");
        for (i, s) in b.steps.iter().enumerate() {
            w.line(&format!(
                "| {} | {:.0} | {:.1} | {} | {:.2} | {} |",
                i + 1,
                s.users,
                s.rps,
                ms(s.p95_ms),
                s.error_pct,
                if s.sla_met { "met" } else { "**broken**" }
            ));
        }
        let knee = b.knee();
        let broken = b.broken();
        let verdict = match (knee, broken) {
            (Some(k), Some(x)) => format!(
                "The highest load that met the SLA: {:.0} users, {:.1} req/s (p95 {} ms). At {:.0} users it broke: p95 {} ms, {:.2} % errors.",
                k.users, k.rps, ms(k.p95_ms), x.users, ms(x.p95_ms), x.error_pct
            ),
            (Some(k), None) => format!(
                "Every step met the SLA, up to {:.0} users and {:.1} req/s: the breaking point lies beyond this search (raise MAX_STEPS or STEP_USERS).",
                k.users, k.rps
            ),
            (None, Some(x)) => format!(
                "Even the first step ({:.0} users) broke the SLA: p95 {} ms, {:.2} % errors; start lower (START_USERS).",
                x.users, ms(x.p95_ms), x.error_pct
            ),
            (None, None) => "The search recorded no step.".into(),
        };
        w.line(&format!("\n**{verdict}**\n"));
        if b.steps.is_empty() {
            continue;
        }
        let marker = knee.map(|k| (k.users, k.p95_ms, format!("knee: {:.0} users", k.users)));
        w.line_chart(
            &format!("breakpoint-p95-{}", b.id),
            &LineChart::new(
                &format!("{}: load vs p95", b.id),
                "users",
                "p95 latency (ms)",
                vec![(
                    "p95".into(),
                    b.steps.iter().map(|s| (s.users, s.p95_ms)).collect(),
                )],
            )
            .reference(Some((
                b.sla_p95_ms,
                format!("SLA p95 {:.0} ms", b.sla_p95_ms),
            )))
            .marker(marker),
        )?;
        w.line_chart(
            &format!("breakpoint-rps-{}", b.id),
            &LineChart::new(
                &format!("{}: load vs throughput", b.id),
                "users",
                "requests per second",
                vec![(
                    "requests per second".into(),
                    b.steps.iter().map(|s| (s.users, s.rps)).collect(),
                )],
            )
            .marker(knee.map(|k| (k.users, k.rps, format!("knee: {:.1} req/s", k.rps)))),
        )?;
        w.line("");
    }
    Ok(())
}

fn predictions(w: &mut Writer, runs: &[Run]) {
    w.line("## Predicted vs measured\n");
    w.line("Each run's throughput bound from its recorded knobs: the offered load of a closed workload \
        (users ÷ (think time + service time), Little's law), the gateways' request slots \
        (gateways × `MAX_IN_FLIGHT` ÷ service time), for cache misses the microservice's \
        connection pool (`DB_POOL_SIZE` ÷ service time), the gateways' CPU (the CPUs they \
        may use, `GATEWAY_CPUS` × gateways or the host's cores, ÷ the CPU each request cost them), \
        and the whole machine's CPU (its cores ÷ the CPU every process on it, the load generator \
        included, spent per successful request: on one machine the generator and the turned-away \
        requests cost CPU the stack cannot use), by the utilisation law (for `hit` and `miss` runs). The service time is the run's own \
        calibration (p50 of requests sent one at a time before the load); for a run without one, \
        the lowest p50 any run of the scenario recorded on that runtime. The smallest bound is the bottleneck; the measurement is the \
        scenario's successful requests per second, and one more than 20 % away from the bound \
        is flagged.\n");
    w.line(
        "The last column is how busy the whole machine's CPUs were during the run: near \
        100 %, every service is short of CPU and no single modelled bound holds.\n",
    );
    w.line("| run | service time ms | offered | gateway slots | microservice pool | gateway CPU | machine CPU | bottleneck | predicted req/s | measured ok req/s | difference | machine CPU busy |");
    w.line("|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|");
    // The model is about the cached read path; long tasks and login storms are bound by
    // other resources (the worker, password hashing).
    // Fault runs are disturbed on purpose: the Faults section reads them.
    for r in runs
        .iter()
        .filter(|r| (r.scenario == "hit" || r.scenario == "miss") && r.fault.is_none())
    {
        let Some(service) = service_time_s(runs, r) else {
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
        let d = model::deviation(p.rps, r.goodput);
        w.line(&format!(
            "| `{}` | {:.1} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {}{} | {} |",
            r.id,
            service * 1000.0,
            bound("offered"),
            bound("gateway slots"),
            bound("microservice"),
            bound("gateway CPU"),
            bound("machine CPU"),
            p.bottleneck.split(" (").next().unwrap_or(""),
            p.rps,
            r.goodput,
            pct(d),
            if d.abs() > 0.2 { " ⚠" } else { "" },
            r.host_cpu_busy
                .map_or_else(|| "–".to_string(), |b| format!("{:.0} %", b * 100.0)),
        ));
    }
    w.line("");
    let limits: Vec<String> = runs.iter().filter_map(|r| words::limits(runs, r)).collect();
    if !limits.is_empty() {
        w.line(
            "### What limited each run
",
        );
        for l in limits {
            w.line(&format!("- {l}"));
        }
        w.line("");
    }
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| r.fault.is_none())
        .filter_map(words::failures)
        .collect();
    if !failed.is_empty() {
        w.line(
            "### What failed, and why
",
        );
        for f in failed {
            w.line(&format!("- {f}"));
        }
        w.line("");
    }
}
