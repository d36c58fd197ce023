//! No shell between data and commands: the make targets hand what they are given (NAME=, N=,
//! FILE=, …) and the run folders they read to the lab and the report as data. Each hostile
//! value below would create a marker file if any recipe pasted it into a shell command (as
//! `make check-bounds` once did with folder names); the test runs the real Makefile with the
//! workspace's binaries and proves that no marker appears.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's binaries (`make test` builds them all before the tests).
fn bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_lab")).with_file_name(name)
}

/// Every way a shell could be made to run `touch <marker>-k` (a name in the folder the
/// recipes run in: the checkout).
fn hostile(m: &str) -> Vec<String> {
    vec![
        format!("a\"$(touch${{IFS}}{m}-1)\"b"),
        format!("x;touch {m}-2;"),
        format!("`touch {m}-3`"),
        format!("n\n$(touch {m}-4)"),
        format!("q'$(touch {m}-5)'q"),
        format!("x\" && touch {m}-6 && echo \""),
    ]
}

/// The markers in the checkout.
fn markers(m: &str) -> Vec<PathBuf> {
    std::fs::read_dir(root())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(m))
        .collect()
}

fn make(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let lab = bin("lab");
    let report = bin("report");
    assert!(
        report.exists(),
        "{} is missing: cargo build --workspace --bins",
        report.display()
    );
    Command::new("make")
        .arg("--no-print-directory")
        .arg("-C")
        .arg(root())
        .args(args)
        .arg(format!("LAB={}", lab.display()))
        .arg(format!("REPORT={}", report.display()))
        .envs(env.iter().copied())
        // Nothing here may start a stack: no runtime answers.
        .env("RUNTIME", "native")
        .env("SKIP_BUILD", "1")
        .output()
        .expect("make runs")
}

#[test]
fn hostile_values_and_folder_names_are_never_run() {
    let tmp = std::env::temp_dir().join(format!("make-injection-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let marker = format!("PWNED-{}", std::process::id());
    let marker = marker.as_str();
    let results = tmp.join("results");
    std::fs::create_dir(&results).unwrap();
    for name in hostile(marker) {
        let dir = results.join(&name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("run.json"), "{}").unwrap();
    }
    let results_dir = results.display().to_string();
    // The run folders of check-bounds: each is read (and fails to load: `{}` is no run).
    let out = make(&["check-bounds"], &[("RESULTS_DIR", &results_dir)]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        said.matches("report: ").count(),
        hostile(marker).len(),
        "one line per folder: {said}"
    );
    // Every value a target takes, as a student (or a copied command) might give it.
    for value in hostile(marker) {
        for (target, name) in [
            ("experiment", "NAME"),
            ("fault", "NAME"),
            ("lab", "N"),
            ("answers", "N"),
            ("load", "SCENARIO"),
            ("act", "INSTANCE"),
            ("logs", "SERVICE"),
            ("images-load", "FILE"),
        ] {
            let out = make(&[target], &[(name, &value)]);
            assert!(
                !out.status.success(),
                "make {target} {name}={value:?} succeeded"
            );
        }
    }
    assert_eq!(markers(marker), Vec::<PathBuf>::new(), "a value was run");
    std::fs::remove_dir_all(&tmp).unwrap();
}
