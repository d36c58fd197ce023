//! CI's smoke check of a runtime (`make smoke-compose`, `make smoke-swarm`).

use super::{load, LoadSpec, Workbench};
use anyhow::bail;
use records::knob::Knob;
use records::load::{Profile, Scenario};

/// CI's check of a runtime end to end: 3 gateways, a short `hit` run whose requests the load
/// balancer must have spread evenly (each gateway within 20 % of a third), under 5 % errors;
/// the stack is taken down (with its data) whatever happens.
/// On Swarm the load comes from two generators (containers on the stack's network), so
/// the smoke also checks their merge: the run's requests are the sum of the parts'.
pub async fn smoke(lab: &mut Workbench<'_>) -> anyhow::Result<()> {
    let results = std::env::temp_dir().join(format!("scalelab-smoke-{}", std::process::id()));
    let generators = if lab.rt.stack().kind == stack::runtime::Kind::Swarm {
        2
    } else {
        1
    };
    let spec = LoadSpec {
        run_id: Some("smoke".into()),
        results_dir: Some(results.clone()),
        knobs: vec![
            Knob::Users(30),
            Knob::Rate(30.0),
            Knob::DurationSecs(10),
            Knob::Generators(generators),
        ],
        ..LoadSpec::new(3, Scenario::Hit, Profile::Classic, true)
    };
    let outcome = async {
        let dir = load(lab, &spec).await?;
        let run = records::record::RunRecord::read(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        if generators != 1 {
            let parts: u64 = run.generators.iter().map(|g| g.requests).sum();
            if run.generators.len() != 2 || parts != run.requests {
                bail!(
                    "the generators' parts ({parts} requests in {}) do not make the run's {}",
                    run.generators.len(),
                    run.requests
                );
            }
        }
        check_even_spread(&run)
    }
    .await;
    let down = lab.rt.down(true).await;
    let _ = std::fs::remove_dir_all(&results);
    outcome?;
    down?;
    eprintln!("smoke: {} runtime: ok", lab.rt.stack().kind.name());
    Ok(())
}

/// Three gateways in the load balancer's counters, each within 20 % of a third; errors < 5 %.
pub fn check_even_spread(run: &records::record::RunRecord) -> anyhow::Result<()> {
    let served = run.server.requests_by_backend.clone().unwrap_or_default();
    let total: f64 = served.values().sum();
    eprintln!(
        "smoke: {} requests, {:.1} req/s, errors {:.2} %, per gateway {served:?}",
        run.requests, run.rps, run.error_pct
    );
    if served.len() != 3 {
        bail!("expected 3 gateways in the load balancer's counters, found {served:?}");
    }
    if let Some((gw, n)) = served.iter().find(|(_, n)| **n < total / 3.0 * 0.8) {
        bail!("round robin is uneven: {gw} served {n} of {total}");
    }
    if run.error_pct >= 5.0 {
        bail!("error rate {:.2} %", run.error_pct);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(served: &[f64], error_pct: f64) -> records::record::RunRecord {
        let mut r: records::record::RunRecord =
            serde_json::from_str(r#"{"scenario":"hit","requests":300,"rps":30,"latency_ms":{}}"#)
                .unwrap();
        r.error_pct = error_pct;
        r.server.requests_by_backend = Some(
            served
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("10.0.0.{i}:8000"), *n))
                .collect(),
        );
        r
    }

    #[test]
    fn the_smoke_check_wants_three_even_gateways_and_few_errors() {
        assert!(check_even_spread(&run(&[100.0, 100.0, 100.0], 0.0)).is_ok());
        assert!(check_even_spread(&run(&[100.0, 100.0], 0.0)).is_err());
        let uneven = check_even_spread(&run(&[200.0, 50.0, 50.0], 0.0)).unwrap_err();
        assert!(uneven.to_string().contains("uneven"), "{uneven}");
        assert!(check_even_spread(&run(&[100.0, 100.0, 100.0], 6.0)).is_err());
    }
}
