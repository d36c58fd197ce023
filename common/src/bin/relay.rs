//! `relay PORT=HOST:PORT ...`: listens on each PORT on every interface and relays each
//! connection to HOST:PORT, resolving HOST again for every connection (so a service that
//! moved is followed). The swarm runtime's edge: a container on the stack's overlay network
//! that publishes the load balancer's metrics and admin ports, the microservice and the worker
//! on the host's loopback only, where the lab and nobody else reaches them.

use std::process::ExitCode;

fn parse(arg: &str) -> Result<(u16, String), String> {
    let (port, target) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected PORT=HOST:PORT, not {arg:?}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    match target.rsplit_once(':') {
        Some((host, p)) if !host.is_empty() && p.parse::<u16>().is_ok() => {
            Ok((port, target.to_string()))
        }
        _ => Err(format!("expected HOST:PORT, not {target:?}")),
    }
}

async fn relay(port: u16, target: String) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    eprintln!("relay: :{port} -> {target}");
    loop {
        let (mut client, _) = listener.accept().await?;
        let target = target.clone();
        tokio::spawn(async move {
            match tokio::net::TcpStream::connect(&target).await {
                Ok(mut upstream) => {
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                // The client sees its connection closed, as if the service were down.
                Err(e) => eprintln!("relay: {target}: {e}"),
            }
        });
    }
}

/// Relays ports to services, re-resolving their names for every connection.
#[derive(clap::Parser)]
#[command(
    name = "relay",
    version,
    about = "Listen on each PORT and relay every connection to HOST:PORT (exit 1: a listener failed; 2: bad arguments)"
)]
struct Args {
    /// PORT=HOST:PORT, one or more.
    #[arg(required = true, value_name = "PORT=HOST:PORT", value_parser = parse)]
    pairs: Vec<(u16, String)>,
}

fn main() -> ExitCode {
    let pairs = <Args as clap::Parser>::parse().pairs;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let tasks: Vec<_> = pairs
            .into_iter()
            .map(|(port, target)| tokio::spawn(relay(port, target)))
            .collect();
        let mut signal = std::pin::pin!(common::shutdown::signal());
        tokio::select! {
            _ = &mut signal => ExitCode::SUCCESS,
            _ = futures::future::select_all(tasks) => {
                eprintln!("relay: a listener failed");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn pairs_are_checked() {
        assert_eq!(
            parse("9100=load_balancer:9100"),
            Ok((9100, "load_balancer:9100".into()))
        );
        for bad in ["9100", "x=a:1", "1=a", "1=:80", "1=a:b", "70000=a:1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
