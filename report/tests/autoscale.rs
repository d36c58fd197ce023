//! The Autoscaling section on hand-built run folders whose figures are computed by hand:
//! 21 seconds, 1 gateway until second 5, 3 from 6 to 14, 1 again from 15.

use report::autoscale::figures;
use serde_json::json;
use std::path::{Path, PathBuf};

const AT0: f64 = 1_800_000_000.0;

fn write(dir: &Path, name: &str, text: String) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// One decision: (t, metric, current, proposed, desired, scale_secs).
type Decision = (f64, f64, u32, u32, u32, Option<f64>);

/// One run folder of the experiment.
fn run(root: &Path, side: &str, autoscaler: &[Decision]) -> PathBuf {
    let id = format!("20261123-120000-autoscale-{side}");
    let dir = root.join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir,
        "run.json",
        json!({
            "schema_version": 2, "run_id": id, "scenario": "miss", "profile": "wave",
            "load": {"users": 300, "rate": 10.0, "duration_secs": 20},
            "experiment": {"name": "autoscale", "side": side, "settings": {}},
            "started": "2026-11-23T12:00:00Z", "duration_secs": 20.0,
            "requests": 1000, "failures": 2, "error_pct": 0.2, "rps": 50.0,
            "latency_ms": {"avg": 100.0, "p50": 80.0, "p95": 600.0, "p99": 700.0, "max": 900.0},
            "sla": {"p95_ms": 500.0, "error_pct": 1.0, "met": false, "failed_rules": []},
        })
        .to_string(),
    );
    let healthy = |t: usize| if (6..=14).contains(&t) { 3.0 } else { 1.0 };
    let server: Vec<String> = (0..=20)
        .map(|t| {
            json!({"t": t as f64, "at": AT0 + t as f64, "backends_healthy": healthy(t), "gateways": {}})
                .to_string()
        })
        .collect();
    write(&dir, "server.jsonl", server.join("\n"));
    let decisions: Vec<String> = autoscaler
        .iter()
        .map(|(t, metric, current, proposed, desired, scale)| {
            json!({"at": AT0 + t, "t": 999.0, "metric_name": "utilization", "metric": metric,
                   "target": 0.7, "tolerance": 0.1, "ready": current, "current": current,
                   "proposed": proposed, "stabilized": desired, "desired": desired,
                   "reason": "", "scale_secs": scale})
            .to_string()
        })
        .collect();
    if !decisions.is_empty() {
        write(&dir, "autoscaler.jsonl", decisions.join("\n"));
    }
    let mut p95 = vec![Some(100.0); 21];
    p95[4] = Some(900.0);
    p95[5] = Some(700.0);
    write(
        &dir,
        "latency_per_second.json",
        json!({"p50_ms": vec![Some(50.0); 21], "p95_ms": p95, "p99_ms": vec![Some(150.0); 21]})
            .to_string(),
    );
    let mut errors = vec![0.0; 21];
    errors[14] = 2.0;
    write(
        &dir,
        "goose.json",
        json!({"graphs": {
            "requests_per_second": {"GET /data": {"origin": 0, "data": vec![50.0; 21]}},
            "errors_per_second": {"GET /data": {"origin": 0, "data": errors}},
            "users_per_second": {"data": vec![300.0; 21]},
        }})
        .to_string(),
    );
    dir
}

/// A fresh folder per test (the tests of this file run at once).
fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("report-autoscale-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_autoscaled_run_gives_reaction_scale_in_delay_cost_and_failures_while_scaling_in() {
    let root = temp("figures");
    let dir = run(
        &root,
        "auto",
        &[
            (2.0, 0.3, 1, 1, 1, None),
            // The metric crosses the band (0.63..0.77) at 4 s: scale to 3.
            (4.0, 2.0, 1, 3, 3, Some(1.5)),
            (8.0, 0.8, 3, 4, 3, None),
            // The load falls at 10 s; the window holds 3 until 14 s.
            (10.0, 0.2, 3, 1, 3, None),
            (12.0, 0.2, 3, 1, 3, None),
            (14.0, 0.2, 3, 1, 1, Some(0.8)),
        ],
    );
    let r = report::runs::load_run(&dir).unwrap();
    assert_eq!(r.autoscaler.len(), 6);
    assert_eq!(r.autoscaler[1].t, 4.0, "decisions are on the run's clock");
    let f = figures(&r);
    assert_eq!(f.trigger_s, Some(4.0));
    assert_eq!(f.scaled_out_s, Some(6.0));
    assert_eq!(f.reaction_s, Some(2.0));
    // Fell below the band at 10 s; one gateway again at 15 s.
    assert_eq!(f.scale_in_delay_s, Some(5.0));
    assert_eq!(f.seconds_over_sla, 2);
    // 6 s × 1 + 9 s × 3 + 5 s × 1 (the last sample closes the run).
    assert_eq!(f.replica_seconds, 38.0);
    // The scale-in at 14 s took 0.8 s: seconds 14 to 16, where 2 requests failed.
    assert_eq!(f.failures_scaling_in, 2.0);
    assert_eq!(
        (f.held_back, f.first_lower_proposal_s, f.first_scale_in_s),
        (2, Some(10.0), Some(14.0))
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_section_compares_the_batch_and_says_why() {
    let root = temp("batch");
    run(&root, "static-1", &[]);
    run(&root, "static-3", &[]);
    let scaled = [
        (4.0, 2.0, 1, 3, 3, Some(1.5)),
        (10.0, 0.2, 3, 1, 3, None),
        (14.0, 0.2, 3, 1, 1, Some(0.8)),
    ];
    run(&root, "auto", &scaled);
    run(&root, "auto-burst", &scaled);
    run(&root, "auto-ramp", &scaled);
    let out = root.join("out");
    let outcome = report::generate(&root, &out).unwrap();
    let md = std::fs::read_to_string(&outcome.summary).unwrap();
    assert!(md.contains("## Autoscaling"), "{md}");
    // 3 gateways over the run's 20 s: 60 replica-seconds; the autoscaled run's 38 → 63 %; 2 of
    // its 21 seconds with answers over the SLA.
    assert!(
        md.contains("| auto (`20261123-120000-autoscale-auto`) | wave | 300 | 2 s | 5 s | 2 of 21 s (10 %) | 2 | 2 | 38 | 63 % | "),
        "{md}"
    );
    assert!(md.contains("The stabilization window: the load fell and the autoscaler first proposed fewer gateways at 10 s, but scaled in only at 14 s"), "{md}");
    assert!(md.contains("Burst vs ramp:"), "{md}");
    for chart in [
        "autoscale-replicas",
        "autoscale-metric",
        "autoscale-p95",
        "autoscale-load",
    ] {
        let png = out
            .join("graphs")
            .join(format!("{chart}-20261123-120000-autoscale-auto.png"));
        assert!(png.exists(), "{}", png.display());
    }
    let _ = std::fs::remove_dir_all(&root);
}
