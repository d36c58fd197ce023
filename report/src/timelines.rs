//! "Each run over time": throughput, users, errors, latency per second, the worker's queue
//! and the load balancer's requests per gateway, for every run.

use crate::charts::{BarChart, LineChart};
use crate::runs::{self, Run};
use crate::{label, points, signals, some_points, Writer};

/// The moments a reader needs on a run's timeline, in seconds of its per-second series:
/// when the last user started, each scale the autoscaler made, the fault and its repair.
pub(crate) fn events(r: &Run) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let most = r.series.users.iter().copied().fold(0.0, f64::max);
    if let Some(k) = r.series.users.iter().position(|u| *u >= most && most > 0.0) {
        if k > 0 {
            out.push((k as f64, "all users started".to_string()));
        }
    }
    let shift = signals::shift(r);
    for a in r.autoscaler.iter().filter(|a| a.desired != a.current) {
        out.push((a.t + shift, "scale".to_string()));
    }
    if let (Some(f), Some(t0)) = (&r.fault, signals::t0(r)) {
        for e in &f.events {
            out.push((e.at - t0, format!("{} ({})", e.kind, e.action)));
        }
    }
    out
}

/// An open run's two clocks in words: what its schedule meant to send and what became of
/// it, and how far the latency users felt stands from the service time.
pub(crate) fn two_clocks(r: &Run) -> Option<String> {
    let a = r.arrivals.as_ref()?;
    let ms = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.1} ms"));
    let dropped = if a.dropped == 0 {
        "none dropped".to_string()
    } else {
        format!(
            "{} dropped (every request slot was busy when they came: not sent, and counted)",
            a.dropped
        )
    };
    Some(format!(
        "Open model: the schedule held {} arrivals; {} were sent, {dropped}. Sends ran late \
         by {} at the median and {} at p99 (at most {:.0} ms). Each request's **latency** \
         runs from when the schedule meant it to go, its **service time** from when it went: \
         p99 {} against {}. A closed model's users wait for their answers before sending \
         again, so when the system stalls they send less and the wait is never timed; the \
         open model keeps sending, and the wait shows as latency.",
        a.scheduled,
        a.sent,
        ms(a.send_lag_ms.p50),
        ms(a.send_lag_ms.p99),
        a.send_lag_ms.max,
        ms(Some(r.latency.p99)),
        ms(a.service_ms.p99),
    ))
}

pub(crate) fn each_run(w: &mut Writer, runs: &[Run]) -> anyhow::Result<()> {
    w.line("## Each run over time\n");
    for r in runs {
        w.line(&format!(
            "### `{}`: {}, {} users, {} runtime\n",
            r.id,
            label(r),
            r.users,
            r.runtime
        ));
        if !r.series.rps.is_empty() {
            let marks = events(r);
            // Answers by status class when the run recorded them: successes and failures
            // apart, so a run that fails fast does not look busy.
            let mut lines: Vec<(String, Vec<(f64, f64)>)> = if r.status_classes.is_empty() {
                vec![
                    ("requests per second".into(), points(&r.series.rps)),
                    ("errors per second".into(), points(&r.series.errors)),
                ]
            } else {
                r.status_classes
                    .iter()
                    .map(|(class, v)| {
                        let v: Vec<f64> = v.iter().map(|n| *n as f64).collect();
                        (format!("{class} per second"), points(&v))
                    })
                    .collect()
            };
            if r.series.dropped.iter().any(|d| *d > 0.0) {
                lines.push((
                    "dropped arrivals per second".into(),
                    points(&r.series.dropped),
                ));
            }
            lines.push(("users".into(), points(&r.series.users)));
            w.line_chart(
                &format!("timeline-{}", r.id),
                &LineChart::new(
                    &format!("{}: answers per second by status, and users", r.id),
                    "seconds into the run",
                    "per second / users",
                    lines,
                )
                .events(marks.clone()),
            )?;
            let open = r.series.service_p99_ms.iter().any(Option::is_some);
            let series = if open {
                // Both clocks on one chart: what users felt, and what the system took once
                // a request reached it.
                vec![
                    (
                        "p50 latency (from the intended send)".into(),
                        some_points(&r.series.p50_ms),
                    ),
                    (
                        "p99 latency (from the intended send)".into(),
                        some_points(&r.series.p99_ms),
                    ),
                    (
                        "p99 service time (from the real send)".into(),
                        some_points(&r.series.service_p99_ms),
                    ),
                ]
            } else if r.series.p95_ms.iter().any(Option::is_some) {
                vec![
                    ("p50".into(), some_points(&r.series.p50_ms)),
                    ("p95".into(), some_points(&r.series.p95_ms)),
                    ("p99".into(), some_points(&r.series.p99_ms)),
                ]
            } else {
                vec![("average latency".into(), points(&r.series.avg_ms))]
            };
            w.line_chart(
                &format!("latency-{}", r.id),
                &LineChart::new(
                    &format!("{}: latency per second", r.id),
                    "seconds into the run",
                    "latency (ms)",
                    series,
                )
                .reference(r.sla_p95_ms.map(|v| (v, format!("SLA p95 {v:.0} ms"))))
                .events(marks),
            )?;
            if let Some(words) = two_clocks(r) {
                w.line(&format!("\n{words}"));
            }
            w.line("");
        }
        if r.queue
            .iter()
            .any(|q| q.waiting + q.pending + q.in_progress > 0.0)
        {
            let pts = |f: fn(&runs::QueueSample) -> f64| -> Vec<(f64, f64)> {
                r.queue.iter().map(|q| (q.t, f(q))).collect()
            };
            w.line_chart(
                &format!("queue-{}", r.id),
                &LineChart::new(
                    &format!("{}: the worker's queue", r.id),
                    "seconds into the run",
                    "jobs",
                    vec![
                        ("waiting (not yet delivered)".into(), pts(|q| q.waiting)),
                        (
                            "pending (delivered, not acknowledged)".into(),
                            pts(|q| q.pending),
                        ),
                        ("in progress".into(), pts(|q| q.in_progress)),
                    ],
                ),
            )?;
            w.line("");
        }
        if !r.by_backend.is_empty() {
            w.bar_chart(
                &format!("gateways-{}", r.id),
                &BarChart {
                    title: &format!("{}: requests per gateway (load balancer counters)", r.id),
                    y_label: "requests",
                    bars: r.by_backend.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                },
            )?;
            w.line("");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use records::record::{Arrivals, Lag, LatencySummary};

    #[test]
    fn an_open_run_says_its_two_clocks_and_a_closed_one_nothing() {
        let mut r = Run::default();
        assert_eq!(two_clocks(&r), None);
        r.latency.p99 = 4912.0;
        r.arrivals = Some(Arrivals {
            scheduled: 1500,
            sent: 1050,
            dropped: 450,
            send_lag_ms: Lag {
                p50: Some(0.9),
                p99: Some(1.6),
                max: 38.2,
            },
            service_ms: LatencySummary {
                p99: Some(4.9),
                ..LatencySummary::default()
            },
        });
        let words = two_clocks(&r).unwrap();
        for part in [
            "held 1500 arrivals; 1050 were sent, 450 dropped",
            "0.9 ms at the median and 1.6 ms at p99 (at most 38 ms)",
            "p99 4912.0 ms against 4.9 ms",
        ] {
            assert!(words.contains(part), "{part:?} in {words}");
        }
    }
}
