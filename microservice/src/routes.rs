//! The microservice's routes: `/data` and `/process` (the slow read), `/explain` (how
//! Postgres runs it), `/listing` (a slow object-store listing stand-in).

use crate::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use common::db::query_error;
use common::ApiError;
use records::wire::{Listing, QueryPlan};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Buckets the key hashes into; each holds `SEED_ROWS / BUCKETS` rows.
pub const BUCKETS: u64 = 1000;

/// The query every `/data` and `/process` request runs.
const QUERY: &str = "SELECT count(*), round(coalesce(sum(value), 0)::numeric, 2)::float8 FROM items WHERE bucket = $1";

pub fn bucket_of(key: &str) -> i32 {
    // FNV-1a: stable across runs and machines, unlike std's randomised hasher.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (hash % BUCKETS) as i32
}

#[derive(Serialize)]
struct Lookup {
    key: String,
    bucket: i32,
    rows: i64,
    total: f64,
    db_ms: f64,
}

/// The slow read: one connection held for the optional delay and the filtered sum (a full
/// scan without the index).
async fn lookup(state: &AppState, key: String) -> Result<Lookup, ApiError> {
    common::keys::validate(&key)?;
    let bucket = bucket_of(&key);
    let client = state.connections.get().await?;
    let started = Instant::now();
    let delay_secs = state.db_delay_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    if delay_secs > 0.0 {
        client
            .execute("SELECT pg_sleep($1)", &[&delay_secs])
            .await
            .map_err(query_error)?;
    }
    // Rounded to cents in Postgres: a float8 sum would print as 50120.99999999993.
    let row = client
        .query_one(QUERY, &[&bucket])
        .await
        .map_err(query_error)?;
    let held = started.elapsed();
    state.query_latency.observe(held.as_secs_f64());
    Ok(Lookup {
        key,
        bucket,
        rows: row.get(0),
        total: row.get(1),
        db_ms: held.as_secs_f64() * 1000.0,
    })
}

type KeyPath = Result<Path<String>, PathRejection>;

pub async fn data(State(state): State<AppState>, key: KeyPath) -> Result<Json<Value>, ApiError> {
    let Path(key) = key?;
    let found = lookup(&state, key).await?;
    Ok(Json(
        json!({"route": "data", "served_by": &*state.instance, "result": found}),
    ))
}

pub async fn process(State(state): State<AppState>, key: KeyPath) -> Result<Json<Value>, ApiError> {
    let Path(key) = key?;
    let found = lookup(&state, key).await?;
    let iterations = state.cpu_iterations;
    let seed = found.bucket as u64;
    let started = Instant::now();
    let checksum = tokio::task::spawn_blocking(move || cpu_work(seed, iterations))
        .await
        .map_err(|e| ApiError::internal(format!("cpu work failed: {e}")))?;
    let cpu_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(json!({
        "route": "process", "served_by": &*state.instance, "result": found,
        "checksum": checksum, "cpu_ms": cpu_ms,
    })))
}

/// `EXPLAIN ANALYZE` of the `/data` query for this key: the plan a student reads to see
/// whether the index is used.
pub async fn explain(
    State(state): State<AppState>,
    key: KeyPath,
) -> Result<Json<QueryPlan>, ApiError> {
    let Path(key) = key?;
    common::keys::validate(&key)?;
    let bucket = bucket_of(&key);
    let client = state.connections.get().await?;
    // The bucket is a number this service computed, never client text.
    let sql = format!(
        "EXPLAIN (ANALYZE) {}",
        QUERY.replace("$1", &bucket.to_string())
    );
    let plan: Vec<String> = client
        .query(&sql, &[])
        .await
        .map_err(query_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let indexed = client
        .query_opt(
            "SELECT 1 FROM pg_indexes WHERE tablename = 'items' AND indexname = $1",
            &[&crate::INDEX],
        )
        .await
        .map_err(query_error)?
        .is_some();
    Ok(Json(QueryPlan {
        key,
        scan: top_scan(&plan),
        indexed,
        execution_ms: execution_ms(&plan).unwrap_or(0.0),
        plan,
    }))
}

/// The first scan node of a plan, as Postgres names it (`Parallel Seq Scan`, `Bitmap Heap
/// Scan`, …).
pub fn top_scan(plan: &[String]) -> String {
    const SCANS: [&str; 5] = [
        "Index Only Scan",
        "Bitmap Heap Scan",
        "Bitmap Index Scan",
        "Index Scan",
        "Seq Scan",
    ];
    for line in plan {
        let text = line.trim_start().trim_start_matches("->").trim_start();
        for scan in SCANS {
            if let Some(at) = text.find(scan) {
                let parallel = text[..at].trim_end().ends_with("Parallel");
                return if parallel {
                    format!("Parallel {scan}")
                } else {
                    scan.to_string()
                };
            }
        }
    }
    "unknown".into()
}

fn execution_ms(plan: &[String]) -> Option<f64> {
    plan.iter().find_map(|l| {
        l.trim()
            .strip_prefix("Execution Time:")?
            .trim()
            .trim_end_matches("ms")
            .trim()
            .parse()
            .ok()
    })
}

/// A slow listing of the objects under a prefix: `LISTING_DELAY_MS` of waiting, as a call
/// to an object store's list API costs, then a deterministic answer stamped with its time.
pub async fn listing(
    State(state): State<AppState>,
    prefix: KeyPath,
) -> Result<Json<Listing>, ApiError> {
    let Path(prefix) = prefix?;
    common::keys::validate(&prefix)?;
    tokio::time::sleep(Duration::from_millis(state.listing_delay_ms)).await;
    state.listings.inc();
    Ok(Json(Listing {
        objects: (0..20).map(|i| format!("{prefix}/object-{i:03}")).collect(),
        prefix,
        listed_at_ms: (records::time::now_unix() * 1000.0) as u64,
    }))
}

/// Longest delay `PUT /delay` accepts (as `DB_DELAY_MS`).
const MAX_DELAY_MS: u64 = 60_000;

/// `PUT /delay {"db_delay_ms": N}`: every request from now on holds its connection N ms.
pub async fn set_delay(
    State(state): State<AppState>,
    common::JsonObject(delay): common::JsonObject<records::wire::Delay>,
) -> Result<Json<records::wire::Delay>, ApiError> {
    if delay.db_delay_ms > MAX_DELAY_MS {
        return Err(ApiError::bad_request(format!(
            "db_delay_ms must be at most {MAX_DELAY_MS}"
        )));
    }
    state
        .db_delay_ms
        .store(delay.db_delay_ms, Ordering::Relaxed);
    tracing::info!(db_delay_ms = delay.db_delay_ms, "delay changed");
    Ok(Json(delay))
}

/// Deterministic CPU work (splitmix64 rounds) that the optimiser cannot remove.
pub fn cpu_work(seed: u64, iterations: u64) -> u64 {
    let mut x = seed;
    for _ in 0..iterations {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x = std::hint::black_box(z ^ (z >> 31));
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_in_range() {
        assert_eq!(bucket_of("hot"), bucket_of("hot"));
        assert!((0..BUCKETS as i32).contains(&bucket_of("anything")));
        assert_ne!(bucket_of("a"), bucket_of("b"));
    }

    #[test]
    fn cpu_work_is_deterministic() {
        assert_eq!(cpu_work(1, 1000), cpu_work(1, 1000));
        assert_ne!(cpu_work(1, 1000), cpu_work(2, 1000));
    }

    #[test]
    fn the_top_scan_and_execution_time_are_read_from_the_plan() {
        let plan: Vec<String> = [
            "Aggregate  (cost=1.00..2.00 rows=1 width=16) (actual time=0.1..0.1 rows=1 loops=1)",
            "  ->  Bitmap Heap Scan on items  (cost=5.0..6.0 rows=5 width=6)",
            "        ->  Bitmap Index Scan on items_bucket_idx",
            "Planning Time: 0.1 ms",
            "Execution Time: 0.250 ms",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(top_scan(&plan), "Bitmap Heap Scan");
        assert_eq!(execution_ms(&plan), Some(0.25));
        let parallel = vec!["  ->  Parallel Seq Scan on items".to_string()];
        assert_eq!(top_scan(&parallel), "Parallel Seq Scan");
        assert_eq!(top_scan(&[]), "unknown");
    }
}
