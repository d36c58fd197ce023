//! A long task itself, wherever it runs: the simulated work (`work`) and its result row
//! (`store`). The worker runs tasks it takes from the queue; a gateway with
//! `LONGTASK_MODE=inline` runs them inside the request (the offloading experiment's "before").
//! One definition, so both sides do the same work and store the same row.

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a task's simulated work takes.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TaskWork {
    /// Simulated work per task; a task's payload may ask for its own `duration_ms`.
    #[arg(long, env = "TASK_DURATION_MS", default_value_t = 500)]
    pub task_duration_ms: u64,
    /// Upper bound on a payload's `duration_ms`.
    #[arg(long, env = "MAX_TASK_DURATION_MS", default_value_t = 60_000)]
    pub max_task_duration_ms: u64,
}

/// A finished task, as `task_results` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub id: String,
    pub task: String,
    /// `done`, `failed`, or `dead` (dead-lettered by the worker).
    pub status: &'static str,
    pub result: Value,
    pub attempts: i32,
    /// Unix milliseconds; 0 when unknown.
    pub enqueued_at_ms: i64,
    pub finished_at_ms: i64,
}

/// The task's work: its `duration_ms` (or the default, capped) of waiting, then its result.
/// `fail` fails on purpose; a payload Postgres could not store fails rather than holding
/// back every result stored with it.
pub async fn work(task: &str, payload: &Value, how: &TaskWork) -> (&'static str, Value) {
    let wanted = payload["duration_ms"]
        .as_u64()
        .unwrap_or(how.task_duration_ms)
        .min(how.max_task_duration_ms);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(wanted)).await;
    if !crate::db::jsonb_storable(payload) {
        (
            "failed",
            json!({"error": "the payload holds a NUL character, which Postgres cannot store"}),
        )
    } else if task == "fail" {
        (
            "failed",
            json!({"error": "the task asked to fail", "payload": payload}),
        )
    } else {
        (
            "done",
            json!({"task": task, "worked_ms": started.elapsed().as_millis() as u64, "echo": payload}),
        )
    }
}

/// Stores finished tasks in one transaction, keyed by id: a task stored before (a replay
/// after a crash) stores nothing, unless it was stored dead-lettered and this run completed.
/// Returns how many rows were written.
pub async fn store<'a>(
    client: &mut deadpool_postgres::Client,
    finished: impl IntoIterator<Item = &'a Finished>,
    by: &str,
) -> Result<u64, tokio_postgres::Error> {
    let (mut ids, mut tasks, mut statuses, mut results) = (vec![], vec![], vec![], vec![]);
    let (mut attempts, mut enqueued, mut done_at) = (vec![], vec![], vec![]);
    for d in finished {
        ids.push(d.id.as_str());
        tasks.push(d.task.as_str());
        statuses.push(d.status);
        results.push(d.result.to_string());
        attempts.push(d.attempts);
        enqueued.push(d.enqueued_at_ms);
        done_at.push(d.finished_at_ms);
    }
    let tx = client.transaction().await?;
    let stored = tx
        .execute(
            "INSERT INTO task_results
             (id, task, status, result, worker, attempts, enqueued_at, finished_at)
         SELECT id, task, status, result::jsonb, $5, attempts,
                to_timestamp(NULLIF(enq, 0) / 1000.0), to_timestamp(fin / 1000.0)
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::int4[],
                     $7::int8[], $8::int8[]) AS t(id, task, status, result, attempts, enq, fin)
         ON CONFLICT (id) DO UPDATE SET
             task = EXCLUDED.task, status = EXCLUDED.status, result = EXCLUDED.result,
             worker = EXCLUDED.worker, attempts = EXCLUDED.attempts,
             finished_at = EXCLUDED.finished_at, committed_at = now()
         -- A result replaces only a dead-letter row (a run that completed after all); any
         -- other stored result stays the first one.
         WHERE task_results.status = 'dead' AND EXCLUDED.status <> 'dead'",
            &[
                &ids, &tasks, &statuses, &results, &by, &attempts, &enqueued, &done_at,
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(stored)
}
