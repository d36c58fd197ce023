//! HTTP/1.1 at the edge: the load balancer's own data path against hostile and unusual input,
//! in front of a recording upstream (axum, like the gateway). The rule for every case: nothing
//! ambiguous is forwarded, malformed input gets a 4xx with the JSON error body, and the load
//! balancer goes on serving. Expectations follow RFC 9112 §6 and, where it leaves a choice,
//! what nginx does (noted per case).

use records::names::MetricName;

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// After a hostile exchange: the load balancer still answers a plain request.
fn still_serves(lb: &Lb) {
    let answer = raw_exchange(
        lb,
        b"GET /echo HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A refusal: the status, a JSON error body, and the connection closed after it.
fn assert_refused(answer: &str, status: u16, what: &str) {
    assert_eq!(statuses(answer), vec![status], "{what}: {answer}");
    let body = first_json(answer);
    assert_eq!(body["status"], status, "{what}: {answer}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{what}: {answer}"
    );
}

/// Requests the upstream received on `path`.
fn seen_on(up: &Upstream, path: &str) -> usize {
    up.seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.target.starts_with(path))
        .count()
}

#[tokio::test]
async fn request_smuggling_shapes_are_refused_and_never_forwarded() {
    let (up, lb) = over_one_backend("u").await;
    // Each case hides a second request, `GET /smuggled`, that a proxy and a gateway reading
    // the framing differently would disagree about.
    let cases: Vec<(&str, &[u8], u16)> = vec![
        (
            "Content-Length then Transfer-Encoding (RFC 9112 §6.3: reject or drop CL; nginx 400)",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "Transfer-Encoding then Content-Length",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "two different Content-Lengths",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "a list of different Content-Lengths",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 3, 40\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "a signed Content-Length",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: +3\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "a Content-Length that is not a number",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 3x\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "a Content-Length beyond 64 bits",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
            400,
        ),
        (
            "identity, chunked (a coding this proxy does not implement; nginx 501)",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "chunked twice",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "chunked, then another coding (chunked not last: RFC 9112 §6.3 400)",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "an obfuscated coding name",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "whitespace between a header name and its colon (RFC 9112 §5.1: 400)",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "a header line folded onto the next (obs-fold, RFC 9112 §5.2)",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: identity\r\n chunked\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        (
            "Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1: faulty framing)",
            b"POST /body HTTP/1.0\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "a chunk size that is not hex",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            "a chunk size beyond 64 bits",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            "a negative chunk size",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            "a chunk longer than its size says",
            b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcGET /smuggled HTTP/1.1\r\n0\r\n\r\n",
            400,
        ),
        (
            "no Host in HTTP/1.1 (RFC 9112 §3.2)",
            b"GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n",
            400,
        ),
        (
            "two Hosts",
            b"GET /echo HTTP/1.1\r\nHost: lb\r\nHost: other\r\n\r\n",
            400,
        ),
        (
            "a Host that is no host name (nginx 400)",
            b"GET /echo HTTP/1.1\r\nHost: lb/evil\xff\r\n\r\n",
            400,
        ),
        (
            "a Host with user information",
            b"GET /echo HTTP/1.1\r\nHost: user@lb\r\n\r\n",
            400,
        ),
        (
            "a NUL in a header value",
            b"GET /echo HTTP/1.1\r\nHost: lb\r\nX-A: a\x00b\r\n\r\n",
            400,
        ),
        (
            "a bare CR in a header value",
            b"GET /echo HTTP/1.1\r\nHost: lb\r\nX-A: a\rX-B: b\r\n\r\n",
            400,
        ),
        (
            "a space in a header name",
            b"GET /echo HTTP/1.1\r\nHost: lb\r\nX A: 1\r\n\r\n",
            400,
        ),
        (
            "an absolute-form target (this load balancer takes paths only)",
            b"GET http://other.example/smuggled HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "an authority-form target outside CONNECT",
            b"GET other.example:80 HTTP/1.1\r\nHost: lb\r\n\r\n",
            400,
        ),
        (
            "CONNECT (not proxied; nginx 400)",
            b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
            405,
        ),
    ];
    for (what, request, status) in cases {
        let answer = raw_exchange(&lb, request);
        assert_refused(&answer, status, what);
        assert_eq!(
            seen_on(&up, "/smuggled"),
            0,
            "{what}: a hidden request got through"
        );
    }
    // None reached the upstream at all: those refused at the head never go, and a bad chunk
    // that arrives with its head is found before the head is sent (the head and the body at
    // hand leave in one write).
    assert_eq!(seen_on(&up, "/body"), 0, "nothing began upstream");
    still_serves(&lb);
}

#[tokio::test]
async fn identical_content_lengths_collapse_to_one_and_the_body_goes_through() {
    let (up, lb) = over_one_backend("u").await;
    // RFC 9110 §8.6 lets a recipient take identical values as one (hyper, Pingora do).
    let answer = raw_exchange(
        &lb,
        b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("content-length"), vec!["5"]);
    // `Chunked` in any case is chunked; the trailer section is read and not forwarded
    // (RFC 9110 §6.5.1 lets a proxy drop trailers): the body arrives whole.
    let answer = raw_exchange(
        &lb,
        b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
}

#[tokio::test]
async fn a_connection_header_cannot_strip_framing_or_host() {
    let (up, lb) = over_one_backend("u").await;
    // Naming Content-Length (or Transfer-Encoding, Host) in Connection must not make the body
    // vanish: before the fix the body was dropped and the request framed as empty.
    let answer = raw_exchange(
        &lb,
        b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\nConnection: close, content-length, host, x-drop\r\nX-Drop: 1\r\n\r\nhello",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    let answer = raw_exchange(
        &lb,
        b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\nConnection: close, transfer-encoding\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen[0].header("host"), vec!["lb"]);
    assert!(
        seen[0].header("x-drop").is_empty(),
        "a named header stays on its hop"
    );
    assert_eq!(seen[1].header("transfer-encoding"), vec!["chunked"]);
}

#[tokio::test]
async fn credentials_for_a_proxy_stay_at_the_proxy() {
    let (up, lb) = over_one_backend("u").await;
    let answer = raw_exchange(
        &lb,
        b"GET /echo HTTP/1.1\r\nHost: lb\r\nProxy-Authorization: Basic c2VjcmV0\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = up.seen.lock().unwrap().clone();
    assert!(seen[0].header("proxy-authorization").is_empty());
    assert_eq!(seen[0].header("authorization"), vec!["Bearer t"]);
}

#[tokio::test]
async fn oversized_heads_are_refused_like_nginx_does() {
    let (up, lb) = over_one_backend("u").await;
    // nginx: 8 KiB per header line (large_client_header_buffers; it answers 400), 414 for a
    // long target.
    let long_value = "v".repeat(200 * 1024);
    let answer = raw_exchange(
        &lb,
        format!("GET /echo HTTP/1.1\r\nHost: lb\r\nX-Big: {long_value}\r\n\r\n").as_bytes(),
    );
    assert_refused(&answer, 431, "a 200 KB header line");
    let fits = "v".repeat(8000);
    let answer = raw_exchange(
        &lb,
        format!("GET /echo HTTP/1.1\r\nHost: lb\r\nX-Big: {fits}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "an 8000-byte line passes: {answer}"
    );
    let many: String = (0..101).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let answer = raw_exchange(
        &lb,
        format!("GET /echo HTTP/1.1\r\nHost: lb\r\n{many}\r\n").as_bytes(),
    );
    assert_refused(&answer, 431, "102 header fields");
    let lines: String = (0..12)
        .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(7000)))
        .collect();
    let answer = raw_exchange(
        &lb,
        format!("GET /echo HTTP/1.1\r\nHost: lb\r\n{lines}\r\n").as_bytes(),
    );
    assert_refused(&answer, 431, "84 KB of header fields");
    let target = "a".repeat(9000);
    let answer = raw_exchange(
        &lb,
        format!("GET /echo?{target} HTTP/1.1\r\nHost: lb\r\n\r\n").as_bytes(),
    );
    assert_refused(&answer, 414, "a 9 KB request target");
    // A head that does not end is refused once it is past the limits, while it is still
    // being read (at most 72 KiB of it is held), and the client, still sending, gets the
    // answer rather than a reset.
    let huge = "v".repeat(1_100_000);
    let answer = raw_exchange(
        &lb,
        format!("GET /echo HTTP/1.1\r\nHost: lb\r\nX-Huge: {huge}\r\n\r\n").as_bytes(),
    );
    assert_refused(&answer, 431, "a 1.1 MB header line");
    let huge_target = "a".repeat(1_100_000);
    let answer = raw_exchange(
        &lb,
        format!("GET /echo?{huge_target} HTTP/1.1\r\nHost: lb\r\n\r\n").as_bytes(),
    );
    assert_refused(&answer, 414, "a 1.1 MB request target");
    assert_eq!(
        seen_on(&up, "/echo"),
        1,
        "only the one that fits was forwarded"
    );
    still_serves(&lb);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (up, lb) = over_one_backend("u").await;
    let mut stream = TcpStream::connect(lb.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Three requests in one write, the second with a body, the last closing the connection.
    stream
        .write_all(
            b"GET /echo?n=1 HTTP/1.1\r\nHost: lb\r\n\r\n\
              POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 6\r\n\r\nsecond\
              GET /echo?n=3 HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(statuses(&answer), vec![200, 200, 200], "{answer}");
    let second = answer.find("second").expect("the body of the second");
    let third = answer.rfind("HTTP/1.1 200").unwrap();
    assert!(second < third, "answers in request order: {answer}");
    let targets: Vec<String> = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.target.clone())
        .collect();
    assert_eq!(targets, ["/echo?n=1", "/body", "/echo?n=3"]);
}

#[tokio::test]
async fn an_early_answer_reaches_the_client_instead_of_a_502() {
    let (_up, lb) = over_one_backend("u").await;
    let client = reqwest::Client::new();
    // Past the gateway's 64 KiB limit: its 413, not a 502 (it answers and stops reading).
    for size in [100 * 1024, 2 * 1024 * 1024, 8 * 1024 * 1024] {
        let resp = client
            .post(format!("{}/limited", lb.base))
            .body(vec![b'x'; size])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413, "a {size}-byte body");
    }
    // An answer before the body is read at all: the 401 arrives, whole.
    let resp = client
        .post(format!("{}/early", lb.base))
        .body(vec![b'x'; 4 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.text().await.unwrap(), "no body wanted");

    // A client that sends its header, then waits for an answer before sending its body: the
    // early 401 reaches it without the body ever coming.
    let mut stream = TcpStream::connect(lb.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"POST /early HTTP/1.1\r\nHost: lb\r\nContent-Length: 100000\r\n\r\nxx")
        .unwrap();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    let n = stream.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The small bodies still pass.
    let resp = client
        .post(format!("{}/limited", lb.base))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "1000");
}

#[tokio::test]
async fn slow_clients_are_cut_off_by_the_client_timeout() {
    let (up, lb) = over_one_backend_with("u", |c| c.client_timeout_ms = 400).await;
    // A header that never ends (slowloris): the connection is closed, nothing forwarded.
    let mut slow = TcpStream::connect(lb.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET /echo HTTP/1.1\r\nHost: lb\r\n")
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(2), "closed after {waited:?}");

    // A body that stops halfway: a 408, and the gateway's half request is not kept.
    let mut slow = TcpStream::connect(lb.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 10\r\n\r\nhalf")
        .unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert_refused(&answer, 408, "a body that stops");
    assert_eq!(seen_on(&up, "/echo"), 0);
    still_serves(&lb);
}

/// How a gateway stand-in ends a kept-alive connection after answering its first request.
#[derive(Clone, Copy)]
enum Close {
    /// The moment the next request arrives, without answering it: the keep-alive race (its
    /// idle timeout, or its shutdown, crossing the load balancer's reuse).
    OnNextRequest,
    /// After this long idle, before any next request (an idle timeout).
    WhenIdle(Duration),
}

/// A gateway stand-in that answers the first request on each connection, then closes it.
/// It counts the POSTs it answered (health checks are GETs: how many the load balancer
/// sends depends on timing).
fn start_closer(close: Close) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut have = Vec::new();
                // The first request (a body up to a few bytes, by Content-Length).
                loop {
                    let Ok(n) = stream.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&have).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if have.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                if have.starts_with(b"POST ") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nanswered");
                match close {
                    // The next request on this connection: read, then close without a word.
                    Close::OnNextRequest => {
                        let _ = stream.read(&mut buf);
                    }
                    Close::WhenIdle(after) => std::thread::sleep(after),
                }
            });
        }
    });
    (addr, answered)
}

#[tokio::test]
async fn a_post_on_a_connection_the_gateway_just_closed_is_sent_again_on_a_new_one() {
    let (closer, answered) = start_closer(Close::OnNextRequest);
    let lb = start_lb(&[closer.to_string()], |c| {
        c.health_interval_ms = 60_000;
        c.health_path = "/".into();
    });
    wait_healthy(&lb, 1).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let resp = client
            .post(format!("{}/tasks", lb.base))
            .body(format!("job {i}"))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, vec![200; 10], "no POST became a 502");
    // Each POST was answered once: the retry went to a connection the closer answers.
    assert_eq!(
        answered.load(Ordering::SeqCst),
        10,
        "each POST answered once"
    );
    let samples =
        common::metrics::scrape(&reqwest::Client::new(), &format!("{}/metrics", lb.metrics))
            .await
            .unwrap();
    // Most POSTs meet a pooled connection the closer has dropped; one that starts before the
    // last connection is back in the pool opens a new one instead (a race, not a fault), so
    // the count is at least one, not exactly nine.
    let stale = common::metrics::sum(&samples, MetricName::LbStaleConnectionRetriesTotal, &[]);
    assert!(stale >= 1.0, "the stale connections were noticed: {stale}");
}

#[tokio::test]
async fn a_pooled_connection_the_gateway_closed_while_idle_is_not_used_again() {
    let (closer, answered) = start_closer(Close::WhenIdle(Duration::from_millis(100)));
    let lb = start_lb(&[closer.to_string()], |c| {
        c.health_interval_ms = 60_000;
        c.health_path = "/".into();
    });
    wait_healthy(&lb, 1).await;
    let client = reqwest::Client::new();
    for i in 0..5 {
        // Longer than the gateway's idle timeout: each pooled connection is closed by then.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let resp = client
            .post(format!("{}/tasks", lb.base))
            .body(format!("job {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        answered.load(Ordering::SeqCst),
        5,
        "each POST answered once"
    );
    let samples =
        common::metrics::scrape(&reqwest::Client::new(), &format!("{}/metrics", lb.metrics))
            .await
            .unwrap();
    assert_eq!(
        common::metrics::sum(&samples, MetricName::LbStaleConnectionRetriesTotal, &[]),
        0.0,
        "the idle list noticed each close while the connection was idle"
    );
}

#[tokio::test]
async fn hostile_bytes_do_not_stop_the_load_balancer() {
    // A short client timeout: the incomplete ones end in a 408 or a close quickly.
    let (_up, lb) = over_one_backend_with("u", |c| c.client_timeout_ms = 300).await;
    let junk: Vec<Vec<u8>> = vec![
        b"\r\n\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nHost: lb\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\nHost: lb\nConnection: close\n\n".to_vec(),
        vec![0u8; 10_000],
        (0..=255u8).cycle().take(20_000).collect(),
        b"GET /\xff\xfe HTTP/1.1\r\nHost: lb\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /body HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\n\r\nab".to_vec(),
        b"POST /body HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab".to_vec(),
        b"GET /echo HTTP/1.1\r\nHost: lb\r\nUpgrade: websocket\r\nConnection: upgrade, close\r\n\r\n"
            .to_vec(),
    ];
    for request in &junk {
        let answer = raw_exchange(&lb, request);
        for status in statuses(&answer) {
            assert!(
                status < 500,
                "{status} for {:?}: {answer}",
                String::from_utf8_lossy(&request[..request.len().min(60)])
            );
        }
    }
    still_serves(&lb);
}

/// A gateway stand-in that answers `GET /healthz` with a plain 200 and every other request
/// with `answer`, exactly as given, then closes the connection: answers a well-behaved
/// gateway never sends.
fn start_raw(answer: &'static [u8]) -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut have = Vec::new();
                let mut buf = [0u8; 4096];
                while !have.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(n) if n > 0 => have.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                if have.starts_with(b"GET /healthz ") {
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                } else {
                    let _ = stream.write_all(answer);
                }
            });
        }
    });
    addr
}

async fn over_raw(answer: &'static [u8]) -> Lb {
    let lb = start_lb(&[start_raw(answer).to_string()], |c| {
        c.health_path = "/healthz".into();
    });
    wait_healthy(&lb, 1).await;
    lb
}

/// A chunked body's data, if it is well-formed and ends with its last chunk and no trailer.
fn dechunk(mut body: &str) -> Option<String> {
    let mut data = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            return (rest == "\r\n").then_some(data);
        }
        data.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

#[tokio::test]
async fn answers_are_reframed_for_the_client_and_bad_ones_are_a_502() {
    // Chunked, with a trailer and a chunk extension: an HTTP/1.1 client gets chunks again (no
    // trailer), an HTTP/1.0 client the bytes alone, then the end of the connection.
    let lb = over_raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n\
          5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .await;
    let answer = raw_exchange(&lb, b"GET /a HTTP/1.1\r\nHost: lb\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nX-Up: 1\r\n"), "{answer}");
    // Chunk boundaries carry no meaning (RFC 9112 §7.1): a proxy may cut the body into other
    // chunks (Pingora sends what it has at hand as one), but never passes the extension or
    // the trailer on.
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    assert_eq!(dechunk(body), Some("hello world".to_string()), "{answer}");
    assert!(
        !answer.contains("x=y") && !answer.contains("X-Trailer"),
        "{answer}"
    );
    let answer = raw_exchange(&lb, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    assert!(!answer.contains("chunked"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello world"), "{answer}");

    // No length at all: the body is what comes until the gateway closes. An HTTP/1.1 client
    // gets it whole and framed again: in chunks (what Pingora does; RFC 9112 §7 lets a proxy
    // frame it so), or until its own connection closes.
    let lb = over_raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end").await;
    let answer = raw_exchange(&lb, b"GET /a HTTP/1.1\r\nHost: lb\r\n\r\n");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    if answer.contains("\r\nTransfer-Encoding: chunked\r\n") {
        assert_eq!(dechunk(body), Some("until the end".to_string()), "{answer}");
    } else {
        assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
        assert_eq!(body, "until the end", "{answer}");
    }

    // A malformed head, two different lengths, a bad chunk before any byte went out: a 502
    // JSON error, and the load balancer serves on.
    for bad in [
        &b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"NOT HTTP\r\n\r\n",
    ] {
        let lb = over_raw(bad).await;
        let answer = raw_exchange(&lb, b"GET /a HTTP/1.1\r\nHost: lb\r\n\r\n");
        assert_refused(&answer, 502, &String::from_utf8_lossy(bad));
    }
    // An answer cut short: the client gets what there was, then the connection ends (its
    // length says it is short), never a second answer on top.
    let lb = over_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this").await;
    let answer = raw_exchange(&lb, b"GET /a HTTP/1.1\r\nHost: lb\r\n\r\n");
    assert_eq!(statuses(&answer), vec![200], "{answer}");
    assert!(answer.ends_with("only this"), "{answer}");
}
