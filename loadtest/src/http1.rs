//! One HTTP/1.1 keep-alive connection per virtual user, driven by the user's own task.
//!
//! A shared reqwest client, as Goose uses it, parses the URL of every request, looks a pooled
//! connection up under a lock, wraps the answer for redirects and decoding, and moves every
//! request and answer between the user's task and the connection's task. A user of the lab
//! sends one request at a time to one address, so it holds its own connection (as a browser
//! tab, Locust's session or wrk's connection does) and polls it itself: a request is written
//! and its answer read in the task that awaits it, with no pool and no second task. A
//! connection the server closed while the user was thinking is noticed before the request is
//! written, and the request is sent once more on a new connection; any other failure is the
//! request's.

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{handshake, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::time::Duration;
use tokio::net::TcpStream;

/// Where the users send their requests: `http://host:port` (the lab never speaks TLS to its
/// own load balancer).
#[derive(Clone, Debug)]
pub struct Target {
    /// `host:port`, resolved at each connect.
    address: String,
    /// The `Host` header of every request.
    host: HeaderValue,
}

impl Target {
    /// The target of a base URL such as `http://127.0.0.1:8080` (a path is ignored).
    pub fn parse(base: &str) -> Result<Self, String> {
        let uri: Uri = base
            .parse()
            .map_err(|e| format!("not a URL: {base}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "{base}: the load generator speaks plain HTTP, not {other}"
                ))
            }
            None => return Err(format!("{base}: no scheme (http://host:port)")),
        }
        let authority = uri.authority().ok_or_else(|| format!("{base}: no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("{base}: not a host: {e}"))?;
        Ok(Self {
            address: format!("{}:{port}", authority.host()),
            host,
        })
    }
}

impl Target {
    /// A request to `path_and_query` (`/data?key=hot`) with the target's `Host` header.
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .body(Full::new(body))
            .map_err(|e| format!("{path_and_query}: {e}"))?;
        request.headers_mut().insert(HOST, self.host.clone());
        Ok(request)
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A user's connection: none until its first request, a new one after a failure.
pub struct User {
    target: Target,
    timeout: Duration,
    live: Option<Live>,
}

struct Live {
    sender: SendRequest<Full<Bytes>>,
    connection: Pin<Box<Connection<TokioIo<TcpStream>, Full<Bytes>>>>,
}

/// Why a request has no answer.
#[derive(Debug)]
pub enum Failure {
    /// No connection could be made (refused, unreachable, a name that does not resolve).
    Connect(std::io::Error),
    /// The exchange failed after the connection was made (reset, closed mid-answer, a
    /// malformed answer).
    Http(hyper::Error),
    /// No whole answer within the timeout.
    Timeout(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Http(e) => match std::error::Error::source(e) {
                Some(cause) => write!(f, "{e}: {cause}"),
                None => write!(f, "{e}"),
            },
            Failure::Timeout(t) => write!(f, "no answer within {} ms", t.as_millis()),
        }
    }
}

/// How one exchange on a live connection ended.
enum Exchange {
    Answered(Answer),
    /// The connection was closed before the request was written: it can go on a new one.
    NotSent(Request<Full<Bytes>>),
    Failed(Failure),
}

impl User {
    pub fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            timeout,
            live: None,
        }
    }

    /// Sends `request` and reads its whole answer, within the timeout.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, Failure> {
        match tokio::time::timeout(self.timeout, self.send_untimed(request)).await {
            Ok(answer) => answer,
            Err(_) => {
                // The connection may hold half an answer: never reuse it.
                self.live = None;
                Err(Failure::Timeout(self.timeout))
            }
        }
    }

    async fn send_untimed(&mut self, mut request: Request<Full<Bytes>>) -> Result<Answer, Failure> {
        loop {
            // Out of `self` while in use: a request cut off by the timeout leaves none.
            let (live, reused) = match self.live.take() {
                Some(live) => (live, true),
                None => (connect(&self.target).await?, false),
            };
            match exchange(live, request).await {
                (Exchange::Answered(answer), live) => {
                    self.live = live;
                    return Ok(answer);
                }
                // Closed by the server while the user thought: once more, on a new one.
                (Exchange::NotSent(unsent), _) if reused => request = unsent,
                (Exchange::NotSent(_), _) => {
                    return Err(Failure::Connect(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the new connection closed before the request was written",
                    )))
                }
                (Exchange::Failed(failure), _) => return Err(failure),
            }
        }
    }
}

async fn connect(target: &Target) -> Result<Live, Failure> {
    let stream = TcpStream::connect(&target.address)
        .await
        .map_err(Failure::Connect)?;
    stream.set_nodelay(true).map_err(Failure::Connect)?;
    let (sender, connection) = handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::Connect(std::io::Error::other(e)))?;
    Ok(Live {
        sender,
        connection: Box::pin(connection),
    })
}

/// Writes the request and reads the answer, polling the connection in this task; the
/// connection back if it can carry another request.
async fn exchange(live: Live, request: Request<Full<Bytes>>) -> (Exchange, Option<Live>) {
    let Live {
        mut sender,
        connection,
    } = live;
    let mut connection = Some(connection);
    // Taken only once the connection is ready for it: if it is never taken, it is still
    // here; hyper hands one it did not write back (`Err(Err(request))`).
    let mut unsent = Some(request);
    let ended = {
        let exchange = async {
            sender.ready().await.map_err(Ok)?;
            let request = unsent.take().expect("taken once");
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (head, body) = response.into_parts();
                    let body = body.collect().await.map_err(Ok)?.to_bytes();
                    Ok(Answer {
                        status: head.status,
                        headers: head.headers,
                        body,
                    })
                }
                Err(mut e) => match e.take_message() {
                    Some(request) => Err(Err(request)),
                    None => Err(Ok(e.into_error())),
                },
            }
        };
        tokio::pin!(exchange);
        tokio::select! {
            biased;
            ended = &mut exchange => ended,
            _ = connection.as_mut().expect("open").as_mut() => {
                // The connection ended (closed by the peer, or an answer hyper could not
                // read): dropped, it hands a request it had not written back to the sender
                // and fails one it had, so the exchange ends with what happened.
                connection = None;
                exchange.await
            }
        }
    };
    match (ended, unsent) {
        (Ok(answer), _) => {
            let live = connection.map(|connection| Live { sender, connection });
            (Exchange::Answered(answer), live)
        }
        // Never taken (the connection was not ready), or handed back unwritten.
        (Err(_), Some(request)) | (Err(Err(request)), None) => (Exchange::NotSent(request), None),
        (Err(Ok(e)), None) => (Exchange::Failed(Failure::Http(e)), None),
    }
}

/// Fault drills: scripted peers on loopback that answer well, close, reset, stall or speak
/// nonsense, and what a user's connection makes of each.
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the peer does with each request it reads on a connection.
    #[derive(Clone, Copy)]
    enum Peer {
        /// Answers every request (`ok N`, N counting the requests it read), keep-alive.
        Answer,
        /// Answers with a chunked body.
        Chunked,
        /// Answers the first request on each connection, then closes it.
        OneThenClose,
        /// Reads the request, sends half an answer, closes.
        HalfThenClose,
        /// Reads the request, answers something that is not HTTP.
        Garbage,
        /// Reads the request, never answers.
        Silent,
    }

    struct Drill {
        target: Target,
        connections: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
    }

    async fn peer(behaviour: Peer) -> Drill {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("bound");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        // One request: headers, then a body as long as Content-Length says.
                        let Some(request) = read_request(&mut socket, &mut buffer).await else {
                            return;
                        };
                        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                        let body = format!("ok {n} {request}");
                        let answer = match behaviour {
                            Peer::Answer | Peer::OneThenClose => format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-cache: HIT\r\n\r\n{body}",
                                body.len()
                            ),
                            Peer::Chunked => format!(
                                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nok \r\n{:x}\r\n{}\r\n0\r\n\r\n",
                                body.len() - 3,
                                &body[3..]
                            ),
                            Peer::HalfThenClose => {
                                "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf".into()
                            }
                            Peer::Garbage => "HELLO THERE\r\n\r\n".into(),
                            Peer::Silent => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                        };
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        if !matches!(behaviour, Peer::Answer | Peer::Chunked) {
                            return;
                        }
                    }
                });
            }
        });
        Drill {
            target: Target::parse(&format!("http://{address}")).expect("a target"),
            connections,
            requests,
        }
    }

    impl Drill {
        fn user(&self, timeout: Duration) -> User {
            User::new(self.target.clone(), timeout)
        }
    }

    /// The request line and body of one request (`GET /x body`), or none at the end.
    async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse().expect("a length"));
                while buffer.len() < end + 4 + length {
                    let mut more = [0u8; 4096];
                    let n = socket.read(&mut more).await.ok().filter(|&n| n > 0)?;
                    buffer.extend_from_slice(&more[..n]);
                }
                let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).to_string();
                buffer.drain(..end + 4 + length);
                let line = head.lines().next().unwrap_or_default();
                let (method, path) = line.split_once(' ').unwrap_or_default();
                let path = path.split(' ').next().unwrap_or_default();
                assert!(
                    head.to_ascii_lowercase().contains("\r\nhost: 127.0.0.1:"),
                    "no Host header: {head}"
                );
                return Some(format!("{method} {path} {body}").trim_end().to_string());
            }
            let mut more = [0u8; 4096];
            let n = socket.read(&mut more).await.ok().filter(|&n| n > 0)?;
            buffer.extend_from_slice(&more[..n]);
        }
    }

    fn get(user: &User, path: &str) -> Request<Full<Bytes>> {
        user.target
            .request(Method::GET, path, Bytes::new())
            .expect("a request")
    }

    fn text(answer: &Answer) -> &str {
        std::str::from_utf8(&answer.body).expect("utf-8")
    }

    #[tokio::test]
    async fn one_connection_carries_every_request_and_answer() {
        let drill = peer(Peer::Answer).await;
        let mut user = drill.user(Duration::from_secs(5));
        for n in 1..=3 {
            let answer = user
                .send(get(&user, &format!("/data?key={n}")))
                .await
                .expect("an answer");
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(text(&answer), format!("ok {n} GET /data?key={n}"));
            assert_eq!(answer.headers["x-cache"], "HIT");
        }
        let posted = user
            .send(
                user.target
                    .request(Method::POST, "/login", Bytes::from_static(b"{\"a\":1}"))
                    .expect("a request"),
            )
            .await
            .expect("an answer");
        assert_eq!(text(&posted), "ok 4 POST /login {\"a\":1}");
        assert_eq!(drill.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_chunked_answer_is_read_whole() {
        let drill = peer(Peer::Chunked).await;
        let mut user = drill.user(Duration::from_secs(5));
        for n in 1..=2 {
            let answer = user
                .send(get(&user, "/listing?prefix=p1"))
                .await
                .expect("an answer");
            assert_eq!(text(&answer), format!("ok {n} GET /listing?prefix=p1"));
        }
        assert_eq!(drill.connections.load(Ordering::SeqCst), 1);
    }

    /// The server closed the idle connection: the next request goes, once, on a new one.
    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced_and_the_request_sent_once() {
        let drill = peer(Peer::OneThenClose).await;
        let mut user = drill.user(Duration::from_secs(5));
        for n in 1..=3 {
            let answer = user
                .send(get(&user, "/data?key=hot"))
                .await
                .expect("an answer");
            assert_eq!(text(&answer), format!("ok {n} GET /data?key=hot"));
            // Long enough for the close to arrive before the next request.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            drill.requests.load(Ordering::SeqCst),
            3,
            "a request sent twice"
        );
        assert_eq!(drill.connections.load(Ordering::SeqCst), 3);
    }

    /// Half an answer, then the close: the request fails and is not sent again (it may have
    /// had its effect: a login, a job submitted).
    #[tokio::test]
    async fn an_answer_cut_short_fails_the_request_without_sending_it_again() {
        let drill = peer(Peer::HalfThenClose).await;
        let mut user = drill.user(Duration::from_secs(5));
        let failure = user
            .send(
                user.target
                    .request(Method::POST, "/longtask", Bytes::from_static(b"{}"))
                    .expect("a request"),
            )
            .await
            .expect_err("half an answer");
        assert!(matches!(failure, Failure::Http(_)), "{failure}");
        assert_eq!(drill.requests.load(Ordering::SeqCst), 1);
        // The next request starts over on a new connection (that fails the same way).
        user.send(get(&user, "/data?key=hot"))
            .await
            .expect_err("half again");
        assert_eq!(drill.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_is_a_failure() {
        let drill = peer(Peer::Garbage).await;
        let mut user = drill.user(Duration::from_secs(5));
        let failure = user
            .send(get(&user, "/data?key=hot"))
            .await
            .expect_err("not HTTP");
        assert!(matches!(failure, Failure::Http(_)), "{failure}");
        assert!(failure.to_string().contains("parse"), "{failure}");
    }

    #[tokio::test]
    async fn no_answer_within_the_timeout_fails_and_the_connection_is_not_reused() {
        let drill = peer(Peer::Silent).await;
        let mut user = drill.user(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let failure = user
            .send(get(&user, "/data?key=hot"))
            .await
            .expect_err("silence");
        assert!(matches!(failure, Failure::Timeout(_)), "{failure}");
        assert_eq!(failure.to_string(), "no answer within 200 ms");
        assert!(started.elapsed() < Duration::from_secs(5));
        user.send(get(&user, "/data?key=hot"))
            .await
            .expect_err("silence again");
        assert_eq!(drill.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let address = listener.local_addr().expect("bound");
        drop(listener);
        let target = Target::parse(&format!("http://{address}")).expect("a target");
        let mut user = User::new(target, Duration::from_secs(5));
        let failure = user.send(get(&user, "/health")).await.expect_err("refused");
        assert!(matches!(failure, Failure::Connect(_)), "{failure}");
        assert!(failure.to_string().starts_with("connect: "), "{failure}");
    }

    #[test]
    fn a_target_is_a_plain_http_url_with_a_host() {
        let t = Target::parse("http://127.0.0.1:8080/").expect("a target");
        assert_eq!(
            (t.address.as_str(), t.host.to_str().unwrap()),
            ("127.0.0.1:8080", "127.0.0.1:8080")
        );
        let t = Target::parse("http://lb").expect("a target");
        assert_eq!(
            (t.address.as_str(), t.host.to_str().unwrap()),
            ("lb:80", "lb")
        );
        let t = Target::parse("http://[::1]:9000").expect("a target");
        assert_eq!(t.address, "[::1]:9000");
        for (bad, says) in [
            ("https://127.0.0.1:8443", "plain HTTP, not https"),
            ("127.0.0.1:8080", "no scheme"),
            ("", "not a URL"),
            ("http://", "not a URL"),
            ("http://exa mple:80", "not a URL"),
        ] {
            let e = Target::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_path_a_request_cannot_carry_is_an_error() {
        let target = Target::parse("http://127.0.0.1:1").expect("a target");
        let e = target
            .request(Method::GET, "/data?key=a b", Bytes::new())
            .expect_err("a space");
        assert!(e.starts_with("/data?key=a b: "), "{e}");
    }
}
