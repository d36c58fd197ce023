//! The consume → work → batch → commit → acknowledge loop.

use crate::metrics::WorkerMetrics;
use crate::Config;
use common::redis_conn::{Redis, RedisFailure};
use deadpool_postgres::Pool;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};

/// One finished job, waiting in the batcher for its commit.
struct Done {
    entry_id: String,
    finished: common::tasks::Finished,
}

pub struct Engine {
    config: Arc<Config>,
    consumer: String,
    pool: Pool,
    /// Commands that answer at once (status, acks, claims, gauges).
    redis: Arc<Redis>,
    /// A connection of its own for the blocking XREADGROUP, which would otherwise stall
    /// every other command multiplexed on the same connection.
    reader: Arc<Redis>,
    metrics: WorkerMetrics,
    /// Entries this worker holds, from their start to their acknowledgement (or release):
    /// their leases are renewed every third of the visibility timeout.
    held: Mutex<HashSet<String>>,
}

/// Resets the idle time of each entry (ARGV[3..]) that this consumer (ARGV[2]) of the group
/// (ARGV[1]) still owns, in one step: one another worker took over meanwhile stays theirs.
const RENEW: &str = r#"
local renewed = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    renewed = renewed + 1
  end
end
return renewed
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

impl Engine {
    pub fn new(
        config: Config,
        consumer: String,
        pool: Pool,
        redis: Arc<Redis>,
        metrics: WorkerMetrics,
    ) -> anyhow::Result<Self> {
        let reader = Redis::new(&config.redis)?;
        Ok(Self {
            config: Arc::new(config),
            consumer,
            pool,
            redis,
            reader,
            metrics,
            held: Mutex::new(HashSet::new()),
        })
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let engine = Arc::new(self);
        let config = engine.config.clone();
        let slots = Arc::new(Semaphore::new(config.worker_concurrency));
        let (done_tx, done_rx) = mpsc::channel::<Done>(config.batch_size * 2);
        let batcher = tokio::spawn(engine.clone().batcher(done_rx));
        let gauges = tokio::spawn(engine.clone().sample_queue(stop.clone()));
        let leases = tokio::spawn(engine.clone().keep_leases(stop.clone()));

        let visibility = Duration::from_millis(config.visibility_timeout_ms);
        // Reclaim at once on start (our own or a dead worker's leftovers), then regularly.
        let mut next_reclaim = Instant::now();
        let mut group_ready = false;
        tracing::info!(consumer = %engine.consumer, "worker consuming");
        while !*stop.borrow() {
            if !group_ready {
                match engine.ensure_group().await {
                    Ok(()) => group_ready = true,
                    Err(err) => {
                        tracing::warn!(%err, "cannot reach the job stream, retrying");
                        engine.pause(&mut stop, Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            // Wait for a free slot, so we never hold jobs we cannot start.
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("semaphore open"),
                _ = stop.wait_for(|s| *s) => break,
            };
            let free = 1 + slots.available_permits();
            let entries = if Instant::now() >= next_reclaim {
                next_reclaim = Instant::now() + visibility / 2;
                engine.reclaim(free).await
            } else {
                Ok(Vec::new())
            };
            let entries = match entries {
                Ok(claimed) if !claimed.is_empty() => Ok(claimed),
                Ok(_) => engine.read_new(free).await,
                Err(e) => Err(e),
            };
            let entries = match entries {
                Ok(entries) => entries,
                Err(err) => {
                    if err.to_string().contains("NOGROUP") {
                        group_ready = false;
                    }
                    tracing::warn!(%err, "reading the job stream failed");
                    drop(first);
                    engine.pause(&mut stop, Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut first = Some(first);
            for entry in entries {
                let permit = match first.take() {
                    Some(p) => p,
                    None => slots.clone().acquire_owned().await.expect("semaphore open"),
                };
                let (engine, done_tx) = (engine.clone(), done_tx.clone());
                tokio::spawn(async move {
                    engine.metrics.in_progress.inc();
                    if let Some(done) = engine.work(entry).await {
                        let _ = done_tx.send(done).await;
                    }
                    engine.metrics.in_progress.dec();
                    drop(permit);
                });
            }
        }

        // Shutdown: let jobs in progress finish within the grace period, then flush.
        let grace = config.service.shutdown_grace();
        let all = config.worker_concurrency as u32;
        if tokio::time::timeout(grace, slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("jobs still running after the grace period; they will be reclaimed");
        }
        drop(done_tx);
        let _ = tokio::time::timeout(grace, batcher).await;
        gauges.abort();
        leases.abort();
        tracing::info!("worker stopped");
        Ok(())
    }

    async fn pause(&self, stop: &mut watch::Receiver<bool>, how_long: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(how_long) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }

    async fn ensure_group(&self) -> Result<(), RedisFailure> {
        let created = self
            .redis
            .query::<()>(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(self.config.redis.stream_key())
                    .arg(&self.config.consumer_group)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Err(RedisFailure::Command(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    async fn read_new(&self, count: usize) -> Result<Vec<StreamId>, RedisFailure> {
        const BLOCK_MS: u64 = 1000;
        let reply: Option<StreamReadReply> = self
            .reader
            .query_within(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(&self.config.consumer_group)
                    .arg(&self.consumer)
                    .arg("COUNT")
                    .arg(count)
                    .arg("BLOCK")
                    .arg(BLOCK_MS)
                    .arg("STREAMS")
                    .arg(self.config.redis.stream_key())
                    .arg(">"),
                Duration::from_millis(BLOCK_MS + 2000),
            )
            .await?;
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default())
    }

    /// Takes over jobs that some worker (perhaps a dead one, perhaps us before a restart)
    /// read but did not acknowledge within the visibility timeout.
    async fn reclaim(&self, count: usize) -> Result<Vec<StreamId>, RedisFailure> {
        let reply: StreamAutoClaimReply = self
            .redis
            .query(
                redis::cmd("XAUTOCLAIM")
                    .arg(self.config.redis.stream_key())
                    .arg(&self.config.consumer_group)
                    .arg(&self.consumer)
                    .arg(self.config.visibility_timeout_ms)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        if !reply.claimed.is_empty() {
            tracing::info!(
                jobs = reply.claimed.len(),
                "reclaimed jobs past the visibility timeout"
            );
            self.metrics.reclaimed.inc_by(reply.claimed.len() as u64);
        }
        Ok(reply.claimed)
    }

    /// Does one job. Returns `None` for an entry that cannot be a job (acknowledged and dropped
    /// so it does not poison the queue).
    async fn work(&self, entry: StreamId) -> Option<Done> {
        let id: Option<String> = entry.get("id");
        let task: Option<String> = entry.get("task");
        let (Some(id), Some(task)) = (id, task) else {
            tracing::warn!(entry = %entry.id, "dropping a stream entry without id/task");
            self.metrics.malformed.inc();
            let _ = self.ack(std::slice::from_ref(&entry.id), &[]).await;
            return None;
        };
        let payload: Value = entry
            .get::<String>("payload")
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(Value::Null);
        let enqueued_at_ms = entry
            .get::<String>("enqueued_at")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);

        let status_key = self.config.redis.task_status_key(&id);
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(&status_key)
            .arg("status")
            .arg("running")
            .arg("worker")
            .arg(&self.consumer)
            .ignore()
            .cmd("HINCRBY")
            .arg(&status_key)
            .arg("attempts")
            .arg(1)
            .cmd("EXPIRE")
            .arg(&status_key)
            .arg(86_400)
            .ignore();
        // Status is informative; a Redis hiccup here must not stop the job.
        let attempts = self
            .redis
            .query_pipe::<(i64,)>(&pipe)
            .await
            .map(|(n,)| n.clamp(1, i32::MAX as i64) as i32)
            .unwrap_or(1);

        self.hold(&entry.id);
        let (status, result) = if attempts as u32 > self.config.max_attempts {
            // Delivered again and again without completing: its worker died each time (or
            // could never store it). Set aside instead of run once more.
            self.dead_letter(&entry, &id, attempts).await;
            (
                "dead",
                serde_json::json!({"error": format!(
                    "delivered {attempts} times without completing (MAX_ATTEMPTS {}): set aside in the dead-letter stream",
                    self.config.max_attempts
                )}),
            )
        } else {
            common::tasks::work(&task, &payload, &self.config.work).await
        };
        Some(Done {
            entry_id: entry.id,
            finished: common::tasks::Finished {
                id,
                task,
                status,
                result,
                attempts,
                enqueued_at_ms,
                finished_at_ms: now_ms(),
            },
        })
    }

    fn hold(&self, entry_id: &str) {
        self.held
            .lock()
            .expect("not poisoned")
            .insert(entry_id.to_string());
    }

    fn let_go(&self, entry_ids: &[String]) {
        let mut held = self.held.lock().expect("not poisoned");
        for id in entry_ids {
            held.remove(id);
        }
    }

    /// Renews the lease of every entry this worker holds (running, or finished and waiting
    /// for its commit) every third of the visibility timeout, so that no other worker takes
    /// over a job whose worker is alive, however long it takes.
    async fn keep_leases(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.config.visibility_timeout_ms / 3);
        loop {
            self.pause(&mut stop, every).await;
            if *stop.borrow() {
                return;
            }
            let ids: Vec<String> = self
                .held
                .lock()
                .expect("not poisoned")
                .iter()
                .cloned()
                .collect();
            if ids.is_empty() {
                continue;
            }
            let renewed = self
                .redis
                .query::<i64>(
                    redis::cmd("EVAL")
                        .arg(RENEW)
                        .arg(1)
                        .arg(self.config.redis.stream_key())
                        .arg(&self.config.consumer_group)
                        .arg(&self.consumer)
                        .arg(&ids),
                )
                .await;
            if let Err(err) = renewed {
                tracing::warn!(%err, jobs = ids.len(), "could not renew the leases of the jobs held");
            }
        }
    }

    /// Copies a job to the dead-letter stream (`<stream>:dead`, the newest 10,000 kept) for
    /// someone to look at; its result row and acknowledgement follow through the batcher.
    async fn dead_letter(&self, entry: &StreamId, id: &str, attempts: i32) {
        // Once per job, however often it comes back before its row commits.
        let first = self
            .redis
            .query::<i64>(
                redis::cmd("HSETNX")
                    .arg(self.config.redis.task_status_key(id))
                    .arg("dead_lettered")
                    .arg(1),
            )
            .await
            .map_or(true, |set| set == 1);
        if !first {
            return;
        }
        let mut cmd = redis::cmd("XADD");
        cmd.arg(format!("{}:dead", self.config.redis.stream_key()))
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000)
            .arg("*")
            .arg("id")
            .arg(id)
            .arg("entry")
            .arg(&entry.id)
            .arg("attempts")
            .arg(attempts)
            .arg("consumer")
            .arg(&self.consumer);
        for field in ["task", "payload", "enqueued_at"] {
            if let Some(value) = entry.get::<String>(field) {
                cmd.arg(field).arg(value);
            }
        }
        if let Err(err) = self.redis.query::<String>(&cmd).await {
            tracing::warn!(%err, job = id, "could not copy a job to the dead-letter stream");
        }
        tracing::warn!(job = id, attempts, "job dead-lettered");
        self.metrics.dead_lettered.inc();
    }

    /// Groups results into batches of `BATCH_SIZE` or whatever arrived within
    /// `FLUSH_INTERVAL_MS`, and writes each batch until it commits.
    async fn batcher(self: Arc<Self>, mut done: mpsc::Receiver<Done>) {
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        let mut batch: Vec<Done> = Vec::with_capacity(self.config.batch_size);
        loop {
            let Some(first) = done.recv().await else {
                return;
            };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + interval;
            let mut closed = false;
            while batch.len() < self.config.batch_size {
                match tokio::time::timeout_at(deadline, done.recv()).await {
                    Ok(Some(next)) => batch.push(next),
                    Ok(None) => {
                        closed = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.flush_until_committed(&mut batch).await;
            if closed {
                return;
            }
        }
    }

    /// Commits the batch, retrying for half the visibility timeout; then releases it (not
    /// acknowledged, so its jobs come back after the timeout and count an attempt) rather
    /// than block every later job behind it.
    async fn flush_until_committed(&self, batch: &mut Vec<Done>) {
        let mut backoff = Duration::from_millis(200);
        let give_up = Instant::now() + Duration::from_millis(self.config.visibility_timeout_ms / 2);
        loop {
            let started = Instant::now();
            // A Postgres that hangs (paused, a dead socket) is bounded like one that refuses.
            let committed = match tokio::time::timeout(
                give_up
                    .saturating_duration_since(started)
                    .max(Duration::from_millis(100)),
                self.commit(batch),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!(
                    "the commit took longer than half the visibility timeout"
                )),
            };
            match committed {
                Ok(()) => {
                    let entry_ids: Vec<String> = batch.iter().map(|d| d.entry_id.clone()).collect();
                    let ids: Vec<String> = batch.iter().map(|d| d.finished.id.clone()).collect();
                    // If this ack is lost, the jobs are reclaimed later and their replay
                    // inserts nothing: committed results are never duplicated.
                    if let Err(err) = self.ack(&entry_ids, &ids).await {
                        tracing::warn!(%err, "ack failed; jobs will be reclaimed and skipped");
                    }
                    self.let_go(&entry_ids);
                    self.metrics.batch_size.observe(batch.len() as f64);
                    self.metrics
                        .flush_seconds
                        .observe(started.elapsed().as_secs_f64());
                    // A dead-lettered job was not processed: jobs_dead_lettered_total counts it.
                    for d in batch.iter().filter(|d| d.finished.status != "dead") {
                        self.metrics
                            .processed
                            .with_label_values(&[d.finished.status])
                            .inc();
                    }
                    batch.clear();
                    return;
                }
                Err(err) if Instant::now() + backoff >= give_up => {
                    tracing::warn!(error = %format!("{err:#}"), jobs = batch.len(), "batch not committed in time: released, its jobs will come back");
                    self.metrics.released.inc_by(batch.len() as u64);
                    let entry_ids: Vec<String> = batch.iter().map(|d| d.entry_id.clone()).collect();
                    self.let_go(&entry_ids);
                    batch.clear();
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), jobs = batch.len(), "batch not committed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn commit(&self, batch: &[Done]) -> anyhow::Result<()> {
        let mut client = self.pool.get().await?;
        let finished = batch.iter().map(|d| &d.finished);
        let stored = common::tasks::store(&mut client, finished, &self.consumer).await?;
        self.metrics
            .duplicates_absorbed
            .inc_by((batch.len() as u64).saturating_sub(stored));
        Ok(())
    }

    /// Acknowledges entries and forgets their transient status (Postgres now has the result).
    async fn ack(&self, entry_ids: &[String], job_ids: &[String]) -> Result<(), RedisFailure> {
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(self.config.redis.stream_key())
            .arg(&self.config.consumer_group)
            .arg(entry_ids)
            .ignore();
        for id in job_ids {
            pipe.cmd("DEL")
                .arg(self.config.redis.task_status_key(id))
                .ignore();
        }
        self.redis.query_pipe::<()>(&pipe).await
    }

    /// Samples queue length, pending and lag once a second for `/metrics`.
    async fn sample_queue(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let stream = self.config.redis.stream_key();
        loop {
            if let Ok(len) = self
                .redis
                .query::<i64>(redis::cmd("XLEN").arg(&stream))
                .await
            {
                self.metrics.queue_length.set(len);
            }
            let groups: Result<Vec<std::collections::HashMap<String, redis::Value>>, _> = self
                .redis
                .query(redis::cmd("XINFO").arg("GROUPS").arg(&stream))
                .await;
            if let Ok(groups) = groups {
                let ours = groups.iter().find(|g| {
                    g.get("name")
                        .and_then(|v| redis::from_redis_value::<String>(v).ok())
                        .as_deref()
                        == Some(self.config.consumer_group.as_str())
                });
                if let Some(group) = ours {
                    let int = |k: &str| {
                        group
                            .get(k)
                            .and_then(|v| redis::from_redis_value::<i64>(v).ok())
                    };
                    if let Some(pending) = int("pending") {
                        self.metrics.queue_pending.set(pending);
                    }
                    if let Some(lag) = int("lag") {
                        self.metrics.queue_lag.set(lag);
                    }
                }
            }
            self.pause(&mut stop, Duration::from_secs(1)).await;
            if *stop.borrow() {
                return;
            }
        }
    }
}
