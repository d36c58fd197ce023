//! What the stack publishes on the host: a port it could not take (one line naming the
//! setting that moves it), and an engine that lets other machines on the network reach what
//! it publishes on 127.0.0.1.

use crate::settings::Name;
use crate::settings::Settings;

/// The host ports a lab on the host publishes (docker-compose.yml and
/// docker-compose.host.yml); in the lab container only the first two are.
pub const PUBLISHED_FROM_THE_HOST: [Name; 5] = [
    Name::LbPort,
    Name::LbMetricsPort,
    Name::LbAdminPort,
    Name::MicroservicePort,
    Name::WorkerPort,
];

/// What engines say of a host port they cannot publish: Linux's, and Docker Desktop's on
/// Windows (another program holds it; a range Hyper-V or WinNAT reserved).
const PORT_TROUBLE: [&str; 5] = [
    "port is already allocated",
    "address already in use",
    "only one usage of each socket address",
    "forbidden by its access permissions",
    "ports are not available",
];

/// The one line for a host port the stack could not publish: which setting moves it.
pub(crate) fn port_taken(error: &str, settings: &Settings) -> Option<String> {
    let lower = error.to_ascii_lowercase();
    if !PORT_TROUBLE.iter().any(|t| lower.contains(t)) {
        return None;
    }
    let named = PUBLISHED_FROM_THE_HOST
        .into_iter()
        .find(|name| error.contains(&format!(":{}", settings.get(*name))));
    let reserved = lower.contains("forbidden by its access permissions");
    let why = if reserved {
        "is reserved by Windows (Hyper-V/WinNAT: netsh interface ipv4 show excludedportrange protocol=tcp lists the ranges)"
    } else {
        "is taken on this machine"
    };
    Some(match named {
        Some(name) => format!(
            "port {} ({name}) {why}; stop what holds it or set {name} in .env to a free port",
            settings.get(name)
        ),
        None => format!(
            "a port the stack publishes {why}; move it in .env ({})",
            PUBLISHED_FROM_THE_HOST.map(Name::as_str).join(", ")
        ),
    })
}

/// The warning for an engine that lets other machines reach what it publishes on 127.0.0.1,
/// or None (see [`leaks_loopback`]).
pub(crate) async fn loopback_leak() -> Option<String> {
    let server =
        super::docker::docker(&["version", "--format", "{{.Server.Os}} {{.Server.Version}}"])
            .await
            .ok()?;
    let system = super::docker::docker(&["info", "--format", "{{.OperatingSystem}}"])
        .await
        .unwrap_or_default();
    let (os, version) = server.trim().split_once(' ')?;
    leaks_loopback(os, version, &system).then(|| {
        format!(
            "lab: warning: Docker Engine {version} lets other machines on this network reach the \
             ports the stack publishes on 127.0.0.1 (the load balancer, its metrics, the live \
             page); upgrade to Docker Engine 28 or later (docs.docker.com/engine/install), or \
             run the lab where no classmate shares your network"
        )
    })
}

/// Docker Engine before 28 on a Linux host rewrites packets for a port published on
/// 127.0.0.1 before the kernel would drop them as coming from another machine, so a
/// neighbour on the same network that sends to 127.0.0.1 through this host reaches it
/// (`make smoke-classmate` shows it). Docker Desktop's engine runs in a VM off the network.
fn leaks_loopback(os: &str, version: &str, operating_system: &str) -> bool {
    let major = version
        .split(['.', '+', '-'])
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    os == "linux" && !operating_system.contains("Docker Desktop") && major.is_some_and(|m| m < 28)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_before_28_on_linux_hosts_are_said_to_leak() {
        assert!(leaks_loopback(
            "linux",
            "20.10.24+dfsg1",
            "Debian GNU/Linux 12 (bookworm)"
        ));
        assert!(leaks_loopback("linux", "27.5.1", "Ubuntu 24.04.1 LTS"));
        assert!(!leaks_loopback("linux", "28.0.0", "Ubuntu 24.04.1 LTS"));
        assert!(!leaks_loopback("linux", "27.5.1", "Docker Desktop"));
        assert!(!leaks_loopback("windows", "27.5.1", "Windows Server"));
        assert!(!leaks_loopback("linux", "unknown", "Debian"));
    }

    #[test]
    fn a_taken_port_is_one_line_naming_its_setting() {
        let settings = Settings::defaults();
        let err = "compose up failed (exit status: 1):\nERROR: for load_balancer  Cannot start service load_balancer: driver failed programming external connectivity on endpoint scalelab_load_balancer_1: Bind for 0.0.0.0:8080 failed: port is already allocated";
        let line = port_taken(err, &settings).unwrap();
        assert_eq!(line, "port 8080 (LB_PORT) is taken on this machine; stop what holds it or set LB_PORT in .env to a free port");
        // Docker Desktop on Windows: a program holds it, or Hyper-V reserved its range.
        let held = "Error response from daemon: Ports are not available: exposing port TCP 127.0.0.1:9100 -> 0.0.0.0:0: listen tcp 127.0.0.1:9100: bind: Only one usage of each socket address (protocol/network address/port) is normally permitted.";
        let line = port_taken(held, &settings).unwrap();
        assert!(
            line.starts_with("port 9100 (LB_METRICS_PORT) is taken"),
            "{line}"
        );
        let reserved = "Error response from daemon: Ports are not available: exposing port TCP 127.0.0.1:8080 -> 0.0.0.0:0: listen tcp 127.0.0.1:8080: bind: An attempt was made to access a socket in a way forbidden by its access permissions.";
        let line = port_taken(reserved, &settings).unwrap();
        assert!(line.contains("(LB_PORT) is reserved by Windows"), "{line}");
        assert!(!line.contains('\n'));
        assert_eq!(
            port_taken("compose up failed: no space left on device", &settings),
            None
        );
    }
}
