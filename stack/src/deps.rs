//! The Postgres and Redis that the tests and the native runtime use, on loopback, with data,
//! logs and pids under `.scalelab/` (git-ignored): `lab deps up|down|status`, and the native
//! runtime's `up`. A server already answering on the port is used as it is and never stopped.
//!
//! The Postgres password: `PG_PASSWORD` (the native runtime passes `.env`'s
//! POSTGRES_PASSWORD), else `.env`'s POSTGRES_PASSWORD, else the one the lab's Postgres was
//! made with, else a random one. The password of the Postgres the lab made is kept in
//! `.scalelab/postgres.password` (its owner's alone; the tests read it) and moved to the
//! wanted one at each `up` (one made before with `postgres` included). A Postgres the lab did
//! not start is never changed. `PG_PORT` (5432), `REDIS_PORT` (6379), `PG_DB` (scalelab),
//! `DEPS_STATE` (`.scalelab`) and `DEPS_ENV_FILE` (`.env`) override.

use crate::platform::{self, Signal};
use crate::settings::parse_env_file;
use anyhow::{bail, Context};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where the lab's Postgres and Redis listen and keep their state, and the password wanted.
#[derive(Debug, Clone)]
pub struct Deps {
    state: PathBuf,
    pg_port: u16,
    redis_port: u16,
    db: String,
    password: String,
    /// Say what was done (`lab deps`), or nothing (the native runtime's `up`).
    verbose: bool,
}

impl Deps {
    /// The checkout's, with the environment's overrides; `password` (the settings'
    /// POSTGRES_PASSWORD) wins over `PG_PASSWORD` and `.env`.
    pub fn new(root: &Path, password: Option<&str>) -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let port = |name: &str, default: u16| -> anyhow::Result<u16> {
            var(name).map_or(Ok(default), |v| {
                v.parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .with_context(|| format!("{name} must be a TCP port, not {v:?}"))
            })
        };
        let state = var("DEPS_STATE").map_or_else(|| root.join(".scalelab"), PathBuf::from);
        let env_file = var("DEPS_ENV_FILE").map_or_else(|| root.join(".env"), PathBuf::from);
        let from_env_file = match std::fs::read_to_string(&env_file) {
            Ok(text) => parse_env_file(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", env_file.display()))?
                .into_iter()
                .rev()
                .find(|(_, k, _)| k == "POSTGRES_PASSWORD")
                .map(|(_, _, v)| v)
                .filter(|v| !v.is_empty()),
            Err(_) => None,
        };
        let mut deps = Deps {
            pg_port: port("PG_PORT", 5432)?,
            redis_port: port("REDIS_PORT", 6379)?,
            db: var("PG_DB").unwrap_or_else(|| "scalelab".into()),
            password: String::new(),
            verbose: true,
            state,
        };
        deps.password = password
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .or_else(|| var("PG_PASSWORD"))
            .or(from_env_file)
            .or_else(|| deps.recorded())
            .unwrap_or_else(crate::settings::random_secret);
        Ok(deps)
    }

    /// Says nothing of what it does (the native runtime's `up` has its own lines).
    pub fn quiet(mut self) -> Self {
        self.verbose = false;
        self
    }

    fn say(&self, what: &str) {
        if self.verbose {
            eprintln!("deps: {what}");
        }
    }

    fn pgdata(&self) -> PathBuf {
        self.state.join("postgres")
    }

    fn record(&self) -> PathBuf {
        self.state.join("postgres.password")
    }

    fn recorded(&self) -> Option<String> {
        std::fs::read_to_string(self.record())
            .ok()
            .map(|p| p.trim_end().to_string())
            .filter(|p| !p.is_empty())
    }

    /// Starts what is not running and waits until both answer.
    pub fn up(&self) -> anyhow::Result<()> {
        for dir in ["logs", "pids"] {
            std::fs::create_dir_all(self.state.join(dir))?;
        }
        self.postgres_up()?;
        self.redis_up()
    }

    /// Stops only what `up` started.
    pub fn down(&self) -> anyhow::Result<()> {
        let started = self.state.join("pids/postgres.started");
        if let Ok(pgdata) = std::fs::read_to_string(&started) {
            match pg_bin("pg_ctl") {
                Ok(pg_ctl) => {
                    let _ = as_postgres(&pg_ctl)
                        .args(["-D", pgdata.trim(), "-m", "fast", "-w", "stop"])
                        .output();
                    self.say("postgres stopped");
                }
                Err(e) => eprintln!("deps: postgres not stopped: {e:#}"),
            }
            std::fs::remove_file(&started)?;
        }
        let pidfile = self.state.join("pids/redis.pid");
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            if let Ok(pid) = pid.trim().parse() {
                platform::signal(pid, Signal::Term);
            }
            std::fs::remove_file(&pidfile)?;
            self.say("redis stopped");
        }
        Ok(())
    }

    /// Whether each answers, one line each.
    pub fn status(&self) -> String {
        let state = |up: bool, port: u16| {
            if up {
                format!("up on 127.0.0.1:{port}")
            } else {
                "down".into()
            }
        };
        format!(
            "deps: postgres: {}\ndeps: redis: {}\n",
            state(self.pg_answers(&self.password), self.pg_port),
            state(self.redis_answers(), self.redis_port)
        )
    }

    /// psql as the lab's superuser with `password` (in the environment, never on a command
    /// line, which any local user can read).
    fn psql(&self, password: &str) -> Command {
        let mut cmd = Command::new("psql");
        cmd.args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-p"])
            .arg(self.pg_port.to_string())
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "2")
            .stdin(Stdio::null());
        cmd
    }

    /// The first line psql prints for `sql`, if it ran.
    fn query(&self, password: &str, sql: &str) -> Option<String> {
        let out = self.psql(password).args(["-tAc", sql]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn pg_answers(&self, password: &str) -> bool {
        self.query(password, "SELECT 1").as_deref() == Some("1")
    }

    fn pg_listens(&self) -> bool {
        pg_bin("pg_isready").is_ok_and(|bin| {
            Command::new(bin)
                .args(["-q", "-h", "127.0.0.1", "-t", "2", "-p"])
                .arg(self.pg_port.to_string())
                .output()
                .is_ok_and(|o| o.status.success())
        })
    }

    /// Whether the Postgres on the port is the one the lab made: its data folder's server
    /// runs (a marker alone could outlive it: a reboot, another server started since).
    fn ours(&self) -> bool {
        let made = std::fs::metadata(self.pgdata().join("PG_VERSION")).is_ok_and(|m| m.len() > 0);
        made && pg_bin("pg_ctl").is_ok_and(|bin| {
            as_postgres(&bin)
                .arg("status")
                .arg("-D")
                .arg(self.pgdata())
                .output()
                .is_ok_and(|o| o.status.success())
        })
    }

    /// The lab's own Postgres, answering with the password it was made with, is given the
    /// wanted one: the statement on stdin, a quote in the password doubled.
    fn move_password(&self) -> bool {
        let old = self.recorded().unwrap_or_else(|| "postgres".into());
        if old == self.password || !self.ours() || !self.pg_answers(&old) {
            return false;
        }
        let statement = format!(
            "ALTER ROLE postgres PASSWORD '{}';\n",
            self.password.replace('\'', "''")
        );
        let moved = self
            .psql(&old)
            .args(["-v", "ON_ERROR_STOP=1", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .expect("piped")
                    .write_all(statement.as_bytes())?;
                child.wait()
            })
            .is_ok_and(|s| s.success());
        if moved {
            self.say(
                "postgres: the lab's Postgres now has the password of .env (POSTGRES_PASSWORD)",
            );
        }
        moved
    }

    fn keep_password(&self) -> anyhow::Result<()> {
        Ok(platform::write_private(
            &self.record(),
            &format!("{}\n", self.password),
        )?)
    }

    fn postgres_up(&self) -> anyhow::Result<()> {
        let port = self.pg_port;
        if self.pg_listens() && !self.pg_answers(&self.password) {
            self.move_password();
        }
        if self.pg_answers(&self.password) {
            self.say(&format!("postgres already answering on 127.0.0.1:{port}"));
        } else if self.pg_listens() {
            bail!("a Postgres on 127.0.0.1:{port} refuses the lab's password; set POSTGRES_PASSWORD in .env to its postgres password, or stop it (the lab then starts its own)");
        } else {
            self.postgres_start()?;
        }
        // Kept for the tests (common/src/testing.rs), whoever started the server.
        self.keep_password()?;
        let exists = format!("SELECT 1 FROM pg_database WHERE datname='{}'", self.db);
        if self.query(&self.password, &exists).as_deref() != Some("1") {
            let create = format!("CREATE DATABASE {}", self.db);
            let out = self.psql(&self.password).args(["-qc", &create]).output()?;
            if !out.status.success() {
                bail!(
                    "cannot create database {}: {}",
                    self.db,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        self.say(&format!("database {} ready", self.db));
        Ok(())
    }

    fn postgres_start(&self) -> anyhow::Result<()> {
        if Command::new("psql").arg("--version").output().is_err() {
            bail!("psql not found; install it with: {}", install_postgres());
        }
        let (pgdata, logs) = (self.pgdata(), self.state.join("logs"));
        let root = platform::is_root();
        if std::fs::metadata(pgdata.join("PG_VERSION")).map_or(true, |m| m.len() == 0) {
            std::fs::create_dir_all(&pgdata)?;
            let pwfile = self.state.join("initdb.password");
            platform::write_private(&pwfile, &format!("{}\n", self.password))?;
            if root {
                give_to_postgres(&pgdata, true)?;
                give_to_postgres(&pwfile, false)?;
            }
            let log = std::fs::File::create(logs.join("initdb.log"))?;
            let made = as_postgres(&pg_bin("initdb")?)
                .arg("-D")
                .arg(&pgdata)
                .args(["-U", "postgres", "-A", "scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display()))
                .stdout(log.try_clone()?)
                .stderr(log)
                .status();
            let _ = std::fs::remove_file(&pwfile);
            if !made.is_ok_and(|s| s.success()) {
                bail!("initdb failed, see {}", logs.join("initdb.log").display());
            }
        }
        let log = logs.join("postgres.log");
        if root {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)?;
            give_to_postgres(&logs, false)?;
            give_to_postgres(&log, false)?;
        }
        // Sized for a lab: enough connections for every pool of a 3-gateway stack and its tests.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories=/tmp -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.pg_port
        );
        let started = as_postgres(&pg_bin("pg_ctl")?)
            .arg("-D")
            .arg(&pgdata)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .stdout(Stdio::null())
            .status();
        if !started.is_ok_and(|s| s.success()) {
            bail!("postgres did not start, see {}", log.display());
        }
        std::fs::write(
            self.state.join("pids/postgres.started"),
            format!("{}\n", pgdata.display()),
        )?;
        if !self.pg_answers(&self.password) && !self.move_password() {
            bail!("the lab's Postgres ({}) refuses the password of .env and the one it was made with; set POSTGRES_PASSWORD to that one, or delete {} (its data is reseeded)", pgdata.display(), pgdata.display());
        }
        self.say(&format!(
            "postgres started on 127.0.0.1:{} (data {})",
            self.pg_port,
            pgdata.display()
        ));
        Ok(())
    }

    fn redis_answers(&self) -> bool {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.redis_port.to_string())
            .arg("ping")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
    }

    fn redis_up(&self) -> anyhow::Result<()> {
        let port = self.redis_port;
        if self.redis_answers() {
            self.say(&format!("redis already answering on 127.0.0.1:{port}"));
            return Ok(());
        }
        let dir = self.state.join("redis");
        std::fs::create_dir_all(&dir)?;
        let log = self.state.join("logs/redis.log");
        // appendonly: the job stream survives a Redis restart, as the lab's queue promises.
        let started = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--dir"])
            .arg(&dir)
            .args(["--appendonly", "yes", "--daemonize", "yes", "--save", ""])
            .arg("--pidfile")
            .arg(self.state.join("pids/redis.pid"))
            .arg("--logfile")
            .arg(&log)
            .status();
        match started {
            Err(_) => bail!(
                "redis-server not found; install it with: {}",
                platform::install("redis-server", Some("redis"))
            ),
            Ok(s) if !s.success() => bail!("redis did not start, see {}", log.display()),
            Ok(_) => {}
        }
        for _ in 0..50 {
            if self.redis_answers() {
                self.say(&format!("redis started on 127.0.0.1:{port}"));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("redis did not start, see {}", log.display())
    }
}

fn install_postgres() -> String {
    platform::install("postgresql", Some("postgresql@16"))
}

/// A Postgres server binary: on the PATH, else the newest of Debian's
/// `/usr/lib/postgresql/<v>/bin` and Homebrew's keg-only `postgresql@<v>`.
fn pg_bin(name: &str) -> anyhow::Result<PathBuf> {
    if Command::new(name).arg("--version").output().is_ok() {
        return Ok(PathBuf::from(name));
    }
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for (parent, prefix) in [
        ("/usr/lib/postgresql", ""),
        ("/opt/homebrew/opt", "postgresql@"),
        ("/usr/local/opt", "postgresql@"),
    ] {
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let name_of = entry.file_name().to_string_lossy().to_string();
            let Some(version) = name_of
                .strip_prefix(prefix)
                .and_then(|v| v.split('.').next()?.parse().ok())
            else {
                continue;
            };
            let bin = entry.path().join("bin").join(name);
            if bin.exists() {
                found.push((version, bin));
            }
        }
    }
    found.sort();
    found.pop().map(|(_, bin)| bin).with_context(|| {
        format!(
            "PostgreSQL server binaries not found; install them with: {}",
            install_postgres()
        )
    })
}

/// Postgres refuses to run as root: as root, it runs as the `postgres` user.
fn as_postgres(bin: &Path) -> Command {
    if platform::is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin);
        cmd
    } else {
        Command::new(bin)
    }
}

/// `chown postgres:` (`-R` for a folder the lab made for it alone).
fn give_to_postgres(path: &Path, recursive: bool) -> anyhow::Result<()> {
    let mut chown = Command::new("chown");
    if recursive {
        chown.arg("-R");
    }
    let status = chown
        .arg("postgres:")
        .arg(path)
        .status()
        .context("cannot run chown")?;
    if !status.success() {
        bail!("cannot give {} to the postgres user", path.display());
    }
    Ok(())
}
