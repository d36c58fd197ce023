//! The offline images (`docker-compose.offline.yml`, built here from Debian packages by
//! `scripts/images-offline` where no registry answers): which they are, whether a command
//! runs on them, and what building them needs on this machine.

use super::Paths;
use anyhow::bail;

/// The images `docker-compose.offline.yml` runs.
pub const IMAGES: [&str; 3] = [
    "scalelab/app:offline",
    "scalelab-offline/postgres:latest",
    "scalelab-offline/redis:latest",
];

/// Offline images or the released ones: `IMAGES` when set; else the choice of the stack that
/// is up (kept in `.scalelab/run/images`); else the released ones (pulled when missing by
/// `up`: nothing is built unless asked).
pub fn decide_offline(images: Option<&str>, paths: &Paths) -> anyhow::Result<bool> {
    Ok(match images.filter(|i| !i.is_empty()) {
        Some("official") => false,
        Some("offline") => true,
        Some(other) => bail!("IMAGES must be official or offline, not {other:?}"),
        None => std::fs::read_to_string(paths.run.join("images"))
            .is_ok_and(|text| text.trim() == "offline"),
    })
}

/// What building the offline images needs on this machine (nothing when none is built here).
pub fn prerequisites(builds_offline_images: bool) -> Vec<String> {
    let mut missing = Vec::new();
    if builds_offline_images {
        let have_debootstrap = std::process::Command::new("sh")
            .args([
                "-c",
                "command -v debootstrap || test -x /usr/sbin/debootstrap",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        let have_base = std::process::Command::new("docker")
            .args(["image", "inspect", "scalelab-offline/base:bookworm"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_base && !have_debootstrap {
            missing.push("debootstrap (the offline images are built from Debian packages): sudo apt-get install -y debootstrap".into());
        }
        if !have_base && !crate::platform::is_root() {
            missing.push("root, for debootstrap: run it with sudo".into());
        }
    }
    missing
}
