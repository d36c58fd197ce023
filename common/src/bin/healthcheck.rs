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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match args.first().and_then(|p| p.parse::<u16>().ok()) {
        Some(p) if p > 0 => p,
        _ => {
            eprintln!("usage: healthcheck PORT [PATH]");
            std::process::exit(2);
        }
    };
    let path = args.get(1).map_or("/health", String::as_str);
    if let Err(e) = check(port, path) {
        eprintln!("healthcheck: 127.0.0.1:{port}{path}: {e}");
        std::process::exit(1);
    }
}
