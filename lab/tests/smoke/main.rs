//! CI's smoke tests of the Docker paths, run the way a class runs them: each needs a Docker
//! engine and the offline images (`make smoke-compose` builds them), so each is ignored by
//! `make test` and run by its own make target (`make smoke-replicas`, …), which is
//! `cargo test --test smoke -- --ignored --exact <module>::<name>`. They use the binaries `make test`
//! built (`target/debug`: the lab, the report) and leave nothing running.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

mod classmate;
mod observability;
mod registry;
mod replicas;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary of this build (`lab`, `report`, …), beside the lab's.
fn bin(name: &str) -> PathBuf {
    if let Ok(build) = std::env::var("BUILD") {
        assert!(
            build.is_empty() || build == "debug",
            "the smoke tests run the debug binaries `make test` builds, not BUILD={build}"
        );
    }
    Path::new(env!("CARGO_BIN_EXE_lab")).with_file_name(name)
}

fn say(smoke: &str, what: &str, started: Instant) {
    eprintln!("{smoke}: {what} ({}s)", started.elapsed().as_secs());
}

/// Runs `cmd` (from the checkout unless it has a folder of its own); its output, or a panic
/// with what it printed.
fn run(cmd: &mut Command) -> Output {
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(root());
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The lab on the compose runtime and the offline images, with the debug binaries.
fn lab_on_compose() -> Command {
    let mut cmd = Command::new(bin("lab"));
    cmd.env("RUNTIME", "compose")
        .env("IMAGES", "offline")
        .env("BUILD", "debug")
        .env("SKIP_BUILD", "1");
    cmd
}

/// Takes the compose stack down when dropped, whatever happened.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = lab_on_compose().arg("down").current_dir(root()).output();
    }
}

/// The compose CLI there is, as words: `docker compose` (v2) or `docker-compose` (v1).
fn compose_words() -> Vec<&'static str> {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if v2 {
        vec!["docker", "compose"]
    } else {
        vec!["docker-compose"]
    }
}

/// What a command printed, both streams.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
