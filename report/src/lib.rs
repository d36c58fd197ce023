//! `make report`: reads `tests/results/*/`, writes `tests/reports/summary.md` and
//! `tests/reports/graphs/*.{png,svg}`.

pub mod autoscale;
pub mod bounds;
pub mod charts;
mod comparisons;
pub mod experiments;
pub mod export;
pub mod faults;
pub mod honest;
pub mod model;
mod predictions;
pub mod runs;
mod timelines;
pub mod words;

pub use catalogue::signals;
pub use comparisons::{batch_of, compare_sentence};
pub use predictions::{machine_cpu_per_ok_s, predict_run, service_time_s};

use charts::{BarChart, LineChart};
use runs::Run;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a report run produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: PathBuf,
    /// `summary.html`: the same, one self-contained file.
    pub html: PathBuf,
    /// `runs.csv`, then each run's `csv/<run>.csv`.
    pub csv: Vec<PathBuf>,
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

use records::stats::median;

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
            warnings.push(format!("{}: the load generator was saturated (more than 80 % of its one core busy); its latencies include the generator's own queueing: spread the load with GENERATORS=2 or more", r.id));
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
        if let Some(c) = bounds::check(r).filter(|c| !c.passed) {
            warnings.push(format!(
                "{}: more ok req/s than a hard bound allows: {}; a rate's window or a bound's measurement is wrong",
                r.id,
                c.line()
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
    comparisons::section(&mut report, &runs)?;
    load_shapes(&mut report, &runs)?;
    breakpoint_sections(&mut report, &breakpoints)?;
    predictions::section(&mut report, &runs);
    autoscale::section(&mut report, &runs)?;
    experiments::section(&mut report, &runs)?;
    faults::section(&mut report, &runs)?;
    timelines::each_run(&mut report, &runs)?;

    let summary = out.join("summary.md");
    std::fs::write(&summary, &report.md)?;
    let html = export::html(out, &report.md)?;
    let csv = export::csv(out, &runs)?;
    Ok(Outcome {
        summary,
        html,
        csv,
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
    sla_table(w, runs);
}

/// Each run's SLA rules with what the run measured: the verdict behind the SLA column (and
/// behind `FAIL_ON_SLA`'s exit status).
fn sla_table(w: &mut Writer, runs: &[Run]) {
    if runs.iter().all(|r| r.sla_rules.is_empty()) {
        return;
    }
    w.line(
        "### SLA of each run
",
    );
    w.line("The rules of the `SLA` setting (default: p95 below `SLA_P95_MS`, errors at most 1 %), each checked on the run's own figures.\n");
    w.line("| run | rule | observed | verdict |");
    w.line("|---|---|--:|---|");
    for r in runs {
        for c in &r.sla_rules {
            let observed = c.observed.map_or_else(
                || "nothing to observe".into(),
                |v| format!("{v:.2} {}", c.unit),
            );
            let verdict = if c.passed { "pass" } else { "**fail**" };
            w.line(&format!(
                "| `{}` | `{}` | {observed} | {verdict} |",
                r.id, c.rule
            ));
        }
    }
    w.line("");
}

/// The knobs each run recorded from the services' `/config`, and where it ran.
fn settings_table(w: &mut Writer, runs: &[Run]) {
    let opt = |v: Option<u32>| v.map_or_else(|| "–".to_string(), |v| v.to_string());
    w.line("### Stack settings of each run\n");
    w.line(
        "As the services reported them at the start of the run (`/config`). The load model: \
        `closed`, each user sends its next request only after its answer (and a think time), \
        so a slower stack is offered less load; `open`, requests arrive at a fixed rate \
        whatever the answers take, so a slower stack queues them (coordinated-omission \
        mitigation fills in the requests a stalled user could not send).\n",
    );
    w.line("| run | MAX_IN_FLIGHT | MAX_QUEUE | gateway CPU limit | cache TTL s | DB pool | DB delay ms | think ms | load model | commit |");
    w.line("|---|--:|--:|--:|--:|--:|--:|--:|---|---|");
    for r in runs {
        let k = &r.knobs;
        w.line(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {:.0} | {} | `{}` |",
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
            r.load_model,
            &r.commit.chars().take(10).collect::<String>(),
        ));
    }
    w.line("");
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
             that breaks the SLA (p95 < {:.0} ms and error rate ≤ {} %, unless the `SLA` \
             setting gave other rules: each step's verdicts are in its run's SLA table).\n",
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
