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

fn members(manifest: &str) -> Vec<String> {
    manifest
        .split("members = [")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .expect("workspace members")
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The workspace crates a manifest's `[dependencies]` name (not its dev-dependencies).
fn depends_on(manifest: &str, members: &[String]) -> BTreeSet<String> {
    let mut inside = false;
    let mut out = BTreeSet::new();
    for line in manifest.lines() {
        if line.starts_with('[') {
            inside = line.trim() == "[dependencies]";
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if inside && members.iter().any(|m| m == name) {
            out.insert(name.to_string());
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
    let workspace = read(&root().join("Cargo.toml"));
    let members = members(&workspace);
    let rules = forbidden(&read(&root().join("ARCHITECTURE.md")), &members);
    for member in &members {
        let (_, not) = rules
            .iter()
            .find(|(k, _)| k == member)
            .unwrap_or_else(|| panic!("ARCHITECTURE.md's crates table has no row for `{member}`"));
        let uses = depends_on(&read(&root().join(member).join("Cargo.toml")), &members);
        let broken: Vec<&String> = uses.intersection(not).collect();
        assert!(
            broken.is_empty(),
            "{member} depends on {broken:?}, which ARCHITECTURE.md says it must not"
        );
    }
}

#[test]
fn the_check_finds_a_forbidden_dependency() {
    // The check must be able to fail: a stack that depended on the lab breaks its row.
    let members: Vec<String> = ["records", "stack", "lab"].map(String::from).to_vec();
    let architecture = "## Crates and what each must not depend on\n\n\
        | crate | what | must not depend on |\n|---|---|---|\n\
        | `records` | shapes | any other crate |\n\
        | `stack` | runtimes | `lab` |\n";
    let rules = forbidden(architecture, &members);
    let manifest = "[dependencies]\nrecords.workspace = true\nlab = { path = \"../lab\" }\n\
                    [dev-dependencies]\nlab.workspace = true\n";
    let uses = depends_on(manifest, &members);
    assert_eq!(uses, ["lab", "records"].map(String::from).into());
    let stack = &rules.iter().find(|(k, _)| k == "stack").unwrap().1;
    assert_eq!(uses.intersection(stack).collect::<Vec<_>>(), ["lab"]);
    let records = &rules.iter().find(|(k, _)| k == "records").unwrap().1;
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
