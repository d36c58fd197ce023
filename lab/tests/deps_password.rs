//! The Postgres the lab starts natively (`lab deps up`) takes its password from `.env`, and
//! one made before with the old `postgres` is moved to the new password at its next start,
//! stopped or running. A real Postgres (Debian's binaries) on free ports in a state folder of
//! its own; a server the script did not start is never touched.

use common::testing::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Deps {
    state: PathBuf,
    pg_port: u16,
    redis_port: u16,
}

impl Deps {
    /// A state folder of its own for the test `tag` (tests run side by side).
    fn new(tag: &str) -> Self {
        let state = std::env::temp_dir().join(format!("lab-deps-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        // As root the script runs Postgres as `postgres`, which must reach the folder.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Deps {
            state,
            pg_port: free_port(),
            redis_port: free_port(),
        }
    }

    /// `lab deps <verb>`, with PG_PASSWORD when given (otherwise .env's or the kept one).
    fn run(&self, verb: &str, password: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lab"));
        cmd.args(["deps", verb])
            .current_dir(repo())
            .env("DEPS_STATE", &self.state)
            .env("DEPS_ENV_FILE", self.state.join(".env"))
            .env("PG_PORT", self.pg_port.to_string())
            .env("REDIS_PORT", self.redis_port.to_string())
            .env_remove("PG_PASSWORD");
        if let Some(p) = password {
            cmd.env("PG_PASSWORD", p);
        }
        let out = cmd.output().expect("lab deps runs");
        assert!(
            out.status.success(),
            "deps {verb}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn logs_in_with(&self, password: &str) -> bool {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                "SELECT 1",
            ])
            .arg("-p")
            .arg(self.pg_port.to_string())
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "3")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn kept(&self) -> String {
        std::fs::read_to_string(self.state.join("postgres.password"))
            .unwrap_or_default()
            .trim_end()
            .to_string()
    }
}

impl Drop for Deps {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_lab"))
            .args(["deps", "down"])
            .current_dir(repo())
            .env("DEPS_STATE", &self.state)
            .output();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

#[test]
fn the_labs_postgres_takes_the_password_of_env_and_an_old_one_moves_to_it() {
    if Command::new("psql").arg("--version").output().is_err() {
        panic!("psql is missing: install postgresql-client (.ci/run does)");
    }
    let deps = Deps::new("moved");
    // A Postgres made as before: with `postgres`, and no kept password.
    deps.run("up", Some("postgres"));
    assert!(deps.logs_in_with("postgres"));
    std::fs::remove_file(deps.state.join("postgres.password")).unwrap();
    deps.run("down", None);

    // Stopped, then started with .env's new password: moved to it.
    let new = "n3w'pa$$ \"word\\";
    deps.run("up", Some(new));
    assert!(deps.logs_in_with(new), "the new password logs in");
    assert!(!deps.logs_in_with("postgres"), "the old one no longer does");
    assert_eq!(deps.kept(), new);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(deps.state.join("postgres.password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the kept password is its owner's alone");
    }

    // Running, and .env changes again: moved at the next `up`.
    deps.run("up", Some("second-password"));
    assert!(deps.logs_in_with("second-password"));
    assert!(!deps.logs_in_with(new));

    // Without PG_PASSWORD (the tests' `make deps-up`): the kept one, unchanged.
    deps.run("up", None);
    assert!(deps.logs_in_with("second-password"));

    // Without PG_PASSWORD, .env's value wins, as the lab writes it or a person does.
    std::fs::write(
        deps.state.join(".env"),
        "# mine\nexport POSTGRES_PASSWORD = \"from-the-env-file\"  \nLB_PORT=8080\n",
    )
    .unwrap();
    deps.run("up", None);
    assert!(deps.logs_in_with("from-the-env-file"));
    assert_eq!(deps.kept(), "from-the-env-file");
}

#[test]
fn a_fresh_postgres_gets_a_random_password_when_none_is_given() {
    let deps = Deps::new("fresh");
    deps.run("up", None);
    let kept = deps.kept();
    assert!(kept.len() >= 32, "a random password: {kept:?}");
    assert!(deps.logs_in_with(&kept));
    assert!(!deps.logs_in_with("postgres"));
}
