//! A Redis connection that is allowed to be absent. The service starts without Redis, every
//! command is bounded by a timeout, and the connection comes back by itself: a missing Redis
//! costs a fast error per call, never a hang.
//!
//! Connecting runs as its own task, shared by every caller waiting for it. A caller whose
//! timeout fires gives up waiting but does not cancel the attempt, so a slow first connect
//! (a loaded machine, a Redis still starting) finishes for the callers that come after.

use crate::config::RedisConfig;
use crate::http::ReadyCheck;
use anyhow::Context;
use futures::future::{BoxFuture, FutureExt, Shared};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, FromRedisValue};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// After a failed connect, further attempts wait this long, so a dead Redis is not dialled
/// by every request.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);
/// A connect attempt gets at least this long, whatever the per-command timeout.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

type Connecting = Shared<BoxFuture<'static, Result<ConnectionManager, String>>>;

enum Slot {
    Idle { failed_at: Option<Instant> },
    Connecting(Connecting),
    Ready(ConnectionManager),
}

pub struct Redis {
    client: Client,
    slot: Arc<Mutex<Slot>>,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    #[error("redis command timed out")]
    Timeout,
    #[error("redis error: {0}")]
    Command(#[from] redis::RedisError),
}

impl Redis {
    /// Parses the URL only; connecting happens on first use.
    pub fn new(config: &RedisConfig) -> anyhow::Result<Arc<Self>> {
        let client = Client::open(config.redis_url.as_str())
            .context("REDIS_URL is not a valid redis:// URL")?;
        Ok(Arc::new(Self {
            client,
            slot: Arc::new(Mutex::new(Slot::Idle { failed_at: None })),
            timeout: Duration::from_millis(config.redis_timeout_ms.max(1)),
        }))
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisFailure> {
        let connecting = {
            let mut slot = self.slot.lock().expect("not poisoned");
            match &*slot {
                Slot::Ready(conn) => return Ok(conn.clone()),
                Slot::Connecting(attempt) => attempt.clone(),
                Slot::Idle {
                    failed_at: Some(at),
                } if at.elapsed() < RECONNECT_BACKOFF => {
                    return Err(RedisFailure::Unavailable("reconnect backing off".into()));
                }
                Slot::Idle { .. } => {
                    let attempt = self.start_connecting();
                    *slot = Slot::Connecting(attempt.clone());
                    attempt
                }
            }
        };
        connecting.await.map_err(|err| {
            // The attempt's task normally records its failure; if it was cancelled instead
            // (its runtime shutting down), make sure the next call can try again.
            let mut slot = self.slot.lock().expect("not poisoned");
            if matches!(*slot, Slot::Connecting(_)) {
                *slot = Slot::Idle {
                    failed_at: Some(Instant::now()),
                };
            }
            RedisFailure::Unavailable(err)
        })
    }

    /// Starts connecting now, without waiting, so the first request does not pay for it.
    pub fn connect_in_background(self: &Arc<Self>) {
        let redis = self.clone();
        tokio::spawn(async move {
            let _ = redis.connection().await;
        });
    }

    /// Spawns one connect attempt that records its outcome in the slot when it ends.
    fn start_connecting(&self) -> Connecting {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout.max(MIN_CONNECT_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(1000);
        let client = self.client.clone();
        let slot = self.slot.clone();
        let task = tokio::spawn(async move {
            let outcome = client
                .get_connection_manager_with_config(config)
                .await
                .map_err(|err| err.to_string());
            let mut slot = slot.lock().expect("not poisoned");
            *slot = match &outcome {
                Ok(conn) => {
                    tracing::info!("connected to Redis");
                    Slot::Ready(conn.clone())
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot connect to Redis");
                    Slot::Idle {
                        failed_at: Some(Instant::now()),
                    }
                }
            };
            outcome
        });
        async move { task.await.map_err(|err| err.to_string())? }
            .boxed()
            .shared()
    }

    /// Runs one command within the configured timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisFailure> {
        self.query_within(cmd, self.timeout).await
    }

    /// Runs one command within `limit` (for blocking reads that outlast the usual timeout).
    pub async fn query_within<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        limit: Duration,
    ) -> Result<T, RedisFailure> {
        self.within(
            limit,
            |mut conn| async move { cmd.query_async(&mut conn).await },
        )
        .await
    }

    /// Runs a pipeline (e.g. MULTI/EXEC) within the configured timeout.
    pub async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisFailure> {
        self.within(self.timeout, |mut conn| async move {
            pipe.query_async(&mut conn).await
        })
        .await
    }

    /// Connects if needed and runs `work`, all bounded by `limit`.
    async fn within<T, F, Fut>(&self, limit: Duration, work: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async { Ok::<T, RedisFailure>(work(self.connection().await?).await?) };
        tokio::time::timeout(limit, attempt)
            .await
            .map_err(|_| RedisFailure::Timeout)?
    }

    pub fn ready_check(self: &Arc<Self>) -> ReadyCheck {
        let redis = self.clone();
        Arc::new(move || {
            let redis = redis.clone();
            Box::pin(async move {
                redis
                    .query::<String>(&redis::cmd("PING"))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
    }
}
