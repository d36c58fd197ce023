//! "Faults": each run of `make fault` as a timeline (answers per second by status class, p95,
//! gateways in rotation, the fault's window shaded), its promise checked PASS or FAIL with
//! what was observed, and why. The lab fails `make fault` on the same checks.

use crate::charts::LineChart;
use crate::runs::Run;
use crate::{points, some_points, Writer};
use catalogue::signals;

pub use catalogue::fault::{checks, outcome, window, Check};
use catalogue::fault::{mechanism, rotation};

/// Second k's count drawn at k + 0.5: it covers [k, k+1), and the fault's window is drawn
/// on the same axis to the fraction of a second.
fn mid_second(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.into_iter().map(|(t, v)| (t + 0.5, v)).collect()
}

pub(crate) fn section(w: &mut Writer, runs: &[Run]) -> anyhow::Result<()> {
    // The latest run of each fault under each load model.
    let key = |r: &Run| (r.fault.as_ref().expect("filtered").name, open(r));
    let mut latest: Vec<&Run> = Vec::new();
    for r in runs.iter().filter(|r| r.fault.is_some()) {
        latest.retain(|l| key(l) != key(r));
        latest.push(r);
    }
    if latest.is_empty() {
        return Ok(());
    }
    w.line("## Faults\n");
    w.line(
        "Each fault under a steady load (`make fault NAME=…`): the part fails at a fixed \
         second and is repaired ten seconds later. The shaded band is the fault's window; \
         answers are counted per second by status class.\n",
    );
    for r in latest.iter().copied() {
        let f = r.fault.as_ref().expect("filtered");
        let model = if open(r) { " (open model)" } else { "" };
        w.line(&format!("### `{}`{model}: {}\n", f.name, f.promise));
        let actions: Vec<String> = f
            .events
            .iter()
            .map(|e| {
                let t =
                    signals::t0(r).map_or(String::new(), |a0| format!(" at {:.0} s", e.at - a0));
                format!("{}{t}", e.action)
            })
            .collect();
        w.line(&format!("The lab: {}.\n", actions.join(", then ")));
        w.line("| promise | observed | |");
        w.line("|---|---|---|");
        for c in checks(r) {
            w.line(&format!(
                "| {} | {} | **{}** |",
                c.promise,
                c.observed,
                if c.passed { "PASS" } else { "FAIL" }
            ));
        }
        w.line("");
        if let Some([failed, detect, recover, jobs]) = outcome(r) {
            w.line("| failed requests by status | time to detect | time to recover | jobs lost / stored twice |");
            w.line("|---|---|---|---|");
            w.line(&format!("| {failed} | {detect} | {recover} | {jobs} |\n"));
        }
        let shade = window(r).map(|w| (w.down, w.up, format!("{} → repaired", f.name)));
        let mut series: Vec<(String, Vec<(f64, f64)>)> = r
            .status_classes
            .iter()
            .map(|(class, v)| {
                let v: Vec<f64> = v.iter().map(|n| *n as f64).collect();
                (format!("{class} per second"), mid_second(points(&v)))
            })
            .collect();
        if !r.in_rotation.is_empty() {
            let scale = r.status_classes.get("2xx").map_or(1.0, |v| {
                (v.iter().copied().max().unwrap_or(1) as f64 / r.gateways.max(1) as f64).max(1.0)
            });
            series.push((
                format!("gateways in rotation (× {scale:.0})"),
                rotation(r).iter().map(|(t, n)| (*t, n * scale)).collect(),
            ));
        }
        let title = format!("{}: answers per second", f.name);
        let mut chart =
            LineChart::new(&title, "seconds into the run", "answers per second", series);
        chart.shade = shade.clone();
        w.line_chart(&format!("fault-{}", r.id), &chart)?;
        let title = format!("{}: p95 per second", f.name);
        let mut latency = LineChart::new(
            &title,
            "seconds into the run",
            "ms",
            vec![("p95".into(), mid_second(some_points(&r.series.p95_ms)))],
        );
        latency.log_y = true;
        latency.shade = shade.clone();
        w.line_chart(&format!("fault-p95-{}", r.id), &latency)?;
        if let Some((y, series)) = mechanism(r) {
            let title = format!("{}: what the stack's counters showed", f.name);
            let mut chart = LineChart::new(&title, "seconds into the run", y, series);
            chart.shade = shade;
            // A service that did not answer a sample (killed, restarting) leaves a gap.
            chart.gap = Some(1.6);
            w.line_chart(&format!("fault-mechanism-{}", r.id), &chart)?;
        }
        w.line(&format!("\n{}\n", f.name.spec().why));
    }
    models(w, &latest);
    Ok(())
}

fn open(r: &Run) -> bool {
    r.load_model.starts_with("open")
}

/// The same fault under the closed and the open model, side by side: what each sent while
/// the part was down, and the percentiles each reported.
fn models(w: &mut Writer, latest: &[&Run]) {
    for closed in latest.iter().filter(|r| !open(r)) {
        let name = closed.fault.as_ref().expect("a fault").name;
        let Some(opened) = latest
            .iter()
            .find(|r| open(r) && r.fault.as_ref().is_some_and(|f| f.name == name))
        else {
            continue;
        };
        w.line(&format!(
            "### `{name}` under both load models\n\nThe same fault, measured by a closed \
             model (users who wait for each answer, then think) and by an open one (arrivals \
             on a schedule, each timed from when it should have been sent). Percentiles of \
             the successful requests.\n"
        ));
        w.line("| model | sent while down | answered 2xx | p50 ms | p90 ms | p99 ms | max ms |");
        w.line("|---|--:|--:|--:|--:|--:|--:|");
        for r in [closed, opened] {
            let during = window(r).and_then(|win| catalogue::fault::sent_during(r, win));
            let at = |p: f64| {
                r.ok_percentiles
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map_or("–".into(), |(_, ms)| format!("{ms:.0}"))
            };
            // The scenario's successful requests (logins and failures left out), as the
            // percentiles.
            let answered: u64 = r.status_classes.get("2xx").map_or(0, |v| v.iter().sum());
            w.line(&format!(
                "| {} | {} | {answered} | {} | {} | {} | {} |",
                r.load_model,
                during.map_or("–".into(), |n| format!("{n:.0}")),
                at(50.0),
                at(90.0),
                at(99.0),
                at(100.0),
            ));
        }
        w.line("");
    }
}
