//! Guards for the ports only the lab should drive (the load balancer's admin API, the live
//! page): a web page a student visits must not reach them through the browser.
//!
//! - [`local_host_only`]: a request must name the server by an address (`127.0.0.1:9101`,
//!   `[::1]:8089`), `localhost`, or one of the few names the caller allows
//!   (`load_balancer:9101` inside the stack's network). A DNS-rebinding page names it by a
//!   name of its own (`evil.example:9101`, or a one-label `pwn` that a classmate answers by
//!   LLMNR): refused, 403. No CORS header is ever added, so no other origin may read an
//!   answer.
//! - [`token_required`]: every call that changes state (any method but GET and HEAD) carries
//!   `Authorization: Bearer <token>`; else 401.

use crate::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The names besides addresses and `localhost` a server answers to (a service's name on the
/// stack's network).
#[derive(Clone, Copy)]
pub struct Names(pub &'static [&'static str]);

/// Whether a `Host` header names this machine by address or `localhost`, or is one of
/// `names`, rather than a name a web page could rebind.
pub fn is_local_host(host: &str, names: &[&str]) -> bool {
    // `[::1]:8089`, `[::1]`
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').is_some_and(|(ip, port)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok() && valid_port(port)
        });
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, format!(":{port}")),
        None => (host, String::new()),
    };
    if !valid_port(&port) {
        return false;
    }
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn valid_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

/// Refuses (403, JSON) a request whose `Host` is missing or not local (see [`is_local_host`]).
pub async fn local_host_only(State(names): State<Names>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        // HTTP/2 carries it in the URI.
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if is_local_host(&h, names.0) => next.run(request).await,
        Some(h) => ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Host {h:?} refused: this port answers only requests that name it by address (127.0.0.1:PORT) or localhost"),
        )
        .into_response(),
        None => ApiError::bad_request("a Host header is required").into_response(),
    }
}

/// The token every state-changing call must carry; `None`: every such call is refused.
#[derive(Clone)]
pub struct Token(pub Option<Arc<str>>);

/// Lets GET and HEAD through; anything else needs `Authorization: Bearer <token>` (401).
pub async fn token_required(State(token): State<Token>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let Some(expected) = token.0.as_deref().filter(|t| !t.is_empty()) else {
        return ApiError::unauthorized(
            "this admin API is locked: the load balancer has no ADMIN_TOKEN (the lab puts one in .env)",
        )
        .into_response();
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if same(given.as_bytes(), expected.as_bytes()) {
        next.run(request).await
    } else {
        ApiError::unauthorized(
            "a change through the admin API needs Authorization: Bearer <ADMIN_TOKEN>",
        )
        .into_response()
    }
}

/// Equal, in a time that does not depend on where the two first differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_pass_and_domains_do_not() {
        let names = ["load_balancer"];
        for ok in [
            "127.0.0.1:9101",
            "127.0.0.1",
            "localhost:8089",
            "LOCALHOST",
            "[::1]:8089",
            "[::1]",
            "load_balancer:9101",
            "10.0.3.7:9101",
        ] {
            assert!(is_local_host(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example:9101",
            "evil.example",
            "127.0.0.1.nip.io:9101",
            "localhost.evil.example",
            "",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "[::1",
            "[evil]:80",
            "a b:80",
            "load_balancer:9101:1",
            // A one-label name a classmate answers by LLMNR or NBT-NS.
            "pwn:8089",
            "gateway:8000",
        ] {
            assert!(!is_local_host(bad, &names), "{bad}");
        }
        // Without names, the service's own is refused too.
        assert!(!is_local_host("load_balancer:9101", &[]));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }
}
