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

/// Raises the soft open-files limit to [`needed`] where it is lower, or refuses in one line
/// when the hard limit is lower still. Where the limit cannot be known, the run tries.
pub fn ensure(users: usize) -> anyhow::Result<()> {
    let need = needed(users);
    let Some((soft, hard)) = probe::host::raise_open_files(Some(need)) else {
        return Ok(());
    };
    if soft >= need {
        return Ok(());
    }
    anyhow::bail!(
        "{users} users need about {need} open files but this shell allows {} (ulimit -n): \
         raise it (ulimit -n {need}) or run fewer users",
        if hard < need { hard } else { soft }
    )
}
