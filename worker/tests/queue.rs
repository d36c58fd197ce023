//! The worker against real Redis Streams and a real Postgres.

use records::names::MetricName;

use common::testing::{self, TestDb};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::oneshot;

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(testing::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("test Redis reachable (see .ci/run or set TEST_REDIS_URL)")
}

async fn enqueue(stream: &str, n: usize, task: &str, duration_ms: u64) -> Vec<String> {
    let mut conn = redis_conn().await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        let payload = format!("{{\"duration_ms\":{duration_ms}}}");
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("id")
            .arg(&id)
            .arg("task")
            .arg(task)
            .arg("payload")
            .arg(payload)
            .arg("enqueued_at")
            .arg("1700000000000")
            .query_async(&mut conn)
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// Whether the group's pending list empties within 5 s.
async fn drains(stream: &str) -> bool {
    let conn = redis_conn().await;
    testing::wait_until(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move {
            let pending: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
                .arg(stream)
                .arg("workers")
                .query_async(&mut conn)
                .await
                .unwrap();
            pending.0 == 0
        }
    })
    .await
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn result_rows(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM task_results", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}

fn config(db: &TestDb, redis: &common::config::RedisConfig, name: &str) -> worker::Config {
    worker::Config::for_tests(name, db.config(), redis.clone())
}

#[tokio::test]
async fn jobs_are_done_in_batches_acknowledged_and_counted() {
    common::telemetry::init_for_tests();
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let worker = worker::build(config(&db, &redis, "w-batch")).await.unwrap();
    let base = format!("http://127.0.0.1:{}", worker.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));

    let mut ids = enqueue(&redis.stream_key(), 10, "echo", 50).await;
    ids.extend(enqueue(&redis.stream_key(), 2, "fail", 10).await);
    let client = pg(&db.url).await;
    assert!(
        testing::wait_until(Duration::from_secs(15), || async {
            result_rows(&client).await == 12
        })
        .await,
        "all 12 jobs get a result"
    );
    let failed: i64 = client
        .query_one(
            "SELECT count(*) FROM task_results WHERE status = 'failed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 2);
    let echoed: String = client
        .query_one(
            "SELECT result->'echo'->>'duration_ms' FROM task_results WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(echoed, "50");

    // Everything acknowledged, transient status gone, metrics agree.
    let mut conn = redis_conn().await;
    assert!(drains(&redis.stream_key()).await, "no job left pending");
    let status: i64 = redis::cmd("EXISTS")
        .arg(redis.task_status_key(&ids[0]))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(status, 0);
    let samples = common::metrics::scrape(&reqwest::Client::new(), &format!("{base}/metrics"))
        .await
        .unwrap();
    assert_eq!(
        common::metrics::sum(
            &samples,
            MetricName::JobsProcessedTotal,
            &[("status", "done")]
        ),
        10.0
    );
    assert_eq!(
        common::metrics::sum(
            &samples,
            MetricName::JobsProcessedTotal,
            &[("status", "failed")]
        ),
        2.0
    );
    let batches = common::metrics::sum(&samples, MetricName::BatchSize.count(), &[]);
    assert!(
        batches >= 3.0,
        "12 results in batches of at most 4: {batches} batches"
    );
    assert_eq!(
        reqwest::get(format!("{base}/ready"))
            .await
            .unwrap()
            .status(),
        200
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("worker stops within its grace period")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_unreadable_entry_is_dropped_not_retried_forever() {
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let worker = worker::build(config(&db, &redis, "w-poison"))
        .await
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    let mut conn = redis_conn().await;
    let _: String = redis::cmd("XADD")
        .arg(redis.stream_key())
        .arg("*")
        .arg("garbage")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    enqueue(&redis.stream_key(), 1, "echo", 10).await;
    let client = pg(&db.url).await;
    assert!(
        testing::wait_until(Duration::from_secs(10), || async {
            result_rows(&client).await == 1
        })
        .await
    );
    assert!(
        drains(&redis.stream_key()).await,
        "the bad entry is acknowledged, not left pending"
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

/// A payload with a NUL character (a producer other than the gateway, which refuses it):
/// Postgres refuses it as jsonb, and before the fix the batch holding it was retried forever,
/// so every job batched with it was never stored.
#[tokio::test]
async fn a_result_postgres_cannot_store_fails_alone_and_holds_back_no_other_job() {
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let worker = worker::build(config(&db, &redis, "w-nul")).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    enqueue(&redis.stream_key(), 3, "echo", 10).await;
    let mut conn = redis_conn().await;
    let _: String = redis::cmd("XADD")
        .arg(redis.stream_key())
        .arg("*")
        .arg("id")
        .arg("poisoned")
        .arg("task")
        .arg("echo")
        .arg("payload")
        .arg(r#"{"duration_ms":10,"note":"a\u0000b"}"#)
        .arg("enqueued_at")
        .arg("1700000000000")
        .query_async(&mut conn)
        .await
        .unwrap();
    enqueue(&redis.stream_key(), 3, "echo", 10).await;
    let client = pg(&db.url).await;
    assert!(
        testing::wait_until(Duration::from_secs(10), || async {
            result_rows(&client).await == 7
        })
        .await,
        "all 7 jobs stored; have {}",
        result_rows(&client).await
    );
    let row = client
        .query_one(
            "SELECT status, result::text FROM task_results WHERE id = 'poisoned'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert!(row.get::<_, String>(1).contains("NUL"));
    assert!(drains(&redis.stream_key()).await);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_worker(db: &TestDb, redis: &common::config::RedisConfig, name: &str) -> Process {
    spawn_worker_with(db, redis, name, &[])
}

fn spawn_worker_with(
    db: &TestDb,
    redis: &common::config::RedisConfig,
    name: &str,
    env: &[(&str, &str)],
) -> Process {
    let log = if std::env::var_os("TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    Process(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("INSTANCE_ID", name)
            .env("DATABASE_URL", &db.url)
            .env("REDIS_URL", &redis.redis_url)
            .env("REDIS_KEY_PREFIX", &redis.redis_key_prefix)
            .env("WORKER_CONCURRENCY", "4")
            .env("TASK_DURATION_MS", "150")
            .env("BATCH_SIZE", "4")
            .env("FLUSH_INTERVAL_MS", "300")
            .env("VISIBILITY_TIMEOUT_MS", "1500")
            .envs(env.iter().copied())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start the worker binary"),
    )
}

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_no_job_and_duplicates_no_result() {
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let jobs = 60;
    let ids = enqueue(&redis.stream_key(), jobs, "echo", 150).await;
    let client = pg(&db.url).await;

    let mut first = spawn_worker(&db, &redis, "w-first");
    // Let it commit some batches and hold others in progress, then kill it without warning.
    assert!(
        testing::wait_until(Duration::from_secs(20), || async {
            result_rows(&client).await >= 8
        })
        .await,
        "the first worker makes progress"
    );
    first.0.kill().expect("SIGKILL the first worker");
    first.0.wait().unwrap();
    let at_kill = result_rows(&client).await;
    assert!(
        at_kill < jobs as i64,
        "killed before finishing ({at_kill} done)"
    );

    let _second = spawn_worker(&db, &redis, "w-second");
    assert!(
        testing::wait_until(Duration::from_secs(40), || async {
            result_rows(&client).await == jobs as i64
        })
        .await,
        "every job is done after the takeover (had {})",
        result_rows(&client).await
    );
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE worker = 'w-second'),
                    count(*) FILTER (WHERE attempts > 1), count(*) FILTER (WHERE id = ANY($1))
             FROM task_results",
            &[&ids],
        )
        .await
        .unwrap();
    let (rows, distinct, by_second, retried, ours): (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(rows, jobs as i64, "exactly one row per job");
    assert_eq!(distinct, rows);
    assert_eq!(ours, rows, "only our jobs");
    assert!(by_second > 0, "the second worker took over");
    assert!(
        retried > 0,
        "jobs in progress at the kill were reclaimed and redone (attempts > 1)"
    );
}

#[tokio::test]
async fn a_replayed_job_whose_result_is_stored_keeps_the_first_result_and_is_counted() {
    common::telemetry::init_for_tests();
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let worker = worker::build(config(&db, &redis, "w-replay"))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", worker.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    // A worker that died between its commit and its acknowledgement leaves this behind: the
    // result stored, the job still in the stream. Here the job is queued after its result.
    let client = pg(&db.url).await;
    let id = uuid::Uuid::new_v4().to_string();
    client
        .execute(
            "INSERT INTO task_results (id, task, status, result, worker, attempts, finished_at)
             VALUES ($1, 'echo', 'done', '{\"first\": true}', 'w-dead', 1, now())",
            &[&id],
        )
        .await
        .unwrap();
    let mut conn = redis_conn().await;
    let _: String = redis::cmd("XADD")
        .arg(redis.stream_key())
        .arg("*")
        .arg("id")
        .arg(&id)
        .arg("task")
        .arg("echo")
        .arg("payload")
        .arg("{\"duration_ms\":10}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let fresh = enqueue(&redis.stream_key(), 3, "echo", 10).await;
    assert!(
        testing::wait_until(Duration::from_secs(15), || async {
            result_rows(&client).await == 4
        })
        .await,
        "the three fresh jobs stored beside the replayed one"
    );
    assert!(
        drains(&redis.stream_key()).await,
        "the replay is acknowledged"
    );
    let row = client
        .query_one(
            "SELECT count(*), min(worker), bool_and(result ? 'first') FROM task_results WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "stored once");
    assert_eq!(row.get::<_, String>(1), "w-dead", "the first result kept");
    assert!(row.get::<_, bool>(2));
    let samples = common::metrics::scrape(&reqwest::Client::new(), &format!("{base}/metrics"))
        .await
        .unwrap();
    assert_eq!(
        common::metrics::sum(&samples, MetricName::ResultsDuplicatesAbsorbedTotal, &[]),
        1.0,
        "the replay counted, the {} fresh jobs not",
        fresh.len()
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

/// A worker's counter from its /metrics (0 when absent).
async fn counter(port: u16, name: MetricName) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    common::metrics::sum(&common::metrics::parse_text(&text), name, &[])
}

/// A job that runs 3.5 times the visibility timeout, with a second worker idle beside it:
/// its worker renews the lease while it runs, so the other never takes it over and it runs
/// once (before the lease, it was reclaimed after 1 s and run again).
#[tokio::test]
async fn a_job_longer_than_the_visibility_timeout_runs_once() {
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let mut stops = Vec::new();
    let mut ports = Vec::new();
    let mut running = Vec::new();
    for name in ["w-long-1", "w-long-2"] {
        let worker = worker::build(config(&db, &redis, name)).await.unwrap();
        ports.push(worker.port());
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        running.push(tokio::spawn(worker.run_until(async move {
            let _ = stopped.await;
        })));
    }
    let ids = enqueue(&redis.stream_key(), 1, "echo", 3_500).await;
    let client = pg(&db.url).await;
    assert!(
        testing::wait_until(Duration::from_secs(15), || async {
            result_rows(&client).await == 1
        })
        .await,
        "the long job is stored"
    );
    let attempts: i32 = client
        .query_one(
            "SELECT attempts FROM task_results WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1);
    // Nobody took it over, and nobody ran it a second time.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut reclaimed = 0.0;
    let mut processed = 0.0;
    for port in &ports {
        reclaimed += counter(*port, MetricName::JobsReclaimedTotal).await;
        processed += counter(*port, MetricName::JobsProcessedTotal).await;
    }
    assert_eq!(reclaimed, 0.0, "the running job was taken over");
    assert_eq!(processed, 1.0, "the job ran more than once");
    assert!(drains(&redis.stream_key()).await);
    for stop in stops {
        stop.send(()).unwrap();
    }
    for r in running {
        r.await.unwrap().unwrap();
    }
}

/// A poison job: its worker dies each time it runs it (here: killed while it runs). With
/// MAX_ATTEMPTS=2, the third delivery dead-letters it (status `dead`, a copy in the `:dead`
/// stream, acknowledged) and the jobs behind it flow on.
#[tokio::test]
async fn a_poison_job_is_dead_lettered_and_the_queue_flows_on() {
    let db = TestDb::create().await;
    let redis = testing::redis_config();
    let stream = redis.stream_key();
    let client = pg(&db.url).await;
    let poison = enqueue(&stream, 1, "echo", 4_000).await.remove(0);
    let status_key = redis.task_status_key(&poison);
    let mut conn = redis_conn().await;
    let env = [("MAX_ATTEMPTS", "2"), ("VISIBILITY_TIMEOUT_MS", "600")];
    for attempt in 1..=2 {
        let mut w = spawn_worker_with(&db, &redis, &format!("w-poison-{attempt}"), &env);
        // Killed while it runs the poison job.
        let started = testing::wait_until(Duration::from_secs(15), || {
            let mut conn = conn.clone();
            let key = status_key.clone();
            async move {
                let n: Option<i64> = redis::cmd("HGET")
                    .arg(&key)
                    .arg("attempts")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                n == Some(attempt)
            }
        })
        .await;
        assert!(started, "attempt {attempt} started");
        w.0.kill().unwrap();
        w.0.wait().unwrap();
    }
    let behind = enqueue(&stream, 5, "echo", 20).await;
    let _last = spawn_worker_with(&db, &redis, "w-poison-3", &env);
    assert!(
        testing::wait_until(Duration::from_secs(20), || async {
            result_rows(&client).await == 6
        })
        .await,
        "the poison job and the 5 behind it are stored (have {})",
        result_rows(&client).await
    );
    let row = client
        .query_one(
            "SELECT status, attempts, result::text FROM task_results WHERE id = $1",
            &[&poison],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "dead");
    assert_eq!(row.get::<_, i32>(1), 3);
    assert!(row.get::<_, String>(2).contains("MAX_ATTEMPTS 2"));
    let done: i64 = client
        .query_one(
            "SELECT count(*) FROM task_results WHERE id = ANY($1) AND status = 'done'",
            &[&behind],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(done, 5);
    let dead: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(format!("{stream}:dead"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "one copy in the dead-letter stream");
    assert!(drains(&stream).await);
}

/// A dead-letter row gives way to a run that completed after all (a late commit); a stored
/// result is never replaced by a dead letter, nor by a replay.
#[tokio::test]
async fn a_dead_letter_row_gives_way_to_a_completed_run_and_never_the_reverse() {
    let db = TestDb::create().await;
    let pool = common::db::pool(&db.config()).unwrap();
    common::db::migrate(&pool, &db.config()).await.unwrap();
    let client = pool.get().await.unwrap();
    let finished = |id: &str, status: &'static str| common::tasks::Finished {
        id: id.into(),
        task: "echo".into(),
        status,
        result: serde_json::json!({"status": status}),
        attempts: 1,
        enqueued_at_ms: 0,
        finished_at_ms: 1_700_000_000_000,
    };
    let store = |rows: Vec<common::tasks::Finished>| {
        let pool = pool.clone();
        async move {
            let mut client = pool.get().await.unwrap();
            common::tasks::store(&mut client, rows.iter(), "w")
                .await
                .unwrap()
        }
    };
    assert_eq!(store(vec![finished("late", "dead")]).await, 1);
    assert_eq!(
        store(vec![finished("late", "done")]).await,
        1,
        "done replaces dead"
    );
    assert_eq!(store(vec![finished("kept", "done")]).await, 1);
    assert_eq!(
        store(vec![finished("kept", "dead")]).await,
        0,
        "dead never replaces a result"
    );
    assert_eq!(
        store(vec![finished("kept", "failed")]).await,
        0,
        "a replay stores nothing"
    );
    let rows = client
        .query("SELECT id, status FROM task_results ORDER BY id", &[])
        .await
        .unwrap();
    let rows: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        [
            ("kept".to_string(), "done".to_string()),
            ("late".to_string(), "done".to_string())
        ]
    );
}
