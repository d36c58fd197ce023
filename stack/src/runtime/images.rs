//! The images a class runs: named by `docker-compose.yml` under `IMAGE_REGISTRY` (the app and
//! lab images at `IMAGE_TAG`, copies of Postgres, Redis and Prometheus beside them), pulled
//! when missing (never built: building is the developer's `make images`), saved to and loaded
//! from one checked archive for a room with no registry, and compared with the checkout's
//! version before anything is measured.

use crate::container::Place;
use anyhow::{bail, Context};
use std::io::Read;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The label every scalelab image carries: the workspace version it was built from.
pub const VERSION_LABEL: &str = "org.opencontainers.image.version";

/// The compose services whose images a lab needs (Prometheus, of the `observability`
/// profile, is pulled on demand only).
pub const NEEDED: [&str; 4] = ["microservice", "postgres", "redis", "lab"];

/// `version` of `[workspace.package]` in a checkout's `Cargo.toml` (a zip download has it
/// too: no `.git` needed).
pub fn workspace_version(cargo_toml: &str) -> Option<String> {
    let mut in_section = false;
    for line in cargo_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if key.trim() == "version" {
                let v = value.trim().trim_matches('"');
                return (!v.is_empty()).then(|| v.to_string());
            }
        }
    }
    None
}

/// The checkout's version.
pub fn checkout_version(root: &Path) -> anyhow::Result<String> {
    let path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    workspace_version(&text)
        .with_context(|| format!("{} has no [workspace.package] version", path.display()))
}

/// The one line for an image of another version than the checkout's, or None when they
/// agree. `label` is None for an image that carries no version.
pub fn version_mismatch(checkout: &str, image: &str, label: Option<&str>) -> Option<String> {
    match label {
        Some(v) if v == checkout => None,
        Some(v) => Some(format!(
            "{image} is scalelab {v} but this checkout is {checkout}: get the checkout's images (unset IMAGE_TAG or set it to {checkout}, then docker compose --profile lab pull), or use a checkout of {v}"
        )),
        None => Some(format!(
            "{image} carries no version label, so it cannot be checked against this checkout ({checkout}): get the released images (docker compose --profile lab pull) or build them with make images"
        )),
    }
}

/// An image's version label (`Some(None)`: here, without one), or None when it is not here:
/// one `docker image inspect` says both.
async fn label_of(image: &str) -> Option<Option<String>> {
    let format = format!("{{{{index .Config.Labels \"{VERSION_LABEL}\"}}}}");
    let out = super::docker::docker(&["image", "inspect", "-f", &format, image])
        .await
        .ok()?;
    let v = out.trim();
    Some((!v.is_empty() && v != "<no value>").then(|| v.to_string()))
}

pub async fn present(image: &str) -> bool {
    super::docker::docker_ok(&["image", "inspect", image]).await
}

/// The images of one checkout, as its compose file and the settings in force name them.
pub struct Images {
    /// The image of each compose service (`compose config`: the file is their only source).
    services: Vec<(String, String)>,
    /// Where they are pulled from (IMAGE_REGISTRY).
    registry: String,
    place: Place,
    root: PathBuf,
}

/// The images a lab needs, distinct, in the order of [`NEEDED`].
fn needed(services: &[(String, String)]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for service in NEEDED {
        let (_, image) = services
            .iter()
            .find(|(s, _)| s == service)
            .with_context(|| format!("docker-compose.yml has no service {service}"))?;
        if !out.contains(image) {
            out.push(image.clone());
        }
    }
    Ok(out)
}

/// Refuses images of another version than the checkout's (the lab's own binary included,
/// when it runs in its image), with the one line of [`version_mismatch`]; an image that is
/// not here is not checked (it is pulled, then checked).
pub async fn check_versions(
    images: &[String],
    root: &Path,
    place: crate::container::Place,
) -> anyhow::Result<()> {
    let checkout = checkout_version(root)?;
    if place.inside() {
        let own = env!("CARGO_PKG_VERSION");
        if let Some(line) = version_mismatch(&checkout, "the lab image", Some(own)) {
            bail!("{line}");
        }
    }
    for image in images.iter().filter(|i| is_scalelab(i)) {
        let Some(label) = label_of(image).await else {
            continue;
        };
        if let Some(line) = version_mismatch(&checkout, image, label.as_deref()) {
            bail!("{line}");
        }
    }
    Ok(())
}

/// Whether an image is one of the project's own (not a copy of Postgres or Redis).
fn is_scalelab(image: &str) -> bool {
    image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.starts_with("scalelab-"))
}

/// Pulls one image with Docker's progress on the terminal and no time limit (a slow pull that
/// progresses is left to finish); a failure is one line saying what to do.
pub async fn pull(image: &str) -> anyhow::Result<()> {
    let out = Command::new("docker")
        .args(["pull", image])
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .context("cannot run docker pull")?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    bail!("{}", PullTrouble::of(&said).line(image, &said))
}

/// The checksum file beside an archive: `FILE.sha256`.
pub fn checksum_path(archive: &Path) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// SHA-256 of a file, in hex, read in 1 MiB pieces.
pub fn sha256_of(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The hex digest a `FILE.sha256` gives (its first word).
pub fn expected_sum(text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?.to_ascii_lowercase();
    (word.len() == 64 && word.chars().all(|c| c.is_ascii_hexdigit())).then_some(word)
}

impl Images {
    pub fn new(services: Vec<(String, String)>, registry: &str, place: Place, root: &Path) -> Self {
        Self {
            services,
            registry: registry.to_string(),
            place,
            root: root.to_path_buf(),
        }
    }

    /// Pulls every needed image that is missing (all of them with `every`), then checks versions.
    pub async fn ensure(&self, every: bool) -> anyhow::Result<()> {
        let images = needed(&self.services)?;
        let mut missing = Vec::new();
        for image in &images {
            if every || !present(image).await {
                missing.push(image.clone());
            }
        }
        if !missing.is_empty() {
            eprintln!(
                "lab: pulling {} image(s) from {} (once; before class: docker compose --profile lab pull)",
                missing.len(),
                self.registry
            );
        }
        for image in &missing {
            pull(image).await?;
        }
        self.check_versions(&images).await
    }

    /// Refuses images of another version than the checkout's (see [`check_versions`]).
    pub async fn check_versions(&self, images: &[String]) -> anyhow::Result<()> {
        check_versions(images, &self.root, self.place).await
    }

    /// `lab images list`: every needed image, here or not, and its version.
    pub async fn list(&self) -> anyhow::Result<()> {
        let images = needed(&self.services)?;
        for image in &images {
            let state = match label_of(image).await {
                None => "missing".to_string(),
                Some(_) if !is_scalelab(image) => "here".to_string(),
                Some(Some(v)) => format!("here, version {v}"),
                Some(None) => "here, no version label".to_string(),
            };
            println!("{image:<60} {state}");
        }
        self.check_versions(&images).await
    }

    /// `lab images save FILE`: every needed image in one archive, and `FILE.sha256` beside it
    /// (the format of `sha256sum`, so `sha256sum -c` checks it too).
    pub async fn save(&self, archive: &Path) -> anyhow::Result<()> {
        let images = needed(&self.services)?;
        for image in &images {
            if !present(image).await {
                bail!(
                    "{image} is not here: pull the images first (lab images pull), then save them"
                );
            }
        }
        self.check_versions(&images).await?;
        if archive.is_dir() {
            bail!(
                "{} is a folder: give the archive's file name",
                archive.display()
            );
        }
        let name = archive
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .with_context(|| format!("{} has no file name", archive.display()))?
            .to_string();
        let partial = archive.with_file_name(format!(".{name}.partial"));
        eprintln!(
            "lab: saving {} images to {} (a few hundred MB)",
            images.len(),
            archive.display()
        );
        let mut args = vec![
            "save".to_string(),
            "-o".into(),
            partial.display().to_string(),
        ];
        args.extend(images.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(e) = super::docker::docker(&args).await {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        let sum = sha256_of(&partial)?;
        std::fs::rename(&partial, archive)
            .with_context(|| format!("cannot write {}", archive.display()))?;
        let check = checksum_path(archive);
        std::fs::write(&check, format!("{sum}  {name}\n"))
            .with_context(|| format!("cannot write {}", check.display()))?;
        let size = std::fs::metadata(archive).map(|m| m.len()).unwrap_or(0);
        println!(
            "saved {} ({:.0} MB) and {}: load them with lab images load {} (or docker load -i {} once sha256sum -c {} says OK)",
            archive.display(),
            size as f64 / 1e6,
            check.display(),
            archive.display(),
            archive.display(),
            check.display()
        );
        Ok(())
    }

    /// `lab images load FILE`: checks FILE against `FILE.sha256` first and loads nothing
    /// unless they agree; then the versions.
    pub async fn load(&self, archive: &Path) -> anyhow::Result<()> {
        if !archive.is_file() {
            bail!("{} is not a file", archive.display());
        }
        let check = checksum_path(archive);
        let text = std::fs::read_to_string(&check).with_context(|| {
            format!(
                "no {} beside the archive: an archive that cannot be checked is not loaded (copy both files)",
                check.display()
            )
        })?;
        let want = expected_sum(&text)
            .with_context(|| format!("{} holds no SHA-256 digest", check.display()))?;
        eprintln!(
            "lab: checking {} against {}",
            archive.display(),
            check.display()
        );
        let got = sha256_of(archive)?;
        if got != want {
            bail!(
                "{} is damaged or not the archive that was saved (its SHA-256 is {got}, {} says {want}): copy it again; nothing was loaded",
                archive.display(),
                check.display()
            );
        }
        let path = archive.display().to_string();
        Command::new("docker")
            .args(["load", "-i", &path])
            .status()
            .await
            .context("cannot run docker load")?
            .success()
            .then_some(())
            .with_context(|| format!("docker load -i {path} failed"))?;
        self.check_versions(&needed(&self.services)?).await
    }
}

/// Why a `docker pull` failed, from what it said: each has its own advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullTrouble {
    /// No registry answers: no network, no DNS, a proxy in the way.
    NoRegistry,
    /// `toomanyrequests`: a registry's limit of anonymous pulls per address (a classroom
    /// behind one address meets it).
    RateLimited,
    /// The registry wants a login (`unauthorized`, `denied`); ghcr.io also answers so for
    /// an image that was never published.
    LoginRequired,
    /// The registry answers too slowly.
    TimedOut,
    /// No such image or tag.
    NotFound,
    /// Anything else: its own words are shown.
    Other,
}

impl PullTrouble {
    pub fn of(said: &str) -> Self {
        let said = said.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| said.contains(w));
        if has(&["timeout", "timed out", "deadline exceeded"]) {
            PullTrouble::TimedOut
        } else if has(&["toomanyrequests", "too many requests", "rate limit"]) {
            PullTrouble::RateLimited
        } else if has(&[
            "unauthorized",
            "authentication required",
            "denied",
            "no basic auth",
        ]) {
            PullTrouble::LoginRequired
        } else if has(&["manifest unknown", "not found", "does not exist"]) {
            PullTrouble::NotFound
        } else if has(&[
            "no such host",
            "dial tcp",
            "connection refused",
            "network is unreachable",
            "no route to host",
            "temporary failure in name resolution",
            "proxyconnect",
        ]) {
            PullTrouble::NoRegistry
        } else {
            PullTrouble::Other
        }
    }

    /// The one line a student reads: what happened and what to do, where it can be done.
    /// Inside the lab container a `docker login` would not count (its CLI has none of the
    /// host's credentials), so the advice is a command for the host.
    pub fn line(self, image: &str, said: &str) -> String {
        let on_host =
            "on your computer (not in the lab container): docker compose --profile lab pull";
        let other_ways = "or load an archive the teacher gives you (lab images load FILE), or build the images (make images)";
        let own = is_scalelab(image);
        match self {
            PullTrouble::NoRegistry => format!("cannot pull {image}: no registry answers (offline, or a proxy in the way): connect and run {on_host}, {other_ways}"),
            PullTrouble::RateLimited => format!("cannot pull {image}: the registry's limit of anonymous pulls was reached (toomanyrequests; a classroom shares one address): docker login, then {on_host}, or retry later, {other_ways}"),
            PullTrouble::LoginRequired | PullTrouble::NotFound if own => format!("cannot pull {image}: no such image was published (IMAGE_REGISTRY and IMAGE_TAG in .env name it): load an archive (lab images load FILE) or build the images (make images)"),
            PullTrouble::LoginRequired => format!("cannot pull {image}: the registry refused it: it wants a login (docker login, then {on_host}), or IMAGE_REGISTRY in .env is wrong"),
            PullTrouble::TimedOut => format!("cannot pull {image}: the registry stopped answering (a slow or busy network): retry, {on_host}, {other_ways}"),
            PullTrouble::NotFound => format!("cannot pull {image}: no such image or tag (IMAGE_REGISTRY in .env?)"),
            PullTrouble::Other => {
                let last = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                format!("cannot pull {image}: {last}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_version_is_read_from_its_section_only() {
        let toml = "[package]\nversion = \"9.9.9\"\n\n[workspace.package]\nedition = \"2021\"\nversion = \"0.3.1\"\n\n[workspace.dependencies]\nversion = \"1\"\n";
        assert_eq!(workspace_version(toml).as_deref(), Some("0.3.1"));
        assert_eq!(workspace_version("[package]\nversion = \"1\"\n"), None);
        // This checkout's own, the version the lab was built from.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert_eq!(checkout_version(root).unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn another_version_is_one_line_with_the_way_out() {
        assert_eq!(
            version_mismatch("0.1.0", "x/scalelab-app:0.1.0", Some("0.1.0")),
            None
        );
        let line = version_mismatch("0.2.0", "x/scalelab-app:0.1.0", Some("0.1.0")).unwrap();
        assert!(!line.contains('\n'));
        assert!(
            line.contains("scalelab 0.1.0 but this checkout is 0.2.0"),
            "{line}"
        );
        assert!(line.contains("docker compose --profile lab pull"), "{line}");
        let line = version_mismatch("0.2.0", "x/scalelab-app:dev", None).unwrap();
        assert!(line.contains("no version label"), "{line}");
    }

    #[test]
    fn checksum_files_are_read_as_sha256sum_writes_them() {
        let hex = "ab".repeat(32);
        assert_eq!(
            expected_sum(&format!("{hex}  scalelab.tar\n")),
            Some(hex.clone())
        );
        assert_eq!(expected_sum(&hex.to_uppercase()), Some(hex));
        assert_eq!(expected_sum("abc  x.tar"), None);
        assert_eq!(expected_sum(""), None);
        assert_eq!(
            checksum_path(Path::new("out/images.tar")),
            PathBuf::from("out/images.tar.sha256")
        );
    }

    #[test]
    fn sha256_matches_the_known_digest() {
        let path = std::env::temp_dir().join(format!("scalelab-sha-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_of(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn pull_failures_are_told_apart() {
        let cases = [
            ("Error response from daemon: Get \"https://ghcr.io/v2/\": dial tcp: lookup ghcr.io on 10.255.255.53:53: no such host", PullTrouble::NoRegistry),
            ("Error response from daemon: toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading", PullTrouble::RateLimited),
            ("Error response from daemon: pull access denied for scalelab/nothing, repository does not exist or may require 'docker login': denied: requested access to the resource is denied", PullTrouble::LoginRequired),
            ("Error response from daemon: Head \"https://ghcr.io/v2/scalelab/postgres/manifests/16.14\": unauthorized: incorrect username or password", PullTrouble::LoginRequired),
            ("Error response from daemon: Get \"https://ghcr.io/v2/\": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)", PullTrouble::TimedOut),
            ("Error response from daemon: manifest for 127.0.0.1:5000/scalelab/postgres:99 not found: manifest unknown: manifest unknown", PullTrouble::NotFound),
            ("Error response from daemon: Get \"https://ghcr.io/v2/\": proxyconnect tcp: dial tcp 10.0.0.1:3128: connect: connection refused", PullTrouble::NoRegistry),
            ("something new", PullTrouble::Other),
        ];
        for (said, want) in cases {
            assert_eq!(PullTrouble::of(said), want, "{said}");
        }
    }

    #[test]
    fn each_trouble_is_one_line_saying_what_to_do_where_it_can_be_done() {
        let all = [
            (PullTrouble::NoRegistry, "docker compose --profile lab pull"),
            (PullTrouble::RateLimited, "docker login"),
            (PullTrouble::LoginRequired, "docker login"),
            (PullTrouble::TimedOut, "retry"),
            (PullTrouble::NotFound, "IMAGE_REGISTRY"),
            (PullTrouble::Other, "the daemon's last words"),
        ];
        let image = "ghcr.io/scalelab/postgres:16.14-bookworm";
        for (trouble, advice) in all {
            let line = trouble.line(image, "first\nthe daemon's last words\n");
            assert!(!line.contains('\n'), "{line}");
            assert!(
                line.starts_with(&format!("cannot pull {image}: ")),
                "{line}"
            );
            assert!(line.contains(advice), "{trouble:?}: {line}");
        }
        // The project's own image before a release: the two ways on, never a login.
        for trouble in [PullTrouble::NotFound, PullTrouble::LoginRequired] {
            let line = trouble.line("ghcr.io/scalelab/scalelab-app:0.1.0", "denied");
            assert!(line.contains("no such image was published"), "{line}");
            assert!(line.contains("lab images load FILE"), "{line}");
            assert!(line.contains("make images"), "{line}");
        }
    }
}
