//! A classroom lab's own `make load` runs (`make lab N=…` for the labs that are not an
//! experiment, a fault or the benchmark).

use super::{banner, load, min_sec, until_interrupted, LoadSpec, Workbench};
use records::load::Profile;
use std::time::Instant;

/// A classroom lab's `make load` runs (QUICK), one batch, one after the other from a clean
/// stack; then the stack goes down and the report is written.
pub async fn lab_loads(
    lab: &mut Workbench<'_>,
    n: u32,
    loads: &[crate::labs::Load],
) -> anyhow::Result<()> {
    let batch = records::time::batch_stamp();
    let started = Instant::now();
    let result = async {
        lab.rt.down(true).await?;
        for (k, l) in loads.iter().enumerate() {
            let what = format!(
                "lab {n}: {} gateway(s), cache {}, profile {}",
                l.gateways, l.scenario, l.profile
            );
            banner(&lab.live, k, loads.len(), &what, started, "");
            let spec = LoadSpec {
                // A breakpoint search names its own folders (`…-breakpoint`, `…-step01-20u`).
                run_id: Some(match l.profile {
                    Profile::Breakpoint => {
                        format!("{batch}-lab{n}-{}gw-{}", l.gateways, l.scenario)
                    }
                    p => format!("{batch}-lab{n}-{}gw-{}-{p}", l.gateways, l.scenario),
                }),
                knobs: l.knobs.to_vec(),
                ..LoadSpec::new(l.gateways, l.scenario, l.profile, true)
            };
            load(lab, &spec).await?;
        }
        lab.rt.down(true).await?;
        lab.report().await
    };
    if let Err(e) = until_interrupted(result).await {
        return lab.stopped(&format!("lab {n}"), e).await;
    }
    eprintln!(
        "lab {n}: runs in tests/results/{batch}-lab{n}-*, done in {}",
        min_sec(started.elapsed().as_secs())
    );
    Ok(())
}
