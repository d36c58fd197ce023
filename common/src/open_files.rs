//! A server that holds a connection per client raises its own open-files limit.
//!
//! Each virtual user keeps its connection to the load balancer open for the whole run, so the
//! load balancer holds one socket per user: 1000 users need more than the soft limit of 1024
//! many Linux shells give a process (256 on macOS), and past it new connections are refused.
//! A process may raise its soft limit up to its hard limit without privileges, as servers
//! such as nginx (`worker_rlimit_nofile`) let their operator do.

/// Raises the soft open-files limit to the hard one (to 10240 where the hard one is
/// unlimited and the system refuses it, as macOS does); the limit the process now has, if it
/// can be known.
#[cfg(unix)]
pub fn raise_to_hard_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur == limit.rlim_max {
        return as_u64(limit.rlim_cur);
    }
    let soft = limit.rlim_cur;
    for wanted in [limit.rlim_max, 10240] {
        if wanted <= soft && wanted != libc::RLIM_INFINITY {
            continue;
        }
        limit.rlim_cur = wanted;
        // SAFETY: setrlimit reads the struct it is given; a soft limit up to the hard one is
        // allowed without privileges.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
            return as_u64(wanted);
        }
    }
    as_u64(soft)
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux and macOS, not on every Unix.
fn as_u64(limit: libc::rlim_t) -> Option<u64> {
    (limit != libc::RLIM_INFINITY).then_some(limit as u64)
}

/// No per-process open-files limit to raise outside Unix.
#[cfg(not(unix))]
pub fn raise_to_hard_limit() -> Option<u64> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    /// After the call the soft limit is the hard one (or the process's whole limit is
    /// unlimited); a second call changes nothing.
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let now = super::raise_to_hard_limit();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(now, super::as_u64(limit.rlim_cur));
        assert!(limit.rlim_cur == limit.rlim_max || limit.rlim_cur == 10240);
        assert_eq!(super::raise_to_hard_limit(), now);
    }
}
