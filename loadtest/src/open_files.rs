//! Every user holds its own connection (`http1`), so a run holds about one socket per user
//! beside the files every process has: 1000 users meet macOS's usual soft limit of 256 open
//! files. Before a run the load generator raises its soft limit to what the users need (up
//! to the hard limit, which a process may do without privileges) or stops with one line
//! naming the limit.

/// Open files a run of `users` needs: one connection each, and room for the rest (logs,
/// the sampler's clients, Goose's own).
pub fn needed(users: usize) -> u64 {
    users as u64 + 256
}

/// Raises the soft open-files limit to [`needed`] where it is lower.
#[cfg(unix)]
pub fn ensure(users: usize) -> anyhow::Result<()> {
    let need = needed(users);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Ok(()); // Not knowable: let the run try.
    }
    // rlim_t is u64 on Linux and macOS but not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    let (soft, hard) = (limit.rlim_cur as u64, limit.rlim_max as u64);
    if limit.rlim_cur == libc::RLIM_INFINITY || soft >= need {
        return Ok(());
    }
    let refuse = |allowed: u64| {
        anyhow::anyhow!(
            "{users} users need about {need} open files but this shell allows {allowed} (ulimit -n): \
             raise it (ulimit -n {need}) or run fewer users"
        )
    };
    if limit.rlim_max != libc::RLIM_INFINITY && hard < need {
        return Err(refuse(hard));
    }
    limit.rlim_cur = need as libc::rlim_t;
    // SAFETY: setrlimit reads the struct it is given; a soft limit up to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(refuse(soft));
    }
    Ok(())
}

/// No per-process open-files limit to raise outside Unix.
#[cfg(not(unix))]
pub fn ensure(_users: usize) -> anyhow::Result<()> {
    Ok(())
}
