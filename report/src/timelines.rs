//! "Each run over time": throughput, users, errors, latency per second, the worker's queue
//! and the load balancer's requests per gateway, for every run.

use crate::charts::{BarChart, LineChart};
use crate::runs::{self, Run};
use crate::{label, points, some_points, Writer};

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
            w.line_chart(
                &format!("timeline-{}", r.id),
                &LineChart::new(
                    &format!("{}: throughput, users and errors", r.id),
                    "seconds into the run",
                    "per second / users",
                    vec![
                        ("requests per second".into(), points(&r.series.rps)),
                        ("users".into(), points(&r.series.users)),
                        ("errors per second".into(), points(&r.series.errors)),
                    ],
                ),
            )?;
            let series = if r.series.p95_ms.iter().any(Option::is_some) {
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
                .reference(r.sla_p95_ms.map(|v| (v, format!("SLA p95 {v:.0} ms")))),
            )?;
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
