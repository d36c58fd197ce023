//! The microservice on port 0 against a real Postgres, shared by its test files.
#![allow(dead_code)]

use microservice::Config;
use serde_json::Value;
use tokio::sync::oneshot;

pub struct Running {
    pub base: String,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn spawn(config: Config) -> Running {
    common::telemetry::init_for_tests();
    let server = microservice::build(config)
        .await
        .expect("microservice builds");
    let base = format!("http://127.0.0.1:{}", server.port());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    Running {
        base,
        stop: Some(tx),
        task,
    }
}

pub async fn get(url: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = reqwest::get(url).await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, headers)
}
