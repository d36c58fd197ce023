//! The Docker engine's command lines, as every Docker-based runtime and the lab container
//! call them: `docker …` with its output or its error's last lines, whether an engine
//! answers, and which compose command line this machine has.

use anyhow::{bail, Context};
use std::time::Duration;
use tokio::process::Command;

pub async fn engine_answers() -> bool {
    let probe = Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    matches!(tokio::time::timeout(Duration::from_secs(10), probe).await, Ok(Ok(s)) if s.success())
}

/// `docker compose` when the plugin answers, else `docker-compose`.
pub(crate) async fn compose_cli() -> anyhow::Result<Vec<String>> {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if v2 {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    let v1 = Command::new("docker-compose")
        .arg("version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if v1 {
        return Ok(vec!["docker-compose".into()]);
    }
    bail!("neither `docker compose` nor `docker-compose` found; install one: sudo apt-get install -y docker-compose")
}

/// `docker ARGS…`: its standard output, or an error with its stderr's last lines.
pub async fn docker(args: &[&str]) -> anyhow::Result<String> {
    run_checked(
        Command::new("docker").args(args),
        &format!("docker {}", args.first().copied().unwrap_or_default()),
    )
    .await
}

/// Whether `docker ARGS…` succeeds (an object exists, an engine answers).
pub async fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

/// Runs a command, failing with its stderr's last lines.
pub async fn run_checked(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .await
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
