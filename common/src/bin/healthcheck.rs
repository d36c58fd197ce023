//! `healthcheck PORT [PATH]`: exits 0 when `GET http://127.0.0.1:PORT/PATH` answers 200 within
//! three seconds, 1 otherwise. The containers' healthcheck: a static part of every image, so
//! the images need no shell and no curl.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn check(port: u16, path: &str) -> Result<(), String> {
    let limit = Duration::from_secs(3);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, limit).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if line.starts_with("HTTP/") && status == "200" {
        Ok(())
    } else {
        Err(format!("answered {:?}", line.lines().next().unwrap_or("")))
    }
}

/// A container's healthcheck: does the service on this port answer 200?
#[derive(clap::Parser)]
#[command(
    name = "healthcheck",
    version,
    about = "Exit 0 when GET http://127.0.0.1:PORT/PATH answers 200 within 3 s, 1 otherwise (2: bad arguments)"
)]
struct Args {
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    #[arg(default_value = "/health")]
    path: String,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    if let Err(e) = check(args.port, &args.path) {
        eprintln!("healthcheck: 127.0.0.1:{}{}: {e}", args.port, args.path);
        std::process::exit(1);
    }
}
