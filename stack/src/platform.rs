//! What differs between the machines the lab runs on. Every Linux-only call of the lab
//! (`/proc`, `sched_setaffinity`, `taskset`, `ss`) is in this file, behind
//! `cfg(target_os = "linux")`, with a portable path beside it (macOS: `ps`, `lsof`) or a
//! refusal the caller turns into one line. The rest of the lab calls these functions only.

/// A signal the native runtime sends to a process it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A graceful stop.
    Term,
    /// A crash.
    Kill,
    /// Alive but silent.
    Stop,
    /// Back from `Stop`.
    Cont,
}

/// Sends `sig` to `pid`; false when it could not (no such process, not ours, no signals).
#[cfg(unix)]
pub fn signal(pid: i32, sig: Signal) -> bool {
    let sig = match sig {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
        Signal::Stop => libc::SIGSTOP,
        Signal::Cont => libc::SIGCONT,
    };
    // SAFETY: kill(2) has no memory preconditions; the caller checked the pid is its own.
    unsafe { libc::kill(pid, sig) == 0 }
}

#[cfg(not(unix))]
pub fn signal(_pid: i32, _sig: Signal) -> bool {
    false
}

/// A process's state letter (`R`, `S`, `T` stopped, `Z` zombie, …) and command name, or
/// `None` when it does not exist.
#[cfg(target_os = "linux")]
pub fn process_state(pid: i32) -> Option<(char, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Some((state, comm.trim().to_string()))
}

/// A process's state letter and command name, asked of `ps` (macOS, the BSDs).
#[cfg(all(unix, not(target_os = "linux")))]
pub fn process_state(pid: i32) -> Option<(char, String)> {
    let out = std::process::Command::new("ps")
        .args(["-o", "stat=", "-o", "comm=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    parse_ps_line(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(not(unix))]
pub fn process_state(_pid: i32) -> Option<(char, String)> {
    None
}

/// `ps -o stat= -o comm=`'s line: `"Ss   /path/to/gateway"` → ('S', "gateway").
pub fn parse_ps_line(line: &str) -> Option<(char, String)> {
    let line = line.lines().next()?.trim();
    let (stat, comm) = line.split_once(char::is_whitespace)?;
    let state = stat.chars().next()?;
    let name = comm.trim().rsplit('/').next()?.to_string();
    Some((state, name))
}

/// Why the native runtime cannot run here, if it cannot.
pub fn native_refusal() -> Option<&'static str> {
    if cfg!(unix) {
        None
    } else {
        Some("the native runtime needs Linux or macOS; on Windows run the lab from Docker: docker compose run --rm lab <command>")
    }
}

/// Whether this machine can pin processes to CPUs (Linux only).
pub const CAN_PIN: bool = cfg!(target_os = "linux");

/// Makes the command's process run on `cpu` only (Linux); elsewhere the plan never pins.
#[cfg(target_os = "linux")]
pub fn pin_command(cmd: &mut tokio::process::Command, cpu: usize) {
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn pin_command(_cmd: &mut tokio::process::Command, _cpu: usize) {}

/// Moves every thread of a running process to the CPUs of `list` (`0-3`); false when it
/// could not.
#[cfg(target_os = "linux")]
pub fn pin_process(list: &str, pid: &str) -> bool {
    std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", list, pid])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(not(target_os = "linux"))]
pub fn pin_process(_list: &str, _pid: &str) -> bool {
    false
}

/// Who listens on a TCP port (None when nobody does or it cannot be told).
#[cfg(target_os = "linux")]
pub fn port_holder(port: u16) -> Option<String> {
    let out = std::process::Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    Some(
        line.split("users:((")
            .nth(1)
            .map(|u| u.trim_end_matches(')').to_string())
            .unwrap_or_else(|| "another process".to_string()),
    )
}

/// Who listens on a TCP port, from `lsof` (macOS has no `ss`).
#[cfg(all(unix, not(target_os = "linux")))]
pub fn port_holder(port: u16) -> Option<String> {
    let out = std::process::Command::new("lsof")
        .args(["-nP", &format!("-iTCP:{port}"), "-sTCP:LISTEN", "-Fcp"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = text.lines().find_map(|l| l.strip_prefix('p'))?;
    let command = text.lines().find_map(|l| l.strip_prefix('c'))?;
    Some(format!("{command} (pid {pid})"))
}

#[cfg(not(unix))]
pub fn port_holder(_port: u16) -> Option<String> {
    None
}

/// Whether the lab runs as root (the offline images' debootstrap needs it).
#[cfg(unix)]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(not(unix))]
pub fn is_root() -> bool {
    false
}

/// `uid:gid` of this process, for a container that writes files the user must own.
#[cfg(unix)]
pub fn user_and_group() -> Option<String> {
    // SAFETY: getuid and getgid have no preconditions.
    Some(unsafe { format!("{}:{}", libc::getuid(), libc::getgid()) })
}

#[cfg(not(unix))]
pub fn user_and_group() -> Option<String> {
    None
}

/// The command that installs a package here: `apt-get` on Linux, Homebrew on macOS.
pub fn install(debian: &str, brew: Option<&str>) -> String {
    if cfg!(target_os = "macos") {
        match brew {
            Some(formula) => format!("brew install {formula}"),
            None => format!("install {debian} (Homebrew has no formula for it)"),
        }
    } else if cfg!(target_os = "linux") {
        format!("sudo apt-get install -y {debian}")
    } else {
        format!("install {debian}")
    }
}

/// Writes a file that holds secrets (`.env`, Swarm's stack file) readable by its owner
/// alone: made 0600 from the start in a file beside it, then renamed over the old one, so
/// that no other user of the machine can read it even for a moment.
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fresh = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&fresh)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
        })
        .and_then(|()| std::fs::rename(&fresh, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&fresh);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_lines_give_state_and_the_binary_name() {
        assert_eq!(
            parse_ps_line("Ss   /work/target/release/gateway\n"),
            Some(('S', "gateway".to_string()))
        );
        assert_eq!(
            parse_ps_line("T+ load_balancer"),
            Some(('T', "load_balancer".to_string()))
        );
        assert_eq!(parse_ps_line(""), None);
        assert_eq!(parse_ps_line("Z"), None);
    }

    #[test]
    fn this_process_is_alive_and_running() {
        let (state, _name) = process_state(std::process::id() as i32).expect("our own state");
        assert!(matches!(state, 'R' | 'S' | 'D'), "{state}");
        // A pid beyond Linux's and macOS's largest does not exist.
        assert_eq!(process_state(99_999_999), None);
    }

    #[test]
    fn install_hints_name_this_platform_package_manager() {
        let hint = install("cmake", Some("cmake"));
        if cfg!(target_os = "linux") {
            assert_eq!(hint, "sudo apt-get install -y cmake");
        }
        assert!(hint.contains("cmake"));
    }
}
