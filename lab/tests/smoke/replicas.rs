//! Labs 10 and 11 on compose: every replica busy.

use super::{bin, lab_on_compose, root, run, say, Down};
use std::process::Command;
use std::time::Instant;

/// `A: worker@<id> 12; B: worker@<id> 4, …`: how many busy instances of `service` each side
/// names (None when one is idle, missing or malformed).
fn busy_per_side(sentence: &str, service: &str) -> Option<(usize, usize)> {
    let (a, b) = sentence.strip_prefix("A: ")?.split_once("; B: ")?;
    let count = |list: &str| -> Option<usize> {
        let items: Vec<&str> = list.split(", ").collect();
        let busy = items.iter().all(|item| {
            let Some((id, n)) = item
                .strip_prefix(service)
                .and_then(|r| r.strip_prefix('@'))
                .and_then(|r| r.split_once(' '))
            else {
                return false;
            };
            id.len() == 12
                && id
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                && n.starts_with(|c: char| ('1'..='9').contains(&c))
                && n.chars().all(|c| c.is_ascii_digit())
        });
        busy.then_some(items.len())
    };
    Some((count(a)?, count(b)?))
}

/// The text after `label` up to `end` on the report's line holding it.
fn after<'a>(summary: &'a str, label: &str, end: char) -> Option<&'a str> {
    let start = summary.find(label)? + label.len();
    let rest = &summary[start..];
    Some(&rest[..rest.find(end)?])
}

#[test]
fn the_report_sentences_are_read_as_busy_instances() {
    // The check must be able to fail: an idle replica, a missing side, a short id.
    let id = "0123456789ab";
    let good = format!("A: worker@{id} 40; B: worker@{id} 12, worker@{id} 15, worker@{id} 13");
    assert_eq!(busy_per_side(&good, "worker"), Some((1, 3)));
    let idle = format!("A: worker@{id} 40; B: worker@{id} 12, worker@{id} 0");
    assert_eq!(busy_per_side(&idle, "worker"), None);
    assert_eq!(busy_per_side(&format!("A: worker@{id} 40"), "worker"), None);
    assert_eq!(
        busy_per_side("A: worker@0123 4; B: worker@0123 4", "worker"),
        None
    );
    let summary = format!("… Jobs per worker: {good}. More.");
    assert_eq!(
        after(&summary, "Jobs per worker: ", '.'),
        Some(good.as_str())
    );
}

/// Labs 10 and 11 on compose as a class runs them: 1 then 3 workers, 1 then 2 microservices
/// by `--scale`, found by DNS (the gateways) and by the engine (the lab); every run under its
/// smallest bound (the bounds count the replicas); the report names each replica with the
/// work it did, none idle.
#[test]
#[ignore = "needs Docker and the offline images: make smoke-replicas"]
fn labs_10_and_11_run_on_compose_with_every_replica_busy() {
    let started = Instant::now();
    let smoke = "smoke-replicas";
    let work = root().join(".scalelab/smoke-replicas");
    let _ = std::fs::remove_dir_all(&work);
    let (results, reports) = (work.join("results"), work.join("reports"));
    let _down = Down;
    for n in ["10", "11"] {
        say(smoke, &format!("lab {n} on compose"), started);
        run(lab_on_compose()
            .args(["lab", n])
            .env("RESULTS_DIR", &results)
            .env("REPORT_DIR", &reports));
    }
    say(smoke, "every run under its bounds", started);
    run(Command::new(bin("report"))
        .arg("--check-bounds")
        .env("RESULTS_DIR", &results)
        .env("REPORT_DIR", &reports));
    let summary = std::fs::read_to_string(reports.join("summary.md")).expect("summary.md");
    let workers = after(&summary, "Jobs per worker: ", '.');
    assert_eq!(
        workers.and_then(|s| busy_per_side(s, "worker")),
        Some((1, 3)),
        "lab 10: the report does not name 1 then 3 busy workers: {workers:?}"
    );
    let microservices = after(&summary, "requests per instance: ", ')');
    assert_eq!(
        microservices.and_then(|s| busy_per_side(s, "microservice")),
        Some((1, 2)),
        "lab 11: the report does not name 1 then 2 busy microservices: {microservices:?}"
    );
    say(smoke, "ok: labs 10 and 11 on compose", started);
}
