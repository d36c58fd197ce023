//! Run folders from anyone: a teacher runs the report on 30 students' hand-ins. A corpus of
//! hostile folders beside the fixture's good runs: each bad one is a warning (its folder
//! named), the good ones are reported whole, nothing panics, and nothing is written outside
//! the report's folder.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file under `dir`, relative to it.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            }
            out.push(entry.path().strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

/// A good run's record, to spoil one field at a time.
fn good() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("f-1gw-hit/run.json")).unwrap())
        .unwrap()
}

fn with(changes: &[(&str, Value)]) -> String {
    let mut run = good();
    for (key, value) in changes {
        run[*key] = value.clone();
    }
    run.to_string()
}

#[test]
fn hostile_run_folders_are_warnings_never_crashes_or_writes_elsewhere() {
    let base = std::env::temp_dir().join(format!("scalelab-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let results = base.join("results");
    copy_dir(&fixture(), &results);
    let good_runs = report::generate(&fixture(), &base.join("good"))
        .unwrap()
        .runs;
    let valid = good().to_string();

    // (folder, run.json): what a broken disk, an editor or an attacker leaves.
    let deep = "[".repeat(100_000);
    let spoiled: Vec<(&str, String)> = vec![
        ("h-truncated", valid[..valid.len() / 2].to_string()),
        ("h-empty-file", String::new()),
        (
            "h-not-utf8",
            String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x80]).into_owned(),
        ),
        ("h-deep-nesting", deep),
        (
            "h-wrong-types",
            with(&[("requests", json!("many")), ("latency_ms", json!([1, 2]))]),
        ),
        (
            "h-negative",
            with(&[("requests", json!(-5)), ("duration_secs", json!(-1.0))]),
        ),
        ("h-overflow", with(&[("requests", json!(1e30))])),
        ("h-nan-string", with(&[("rps", json!("NaN"))])),
    ];
    for (name, text) in &spoiled {
        std::fs::create_dir_all(results.join(name)).unwrap();
        std::fs::write(results.join(name).join("run.json"), text).unwrap();
    }
    // Runs that read but hold what no lab writes: they are reported, their strings as text.
    let strange: Vec<(&str, String)> = vec![
        (
            "h-escape-id",
            with(&[
                ("run_id", json!("../../outside/x")),
                ("started", json!("2026-11-23T13:00:00Z")),
            ]),
        ),
        (
            "h-markup",
            with(&[
                ("run_id", json!("<script>alert(1)</script>")),
                ("scenario", json!("hit<img src=x onerror=alert(2)>")),
                ("git_commit", json!("éééééééééééé\u{0}\u{1b}[31m")),
            ]),
        ),
        (
            "h-extremes",
            with(&[
                ("duration_secs", json!(0.0)),
                ("rps", json!(1e308)),
                ("error_pct", json!(-3.0)),
                (
                    "latency_ms",
                    json!({"avg": 1e308, "p50": 0.0, "p95": -1.0, "p99": 1e-308, "max": 1e308}),
                ),
            ]),
        ),
    ];
    for (name, text) in &strange {
        std::fs::create_dir_all(results.join(name)).unwrap();
        std::fs::write(results.join(name).join("run.json"), text).unwrap();
    }
    // A folder that is a link to a run elsewhere on the disk: never followed.
    let elsewhere = base.join("elsewhere");
    copy_dir(&fixture().join("f-1gw-hit"), &elsewhere);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&elsewhere, results.join("h-linked-folder")).unwrap();
    // A per-second file of garbage beside a good record.
    copy_dir(
        &fixture().join("f-1gw-miss"),
        &results.join("h-bad-seconds"),
    );
    std::fs::write(
        results.join("h-bad-seconds/latency_per_second.json"),
        "{\"t\": [1, 2, \"x\"], garbage",
    )
    .unwrap();

    let before: Vec<PathBuf> = listing(&base);
    let out = base.join("reports");
    let outcome = report::generate(&results, &out).expect("the report is written");
    // Everything new is under the report's folder.
    let after = listing(&base);
    let added: Vec<&PathBuf> = after
        .iter()
        .filter(|p| !before.contains(p) && !p.starts_with("reports"))
        .collect();
    assert!(added.is_empty(), "written outside the report: {added:?}");
    // Each spoiled folder is one warning naming it; none stops the report.
    for (name, _) in &spoiled {
        let said: Vec<&String> = outcome
            .warnings
            .iter()
            .filter(|w| w.contains(name))
            .collect();
        assert_eq!(said.len(), 1, "{name}: {:?}", outcome.warnings);
        assert!(!said[0].contains('\n'), "one line: {}", said[0]);
    }
    // The good runs, the strange ones and the one with bad seconds are all reported; the
    // linked folder is not.
    assert_eq!(
        outcome.runs,
        good_runs + strange.len() + 1,
        "{:?}",
        outcome.warnings
    );
    let html = std::fs::read_to_string(&outcome.html).unwrap();
    assert!(!html.contains("<script>alert") && !html.contains("<img src=x"));
    let md = std::fs::read_to_string(&outcome.summary).unwrap();
    assert!(
        !md.contains("../../outside"),
        "the id that would escape is not used"
    );
    std::fs::remove_dir_all(&base).unwrap();
}

/// A small mutation fuzzer over the record parser: a good `run.json` with bytes flipped,
/// dropped, doubled or cut, thousands of times (a fixed seed, so a failure repeats). A
/// record that no longer reads is an error, never a panic.
#[test]
fn mutated_records_are_errors_not_panics() {
    let dir = std::env::temp_dir().join(format!("scalelab-mutants-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let original = std::fs::read(fixture().join("f-longtask/run.json")).unwrap();
    let mut seed: u64 = 0x5ca1_ab1e;
    let mut next = move |n: usize| {
        // xorshift64*
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    };
    let specials: &[&[u8]] = &[
        b"1e999",
        b"-1",
        b"null",
        b"\"\\u0000\"",
        b"[]",
        b"{}",
        b"\xc3",
        b"9999999999999999999999",
    ];
    let (mut read, mut refused) = (0, 0);
    for _ in 0..3000 {
        let mut bytes = original.clone();
        for _ in 0..=next(3) {
            let at = next(bytes.len().max(1));
            match next(5) {
                0 => bytes[at] = next(256) as u8,
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.truncate(at),
                3 => {
                    let special = specials[next(specials.len())];
                    bytes.splice(at..at, special.iter().copied());
                }
                _ => {
                    let b = bytes[at];
                    bytes.insert(at, b);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        std::fs::write(dir.join("run.json"), &bytes).unwrap();
        match report::runs::load_run(&dir) {
            Ok(_) => read += 1,
            Err(_) => refused += 1,
        }
    }
    // Both kinds happened: the mutations reach past the parser's first check.
    assert!(
        read > 100 && refused > 100,
        "read {read}, refused {refused}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
