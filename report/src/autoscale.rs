//! "Autoscaling": the runs of `make autoscale` (experiment `autoscale`) side by side: the same
//! rising and falling load on 1 gateway, on 3, and autoscaled from 1; then a burst and a ramp
//! autoscaled. For each run, on one time axis: the load, the replicas (desired and in
//! rotation), the metric against its target and tolerance band, and p95 against the SLA; a
//! table of reaction time, scale-in delay, seconds over the SLA, failures and replica-seconds;
//! and sentences that say why.

use crate::charts::LineChart;
use crate::runs::Run;
use crate::{points, some_points, Writer};
use records::record::AutoscalerSample;

/// What one run of the experiment measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub side: String,
    /// Second the metric first rose above its tolerance band.
    pub trigger_s: Option<f64>,
    /// Second the most gateways of the run were first all in rotation.
    pub scaled_out_s: Option<f64>,
    /// From the trigger to all gateways in rotation.
    pub reaction_s: Option<f64>,
    /// From the metric falling below its band (after the peak) to one gateway again.
    pub scale_in_delay_s: Option<f64>,
    pub seconds_over_sla: usize,
    /// The seconds of the run with answers: what `seconds_over_sla` is a share of, so that
    /// runs of different lengths compare.
    pub seconds_answered: usize,
    pub failures: u64,
    /// Failed requests in the seconds a scale-in was under way.
    pub failures_scaling_in: f64,
    pub replica_seconds: f64,
    /// What 3 gateways all along would have cost over the same seconds.
    pub static3_seconds: f64,
    pub max_replicas: f64,
    pub goodput: f64,
    /// Scale-down proposals the stabilization window held back, and when the first came.
    pub held_back: usize,
    pub first_lower_proposal_s: Option<f64>,
    pub first_scale_in_s: Option<f64>,
}

impl Figures {
    /// `12 of 47 s (26 %)`.
    pub fn over_sla(&self) -> String {
        format!(
            "{} of {} s ({:.0} %)",
            self.seconds_over_sla,
            self.seconds_answered,
            self.share_over_sla() * 100.0
        )
    }

    pub fn share_over_sla(&self) -> f64 {
        self.seconds_over_sla as f64 / self.seconds_answered.max(1) as f64
    }
}

fn band(a: &AutoscalerSample) -> (f64, f64) {
    (
        a.target * (1.0 - a.tolerance),
        a.target * (1.0 + a.tolerance),
    )
}

/// The figures of one run.
pub fn figures(r: &Run) -> Figures {
    let side = r
        .experiment
        .as_ref()
        .map(|e| e.1.clone())
        .unwrap_or_default();
    let trigger_s = r
        .autoscaler
        .iter()
        .find(|a| a.metric.is_some_and(|m| m > band(a).1))
        .map(|a| a.t);
    let max_replicas = r.in_rotation.iter().map(|(_, n)| *n).fold(0.0, f64::max);
    let scaled_out_s = r
        .in_rotation
        .iter()
        .find(|(_, n)| *n >= max_replicas && max_replicas > 1.0)
        .map(|(t, _)| *t);
    let reaction_s = match (trigger_s, scaled_out_s) {
        (Some(a), Some(b)) if b >= a => Some(b - a),
        _ => None,
    };
    // After the peak: the first decision whose metric fell below the band, and the first
    // second after it with a single gateway in rotation.
    let fell = scaled_out_s.and_then(|peak| {
        r.autoscaler
            .iter()
            .find(|a| a.t > peak && a.metric.is_some_and(|m| m < band(a).0))
            .map(|a| a.t)
    });
    let back_to_one = fell.and_then(|f| {
        r.in_rotation
            .iter()
            .find(|(t, n)| *t >= f && *n <= 1.0)
            .map(|(t, _)| *t)
    });
    let scale_in_delay_s = match (fell, back_to_one) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let sla = r.sla_p95_ms.unwrap_or(f64::INFINITY);
    let seconds_over_sla = r
        .series
        .p95_ms
        .iter()
        .filter(|p| p.is_some_and(|v| v > sla))
        .count();
    // Seconds in which a scale-in was under way, and the failures counted in them.
    let mut failures_scaling_in = 0.0;
    for a in r.autoscaler.iter().filter(|a| a.desired < a.current) {
        let (from, to) = (a.t, a.t + a.scale_secs.unwrap_or(0.0) + 1.0);
        failures_scaling_in += r
            .series
            .errors
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as f64) >= from.floor() && (*i as f64) <= to.ceil())
            .map(|(_, e)| *e)
            .sum::<f64>();
    }
    let replica_seconds = r
        .in_rotation
        .windows(2)
        .map(|w| w[0].1 * (w[1].0 - w[0].0))
        .sum();
    let span = match (r.in_rotation.first(), r.in_rotation.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0.0,
    };
    let lower: Vec<&AutoscalerSample> = r
        .autoscaler
        .iter()
        .filter(|a| a.proposed < a.current)
        .collect();
    Figures {
        side,
        trigger_s,
        scaled_out_s,
        reaction_s,
        scale_in_delay_s,
        seconds_over_sla,
        seconds_answered: r.series.p95_ms.iter().filter(|p| p.is_some()).count(),
        failures: r.failures,
        failures_scaling_in,
        replica_seconds,
        static3_seconds: 3.0 * span,
        max_replicas,
        goodput: r.goodput,
        held_back: lower.iter().filter(|a| a.desired >= a.current).count(),
        first_lower_proposal_s: lower.first().map(|a| a.t),
        first_scale_in_s: r
            .autoscaler
            .iter()
            .find(|a| a.desired < a.current)
            .map(|a| a.t),
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or("–".into(), |s| format!("{s:.0} s"))
}

/// The runs of the latest `autoscale` batch, in the experiment's order.
fn latest_batch(runs: &[Run]) -> Vec<&Run> {
    let batch = |r: &Run| r.id.split("-autoscale-").next().unwrap_or("").to_string();
    let ours: Vec<&Run> = runs
        .iter()
        .filter(|r| r.experiment.as_ref().is_some_and(|e| e.0 == "autoscale"))
        .collect();
    let Some(last) = ours.iter().map(|r| batch(r)).max() else {
        return Vec::new();
    };
    let order = ["static-1", "static-3", "auto", "auto-burst", "auto-ramp"];
    let mut found: Vec<&Run> = ours.into_iter().filter(|r| batch(r) == last).collect();
    found.sort_by_key(|r| {
        let side = r.experiment.as_ref().map(|e| e.1.as_str()).unwrap_or("");
        order.iter().position(|o| *o == side).unwrap_or(order.len())
    });
    found
}

pub(crate) fn section(w: &mut Writer, runs: &[Run]) -> anyhow::Result<()> {
    let batch = latest_batch(runs);
    if batch.is_empty() {
        return Ok(());
    }
    w.line("## Autoscaling\n");
    w.line(
        "The question: can an autoscaler hold the SLA under a load that rises and falls, at \
         less cost than 3 gateways all the time, and what does the load's shape change? The \
         same load ran on 1 gateway, on 3, and autoscaled from 1 (the Kubernetes HPA's \
         algorithm: desired = ceil(current × metric / target), a tolerance band, a scale-down \
         stabilization window); then a burst and a ramp to the same peak, autoscaled.\n",
    );
    let figs: Vec<(&Run, Figures)> = batch.iter().map(|r| (*r, figures(r))).collect();
    w.line("| run | profile | users | reaction (trigger → all in rotation) | scale-in delay | seconds over SLA (share of the run's) | failed requests | failed while scaling in | replica-seconds | vs static 3 | ok req/s |");
    w.line("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (r, f) in &figs {
        w.line(&format!(
            "| {} (`{}`) | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {:.1} |",
            f.side,
            r.id,
            r.profile,
            r.users,
            secs(f.reaction_s),
            secs(f.scale_in_delay_s),
            f.over_sla(),
            f.failures,
            f.failures_scaling_in,
            f.replica_seconds,
            if f.static3_seconds > 0.0 {
                format!("{:.0} %", 100.0 * f.replica_seconds / f.static3_seconds)
            } else {
                "–".into()
            },
            f.goodput
        ));
    }
    w.line("");
    for sentence in explain(&figs) {
        w.line(&format!("- {sentence}"));
    }
    w.line("");
    for (r, _) in figs.iter().filter(|(r, _)| !r.autoscaler.is_empty()) {
        charts(w, r)?;
    }
    Ok(())
}

/// Sentences from the figures: why burst and ramp differ, what the window bought.
pub fn explain(figs: &[(&Run, Figures)]) -> Vec<String> {
    let mut out = Vec::new();
    let side = |name: &str| figs.iter().find(|(_, f)| f.side == name);
    if let (Some((_, one)), Some((_, three))) = (side("static-1"), side("static-3")) {
        out.push(format!(
            "Static: 1 gateway spent {} over the SLA with {} failed requests; 3 gateways {} and {} failed, for 3 × the replica-seconds.{}",
            one.over_sla(),
            one.failures,
            three.over_sla(),
            three.failures,
            if three.seconds_over_sla > 0 {
                " Even 3 gateways broke the SLA at the peak: that load is more than 3 gateways and the microservice's pool serve, so no autoscaler capped at 3 can hold it there."
            } else {
                ""
            }
        ));
    }
    if let Some((_, auto)) = side("auto") {
        let cost = Some(auto.static3_seconds);
        out.push(format!(
            "Autoscaled, the same load spent {} over the SLA with {} failed requests{}, using {:.0} replica-seconds{}.",
            auto.over_sla(),
            auto.failures,
            if auto.failures_scaling_in > 0.0 {
                format!(" ({:.0} while a gateway was leaving)", auto.failures_scaling_in)
            } else {
                " (none while a gateway was leaving: it was drained first)".into()
            },
            auto.replica_seconds,
            cost.filter(|c| *c > 0.0)
                .map_or(String::new(), |c| format!(", {:.0} % of 3 gateways all along", 100.0 * auto.replica_seconds / c))
        ));
        if let (Some(lower), Some(scale_in)) = (auto.first_lower_proposal_s, auto.first_scale_in_s)
        {
            out.push(format!(
                "The stabilization window: the load fell and the autoscaler first proposed fewer gateways at {lower:.0} s, but scaled in only at {scale_in:.0} s, after {} proposals held back; a dip shorter than the window costs no gateway, at the price of {:.0} s of spare capacity.",
                auto.held_back,
                scale_in - lower
            ));
        }
    }
    if let (Some((_, burst)), Some((_, ramp))) = (side("auto-burst"), side("auto-ramp")) {
        out.push(format!(
            "Burst vs ramp: the burst brought every user at once, so the metric crossed its band at the first sync ({}) and the load waited for the gateways: {} until all were in rotation, {} over the SLA and {} failed requests. The ramp grew the load over half its run, and the autoscaler added gateways as it grew ({} from the trigger): {} over the SLA, {} failed. Both runs last DURATION_SECS, their users' start included, so the shares compare. The autoscaler's reaction time (a sync period, a start, a health check) is fixed; what differs is how much load arrives before it has reacted.",
            secs(burst.trigger_s),
            secs(burst.reaction_s),
            burst.over_sla(),
            burst.failures,
            secs(ramp.reaction_s),
            ramp.over_sla(),
            ramp.failures
        ));
    }
    out
}

/// The run's four charts on one time axis.
fn charts(w: &mut Writer, r: &Run) -> anyhow::Result<()> {
    let side = r.experiment.as_ref().map(|e| e.1.as_str()).unwrap_or("");
    w.line(&format!("### {side} (`{}`)\n", r.id));
    let step = |f: fn(&AutoscalerSample) -> f64| -> Vec<(f64, f64)> {
        r.autoscaler.iter().map(|a| (a.t, f(a))).collect()
    };
    let ok_rps: Vec<f64> = r
        .series
        .rps
        .iter()
        .zip(r.series.errors.iter().chain(std::iter::repeat(&0.0)))
        .map(|(a, e)| (a - e).max(0.0))
        .collect();
    w.line_chart(
        &format!("autoscale-load-{}", r.id),
        &LineChart::new(
            &format!("{side}: users, successful and failed requests per second"),
            "seconds into the run",
            "users / per second",
            vec![
                ("users".into(), points(&r.series.users)),
                ("ok req/s".into(), points(&ok_rps)),
                ("failed req/s".into(), points(&r.series.errors)),
            ],
        ),
    )?;
    w.line_chart(
        &format!("autoscale-replicas-{}", r.id),
        &LineChart::new(
            &format!("{side}: gateways desired by the autoscaler and in rotation"),
            "seconds into the run",
            "gateways",
            vec![
                ("desired".into(), step(|a| f64::from(a.desired))),
                ("in rotation".into(), r.in_rotation.clone()),
            ],
        ),
    )?;
    let name = r
        .autoscaler
        .first()
        .map(|a| a.metric_name.clone())
        .unwrap_or_default();
    w.line_chart(
        &format!("autoscale-metric-{}", r.id),
        &LineChart::new(
            &format!("{side}: {name} against its target and tolerance band"),
            "seconds into the run",
            &name,
            vec![
                (
                    name.clone(),
                    r.autoscaler
                        .iter()
                        .filter_map(|a| Some((a.t, a.metric?)))
                        .collect(),
                ),
                ("band high".into(), step(|a| band(a).1)),
                ("band low".into(), step(|a| band(a).0)),
            ],
        )
        .reference(
            r.autoscaler
                .first()
                .map(|a| (a.target, format!("target {}", a.target))),
        ),
    )?;
    w.line_chart(
        &format!("autoscale-p95-{}", r.id),
        &LineChart::new(
            &format!("{side}: p95 per second against the SLA"),
            "seconds into the run",
            "ms",
            vec![("p95".into(), some_points(&r.series.p95_ms))],
        )
        .reference(r.sla_p95_ms.map(|v| (v, format!("SLA p95 {v:.0} ms")))),
    )?;
    w.line("");
    Ok(())
}
