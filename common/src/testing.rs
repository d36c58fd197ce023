//! Helpers for integration tests against real Postgres and Redis (no mocks): a throwaway
//! database per test, a Redis key prefix per test, and a TCP relay that can cut a service off
//! from its real dependency and restore it.
//!
//! `TEST_DATABASE_URL` (a database the tests may `CREATE DATABASE` from) and `TEST_REDIS_URL`
//! point at the servers; defaults are the local ones `make test` starts (`lab deps up`),
//! with the password it keeps in `.scalelab/postgres.password`.

use crate::config::{DbConfig, RedisConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A free loopback port for a server the caller starts a moment later (bound then released).
///
/// Taken below the ephemeral ranges (Linux 32768–60999, macOS and Windows 49152–65535): a
/// port picked there could be handed, before the caller binds it, to a server another test
/// binds to port 0 or to an outgoing connection (a service's Postgres pool). The native
/// runtime also listens at fixed offsets from a port (gateway i at `+ i - 1`, replica i at
/// `+ 100·(i - 1)`), so each pick reserves its whole footprint, and no later pick in this
/// process lands inside an earlier one's.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Gateways up to 10 above a base, replicas up to 5, 100 apart.
    fn footprint(port: u16) -> impl Iterator<Item = u16> {
        (0..5u16).flat_map(move |r| (0..10u16).map(move |g| port + 100 * r + g))
    }
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut guard = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = guard.get_or_insert_with(HashSet::new);
    let start = std::process::id() % SPAN;
    let port = (0..SPAN / 10)
        .map(|k| (LOW + (start + 10 * k) % SPAN) as u16)
        .find(|&port| {
            footprint(port).all(|p| !taken.contains(&p))
                && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        })
        .expect("a free loopback port below the ephemeral range");
    taken.extend(footprint(port));
    port
}

pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        crate::db::local_url(&postgres_password(), "127.0.0.1:5432", "postgres")
    })
}

/// The password of the Postgres `lab deps up` started for this checkout (kept in
/// `.scalelab/postgres.password`), or the old default where it kept none: what a test that
/// runs the lab natively on that Postgres passes as POSTGRES_PASSWORD.
pub fn postgres_password() -> String {
    let kept = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.scalelab/postgres.password"
    );
    std::fs::read_to_string(kept)
        .map(|p| p.trim_end().to_string())
        .unwrap_or_else(|_| "postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique(tag: &str) -> String {
    format!(
        "t_{tag}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Same server and credentials as `url`, another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A fresh database, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin = admin_database_url();
        let name = unique("db");
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach the test Postgres at {} ({e}); start it (see .ci/run) or set TEST_DATABASE_URL",
                    crate::db::describe(&admin)
                )
            });
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        Self {
            url: with_database(&admin, &name),
            name,
        }
    }

    pub fn config(&self) -> DbConfig {
        db_config(&self.url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A blocking drop on a fresh thread: Drop cannot be async, and the test's runtime
        // may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin_database_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

pub fn db_config(url: &str) -> DbConfig {
    DbConfig {
        database_url: url.to_string(),
        db_pool_size: 5,
        db_pool_timeout_ms: 1000,
        db_connect_timeout_ms: 1000,
        db_startup_timeout_secs: 10,
    }
}

/// Redis settings with a key prefix no other test uses. The command timeout is generous:
/// tests share two cores, and none of them is about a slow Redis.
pub fn redis_config() -> RedisConfig {
    RedisConfig {
        redis_url: redis_url(),
        redis_key_prefix: format!("{}:", unique("r")),
        redis_timeout_ms: 1000,
    }
}

/// Polls `check` until it returns true or `limit` passes; returns whether it became true.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}

pub use crate::relay::TcpRelay;

/// The `host:port` a URL points at, resolved to a socket address (for `TcpRelay::start`).
pub async fn socket_of(url: &str) -> SocketAddr {
    crate::relay::socket_of(url)
        .await
        .unwrap_or_else(|e| panic!("cannot resolve {url}: {e}"))
}

/// Sends `POST /longtask` with a 2 MB body (its routes take 64 KiB) 30 times the way a naive
/// client does, the whole body before reading anything (write errors ignored), and checks
/// that each time the client reads a 413 with its JSON body. A server that answered early
/// and closed without reading the body would make the kernel reset the connection, and the
/// client would get no answer.
pub async fn a_large_body_gets_a_413_the_client_reads(addr: SocketAddr, token: &str) {
    for i in 0..30 {
        let token = token.to_string();
        let (status, body) = tokio::task::spawn_blocking(move || post_then_read(addr, &token))
            .await
            .unwrap();
        assert_eq!(status, 413, "try {i}: {body}");
        let error: records::wire::ErrorBody =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("try {i}: {e}: {body}"));
        assert_eq!(error.status, 413, "try {i}");
    }
}

fn post_then_read(addr: SocketAddr, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let body_len = 2 << 20;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = format!(
        "POST /longtask HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n"
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&vec![b'x'; body_len]));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_keeping_credentials_and_options() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
