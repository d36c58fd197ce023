//! What the process can learn about the machine it runs on: its own CPU time, and the CPU
//! limit its container imposes. `/proc` and cgroups are read on Linux only
//! (`cfg(target_os = "linux")`); elsewhere the process's CPU time comes from `getrusage` and
//! the machine-wide figures are unknown (`None`), which the report says. The load test records both, so that the report can bound a
//! run by CPU (utilisation law: a gateway limited to L CPUs, spending D CPU-seconds per
//! request, serves at most L / D requests per second).

/// A file of `/proc` (`stat`, `cpuinfo`, `self/stat`): Linux only, `None` elsewhere or when
/// it cannot be read.
#[cfg(target_os = "linux")]
pub fn proc_file(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{name}")).ok()
}

#[cfg(not(target_os = "linux"))]
pub fn proc_file(_name: &str) -> Option<String> {
    None
}

/// CPU time (user + system) this process has used, in seconds; 0 where it cannot be read.
#[cfg(target_os = "linux")]
pub fn process_cpu_seconds() -> f64 {
    proc_file("self/stat")
        .map(|stat| cpu_seconds_from_stat(&stat))
        .unwrap_or(0.0)
}

/// CPU time (user + system) this process has used, in seconds, from `getrusage`.
#[cfg(all(unix, not(target_os = "linux")))]
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[cfg(not(unix))]
pub fn process_cpu_seconds() -> f64 {
    0.0
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds.
pub fn cpu_seconds_from_stat(stat: &str) -> f64 {
    // The command name (field 2) may hold spaces and parentheses: fields after its last ") "
    // start at the state, field 3.
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state; Linux's USER_HZ
    // is 100 on every architecture the lab runs on.
    (ticks(11) + ticks(12)) / 100.0
}

/// Busy and total jiffies of the whole machine, from the first line of `/proc/stat`
/// (`cpu user nice system idle iowait irq softirq steal ...`); idle and iowait are not busy.
pub fn machine_cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    Some((total - v[3] - v[4], total))
}

/// The machine's busy and total CPU jiffies now (Linux; `None` elsewhere).
pub fn machine_cpu_now() -> Option<(u64, u64)> {
    machine_cpu_times(&proc_file("stat")?)
}

/// Share of the machine's CPU time that was busy between two readings (0..=1).
pub fn busy_share(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let total = after.1.checked_sub(before.1)?;
    let busy = after.0.checked_sub(before.0)?;
    (total > 0).then(|| busy as f64 / total as f64)
}

/// The CPUs a cgroup v2 `cpu.max` line allows (`"50000 100000"` → 0.5); `None` for `max`
/// (no limit) or a line that cannot be read.
pub fn cpu_limit_from_cpu_max(line: &str) -> Option<f64> {
    let mut parts = line.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok()?;
    let period: f64 = parts.next().unwrap_or("100000").parse().ok()?;
    (quota > 0.0 && period > 0.0).then_some(quota / period)
}

/// The CPU limit of this process's cgroup (`docker run --cpus`, compose `cpus:`), if any:
/// cgroup v2's `cpu.max`, else v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota -1: none).
#[cfg(target_os = "linux")]
pub fn cpu_limit() -> Option<f64> {
    if let Ok(line) = std::fs::read_to_string("/sys/fs/cgroup/cpu.max") {
        return cpu_limit_from_cpu_max(&line);
    }
    let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/cpu/{f}")).ok();
    let (quota, period) = (read("cpu.cfs_quota_us")?, read("cpu.cfs_period_us")?);
    cpu_limit_from_cpu_max(&format!("{} {}", quota.trim(), period.trim()))
}

/// No cgroups outside Linux: no container CPU limit to read.
#[cfg(not(target_os = "linux"))]
pub fn cpu_limit() -> Option<f64> {
    None
}

/// The machine's processors, whatever this process's cgroup allows it.
pub fn host_cores() -> usize {
    let listed = proc_file("cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    if listed > 0 {
        listed
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The host facts every service shows in its `/config`.
pub fn facts() -> records::record::HostLimits {
    records::record::HostLimits {
        cores: Some(host_cores() as u32),
        cpu_limit: cpu_limit(),
        other: Default::default(),
    }
}

/// This process's open-files limit, `(soft, hard)`, after raising the soft one toward `want`
/// (`None`: as high as the hard one allows). A process may raise its soft limit up to its
/// hard limit without privileges; a `want` above the hard limit is left to the caller to
/// refuse, with the limits unchanged. Where the hard limit is unlimited and the system
/// refuses that as a soft limit (macOS), it settles for 10240. Unlimited reads as
/// `u64::MAX`; `None` where the limit cannot be known, or outside Unix.
#[cfg(unix)]
pub fn raise_open_files(want: Option<u64>) -> Option<(u64, u64)> {
    // rlim_t is u64 on Linux and macOS, not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    let read = || {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        let wide = |l: libc::rlim_t| match l {
            libc::RLIM_INFINITY => u64::MAX,
            l => l as u64,
        };
        Some((limit, wide(limit.rlim_cur), wide(limit.rlim_max)))
    };
    let (mut limit, soft, hard) = read()?;
    let target = match want {
        Some(w) if w > hard => return Some((soft, hard)),
        Some(w) => w,
        None => hard,
    };
    if soft >= target {
        return Some((soft, hard));
    }
    for wanted in [target, target.min(10240)] {
        limit.rlim_cur = match wanted {
            u64::MAX => libc::RLIM_INFINITY,
            n => n as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct it is given; a soft limit up to the hard one
        // is allowed without privileges.
        if wanted > soft && unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
            break;
        }
    }
    read().map(|(_, soft, hard)| (soft, hard))
}

#[cfg(not(unix))]
pub fn raise_open_files(_want: Option<u64>) -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    /// Raised as far as asked (or allowed), and a second call changes nothing.
    #[cfg(unix)]
    #[test]
    fn the_open_files_soft_limit_is_raised_to_the_hard_one() {
        let (soft, hard) = super::raise_open_files(None).expect("known on Unix");
        assert!(soft == hard || soft == 10240, "{soft} {hard}");
        assert_eq!(super::raise_open_files(None), Some((soft, hard)));
        // Asking for less changes nothing; more than the hard limit is left to the caller.
        assert_eq!(super::raise_open_files(Some(1)), Some((soft, hard)));
        if hard < u64::MAX {
            assert_eq!(super::raise_open_files(Some(hard + 1)), Some((soft, hard)));
        }
    }

    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_are_read() {
        // pid (comm) state ppid ... utime=250 stime=50 at fields 14 and 15.
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert!((cpu_seconds_from_stat(stat) - 3.0).abs() < 1e-9);
        assert_eq!(cpu_seconds_from_stat("garbage"), 0.0);
    }

    #[test]
    fn cpu_max_lines_give_the_limit() {
        assert_eq!(cpu_limit_from_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(cpu_limit_from_cpu_max("200000 100000"), Some(2.0));
        assert_eq!(cpu_limit_from_cpu_max("max 100000"), None);
        // cgroup v1's "no quota", as cpu_limit() joins the two files.
        assert_eq!(cpu_limit_from_cpu_max("-1 100000"), None);
        assert_eq!(cpu_limit_from_cpu_max(""), None);
    }

    #[test]
    fn machine_cpu_is_busy_time_over_total() {
        // user 100, nice 0, system 50, idle 800, iowait 50: busy 150 of 1000.
        let (busy, total) =
            machine_cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3").unwrap();
        assert_eq!((busy, total), (150, 1000));
        assert_eq!(busy_share((150, 1000), (250, 1200)), Some(0.5));
        assert_eq!(busy_share((150, 1000), (150, 1000)), None);
        assert_eq!(machine_cpu_times("intr 1 2 3"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        // The kernel counts in 10 ms ticks: spin until one shows, for at most 10 s.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        while process_cpu_seconds() == 0.0 && std::time::Instant::now() < deadline {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        assert!(process_cpu_seconds() > 0.0);
    }
}
