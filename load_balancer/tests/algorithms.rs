//! The selection algorithms a student can switch (`LB_ALGORITHM`, all Pingora's), and the load
//! balancer's graceful shutdown under load, as a process.

mod support;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// The gateway that answered `path`.
async fn served_by(client: &reqwest::Client, lb: &Lb, path: &str) -> String {
    let answer = client
        .get(format!("{}{path}", lb.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
    answer.headers()["x-served-by"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The load balancer's process, killed if the test ends before it does.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Three stand-in gateways `a`, `b`, `c` behind a load balancer with `algorithm`, all in
/// rotation.
async fn three_behind(algorithm: load_balancer::Algorithm) -> (Vec<Upstream>, Lb) {
    let ups: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::start(n)).collect();
    let addrs: Vec<String> = ups.iter().map(|u| u.addr.to_string()).collect();
    let lb = start_lb(&addrs, |c| c.lb_algorithm = algorithm);
    wait_healthy(&lb, 3).await;
    (ups, lb)
}

#[tokio::test]
async fn consistent_hashing_keeps_each_key_on_one_gateway_and_moves_only_a_leavers_keys() {
    let (mut ups, lb) = three_behind(load_balancer::Algorithm::Consistent).await;
    let client = reqwest::Client::new();
    let mut home = HashMap::new();
    for k in 0..30 {
        let path = format!("/echo?key=k{k}");
        let first = served_by(&client, &lb, &path).await;
        for _ in 0..4 {
            assert_eq!(served_by(&client, &lb, &path).await, first, "{path}");
        }
        home.insert(k, first);
    }
    let used: HashSet<&String> = home.values().collect();
    assert_eq!(used.len(), 3, "30 keys over 3 gateways: {home:?}");
    // Without a key, the path and query are the key: one listing prefix, one gateway.
    let listing = served_by(&client, &lb, "/echo?prefix=p1").await;
    for _ in 0..5 {
        assert_eq!(served_by(&client, &lb, "/echo?prefix=p1").await, listing);
    }

    // Gateway "a" stops: its keys move, every other key stays where it was.
    ups[0].kill();
    wait_healthy(&lb, 2).await;
    for (k, was) in &home {
        let now = served_by(&client, &lb, &format!("/echo?key=k{k}")).await;
        if was == "a" {
            assert_ne!(now, "a");
        } else {
            assert_eq!(&now, was, "key k{k} moved although its gateway stayed");
        }
    }
}

#[tokio::test]
async fn random_spreads_requests_over_every_gateway_but_not_in_turn() {
    let (ups, lb) = three_behind(load_balancer::Algorithm::Random).await;
    let client = reqwest::Client::new();
    let mut order = Vec::new();
    for _ in 0..300 {
        order.push(served_by(&client, &lb, "/echo").await);
    }
    for u in &ups {
        let n = order.iter().filter(|w| **w == u.name).count();
        // A third of 300 is 100; 60 and 140 are five standard deviations away.
        assert!((60..=140).contains(&n), "{} got {n} of 300", u.name);
    }
    let repeats = order.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(
        repeats > 30,
        "{repeats} repeats: dealt in turn, not at random"
    );
}

#[tokio::test]
async fn round_robin_ignores_the_key() {
    let (_ups, lb) = three_behind(load_balancer::Algorithm::RoundRobin).await;
    let client = reqwest::Client::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        *counts
            .entry(served_by(&client, &lb, "/echo?key=same").await)
            .or_default() += 1;
    }
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [10, 10, 10],
        "{counts:?}"
    );
}

/// SIGTERM while 16 clients each have a slow request under way (1.5 s at the gateway) and 8
/// others keep sending: every request begun before the signal is answered 200, whole; after
/// it, new connections are refused; the process ends once the last answer is out, well
/// within SHUTDOWN_GRACE_SECS.
#[tokio::test]
async fn a_sigterm_under_load_fails_no_request_that_had_started() {
    let up = Upstream::start("g");
    let mut child = Process(
        Command::new(env!("CARGO_BIN_EXE_load_balancer"))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("ADMIN_ADDR", "127.0.0.1:0")
            .env("BACKENDS", up.addr.to_string())
            .env("HEALTH_INTERVAL_MS", "200")
            .env("SHUTDOWN_GRACE_SECS", "8")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the load balancer"),
    );
    // The address it listens on, from its log line.
    let out = child.0.stdout.take().unwrap();
    let addr = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            std::io::BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| {
                    let line: serde_json::Value = serde_json::from_str(&line).ok()?;
                    (line["message"] == "load balancer listening")
                        .then(|| line["addr"].as_str().map(String::from))?
                })
        }),
    )
    .await
    .expect("it starts within 10 s")
    .unwrap()
    .expect("it logs the address it listens on");
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let ready = common::testing::wait_until(Duration::from_secs(10), || async {
        client
            .get(format!("{base}/echo"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "the load balancer serves");

    let sigterm_at = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    // The fast clients begin no request in the 50 ms before the signal: one that was waiting
    // to be accepted when the listener closed would be reset, as by any server.
    let hold = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..24 {
        let (client, base) = (client.clone(), base.clone());
        let (sigterm_at, hold) = (sigterm_at.clone(), hold.clone());
        clients.push(tokio::spawn(async move {
            let path = if i < 16 { "/slow" } else { "/echo" };
            let mut answered = 0;
            loop {
                while hold.load(std::sync::atomic::Ordering::SeqCst) && sigterm_at.get().is_none() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let started = Instant::now();
                match client.get(format!("{base}{path}")).send().await {
                    Ok(r) => {
                        assert_eq!(r.status(), 200, "{path}");
                        assert!(r.text().await.is_ok(), "{path}: the body is whole");
                        answered += 1;
                    }
                    // Begun after the signal: refused, or reset while it waited to be accepted
                    // when the listener closed, as any server's backlog is.
                    Err(_) if sigterm_at.get().is_some_and(|at| started >= *at) => {
                        return answered;
                    }
                    Err(e) => panic!("{path}: a request begun before the signal failed: {e:?}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(650)).await;
    hold.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    sigterm_at.set(Instant::now()).unwrap();
    assert!(Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let mut answered = 0;
    for c in clients {
        answered += c.await.expect("no client saw a failure");
    }
    assert!(answered >= 16, "{answered} answers");
    let sent = *sigterm_at.get().unwrap();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(6),
            "still running 6 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
