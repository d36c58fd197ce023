//! The load generator and the open-files limit (macOS's usual soft limit is 256): with a
//! soft limit too low for the users and a hard limit above it, it raises its own limit and
//! goes on; with a hard limit too low, it stops before the run with one line naming it.
#![cfg(unix)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The loadtest binary with an open-files limit of (soft, hard), 1000 users, and a target
/// that does not answer (so that a run which got past the check fails fast, differently).
fn loadtest_with_limit(soft: u64, hard: u64) -> (i32, String) {
    let results =
        std::env::temp_dir().join(format!("scalelab-nofile-{}-{soft}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    cmd.env_clear()
        .env("LOADTEST_USERS", "1000")
        .env("LOADTEST_TARGET_URL", "http://127.0.0.1:9")
        .env("LOADTEST_READY_TIMEOUT_SECS", "1")
        .env("LOADTEST_RESULTS_DIR", &results);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("loadtest runs");
    let _ = std::fs::remove_dir_all(results);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_hard_limit_too_low_for_the_users_is_one_line_before_the_run() {
    let (code, err) = loadtest_with_limit(200, 300);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("1000 users need about 1256 open files but this shell allows 300 (ulimit -n)"),
        "{err}"
    );
}

#[test]
fn an_old_unprefixed_name_still_works_with_one_notice() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .env_clear()
        .env("USERS", "1000000")
        // Every user started within the run's 60 s, so the plan itself holds.
        .env("LOADTEST_RATE", "1000000")
        .env("LOADTEST_TARGET_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(
            "loadtest: deprecated: USERS without the LOADTEST_ prefix (use LOADTEST_USERS)"
        ),
        "{err}"
    );
    // USERS was read: a million users need more open files than any shell allows here.
    assert!(lines[1].contains("1000000 users need about"), "{err}");
}

#[test]
fn a_soft_limit_below_the_hard_one_is_raised() {
    let (code, err) = loadtest_with_limit(200, 4096);
    // Past the check: the run fails later, because nothing answers at the target.
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("open files"), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
}
