//! Which runtime a command uses, and opening it: the one place that knows every runtime (a
//! new one is a module beside the others and an arm here).

use super::{compose, docker, native, swarm, Kind, Paths, Runtime};
use crate::settings::Settings;
use anyhow::bail;

/// The runtime to use: `RUNTIME` when set; else the one whose stack is up (so `make up`
/// after a native `make up` does not try compose); else compose where a Docker engine
/// answers, native otherwise (said once).
pub async fn choose(requested: Option<&str>, paths: &Paths) -> anyhow::Result<Kind> {
    if paths.place.inside() {
        if let Some(other) = requested.filter(|r| !r.is_empty() && *r != "compose") {
            bail!("RUNTIME={other} runs from the host (make … RUNTIME={other}); the lab container runs the compose stack");
        }
        if !docker::engine_answers().await {
            bail!("the lab container cannot reach the Docker engine through /var/run/docker.sock: start Docker (Desktop), and run the lab with `docker compose run --rm lab …`, which mounts the socket (rootless Docker: set DOCKER_SOCKET in .env to its socket)");
        }
        return Ok(Kind::Compose);
    }
    match requested.filter(|r| !r.is_empty()) {
        Some("native") => {
            if let Some(why) = crate::platform::native_refusal() {
                bail!("{why}");
            }
            Ok(Kind::Native)
        }
        Some(kind @ ("compose" | "swarm")) => {
            if !docker::engine_answers().await {
                bail!("RUNTIME={kind} but no Docker engine answers (is the daemon running, may you use it?)");
            }
            Ok(if kind == "swarm" {
                Kind::Swarm
            } else {
                Kind::Compose
            })
        }
        Some(other) => bail!("RUNTIME must be native, compose or swarm, not {other:?}"),
        None => {
            if native::marked_up(paths) {
                return Ok(Kind::Native);
            }
            if swarm::marked_up(paths) {
                return Ok(Kind::Swarm);
            }
            if docker::engine_answers().await {
                return Ok(Kind::Compose);
            }
            eprintln!("lab: no Docker engine answers: using the native runtime (RUNTIME=native)");
            Ok(Kind::Native)
        }
    }
}

/// Whether a stack of that kind may be up (cheap to ask; `runtime::is_up` tells for sure).
pub async fn maybe_up(kind: Kind, paths: &Paths) -> bool {
    match kind {
        Kind::Native => native::marked_up(paths),
        Kind::Compose => docker::engine_answers().await,
        Kind::Swarm => swarm::marked_up(paths) && docker::engine_answers().await,
    }
}

/// Builds the runtime of that kind. `cuts`: the command may cut the stack off from Postgres
/// or Redis (a fault), so the native runtime reaches them through relays it can cut.
pub async fn open(
    kind: Kind,
    paths: Paths,
    settings: Settings,
    offline_images: bool,
    cuts: bool,
) -> anyhow::Result<Box<dyn Runtime>> {
    Ok(match kind {
        Kind::Native => {
            let options = native::Options {
                relays: cuts,
                ..native::Options::lab()
            };
            Box::new(native::Native::new(paths, settings, options))
        }
        Kind::Compose => Box::new(compose::Compose::new(paths, settings, offline_images).await?),
        Kind::Swarm => Box::new(swarm::Swarm::new(paths, settings, offline_images).await?),
    })
}
