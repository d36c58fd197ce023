//! The crates' layering as ARCHITECTURE.md states it ("Crates and what each must not depend
//! on"), checked against every crate's manifest; and the runtime trait kept to what a runtime
//! is.

use std::collections::BTreeSet;
use std::path::Path;

const SERVICES: [&str; 4] = ["gateway", "load_balancer", "microservice", "worker"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Each workspace crate and the workspace crates it depends on, as cargo itself reads the
/// manifests (`cargo metadata`): normal dependencies on any target, however spelled (a
/// table, a rename, a target section), never dev- or build-dependencies.
fn workspace(metadata: &serde_json::Value) -> Vec<(String, BTreeSet<String>)> {
    let packages = metadata["packages"]
        .as_array()
        .expect("cargo metadata's packages");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|p| {
            let uses = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|n| names.contains(n))
                .map(str::to_string)
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), uses)
        })
        .collect()
}

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The crates that break their row: `crate depends on [..]`.
fn broken(crates: &[(String, BTreeSet<String>)], architecture: &str) -> Vec<String> {
    let members: Vec<String> = crates.iter().map(|(k, _)| k.clone()).collect();
    let rules = forbidden(architecture, &members);
    let mut out = Vec::new();
    for (member, uses) in crates {
        let Some((_, not)) = rules.iter().find(|(k, _)| k == member) else {
            out.push(format!(
                "ARCHITECTURE.md's crates table has no row for `{member}`"
            ));
            continue;
        };
        let bad: Vec<&String> = uses.intersection(not).collect();
        if !bad.is_empty() {
            out.push(format!(
                "{member} depends on {bad:?}, which ARCHITECTURE.md says it must not"
            ));
        }
    }
    out
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Each crate's forbidden dependencies, from the table's third column: "any other crate",
/// "any crate but `a`, `b`", or a list (where "the services" names the four services).
fn forbidden(architecture: &str, members: &[String]) -> Vec<(String, BTreeSet<String>)> {
    let table = architecture
        .split("## Crates and what each must not depend on")
        .nth(1)
        .expect("ARCHITECTURE.md has the crates' section")
        .split("\n\n")
        .find(|p| p.trim_start().starts_with("| crate |"))
        .expect("the section has its table");
    let mut out = Vec::new();
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (crates, rule) = (backticked(cells[1]), cells[3]);
        let all: BTreeSet<String> = members.iter().cloned().collect();
        let mut not: BTreeSet<String> = if rule == "any other crate" {
            all
        } else if let Some(allowed) = rule.strip_prefix("any crate but") {
            let allowed = backticked(allowed);
            all.into_iter().filter(|m| !allowed.contains(m)).collect()
        } else {
            let mut listed: BTreeSet<String> = backticked(rule).into_iter().collect();
            if rule.contains("the services") {
                listed.extend(SERVICES.map(String::from));
            }
            listed
        };
        for krate in crates {
            not.remove(&krate);
            out.push((krate, not.clone()));
        }
    }
    out
}

#[test]
fn every_crate_keeps_to_its_row_of_the_layering_table() {
    let crates = workspace(&metadata());
    assert!(
        crates.len() >= 13,
        "cargo metadata lists {} crates",
        crates.len()
    );
    let found = broken(&crates, &read(&root().join("ARCHITECTURE.md")));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_check_finds_a_forbidden_dependency_however_it_is_spelled() {
    // The check must be able to fail: a stack that used the lab through a target section
    // and a rename breaks its row; a dev-dependency does not count; a crate without a row
    // is said.
    let architecture = "## Crates and what each must not depend on\n\n\
        | crate | what | must not depend on |\n|---|---|---|\n\
        | `records` | shapes | any other crate |\n\
        | `stack` | runtimes | `lab` |\n";
    let metadata = serde_json::json!({"packages": [
        {"name": "records", "dependencies": []},
        {"name": "stack", "dependencies": [
            {"name": "records", "kind": null},
            {"name": "lab", "kind": null, "rename": "orchestration", "target": "cfg(unix)"},
        ]},
        {"name": "lab", "dependencies": [{"name": "stack", "kind": "dev"}]},
        {"name": "live", "dependencies": []},
    ]});
    let crates = workspace(&metadata);
    let found = broken(&crates, architecture);
    let stack = "stack depends on [\"lab\"], which ARCHITECTURE.md says it must not";
    assert!(found.iter().any(|l| l == stack), "{found:?}");
    assert!(
        !found.iter().any(|l| l.starts_with("lab depends")),
        "{found:?}"
    );
    assert_eq!(found.len(), 3, "{found:?}");
    let records = &forbidden(architecture, &["records", "stack", "lab"].map(String::from))[0].1;
    assert_eq!(records.len(), 2);
}

/// What a runtime is, and no more: at most nine methods, and no trait beside it that a
/// runtime implements to carry more (an extension trait would hide the same width).
#[test]
fn the_runtime_trait_has_at_most_nine_methods_and_no_extension() {
    let dir = root().join("stack/src/runtime");
    let source = read(&dir.join("mod.rs"));
    let body = source
        .split("pub trait Runtime: Send + Sync {")
        .nth(1)
        .expect("the Runtime trait")
        .split("\n}\n")
        .next()
        .unwrap();
    let methods = body
        .lines()
        .filter(|l| l.trim_start().starts_with("fn ") || l.trim_start().starts_with("async fn "))
        .count();
    assert!(methods <= 9, "Runtime has {methods} methods");
    assert!(
        methods >= 8,
        "the check no longer reads the trait ({methods} methods)"
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = read(&path);
        for line in text.lines().filter(|l| l.contains("trait ")) {
            assert!(
                !(line.contains(": Runtime") || line.contains(":Runtime")),
                "{}: a trait extending Runtime: {line}",
                path.display()
            );
        }
    }
}

/// The tests ARCHITECTURE.md cites (a backticked name of five words or more in snake case)
/// exist: an invariant's citation never outlives its test.
#[test]
fn every_test_architecture_md_cites_exists() {
    let architecture = read(&root().join("ARCHITECTURE.md"));
    let cited: BTreeSet<&str> = architecture
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| {
            w.split('_').count() >= 5 && w.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .collect();
    assert!(
        cited.len() >= 8,
        "the citations are no longer read: {cited:?}"
    );
    let mut sources = String::new();
    let mut dirs = vec![root().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() && !name.starts_with('.') && name != "target" {
                dirs.push(path);
            } else if name.ends_with(".rs") {
                sources.push_str(&read(&path));
            }
        }
    }
    let missing: Vec<&&str> = cited
        .iter()
        .filter(|name| !sources.contains(&format!("fn {name}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md cites tests that do not exist: {missing:?}"
    );
}
