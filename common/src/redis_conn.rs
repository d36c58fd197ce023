//! A Redis connection that is allowed to be absent. The service starts without Redis, every
//! command is bounded by a timeout, and the connection comes back by itself: a missing Redis
//! costs a fast error per call, never a hang.

use crate::config::RedisConfig;
use crate::http::ReadyCheck;
use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, FromRedisValue};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// After a failed connect, further attempts wait this long, so a dead Redis is not dialled
/// by every request.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

pub struct Redis {
    client: Client,
    conn: Mutex<Option<ConnectionManager>>,
    last_failure: std::sync::Mutex<Option<Instant>>,
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
            conn: Mutex::new(None),
            last_failure: std::sync::Mutex::new(None),
            timeout: Duration::from_millis(config.redis_timeout_ms.max(1)),
        }))
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisFailure> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        if let Some(at) = *self.last_failure.lock().expect("not poisoned") {
            if at.elapsed() < RECONNECT_BACKOFF {
                return Err(RedisFailure::Unavailable("reconnect backing off".into()));
            }
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout.max(Duration::from_millis(500)))
            .set_number_of_retries(2)
            .set_max_delay(1000);
        match self.client.get_connection_manager_with_config(config).await {
            Ok(conn) => {
                tracing::info!("connected to Redis");
                *slot = Some(conn.clone());
                Ok(conn)
            }
            Err(err) => {
                *self.last_failure.lock().expect("not poisoned") = Some(Instant::now());
                Err(RedisFailure::Unavailable(err.to_string()))
            }
        }
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
