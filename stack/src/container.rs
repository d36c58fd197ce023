//! The lab in a container: `docker compose run --rm lab <command>` on any machine with
//! Docker and nothing else (macOS, Windows, Linux). The `lab` image holds the lab, the load
//! generator and the report with a Docker CLI and Compose; the checkout is mounted at
//! `/scalelab` and the engine's socket beside it, so the stack's containers are the lab's
//! siblings. The lab joins the stack's network: it and the load generator reach every
//! service by its compose name (`load_balancer:9100`) and every gateway by its address, as
//! the host cannot on Docker Desktop. Files it writes into the checkout are handed back to
//! the checkout's owner.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The variable the `lab` image sets.
pub const MARK: &str = "LAB_CONTAINER";

/// Where the lab runs: on the host, or in the `lab` container (whose image sets
/// [`MARK`]). Read once, in `main`, and carried in [`crate::runtime::Paths`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Host,
    Container,
}

impl Place {
    /// Where this process runs, from the variable the `lab` image sets.
    pub fn here() -> Self {
        if std::env::var(MARK).is_ok_and(|v| v == "1") {
            Place::Container
        } else {
            Place::Host
        }
    }

    /// Whether the lab runs in its container.
    pub fn inside(self) -> bool {
        self == Place::Container
    }
}

/// This container's id as the engine knows it: its hostname, unless the user set another.
fn own_id() -> anyhow::Result<String> {
    let name = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .context("the lab container has no hostname to find itself by")?;
    Ok(name.trim().to_string())
}

/// Attaches this container to the stack's network (a no-op when it already is), so the
/// stack's names resolve here.
pub async fn join(network: &str) -> anyhow::Result<()> {
    let me = own_id()?;
    let attached = crate::runtime::docker::docker(&[
        "inspect",
        "-f",
        "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
        &me,
    ])
    .await
    .with_context(|| {
        format!("the lab container cannot find itself ({me}) through the Docker socket")
    })?;
    if attached.split_whitespace().any(|n| n == network) {
        return Ok(());
    }
    crate::runtime::docker::docker(&["network", "connect", network, &me])
        .await
        .map(|_| ())
        .with_context(|| format!("cannot join the stack's network {network}"))
}

/// The host port the engine publishes this container's `port` on (`--service-ports`), or
/// None when it is not published: then nothing on the host reaches it.
pub async fn published_port(port: u16) -> Option<u16> {
    let me = own_id().ok()?;
    let ports =
        crate::runtime::docker::docker(&["inspect", "-f", "{{json .NetworkSettings.Ports}}", &me])
            .await
            .ok()?;
    host_port(&ports, port)
}

/// The first host port of `port/tcp` in `docker inspect`'s `.NetworkSettings.Ports`.
pub fn host_port(ports_json: &str, port: u16) -> Option<u16> {
    let ports: serde_json::Value = serde_json::from_str(ports_json.trim()).ok()?;
    ports
        .get(format!("{port}/tcp"))?
        .as_array()?
        .iter()
        .find_map(|b| b.get("HostPort")?.as_str()?.parse().ok())
}

/// Detaches this container from the stack's network before the network is removed.
pub async fn leave(network: &str) {
    if let Ok(me) = own_id() {
        let _ =
            crate::runtime::docker::docker(&["network", "disconnect", "-f", network, &me]).await;
    }
}

/// Where the binaries are: beside the running lab (`/usr/local/bin` in the image).
pub fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin"))
}

/// What the lab writes into the checkout.
#[cfg(unix)]
const WRITTEN: [&str; 5] = ["tests", ".env", ".scalelab", "answers", "handin"];

/// Gives what the lab wrote into the checkout (as root) to the checkout's owner (the user who
/// cloned it), so that a run from the container leaves no root-owned files on a Linux host.
/// Only root's files change hands: a native Postgres's data (owned by `postgres`) keeps its
/// owner. On Docker Desktop the mount maps owners itself and this changes nothing.
#[cfg(unix)]
pub fn hand_back(root: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(root) else {
        return;
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid == 0 {
        return;
    }
    for name in WRITTEN {
        chown_tree(&root.join(name), uid, gid);
    }
}

#[cfg(not(unix))]
pub fn hand_back(_root: &Path) {}

#[cfg(unix)]
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.uid() == 0 {
        let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_published_port_is_read_from_docker_inspect() {
        let published = r#"{"8089/tcp":[{"HostIp":"127.0.0.1","HostPort":"18089"}]}"#;
        assert_eq!(host_port(published, 8089), Some(18089));
        // `docker compose run` without --service-ports: exposed, not published.
        assert_eq!(host_port(r#"{"8089/tcp":null}"#, 8089), None);
        assert_eq!(host_port("{}", 8089), None);
        assert_eq!(host_port("null", 8089), None);
        assert_eq!(host_port(published, 9100), None);
    }

    #[test]
    fn written_files_go_back_to_the_checkout_owner() {
        // Only root may give files away: elsewhere there is nothing to check.
        if !crate::platform::is_root() {
            return;
        }
        let root = std::env::temp_dir().join(format!("scalelab-handback-{}", std::process::id()));
        let run = root.join("tests/results/run-1");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("run.json"), "{}").unwrap();
        std::fs::write(root.join(".env"), "").unwrap();
        std::fs::write(root.join("kept"), "").unwrap();
        // A native Postgres's data under .scalelab belongs to another user: it stays so.
        let data = root.join(".scalelab/postgres");
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::chown(&data, Some(4244), Some(4244)).unwrap();
        std::os::unix::fs::chown(&root, Some(4242), Some(4243)).unwrap();
        hand_back(&root);
        use std::os::unix::fs::MetadataExt;
        for p in [
            root.join("tests"),
            run.clone(),
            run.join("run.json"),
            root.join(".env"),
        ] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4243), "{}", p.display());
        }
        // Only what the lab writes: a file of the user's stays as it was.
        assert_eq!(std::fs::metadata(root.join("kept")).unwrap().uid(), 0);
        assert_eq!(std::fs::metadata(&data).unwrap().uid(), 4244);
        assert_eq!(
            std::fs::metadata(root.join(".scalelab")).unwrap().uid(),
            4242
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
