//! `FAIL_ON_SLA=1 SLA=… lab load …` as CI and a grader use it: the real lab binary drives a
//! real native stack (debug binaries, the lab's Postgres and Redis on loopback). A rule the
//! run cannot meet exits 99 naming the rule, after the run's record is written; an easy one
//! exits 0. The checkout is a scratch folder (its own `.env`, results and pids) whose
//! `target/` is the workspace's.

use common::testing::free_port;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Checkout(PathBuf);

impl Checkout {
    fn new() -> Self {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let root = std::env::temp_dir().join(format!("scalelab-sla-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        for file in ["docker-compose.yml", "Cargo.toml"] {
            std::fs::copy(workspace.join(file), root.join(file)).unwrap();
        }
        std::os::unix::fs::symlink(workspace.join("target"), root.join("target")).unwrap();
        std::os::unix::fs::symlink(workspace.join("scripts"), root.join("scripts")).unwrap();
        Checkout(root)
    }

    fn lab(&self, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
        let lab = self.0.join("target/debug/lab");
        assert!(
            lab.exists(),
            "{} missing: build the workspace first (make test does)",
            lab.display()
        );
        let mut cmd = Command::new(lab);
        for name in [
            "RUNTIME",
            "IMAGES",
            "BUILD",
            "QUICK",
            "SLA",
            "FAIL_ON_SLA",
            "USERS",
            "DURATION_SECS",
        ] {
            cmd.env_remove(name);
        }
        cmd.args(args)
            .env("LAB_ROOT", &self.0)
            .env("RUNTIME", "native")
            .env("BUILD", "debug")
            .env("SKIP_BUILD", "1")
            // The Postgres that `make test` started, for this copy of the checkout too.
            .env("POSTGRES_PASSWORD", common::testing::postgres_password())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd.output().expect("lab runs")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let _ = self.lab(&["down"], &[]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_missed_sla_exits_99_naming_the_rule_and_a_met_one_exits_0() {
    let checkout = Checkout::new();
    let env = |sla: &str| {
        vec![
            ("FAIL_ON_SLA", "1".to_string()),
            ("SLA", sla.to_string()),
            ("QUICK", "1".to_string()),
            ("USERS", "5".to_string()),
            ("DURATION_SECS", "3".to_string()),
            ("LB_PORT", free_port().to_string()),
            ("LB_METRICS_PORT", free_port().to_string()),
            ("LB_ADMIN_PORT", free_port().to_string()),
            ("MICROSERVICE_PORT", free_port().to_string()),
            ("WORKER_PORT", free_port().to_string()),
            ("SEED_ROWS", "2000".to_string()),
            ("RUST_LOG", "warn".to_string()),
        ]
    };
    let missed = checkout.lab(&["load", "1", "miss"], &env("p95<1ms"));
    let err = String::from_utf8_lossy(&missed.stderr);
    assert_eq!(missed.status.code(), Some(99), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("lab: error: SLA missed (FAIL_ON_SLA): ")
            && last.contains(": p95<1ms (observed "),
        "{err}"
    );
    // The run was written first, with every rule's verdict.
    let results = checkout.0.join("tests/results");
    let run = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .next()
        .expect("a run folder")
        .path();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["sla"]["met"], false);
    assert_eq!(record["sla"]["rules"][0]["rule"], "p95<1ms");
    assert_eq!(record["sla"]["rules"][0]["passed"], false);
    assert!(record["sla"]["rules"][0]["observed"].as_f64().unwrap() >= 1.0);

    let _ = checkout.lab(&["down"], &[]);
    let met = checkout.lab(&["load", "1", "miss"], &env("p95<60s,error<=100%"));
    assert_eq!(
        met.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&met.stderr)
    );

    // A rule that is not one is refused before anything starts, in one line.
    let bad = checkout.lab(&["load", "1", "miss"], &env("p95 fast"));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.trim()
            .ends_with("(rules look like p95<500ms, error<1%, rps>=100, GET /data:p99<1s)"),
        "{err}"
    );
}
