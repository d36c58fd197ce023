//! A differential fuzz of request framing: seeded random requests, each sent as raw bytes to
//! the load balancer and to nginx, each proxy in front of its own recording upstream (the same
//! axum stand-in). Where both forward a request, the upstream must have received the same body
//! from both (one reading of the framing); a request nginx refuses as malformed must never be
//! answered by the gateway through the load balancer (unless it is a known, listed
//! difference; a bad chunk that arrives after the head may reach the gateway as a request cut
//! short, as with nginx's unbuffered proxying), no request nginx read as part of a body may go
//! through as a request of its own, and the load balancer never answers 5xx.
//!
//! It needs nginx (`apt-get install nginx-light`), so it is not part of `make test`:
//! `make differential` runs it (CI does), with `FUZZ_CASES` and `FUZZ_SEED` to change it.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// nginx as a proxy on `port` in front of `upstream`, stopped when dropped.
struct Nginx {
    child: Child,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Nginx {
    fn start(port: u16, upstream: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("scalelab-nginx-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log warn;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};\n\
                   server {{ listen 127.0.0.1:{port};\n\
                     location / {{ proxy_pass http://{upstream}; proxy_http_version 1.1;\n\
                                   proxy_set_header Connection \"\"; }} }} }}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .args(["-c", conf.to_str().unwrap(), "-p", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed (apt-get install nginx-light)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "nginx listens");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            _dir: tempdir::Dir(dir),
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `usual`, or (one time in four) one of the `odd` forms proxies have disagreed on.
fn usual_or(rng: &mut StdRng, usual: &str, odd: &[&str]) -> String {
    if rng.random_bool(0.75) {
        usual.to_string()
    } else {
        odd[rng.random_range(0..odd.len())].to_string()
    }
}

/// One random request: a POST to `/body` (which echoes the body it got), its framing usual
/// or odd in a few places, maybe with a hidden `GET /smuggled` after it.
fn request(rng: &mut StdRng, case: usize) -> Vec<u8> {
    let eol = usual_or(rng, "\r\n", &["\n"]);
    let version = usual_or(rng, "HTTP/1.1", &["HTTP/1.0", "HTTP/1.2", "HTTP/2.0"]);
    let body = ["hello", "", "a longer body of text", "0123456789"][rng.random_range(0..4)];
    let len = body.len().to_string();
    let mut fields = vec![format!(
        "{}: lb",
        usual_or(rng, "Host", &["host", "HOST", "Host ", " Host"])
    )];
    if rng.random_bool(0.05) {
        fields.push("Host: other".into());
    }
    let chunked = rng.random_bool(0.5);
    if chunked || rng.random_bool(0.1) {
        let name = usual_or(
            rng,
            "Transfer-Encoding",
            &["transfer-encoding", "Transfer-Encoding "],
        );
        let te = usual_or(
            rng,
            "chunked",
            &[
                "Chunked",
                " chunked",
                "chunked ",
                "chunked, chunked",
                "identity, chunked",
                "chunked, identity",
                "gzip",
                "xchunked",
                "chunked\t",
                "\"chunked\"",
                "chunk",
            ],
        );
        fields.push(format!("{name}: {te}"));
    }
    if !chunked || rng.random_bool(0.1) {
        let cl = usual_or(
            rng,
            "LEN",
            &[
                "+LEN",
                "-1",
                "LEN, LEN",
                "LEN, 3",
                " LEN",
                "LEN ",
                "0LEN",
                "0x5",
                "",
                "99999999999999999999",
            ],
        );
        let name = usual_or(
            rng,
            "Content-Length",
            &["content-length", "Content-Length "],
        );
        fields.push(format!("{name}: {}", cl.replace("LEN", &len)));
    }
    if rng.random_bool(0.05) {
        fields.push(format!("Content-Length: {}", body.len() + 3));
    }
    match rng.random_range(0..20) {
        0 => fields.extend(["X-Folded: a".to_string(), " folded".into()]),
        1 => fields.push("X-Nul: a\0b".into()),
        2 => fields.push("X-Cr: a\rb".into()),
        3 => fields.push("Connection: close, content-length".into()),
        4 => fields.push("Connection: transfer-encoding".into()),
        _ => {}
    }
    let mut bytes = format!("POST /body?case={case} {version}{eol}");
    for field in fields {
        bytes += &format!("{field}{eol}");
    }
    bytes += &eol;
    let mut bytes = bytes.into_bytes();
    if chunked {
        let size = format!("{:x}", body.len());
        let size = usual_or(
            rng,
            &size,
            &[
                "LEN;ext=1",
                "0LEN",
                "+LEN",
                "LEN ",
                "zz",
                "fffffffffffffffff1",
            ],
        )
        .replace("LEN", &format!("{:x}", body.len()));
        let end = usual_or(rng, "0\r\n\r\n", &["0\r\nX-T: 1\r\n\r\n", "0\n\n", "0\r\n"]);
        if !body.is_empty() {
            bytes.extend_from_slice(format!("{size}\r\n{body}\r\n").as_bytes());
        }
        bytes.extend_from_slice(end.as_bytes());
    } else {
        bytes.extend_from_slice(body.as_bytes());
    }
    if rng.random_bool(0.3) {
        let hidden =
            format!("GET /smuggled?case={case} HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n");
        bytes.extend_from_slice(hidden.as_bytes());
    }
    bytes
}

/// The first answer's status (0: none) and its body: read until it is whole (by its
/// `Content-Length`), the connection closes, or a second passes without a byte.
/// Half the requests arrive in two pieces, cut at `split`, 5 ms apart.
fn exchange(addr: SocketAddr, bytes: &[u8], split: usize) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let (first, rest) = bytes.split_at(split.min(bytes.len()));
    let _ = stream.write_all(first);
    if !rest.is_empty() {
        std::thread::sleep(Duration::from_millis(5));
        let _ = stream.write_all(rest);
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut chunk) {
        answer.extend_from_slice(&chunk[..n]);
        if parse(&answer).2 {
            break;
        }
    }
    let (status, body, _) = parse(&answer);
    (status, body)
}

/// An answer's status, its body, and whether it is whole (its `Content-Length` is there).
fn parse(answer: &[u8]) -> (u16, Vec<u8>, bool) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = response.parse(answer) else {
        return (0, Vec::new(), false);
    };
    let status = response.code.unwrap_or(0);
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let rest = &answer[len..];
    match length {
        Some(n) => (status, rest[..n.min(rest.len())].to_vec(), rest.len() >= n),
        None => (status, dechunk(rest), false),
    }
}

/// The data of a chunked body (what of it parses).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let Some(size) = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
        else {
            break;
        };
        rest = &rest[end + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        data.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    data
}

/// The differences from nginx the README lists: identical `Content-Length` values repeated
/// (`5, 5`, or the field twice) are taken as one here (RFC 9110 §8.6), refused by nginx.
fn known_difference(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request).to_ascii_lowercase();
    let head = text.split("\n\n").next().unwrap_or("");
    let head = head.split("\r\n\r\n").next().unwrap_or("");
    let values: Vec<&str> = head
        .lines()
        .filter_map(|line| line.strip_prefix("content-length:"))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    values.len() > 1 && values.iter().all(|v| *v == values[0])
}

/// Requests of case `case` the upstream received on `/body` and on `/smuggled`.
fn seen(up: &Upstream, case: usize) -> (usize, usize) {
    let seen = up.seen.lock().unwrap();
    let on = |path: &str| {
        let target = format!("{path}?case={case}");
        seen.iter().filter(|s| s.target == target).count()
    };
    (on("/body"), on("/smuggled"))
}

#[tokio::test]
#[ignore = "needs nginx: make differential"]
async fn the_load_balancer_reads_framing_as_nginx_does_or_refuses() {
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42);
    let (lb_up, lb) = over_one_backend("lb-upstream").await;
    let nginx_up = Upstream::start("nginx-upstream");
    let nginx_port = free_port();
    let _nginx = Nginx::start(nginx_port, nginx_up.addr);
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], nginx_port));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut answers = Vec::new();
    for case in 0..cases {
        let bytes = request(&mut rng, case);
        let split = if rng.random_bool(0.5) {
            rng.random_range(1..bytes.len())
        } else {
            bytes.len()
        };
        let (lb_bytes, lb_addr) = (bytes.clone(), lb.addr);
        let lb_answer = tokio::task::spawn_blocking(move || exchange(lb_addr, &lb_bytes, split));
        let nginx_bytes = bytes.clone();
        let nginx_answer =
            tokio::task::spawn_blocking(move || exchange(nginx_addr, &nginx_bytes, split));
        answers.push((bytes, lb_answer.await.unwrap(), nginx_answer.await.unwrap()));
    }
    // What the upstreams received, once the last pipelined request had time to arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut both, mut stricter, mut problems) = (0, 0, Vec::new());
    for (case, (bytes, (lb_status, lb_body), (nginx_status, nginx_body))) in
        answers.into_iter().enumerate()
    {
        let shown = String::from_utf8_lossy(&bytes).escape_debug().to_string();
        let (lb_forwarded, lb_hidden) = seen(&lb_up, case);
        let (nginx_forwarded, nginx_hidden) = seen(&nginx_up, case);
        // A second request both may forward (pipelining); nginx may not reach it before the
        // client leaves. What must not happen: the load balancer forwarding as a request
        // what nginx read as part of a body, or refused.
        let nginx_swallowed =
            nginx_body.windows(8).any(|w| w == b"smuggled") || (400..500).contains(&nginx_status);
        if lb_hidden > nginx_hidden && nginx_swallowed && !known_difference(&bytes) {
            problems.push(format!(
                "case {case}: a request nginx read as part of another got through: {shown}"
            ));
        }
        if lb_status >= 500 {
            problems.push(format!(
                "case {case}: the load balancer answered {lb_status}: {shown}"
            ));
        }
        match (lb_forwarded > 0, nginx_forwarded > 0) {
            (true, true) if lb_status == 200 && nginx_status == 200 => {
                both += 1;
                if lb_body != nginx_body {
                    problems.push(format!(
                        "case {case}: the upstream got {:?} through the load balancer, {:?} through nginx: {shown}",
                        String::from_utf8_lossy(&lb_body),
                        String::from_utf8_lossy(&nginx_body)
                    ));
                }
            }
            (true, false) if lb_status == 200 && (400..500).contains(&nginx_status) && !known_difference(&bytes) => {
                problems.push(format!(
                    "case {case}: answered 200 by the gateway, where nginx refused it ({nginx_status}): {shown}"
                ))
            }
            (false, true) => stricter += 1,
            _ => {}
        }
    }
    println!(
        "{cases} cases (seed {seed}): {both} forwarded by both with the same body, {stricter} \
         refused by the load balancer only"
    );
    assert!(
        both > cases / 10,
        "too few cases both forwarded ({both}): the generator is off"
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
