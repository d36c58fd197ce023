//! What a runtime needs on this machine, checked before the long build so that a missing
//! package is one line with its install command, not a failure nine minutes in.

use crate::platform::install;
use crate::runtime::{offline, Kind};
use anyhow::{bail, Context};
use std::path::Path;

fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::time::Duration::from_millis(500),
    )
    .is_ok()
}

fn have_postgres_server() -> bool {
    // Debian keeps initdb off PATH, under /usr/lib/postgresql/<version>/bin; Homebrew's
    // postgresql@16 is keg-only, under its opt/ prefix (Apple Silicon, then Intel).
    let server_dirs: &[&str] = if cfg!(target_os = "macos") {
        &["/opt/homebrew/opt", "/usr/local/opt"]
    } else {
        &["/usr/lib/postgresql"]
    };
    have("initdb")
        || server_dirs.iter().any(|dir| {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    e.file_name().to_string_lossy().starts_with("postgresql")
                        || !cfg!(target_os = "macos")
                })
                .any(|e| e.path().join("bin/initdb").exists())
        })
}

/// Every missing prerequisite, each with the command that installs it.
pub fn missing(kind: Kind, builds_offline_images: bool, building: bool) -> Vec<String> {
    let mut out = Vec::new();
    if building {
        if !have("cargo") {
            out.push("cargo (Rust): see https://rustup.rs".to_string());
        }
        if !have("cmake") {
            out.push(format!(
                "cmake (the load balancer's zlib-ng): {}",
                install("cmake", Some("cmake"))
            ));
        }
        if !have("cc") {
            out.push(if cfg!(target_os = "macos") {
                "a C compiler: xcode-select --install".to_string()
            } else {
                format!("a C compiler: {}", install("build-essential", None))
            });
        }
    }
    if kind.containers() {
        out.extend(offline::prerequisites(builds_offline_images));
    } else {
        let postgres_installed = have_postgres_server() && have("psql");
        if !answers(5432) && !postgres_installed {
            out.push(format!(
                "PostgreSQL (the native runtime starts it on 127.0.0.1): {}",
                install("postgresql", Some("postgresql@16"))
            ));
        }
        if !answers(6379) && !have("redis-server") {
            out.push(format!("Redis: {}", install("redis-server", Some("redis"))));
        }
        if !have("redis-cli") {
            out.push(format!(
                "redis-cli: {}",
                install("redis-tools", Some("redis"))
            ));
        }
    }
    out
}

pub fn check(kind: Kind, builds_offline_images: bool, skip_build: bool) -> anyhow::Result<()> {
    let missing = missing(kind, builds_offline_images, !skip_build);
    if !missing.is_empty() {
        bail!(
            "the {} runtime needs what this machine lacks:\n  - {}",
            kind.name(),
            missing.join("\n  - ")
        );
    }
    Ok(())
}

/// Builds the whole workspace (a part alone would re-resolve features and rebuild shared
/// crates): release binaries for benchmarks, debug for smoke runs.
pub async fn build(root: &Path, profile: &str) -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::new("cargo");
    cmd.current_dir(root)
        .args(["build", "--workspace", "--quiet"]);
    if profile == "release" {
        cmd.arg("--release");
        eprintln!("lab: building release binaries (the first time takes several minutes, then only what changed)");
    }
    let status = cmd.status().await.context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    Ok(())
}
