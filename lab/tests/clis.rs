//! Every binary of the workspace follows the command-line conventions: `--version` prints
//! `<name> <version>` and `--help` prints its usage, both with exit status 0; a bad argument
//! is exit status 2. Run against the debug binaries `cargo build --workspace` made.

use std::path::PathBuf;
use std::process::Command;

const BINARIES: [&str; 9] = [
    "lab",
    "loadtest",
    "report",
    "gateway",
    "microservice",
    "worker",
    "load_balancer",
    "healthcheck",
    "relay",
];

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let path = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/debug")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (make test does)",
        path.display()
    );
    path
}

#[test]
fn every_binary_answers_version_and_help_with_0_and_a_bad_flag_with_2() {
    for name in BINARIES {
        let version = Command::new(bin(name))
            .arg("--version")
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(version.status.code(), Some(0), "{name} --version");
        assert_eq!(
            String::from_utf8_lossy(&version.stdout).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION")),
            "{name} --version"
        );
        let help = Command::new(bin(name))
            .arg("--help")
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(help.status.code(), Some(0), "{name} --help");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("Usage:"),
            "{name} --help"
        );
        let bad = Command::new(bin(name))
            .arg("--no-such-flag")
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(2), "{name} --no-such-flag");
    }
}

#[test]
fn help_lists_the_subcommands_and_the_values_a_choice_takes() {
    let loadtest = Command::new(bin("loadtest"))
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&loadtest.stdout);
    assert!(
        text.contains("merge"),
        "loadtest --help lists merge:\n{text}"
    );
    let load = Command::new(bin("lab"))
        .args(["load", "--help"])
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&load.stdout);
    for value in ["hit", "miss", "longtask", "classic", "breakpoint", "open"] {
        assert!(
            text.contains(&format!("- {value}:")),
            "lab load --help lists {value}:\n{text}"
        );
    }
}

#[test]
fn an_unknown_experiment_or_fault_is_one_line_before_anything_is_built() {
    for (command, what) in [("experiment", "experiment"), ("fault", "fault")] {
        let out = Command::new(bin("lab"))
            .args([command, "NAME=no-such-thing"])
            .env_clear()
            .env("RUNTIME", "native")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        // One line: no "building release binaries", no stack started before it.
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("unknown {what} \"no-such-thing\"")),
            "{err}"
        );
    }
}
