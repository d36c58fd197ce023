//! A metric is spelled once, in `records::names::MetricName`: a service that writes it and
//! every reader name the variant, so a misspelt name does not compile. This test finds the
//! string literals that spell a known metric and so bypass it (a reader comparing a sample's
//! name with `"queue_lag"`); a new metric registered under a literal of its own is caught
//! where its reader needs a variant.

use records::names::{MetricName, Part, Series};
use std::path::{Path, PathBuf};

/// Literals that spell a metric's name for another reason, each with it.
const ALLOWED: &[(&str, &str)] = &[
    // The exposition parser's test reads Prometheus text it writes itself.
    ("probe/src/exposition.rs", "exposition text"),
    // A worker sample in server.jsonl has fields named like the gauges they hold.
    ("report/tests/faults.rs", "server.jsonl fields"),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `"literal"` of the text that spells a metric or a part of a histogram.
fn spelled(text: &str) -> Vec<String> {
    let every: Vec<String> = MetricName::ALL
        .iter()
        .flat_map(|&m| {
            [Part::Whole, Part::Sum, Part::Count, Part::Bucket]
                .map(|part| Series { metric: m, part }.name())
        })
        .collect();
    let mut found: Vec<(usize, String)> = every
        .into_iter()
        .flat_map(|n| {
            let quoted = format!("\"{n}\"");
            text.match_indices(&quoted)
                .map(|(at, _)| (at, n.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

#[test]
fn no_code_spells_a_metric_name_as_a_string() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    sources(root, &mut files);
    assert!(files.len() > 50, "found only {} sources", files.len());
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "records/src/names.rs" || rel == "records/tests/metric_names.rs" {
            continue;
        }
        if ALLOWED.iter().any(|(f, _)| *f == rel) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for lit in spelled(&text) {
            found.push(format!("{rel}: \"{lit}\""));
        }
    }
    assert!(
        found.is_empty(),
        "metric names spelled as strings (use records::names::MetricName):\n{}",
        found.join("\n")
    );
    // The scan sees what it should, so the check above can fail.
    assert_eq!(
        spelled(r#"gauge("queue_lag", "…"); sum(s, "batch_size_count", &[]); "queue_lags""#),
        ["queue_lag", "batch_size_count"]
    );
}
