//! A hostile-input corpus sent through the load balancer to the whole stack (gateway,
//! microservice, real Postgres and Redis): malformed, oversized, deeply nested and wrongly
//! typed JSON, control characters and invalid UTF-8 in every field, odd keys and ids, wrong
//! methods and paths. The rule: a 4xx with the JSON error body, never a 5xx, and afterwards
//! the stack still logs in, serves and queues.

mod support;

use common::testing::{self, TestDb};
use records::wire::{ErrorBody, Login, LoginAnswer};
use std::io::{Read, Write};
use std::time::Duration;
use support::*;

struct Stack {
    lb: Lb,
    _db: TestDb,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

async fn stack() -> Stack {
    common::telemetry::init_for_tests();
    let db = TestDb::create().await;
    let mut stops = Vec::new();
    let ms = microservice::build(microservice::Config {
        db_delay_ms: 0,
        ..microservice::Config::for_tests("ms-hostile", db.config())
    })
    .await
    .expect("microservice builds");
    let ms_url = format!("http://127.0.0.1:{}", ms.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ms.run_until(async move {
        let _ = stopped.await;
    }));
    stops.push(stop);
    let gw = gateway::build(gateway::Config::for_tests(
        "gw-hostile",
        db.config(),
        testing::redis_config(),
        ms_url,
    ))
    .await
    .expect("gateway builds");
    let gw_addr = format!("127.0.0.1:{}", gw.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gw.run_until(async move {
        let _ = stopped.await;
    }));
    stops.push(stop);
    let lb = start_lb(&[gw_addr], |_| {});
    wait_healthy(&lb, 1).await;
    Stack {
        lb,
        _db: db,
        _stops: stops,
    }
}

/// One request of the corpus, as raw bytes (so that invalid UTF-8 and odd framing reach the
/// stack exactly as written).
struct Case {
    what: String,
    bytes: Vec<u8>,
}

fn request(method: &str, target: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

fn case(what: impl Into<String>, bytes: Vec<u8>) -> Case {
    Case {
        what: what.into(),
        bytes,
    }
}

/// The corpus: every field of every route, with a valid token where one is needed.
fn corpus(token: &str) -> Vec<Case> {
    let bearer = format!("Bearer {token}");
    let auth: &[(&str, &[u8])] = &[
        ("Authorization", bearer.as_bytes()),
        ("Content-Type", b"application/json"),
    ];
    let json: &[(&str, &[u8])] = &[("Content-Type", b"application/json")];
    let mut cases = Vec::new();

    // Login bodies.
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_object = format!(
        r#"{{"username":"u","password":"p","x":{}1{}}}"#,
        r#"{"a":"#.repeat(5_000),
        "}".repeat(5_000)
    );
    let login_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", br#"{"username": "user1""#.to_vec()),
        ("not JSON", b"username=user1&password=scalelab".to_vec()),
        ("an empty body", Vec::new()),
        ("a JSON array", br#"["user1", "scalelab"]"#.to_vec()),
        ("a JSON string", br#""user1""#.to_vec()),
        ("null", b"null".to_vec()),
        (
            "numbers for strings",
            br#"{"username": 1, "password": 2}"#.to_vec(),
        ),
        (
            "objects for strings",
            br#"{"username": {}, "password": []}"#.to_vec(),
        ),
        ("a missing password", br#"{"username": "user1"}"#.to_vec()),
        (
            "a duplicate key",
            br#"{"username":"user1","username":"user2","password":"scalelab"}"#.to_vec(),
        ),
        ("100,000 nested arrays", nested.clone().into_bytes()),
        ("5,000 nested objects", nested_object.into_bytes()),
        (
            "a NUL in the username",
            br#"{"username":"user\u0000","password":"scalelab"}"#.to_vec(),
        ),
        (
            "a NUL in the password",
            br#"{"username":"user1","password":"scale\u0000lab"}"#.to_vec(),
        ),
        (
            "a newline in the username",
            br#"{"username":"user1\nadmin","password":"x"}"#.to_vec(),
        ),
        (
            "a lone surrogate",
            br#"{"username":"\ud800","password":"x"}"#.to_vec(),
        ),
        (
            "invalid UTF-8 in a string",
            b"{\"username\":\"\xff\xfe\",\"password\":\"x\"}".to_vec(),
        ),
        (
            "a 60 KB username",
            format!(r#"{{"username":"{}","password":"x"}}"#, "u".repeat(60_000)).into_bytes(),
        ),
        ("a 1 MB body", vec![b' '; 1024 * 1024]),
        (
            "odd keys",
            br#"{"username":"user1","password":"x","__proto__":{"admin":true},"":1}"#.to_vec(),
        ),
        (
            "a number past f64",
            br#"{"username":"user1","password":"x","n":1e999}"#.to_vec(),
        ),
        (
            "trailing garbage",
            br#"{"username":"user1","password":"x"} trailing"#.to_vec(),
        ),
    ];
    for (what, body) in &login_bodies {
        cases.push(case(
            format!("POST /login: {what}"),
            request("POST", b"/login", json, body),
        ));
    }
    cases.push(case(
        "POST /login as text/plain",
        request(
            "POST",
            b"/login",
            &[("Content-Type", b"text/plain")],
            br#"{"username":"user1","password":"scalelab"}"#,
        ),
    ));
    cases.push(case(
        "POST /login with a Content-Type that is not text",
        request(
            "POST",
            b"/login",
            &[("Content-Type", b"application/json\xff")],
            br#"{"username":"user1","password":"scalelab"}"#,
        ),
    ));

    // Keys of /data and /process.
    let keys: Vec<(&str, Vec<u8>)> = vec![
        ("an empty key", b"".to_vec()),
        ("a NUL", b"a%00b".to_vec()),
        ("a path", b"..%2F..%2Fetc%2Fpasswd".to_vec()),
        ("invalid UTF-8", b"%ff%fe".to_vec()),
        ("a raw byte past ASCII", b"\xc3\xa9t\xc3\xa9".to_vec()),
        ("65 characters", "k".repeat(65).into_bytes()),
        ("7 KB", "k".repeat(7_000).into_bytes()),
        ("a newline", b"a%0Ab".to_vec()),
        ("spaces", b"a+b".to_vec()),
        ("a second key", b"a&key=b".to_vec()),
    ];
    for route in ["/data", "/process"] {
        for (what, key) in &keys {
            let mut target = format!("{route}?key=").into_bytes();
            target.extend_from_slice(key);
            cases.push(case(
                format!("GET {route}: {what}"),
                request("GET", &target, auth, b""),
            ));
        }
        cases.push(case(
            format!("GET {route} without a key"),
            request("GET", route.as_bytes(), auth, b""),
        ));
        cases.push(case(
            format!("GET {route} with a query that is not a query"),
            request("GET", format!("{route}?%%%=&&=").as_bytes(), auth, b""),
        ));
    }

    // Tokens.
    let tokens: Vec<(&str, Vec<u8>)> = vec![
        ("no scheme", token.as_bytes().to_vec()),
        ("Basic", b"Basic dXNlcjE6c2NhbGVsYWI=".to_vec()),
        ("an empty Bearer", b"Bearer ".to_vec()),
        ("bytes past ASCII", b"Bearer \xff\xfe\xfd".to_vec()),
        ("7 KB", format!("Bearer {}", "a".repeat(7_000)).into_bytes()),
        ("three dots", b"Bearer a.b.c".to_vec()),
        ("a tampered token", format!("Bearer {token}x").into_bytes()),
    ];
    for (what, value) in &tokens {
        cases.push(case(
            format!("GET /data with a token: {what}"),
            request(
                "GET",
                b"/data?key=k1",
                &[("Authorization", value.as_slice())],
                b"",
            ),
        ));
    }

    // Long tasks.
    let nested_payload = format!(
        r#"{{"task":"echo","payload":{}1{}}}"#,
        "[".repeat(1_000),
        "]".repeat(1_000)
    );
    let task_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("no task", br#"{"payload":{}}"#.to_vec()),
        ("a number for the task", br#"{"task":7}"#.to_vec()),
        ("an empty task", br#"{"task":""}"#.to_vec()),
        ("a task with a slash", br#"{"task":"../etc"}"#.to_vec()),
        ("a task with a NUL", br#"{"task":"echo\u0000"}"#.to_vec()),
        (
            "a 65-character task",
            format!(r#"{{"task":"{}"}}"#, "t".repeat(65)).into_bytes(),
        ),
        (
            "a NUL in the payload",
            br#"{"task":"echo","payload":{"note":"a\u0000b"}}"#.to_vec(),
        ),
        (
            "a NUL in a payload key",
            br#"{"task":"echo","payload":{"a\u0000":1}}"#.to_vec(),
        ),
        (
            "a 20 KB payload",
            format!(r#"{{"task":"echo","payload":"{}"}}"#, "p".repeat(20_000)).into_bytes(),
        ),
        (
            "1,000 nested arrays in the payload",
            nested_payload.into_bytes(),
        ),
        (
            "a 1 MB body",
            format!(r#"{{"task":"echo","payload":"{}"}}"#, "p".repeat(1 << 20)).into_bytes(),
        ),
        ("not JSON", b"task=echo".to_vec()),
    ];
    for (what, body) in &task_bodies {
        cases.push(case(
            format!("POST /longtask: {what}"),
            request("POST", b"/longtask", auth, body),
        ));
    }

    // Task ids.
    let ids: Vec<(&str, Vec<u8>)> = vec![
        ("not a UUID", b"abc".to_vec()),
        ("a NUL", b"a%00b".to_vec()),
        ("invalid UTF-8", b"%ff".to_vec()),
        ("a traversal", b"..%2F..%2Fetc".to_vec()),
        ("7 KB", "i".repeat(7_000).into_bytes()),
        (
            "an unknown UUID",
            b"00000000-0000-0000-0000-000000000000".to_vec(),
        ),
        (
            "a UUID with a suffix",
            b"00000000-0000-0000-0000-000000000000x".to_vec(),
        ),
    ];
    for (what, id) in &ids {
        let mut target = b"/tasks/".to_vec();
        target.extend_from_slice(id);
        cases.push(case(
            format!("GET /tasks/{{id}}: {what}"),
            request("GET", &target, auth, b""),
        ));
    }

    // Methods and paths.
    let routes: Vec<(&str, &[u8])> = vec![
        ("GET", b"/login"),
        ("PUT", b"/login"),
        ("DELETE", b"/data?key=k1"),
        ("POST", b"/data?key=k1"),
        ("PATCH", b"/tasks/abc"),
        ("GET", b"/longtask"),
        ("GET", b"/nowhere"),
        ("GET", b"/data/../login"),
        ("GET", b"//data?key=k1"),
        ("GET", b"/%2e%2e/%2e%2e/etc/passwd"),
        ("FOO", b"/data?key=k1"),
        ("OPTIONS", b"*"),
        ("GET", b"http://other.example/data?key=k1"),
    ];
    for (method, target) in routes {
        cases.push(case(
            format!("{method} {}", String::from_utf8_lossy(target)),
            request(method, target, auth, b""),
        ));
    }
    cases
}

/// Status, headers and body of the one answer a `Connection: close` exchange got.
fn answer_of(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let text = String::from_utf8_lossy(raw);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    (status, head, body)
}

fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

async fn login(lb: &Lb) -> String {
    let answer = reqwest::Client::new()
        .post(format!("{}/login", lb.base))
        .json(&Login {
            username: "user1".into(),
            password: "scalelab".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.json::<LoginAnswer>().await.unwrap().token
}

#[tokio::test]
async fn hostile_requests_get_a_4xx_json_error_and_the_stack_goes_on() {
    let stack = stack().await;
    let token = login(&stack.lb).await;
    let cases = corpus(&token);
    assert!(cases.len() > 80, "{} cases", cases.len());
    let lb_addr = stack.lb.addr;
    let mut broken = Vec::new();
    for case in cases {
        let raw = tokio::task::spawn_blocking({
            let bytes = case.bytes.clone();
            move || exchange(lb_addr, &bytes)
        })
        .await
        .unwrap();
        let (status, head, body) = answer_of(&raw);
        let json = serde_json::from_slice::<ErrorBody>(&body);
        let is_json = head.contains("content-type: application/json");
        match json {
            Ok(error) if (400..500).contains(&status) && is_json && error.status == status => {}
            _ => broken.push(format!(
                "{}: {status} {}",
                case.what,
                String::from_utf8_lossy(&body[..body.len().min(120)])
            )),
        }
    }
    assert!(
        broken.is_empty(),
        "not a 4xx JSON error:\n{}",
        broken.join("\n")
    );

    // Still serving: a login, a cache miss then hit, and a queued task.
    let token = login(&stack.lb).await;
    let client = reqwest::Client::new();
    for expected in ["MISS", "HIT"] {
        let data = client
            .get(format!("{}/data?key=after-hostile", stack.lb.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(data.status(), 200);
        assert_eq!(data.headers()["x-cache"], expected);
    }
    let queued = client
        .post(format!("{}/longtask", stack.lb.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"task": "echo", "payload": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202);
}

/// A 2 MB body the gateway refuses (its routes take 64 KiB), sent whole before the answer is
/// read, through the load balancer: the client reads the gateway's 413 every time, never a
/// reset.
#[tokio::test]
async fn a_body_the_gateway_refuses_reaches_the_client_as_a_413() {
    let stack = stack().await;
    let token = login(&stack.lb).await;
    common::testing::a_large_body_gets_a_413_the_client_reads(stack.lb.addr, &token).await;
}
