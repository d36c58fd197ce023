//! A gateway on port 0 in front of a real microservice, Postgres and Redis (and a real
//! worker when asked), shared by the gateway's test files.
#![allow(dead_code)]

use common::config::RedisConfig;
use common::testing::{self, TestDb};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

pub struct Stack {
    pub gw: String,
    /// The microservice's base URL.
    pub ms: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub redis: RedisConfig,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

pub fn gateway_config(
    db: &TestDb,
    redis: RedisConfig,
    microservice_url: String,
) -> gateway::Config {
    gateway::Config::for_tests("gw-test", db.config(), redis, microservice_url)
}

pub async fn run<F>(fut: F) -> tokio::sync::oneshot::Sender<()>
where
    F: FnOnce(tokio::sync::oneshot::Receiver<()>) -> tokio::task::JoinHandle<()>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    fut(rx);
    tx
}

/// Microservice + gateway (+ worker when asked), on port 0, sharing a fresh database.
pub async fn stack_with(
    ms_delay_ms: u64,
    with_worker: bool,
    tweak: impl FnOnce(&mut gateway::Config),
) -> Stack {
    common::telemetry::init_for_tests();
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let mut stops = Vec::new();

    let ms = microservice::build(microservice::Config {
        db_delay_ms: ms_delay_ms,
        ..microservice::Config::for_tests("ms-test", db.config())
    })
    .await
    .expect("microservice builds");
    let ms_url = format!("http://127.0.0.1:{}", ms.port());
    stops.push(
        run(|rx| {
            tokio::spawn(async move {
                let _ = ms
                    .run_until(async move {
                        let _ = rx.await;
                    })
                    .await;
            })
        })
        .await,
    );

    if with_worker {
        let worker = worker::build(worker::Config {
            visibility_timeout_ms: 5000,
            ..worker::Config::for_tests("worker-test", db.config(), redis.clone())
        })
        .await
        .expect("worker builds");
        stops.push(
            run(|rx| {
                tokio::spawn(async move {
                    let _ = worker
                        .run_until(async move {
                            let _ = rx.await;
                        })
                        .await;
                })
            })
            .await,
        );
    }

    let mut config = gateway_config(&db, redis.clone(), ms_url.clone());
    tweak(&mut config);
    let gw = gateway::build(config).await.expect("gateway builds");
    let gw_url = format!("http://127.0.0.1:{}", gw.port());
    stops.push(
        run(|rx| {
            tokio::spawn(async move {
                let _ = gw
                    .run_until(async move {
                        let _ = rx.await;
                    })
                    .await;
            })
        })
        .await,
    );
    Stack {
        gw: gw_url,
        ms: ms_url,
        http: reqwest::Client::new(),
        db,
        redis,
        stops,
    }
}

impl Stack {
    /// Another gateway (`gw-N`) in front of the same microservice, database and Redis.
    pub async fn add_gateway(&mut self, tweak: impl FnOnce(&mut gateway::Config)) -> String {
        let n = self.stops.len();
        let mut config = gateway::Config::for_tests(
            &format!("gw-{n}"),
            self.db.config(),
            self.redis.clone(),
            self.ms.clone(),
        );
        tweak(&mut config);
        let gw = gateway::build(config).await.expect("gateway builds");
        let url = format!("http://127.0.0.1:{}", gw.port());
        let stop = run(|rx| {
            tokio::spawn(async move {
                let _ = gw
                    .run_until(async move {
                        let _ = rx.await;
                    })
                    .await;
            })
        })
        .await;
        self.stops.push(stop);
        url
    }

    /// One counter or gauge summed over a service's `/metrics`.
    pub async fn metric(
        &self,
        base: &str,
        name: impl Into<records::names::Series>,
        labels: &[(&str, &str)],
    ) -> f64 {
        let samples = common::metrics::scrape(&self.http, &format!("{base}/metrics"))
            .await
            .expect("metrics");
        common::metrics::sum(&samples, name, labels)
    }
}

pub async fn stack() -> Stack {
    stack_with(0, false, |_| {}).await
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Stack {
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn login(&self, user: &str, password: &str) -> Reply {
        self.send(
            self.http
                .post(format!("{}/login", self.gw))
                .json(&json!({"username": user, "password": password})),
        )
        .await
    }

    pub async fn token(&self) -> String {
        let reply = self.login("user1", "scalelab").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["token"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(
            self.http
                .get(format!("{}{path}", self.gw))
                .bearer_auth(token),
        )
        .await
    }

    pub async fn metrics(&self) -> Vec<common::metrics::Sample> {
        common::metrics::scrape(&self.http, &format!("{}/metrics", self.gw))
            .await
            .unwrap()
    }
}
