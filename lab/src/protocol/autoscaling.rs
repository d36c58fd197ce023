//! `make autoscale`: the same rising-and-falling load on fixed gateways and autoscaled,
//! then a burst and a ramp, autoscaled.

use super::{banner, load, load_autoscaled, min_sec, until_interrupted, LoadSpec, Workbench};
use records::knob::Knob;
use records::load::{Profile, Scenario};
use stack::settings::Name;
use std::time::Instant;

/// One run of the autoscaling experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleRun {
    /// `static-1`, `static-3`, `auto`, `auto-burst`, `auto-ramp`.
    pub side: &'static str,
    pub profile: Profile,
    /// Gateways at the start (and throughout, when not autoscaled).
    pub gateways: usize,
    pub autoscaled: bool,
}

/// The same rising-and-falling load on 1 gateway, on 3, and autoscaled from 1; then a burst
/// and a ramp to 300 users, autoscaled.
pub fn autoscale_runs() -> Vec<AutoscaleRun> {
    let run = |side, profile, gateways, autoscaled| AutoscaleRun {
        side,
        profile,
        gateways,
        autoscaled,
    };
    vec![
        run("static-1", Profile::Wave, 1, false),
        run("static-3", Profile::Wave, 3, false),
        run("auto", Profile::Wave, 1, true),
        run("auto-burst", Profile::Burst, 1, true),
        run("auto-ramp", Profile::Ramp, 1, true),
    ]
}

/// `make autoscale`: the runs of [`autoscale_runs`] in one batch (cache misses, so that the
/// gateways' slots fill), then the report.
pub async fn autoscale(lab: &mut Workbench<'_>, quick: bool) -> anyhow::Result<()> {
    let config = crate::autoscale::Config::from_settings(&lab.settings)?;
    let batch = records::time::batch_stamp();
    let runs = autoscale_runs();
    let started = Instant::now();
    let result = async {
        lab.rt.down(true).await?;
        for (k, run) in runs.iter().enumerate() {
            let what = format!(
                "autoscale: {} ({} profile, {} gateway(s){})",
                run.side,
                run.profile,
                run.gateways,
                if run.autoscaled { ", autoscaled" } else { "" }
            );
            banner(&lab.live, k, runs.len(), &what, started, "");
            lab.up(run.gateways).await?;
            let mut knobs = Vec::new();
            if run.profile != Profile::Wave {
                // Burst and ramp reach the wave's peak, for as long as its rise and hold.
                knobs.push(Knob::Users(300));
                knobs.push(Knob::DurationSecs(if quick { 45 } else { 60 }));
            }
            let spec = LoadSpec {
                run_id: Some(format!("{batch}-autoscale-{}", run.side)),
                knobs,
                experiment: Some(records::record::Experiment {
                    name: "autoscale".into(),
                    side: run.side.into(),
                    settings: autoscale_settings(&lab.settings, run),
                }),
                ..LoadSpec::new(run.gateways, Scenario::Miss, run.profile, quick)
            };
            if run.autoscaled {
                let controller =
                    crate::autoscale::Controller::new(config.clone(), lab.live.clone());
                load_autoscaled(lab, &spec, controller).await?;
            } else {
                load(lab, &spec).await?;
            }
        }
        lab.rt.down(true).await?;
        lab.report().await
    };
    if let Err(e) = until_interrupted(result).await {
        return lab.stopped("autoscale", e).await;
    }
    eprintln!(
        "autoscale: done in {}: runs in tests/results/{batch}-autoscale-*, report in tests/reports/summary.md (section Autoscaling)",
        min_sec(started.elapsed().as_secs())
    );
    Ok(())
}

/// What a run of the autoscaling experiment sets.
fn autoscale_settings(
    s: &stack::settings::Settings,
    run: &AutoscaleRun,
) -> std::collections::BTreeMap<String, String> {
    if !run.autoscaled {
        return [("GATEWAYS".to_string(), run.gateways.to_string())].into();
    }
    [
        Name::AutoscaleMetric,
        Name::AutoscaleTarget,
        Name::MinReplicas,
        Name::MaxReplicas,
        Name::SyncPeriodSecs,
        Name::Tolerance,
        Name::ScaleUpStabilizationSecs,
        Name::ScaleDownStabilizationSecs,
    ]
    .iter()
    .map(|k| (k.to_string(), s.get(*k).to_string()))
    .collect()
}
