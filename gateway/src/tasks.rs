//! The front end of the long-task queue: `POST /longtask` appends a job to the durable Redis
//! stream and answers 202 at once; `GET /tasks/{id}` reports its state. Postgres holds the
//! final word (`task_results`, written by the worker); Redis holds queued/running. With
//! `LONGTASK_MODE=inline` the gateway does the task itself inside the request instead (the
//! same work and the same result row as the worker's) and answers 200 with its result: the
//! offloading experiment's side without a queue.

use crate::auth::User;
use crate::St;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::ApiError;
use serde_json::Value;
use std::collections::HashMap;

const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Where a long task runs: queued for the worker (202 at once), or inside the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LongtaskMode {
    Queued,
    Inline,
}

use records::wire::{NewTask as TaskRequest, TaskAccepted, TaskStatus};

fn validate_task_name(task: &str) -> Result<(), ApiError> {
    let ok = !task.is_empty()
        && task.len() <= 64
        && task
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "task must be 1-64 characters of letters, digits, _ and -",
        ))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

pub async fn enqueue(
    State(state): St,
    _user: User,
    common::JsonObject(req): common::JsonObject<TaskRequest>,
) -> Result<Response, ApiError> {
    validate_task_name(&req.task)?;
    if !common::db::jsonb_storable(&req.payload) {
        return Err(ApiError::bad_request(
            "payload may not hold a NUL character (\\u0000): its result could not be stored",
        ));
    }
    let payload = req.payload.to_string();
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("payload must be at most {MAX_PAYLOAD_BYTES} bytes of JSON"),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    if state.config.longtask_mode == LongtaskMode::Inline {
        return inline(&state, id, req).await;
    }
    let redis_config = &state.config.redis;
    let status_key = redis_config.task_status_key(&id);
    let enqueued_at = now_ms().to_string();
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("HSET")
        .arg(&status_key)
        .arg("status")
        .arg("queued")
        .arg("task")
        .arg(&req.task)
        .arg("enqueued_at")
        .arg(&enqueued_at)
        .ignore()
        .cmd("EXPIRE")
        .arg(&status_key)
        .arg(state.config.task_status_ttl_secs.max(1))
        .ignore()
        .cmd("XADD")
        .arg(redis_config.stream_key())
        .arg("*")
        .arg("id")
        .arg(&id)
        .arg("task")
        .arg(&req.task)
        .arg("payload")
        .arg(&payload)
        .arg("enqueued_at")
        .arg(&enqueued_at)
        .ignore();
    state
        .redis
        .query_pipe::<()>(&pipe)
        .await
        .map_err(|e| ApiError::unavailable(format!("task queue unavailable: {e}")))?;
    state.metrics.tasks_enqueued.inc();
    let status_url = format!("/tasks/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url.clone())],
        Json(TaskAccepted {
            id,
            status: "queued".into(),
            status_url,
        }),
    )
        .into_response())
}

/// Does the task inside the request, stores its result as the worker would, and answers 200
/// with it (and where its status stays readable).
async fn inline(
    state: &crate::AppState,
    id: String,
    req: TaskRequest,
) -> Result<Response, ApiError> {
    let enqueued_at_ms = now_ms() as i64;
    let (status, result) = common::tasks::work(&req.task, &req.payload, &state.config.work).await;
    let finished = common::tasks::Finished {
        id,
        task: req.task,
        status,
        result,
        attempts: 1,
        enqueued_at_ms,
        finished_at_ms: now_ms() as i64,
    };
    let mut client = state.pool.get().await.map_err(common::db::pool_error)?;
    common::tasks::store(&mut client, [&finished], &state.instance)
        .await
        .map_err(common::db::query_error)?;
    state.metrics.tasks_inline.inc();
    let status_url = format!("/tasks/{}", finished.id);
    Ok((
        StatusCode::OK,
        [(header::LOCATION, status_url)],
        Json(TaskStatus {
            status: finished.status.into(),
            finished_at: Some(records::time::rfc3339_ms(finished.finished_at_ms)),
            id: finished.id,
            task: Some(finished.task),
            result: finished.result,
            worker: Some(state.instance.clone()),
            attempts: Some(finished.attempts),
        }),
    )
        .into_response())
}

pub async fn status(
    State(state): St,
    _user: User,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskStatus>, ApiError> {
    let Path(id) = id?;
    let not_found = || ApiError::not_found(format!("no task with id {id:?}"));
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(not_found());
    }
    if let Some(done) = finished(&state, &id).await? {
        return Ok(Json(done));
    }
    let pending: HashMap<String, String> = state
        .redis
        .query(redis::cmd("HGETALL").arg(state.config.redis.task_status_key(&id)))
        .await
        .map_err(|e| ApiError::unavailable(format!("task queue unavailable: {e}")))?;
    match pending.get("status") {
        Some(status) => Ok(Json(TaskStatus {
            id,
            status: status.clone(),
            task: pending.get("task").cloned(),
            result: Value::Null,
            worker: None,
            attempts: None,
            finished_at: None,
        })),
        // Neither finished when Postgres was asked nor pending now: the worker may have
        // committed the result and cleared its status in between. Postgres has the last word.
        None => match finished(&state, &id).await? {
            Some(done) => Ok(Json(done)),
            None => Err(not_found()),
        },
    }
}

/// The task's result row, if the worker (or an inline gateway) stored it.
async fn finished(state: &crate::AppState, id: &str) -> Result<Option<TaskStatus>, ApiError> {
    let client = state.pool.get().await.map_err(common::db::pool_error)?;
    let row = client
        .query_opt(
            "SELECT status, task, result::text, worker, attempts,
                    to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
             FROM task_results WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(common::db::query_error)?;
    Ok(row.map(|row| {
        let result: String = row.get(2);
        TaskStatus {
            id: id.to_string(),
            status: row.get(0),
            task: Some(row.get(1)),
            result: serde_json::from_str::<Value>(&result).unwrap_or(Value::Null),
            worker: Some(row.get(3)),
            attempts: Some(row.get(4)),
            finished_at: Some(row.get(5)),
        }
    }))
}
