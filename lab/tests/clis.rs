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
        let (code, err) = lab_natively(&[command, "NAME=no-such-thing"]);
        assert_eq!(code, Some(1), "{err}");
        // One line: no "building release binaries", no stack started before it.
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("unknown {what} \"no-such-thing\"")),
            "{err}"
        );
    }
}

/// `lab act` takes its instance and action as words or as `INSTANCE=` and `ACTION=` (as
/// `make act` and the Docker-only path pass them); an unknown action is one line before
/// anything is built, a missing one is clap's one line.
#[test]
fn act_takes_instance_and_action_as_assignments_and_refuses_a_bad_action_in_one_line() {
    let (code, err) = lab_natively(&["act", "INSTANCE=gateway-2", "ACTION=explode"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unknown action \"explode\""), "{err}");
    let (code, err) = lab_natively(&["act", "INSTANCE=gateway-2"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("<ACTION>"), "{err}");
}

#[test]
fn make_down_deletes_data_only_when_asked_and_refuses_another_word_in_one_line() {
    // `make -n`: what make would run, with LAB given (no build); its last line is the lab's.
    let make = |args: &[&str], exported_data: Option<&str>| {
        let mut cmd = Command::new("make");
        cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["--no-print-directory", "-n", "down", "LAB=lab-binary"])
            .args(args)
            .env_remove("DATA")
            .env_remove("MAKEFLAGS");
        if let Some(v) = exported_data {
            cmd.env("DATA", v);
        }
        let out = cmd.output().expect("make runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            stdout
                .lines()
                .last()
                .unwrap_or_default()
                .trim_end()
                .to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    assert_eq!(make(&["DATA=delete"], None).1, "lab-binary down -v");
    assert_eq!(make(&["DATA=keep"], None).1, "lab-binary down");
    assert_eq!(make(&[], None).1, "lab-binary down");
    // An exported DATA is another program's: it deletes nothing.
    assert_eq!(make(&[], Some("delete")).1, "lab-binary down");
    let (code, _, err) = make(&["DATA=yes"], None);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("DATA takes delete or keep, not \"yes\""),
        "{err}"
    );
}

/// `lab <args>` with only `RUNTIME=native` in its environment: its exit code and stderr.
fn lab_natively(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin("lab"))
        .args(args)
        .env_clear()
        .env("RUNTIME", "native")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
