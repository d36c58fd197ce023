//! The `.env` file: how the settings are resolved from it and the environment, the old
//! names it may still hold, Compose's and Docker's own variables it may carry, its secret, and
//! `.env.example`, generated from the table.

use super::{find, Name, Settings, TABLE};
use anyhow::{bail, Context};
use std::path::Path;

/// Settings that are gone, with the value they had by default: an old `.env` (written from
/// an older `.env.example`) still names them. At their old default they are dropped quietly;
/// changed, the line says what replaced them.
const RETIRED: &[(&str, &str)] = &[
    ("APP_IMAGE", "scalelab/app:latest"),
    ("POSTGRES_IMAGE", "postgres:16.4-bookworm"),
    ("REDIS_IMAGE", "redis:7.4.1-bookworm"),
    ("PROMETHEUS_IMAGE", "prom/prometheus:v2.53.2"),
];

/// Whether a `.env` key belongs to Compose or the Docker CLI (`COMPOSE_PROJECT_NAME`,
/// `DOCKER_HOST`): passed to them, never refused.
pub fn is_docker_variable(key: &str) -> bool {
    (key.starts_with("COMPOSE_") || key.starts_with("DOCKER_")) && find(key).is_none()
}

const RENAMED: &[(&str, &str)] = &[
    ("GATEWAY_MAX_IN_FLIGHT", "MAX_IN_FLIGHT"),
    ("GATEWAY_MAX_QUEUE", "MAX_QUEUE"),
    ("GATEWAY_QUEUE_TIMEOUT_MS", "QUEUE_TIMEOUT_MS"),
    ("MICROSERVICE_DB_POOL_SIZE", "DB_POOL_SIZE"),
];

impl Settings {
    /// Defaults, then the `.env` file's lines, then the given environment; every value
    /// checked. A key of `.env` that is not a setting is an error (a typo would otherwise
    /// be silently ignored).
    pub fn resolve(
        env_file: Option<&str>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut settings = Self::defaults();
        if let Some(text) = env_file {
            for (line_no, key, value) in parse_env_file(text)? {
                if let Some((_, new)) = RENAMED.iter().find(|(old, _)| *old == key) {
                    bail!(".env line {line_no}: {key} is now called {new}; rename it");
                }
                if let Some((_, old_default)) = RETIRED.iter().find(|(old, _)| *old == key) {
                    if value != *old_default {
                        bail!(".env line {line_no}: {key} is no longer a setting: images are IMAGE_REGISTRY/scalelab-app:IMAGE_TAG and copies of postgres, redis and prometheus beside them; delete the line");
                    }
                    continue;
                }
                if is_docker_variable(&key) {
                    settings.docker.insert(key, value);
                    continue;
                }
                if find(&key).is_none() {
                    bail!(".env line {line_no}: {key} is not a lab setting (`lab settings` lists them)");
                }
                settings.set(&key, &value)?;
            }
        }
        for (key, value) in environment {
            if find(&key).is_some() {
                settings
                    .set(&key, &value)
                    .with_context(|| format!("from the environment: {key}"))
                    .map_err(|e| anyhow::anyhow!("{}", e.root_cause()))?;
            }
        }
        for setting in TABLE {
            setting.check(&settings.values[setting.name.as_str()])?;
        }
        Ok(settings)
    }

    /// Reads `.env` at `path` (made from `.env.example` with a random secret when missing)
    /// and the process environment.
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let path = root.join(".env");
        let created = !path.exists();
        let mut text = if created {
            env_example()
        } else {
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        // One way to the secrets, for a new `.env` and for one written by hand with a line or
        // two (a school's IMAGE_REGISTRY), or an older one without ADMIN_TOKEN; a secret the
        // environment gives is not written.
        let given = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
        let mut write = created;
        if let Some((filled, names)) = with_secret(&text, random_secret)? {
            if created || names.iter().any(|n| !given(n)) {
                text = filled;
                write = true;
            }
            if write {
                eprintln!(
                    "lab: {} .env with a random {}",
                    if created { "created" } else { "added to" },
                    names.join(" and ")
                );
            }
        }
        if write {
            write_private(&path, &text)?;
        } else {
            // An older checkout's .env, readable by anyone on the machine: its owner's only.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                }
            }
        }
        Self::resolve(Some(&text), std::env::vars())
    }
}

/// `(line number, key, value)` of every assignment; comments and blank lines skipped,
/// `export ` and matching quotes allowed.
pub fn parse_env_file(text: &str) -> anyhow::Result<Vec<(usize, String, String)>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bail!(".env line {}: expected NAME=value, found {raw:?}", i + 1);
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!(".env line {}: {key:?} is not a variable name", i + 1);
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| {
                value
                    .strip_prefix(*q)
                    .and_then(|v| v.strip_suffix(*q))
                    .filter(|_| value.len() >= 2)
            })
            .unwrap_or(value);
        out.push((i + 1, key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Settings `.env.example` shows commented out, so that a `.env` made from it keeps
/// following the checkout's default after a `git pull`.
const FOLLOWS_THE_CHECKOUT: [Name; 1] = [Name::ImageTag];

/// The text of `.env.example`, generated from the table.
pub fn env_example() -> String {
    let mut out = String::from(
        "# Generated by `lab env-example` from stack/src/settings/mod.rs; do not edit by hand.\n\
         # Copy to .env (`make up` does it on first use and fills in the secrets: JWT_SECRET,\n\
         # ADMIN_TOKEN, POSTGRES_PASSWORD). Read by docker compose and by the lab's native\n\
         # runtime. Every line is optional but the secrets; a variable in the environment\n\
         # overrides the file.\n",
    );
    for s in TABLE {
        out.push('\n');
        out.push_str(&format!("# {}\n", s.meaning));
        // The tag follows the checkout: a line here would pin it at this version.
        let comment = if FOLLOWS_THE_CHECKOUT.contains(&s.name) {
            "# "
        } else {
            ""
        };
        out.push_str(&format!("{comment}{}={}\n", s.name, s.default));
    }
    out
}

/// The secrets the lab makes up when `.env` has none: the gateways' JWT key, the load
/// balancer's admin token and the Postgres password.
pub const GENERATED: [Name; 3] = [Name::JwtSecret, Name::AdminToken, Name::PostgresPassword];

/// A line an older `.env.example` wrote for a secret that is generated now, with the comment
/// it wrote above it: that pair, untouched, is replaced like a missing secret (the native
/// Postgres the lab made is moved to the new password at its start), the comment with it, so
/// that the same value typed again later is the user's own and stays.
const OLD_DEFAULTS: [(Name, &str, &str); 1] = [(
    Name::PostgresPassword,
    "postgres",
    "# Password of the stack's Postgres (and of the native runtime's database URL).",
)];

/// Whether line `line_no` (from 1) of `out` is `name`'s old default under its old comment.
fn old_default(out: &[String], line_no: usize, name: Name, value: &str) -> bool {
    OLD_DEFAULTS.iter().any(|(n, v, comment)| {
        *n == name && *v == value && line_no >= 2 && out[line_no - 2].trim() == *comment
    })
}

/// `.env`'s text with a random value for each [`GENERATED`] secret it lacks, has empty or
/// has at an old default, and the names filled; None when it has them all.
fn with_secret(
    text: &str,
    mut secret: impl FnMut() -> String,
) -> anyhow::Result<Option<(String, Vec<&'static str>)>> {
    let lines = parse_env_file(text)?;
    let mut out: Vec<String> = text.lines().map(str::to_string).collect();
    let mut filled = Vec::new();
    for name in GENERATED {
        match lines.iter().find(|(_, k, _)| k == name.as_str()) {
            Some((line_no, _, v)) if old_default(&out, *line_no, name, v) => {
                out[line_no - 2] = format!("# {}", super::setting(name).meaning);
                out[line_no - 1] = format!("{name}={}", secret());
            }
            Some((_, _, v)) if !v.is_empty() => continue,
            Some((line_no, _, _)) => out[line_no - 1] = format!("{name}={}", secret()),
            None => out.push(format!("{name}={}", secret())),
        }
        filled.push(name.as_str());
    }
    Ok((!filled.is_empty()).then(|| (out.join("\n") + "\n", filled)))
}

/// Writes `.env` readable by its owner alone (it holds the secrets).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::platform::write_private(path, text)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// 64 hex digits from a generator the operating system seeds (on every platform, not only
/// where `/dev/urandom` exists).
pub(crate) fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::{env, SECRET};

    #[test]
    fn a_hand_written_env_file_gets_its_secrets_and_keeps_its_lines() {
        let secret = || "s".repeat(64);
        let (filled, names) = with_secret("IMAGE_REGISTRY=127.0.0.1:5000/school", secret)
            .unwrap()
            .unwrap();
        assert_eq!(
            filled,
            format!(
                "IMAGE_REGISTRY=127.0.0.1:5000/school\nJWT_SECRET={s}\nADMIN_TOKEN={s}\nPOSTGRES_PASSWORD={s}\n",
                s = "s".repeat(64)
            )
        );
        assert_eq!(names, GENERATED.map(Name::as_str));
        let (filled, _) = with_secret("# mine\nJWT_SECRET=\nMAX_QUEUE=8\n", secret)
            .unwrap()
            .unwrap();
        assert_eq!(
            filled,
            format!(
                "# mine\nJWT_SECRET={s}\nMAX_QUEUE=8\nADMIN_TOKEN={s}\nPOSTGRES_PASSWORD={s}\n",
                s = "s".repeat(64)
            )
        );
        // An older .env with its JWT secret gets the admin token and a Postgres password in
        // place of the old default; one of the user's own is kept.
        let old = format!(
            "JWT_SECRET=0123456789abcdef\n{}\nPOSTGRES_PASSWORD=postgres\n",
            OLD_DEFAULTS[0].2
        );
        let (filled, names) = with_secret(&old, secret).unwrap().unwrap();
        assert_eq!(names, ["ADMIN_TOKEN", "POSTGRES_PASSWORD"]);
        assert!(filled.contains(&format!("\nPOSTGRES_PASSWORD={}\n", "s".repeat(64))));
        assert!(!filled.contains(OLD_DEFAULTS[0].2), "{filled}");
        // Once replaced, `postgres` typed again is the user's own (their Postgres's).
        let again = filled.replace(
            &format!("POSTGRES_PASSWORD={}", "s".repeat(64)),
            "POSTGRES_PASSWORD=postgres",
        );
        assert_eq!(with_secret(&again, secret).unwrap(), None);
        // A password of the user's own (`postgres` without the old comment too) is kept.
        for own in ["postgres", "mine"] {
            let text = format!("JWT_SECRET=0123456789abcdef\nPOSTGRES_PASSWORD={own}\n");
            let (_, names) = with_secret(&text, secret).unwrap().unwrap();
            assert_eq!(names, ["ADMIN_TOKEN"], "{own}");
        }
        assert_eq!(with_secret(SECRET, secret).unwrap(), None);
        assert!(Settings::resolve(Some(&filled), env(&[])).is_ok());
    }

    #[test]
    fn the_env_file_is_its_owners_alone() {
        let dir = std::env::temp_dir().join(format!("lab-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("docker-compose.yml"), "").unwrap();
        // An older checkout's .env: world-readable, no admin token.
        std::fs::write(dir.join(".env"), "JWT_SECRET=0123456789abcdef\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(".env"), std::fs::Permissions::from_mode(0o644))
                .unwrap();
            let s = Settings::load(&dir).unwrap();
            assert_eq!(s.get(Name::AdminToken).len(), 64);
            let mode = std::fs::metadata(dir.join(".env"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn old_image_lines_and_docker_variables_are_not_refused() {
        // An .env made from an older .env.example: its image lines at their defaults.
        let old =
            format!("{SECRET}APP_IMAGE=scalelab/app:latest\nREDIS_IMAGE=redis:7.4.1-bookworm\n");
        assert!(Settings::resolve(Some(&old), env(&[])).is_ok());
        // Changed, the line says what replaced them.
        let changed = format!("{SECRET}POSTGRES_IMAGE=mirror/postgres:16\n");
        let err = Settings::resolve(Some(&changed), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("POSTGRES_IMAGE is no longer a setting"),
            "{err}"
        );
        assert!(err.contains("IMAGE_REGISTRY"), "{err}");
        // Compose's and Docker's own variables reach compose.
        let text = format!("{SECRET}COMPOSE_PROJECT_NAME=scalelab\nDOCKER_HOST=unix:///x.sock\n");
        let s = Settings::resolve(Some(&text), env(&[])).unwrap();
        let all = s.all();
        assert!(all.contains(&("COMPOSE_PROJECT_NAME".into(), "scalelab".into())));
        assert!(all.contains(&("DOCKER_HOST".into(), "unix:///x.sock".into())));
        // DOCKER_SOCKET is the lab's own setting, checked as one.
        assert!(!is_docker_variable("DOCKER_SOCKET"));
    }

    #[test]
    fn the_env_file_takes_quotes_export_and_comments() {
        let text = "# c\n\nexport MAX_QUEUE=\"7\"\nLAB_PASSWORD='a b'\n";
        let parsed = parse_env_file(text).unwrap();
        assert_eq!(
            parsed,
            vec![
                (3, "MAX_QUEUE".to_string(), "7".to_string()),
                (4, "LAB_PASSWORD".to_string(), "a b".to_string())
            ]
        );
    }
}
