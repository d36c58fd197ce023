//! What the load balancer's metrics and admin ports exchange with the lab and the load
//! generator: one typed definition, serialised by the load balancer, read by the others.

use serde::{Deserialize, Serialize};

/// `GET /backends`: the entries discovery resolves, and each gateway it found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backends {
    pub entries: Vec<String>,
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    /// `ip:port`.
    pub addr: String,
    /// In rotation as far as health goes (a draining gateway may still be healthy).
    pub healthy: bool,
    /// Taken out of rotation by the lab before it stops this gateway.
    #[serde(default)]
    pub draining: bool,
    /// Requests the load balancer has sent it that have not completed.
    #[serde(default)]
    pub in_flight: usize,
}

impl Backends {
    /// Gateways that get new requests: healthy and not draining.
    pub fn in_rotation(&self) -> impl Iterator<Item = &Backend> {
        self.backends.iter().filter(|b| b.healthy && !b.draining)
    }
}

/// `PUT /backends` on the admin port: the entries discovery resolves from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetBackends {
    pub backends: Vec<String>,
}

/// `PUT /drain` on the admin port: exactly these `ip:port` addresses are draining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drain {
    pub backends: Vec<String>,
}

/// `POST /login`'s body, as the load generator sends it and the gateway reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl Login {
    /// Lab user `n` (user1..userN, the users the lab seeds) with their password.
    pub fn lab_user(n: usize, password: &str) -> Self {
        Login {
            username: format!("user{n}"),
            password: password.to_string(),
        }
    }
}

/// `POST /login`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginAnswer {
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    pub expires_in: u64,
}

/// Every error answer of every service, the load balancer's own included:
/// `{"error": "<what went wrong>", "status": <code>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub status: u16,
}

impl ErrorBody {
    pub fn new(status: u16, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            status,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a string and a number serialise")
    }
}

/// The microservice's `GET /explain/{key}`: how Postgres runs the query behind `/data`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryPlan {
    pub key: String,
    /// The plan's top scan node: `Seq Scan`, `Index Scan`, `Bitmap Heap Scan`, ….
    pub scan: String,
    /// Whether the index on the filtered column exists (`ITEMS_INDEX`).
    pub indexed: bool,
    /// `EXPLAIN (ANALYZE)` as Postgres prints it, a line each.
    pub plan: Vec<String>,
    pub execution_ms: f64,
}

/// The microservice's `GET /listing/{prefix}` (a slow object-store listing stand-in), and
/// the body of the gateway's `GET /listing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    pub prefix: String,
    pub objects: Vec<String>,
    /// Unix milliseconds when the source produced this listing: its age is how stale an
    /// answer served from a cache is.
    pub listed_at_ms: u64,
}

/// Prefixes the load generator's `listing` scenario asks for (`p0`…), uniformly: what a
/// listing cache can hold, and what the report's prediction counts.
pub const LISTING_PREFIXES: u32 = 10;

/// The microservice's `PUT /delay`: its `pg_sleep` per request from now on (a lab control
/// for the slow-microservice fault, like the load balancer's admin port).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    pub db_delay_ms: u64,
}

/// `POST /longtask`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    pub task: String,
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// `POST /longtask`'s answer (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAccepted {
    pub id: String,
    /// Always `queued`.
    pub status: String,
    pub status_url: String,
}

/// `GET /tasks/{id}`: queued or running (from Redis), done or failed (from Postgres).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub id: String,
    /// `queued`, `running`, `done`, `failed`.
    pub status: String,
    #[serde(default)]
    pub task: Option<String>,
    #[serde(default)]
    pub result: serde_json::Value,
    /// The worker that stored the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Deliveries it took: more than 1 when a crashed worker's job was taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

impl TaskStatus {
    /// Done, failed or dead-lettered: it will not change again.
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "done" | "failed" | "dead")
    }
}

/// `GET /config`: the settings in force and what the service sees of its machine. The load
/// generator reads it into the run record.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConfigView {
    pub service: String,
    pub instance: String,
    pub config: serde_json::Value,
    pub host: crate::record::HostLimits,
}

impl ConfigView {
    /// The record's view: the settings, with `host` beside them.
    pub fn merged(self) -> crate::record::ServiceConfig {
        let mut merged: crate::record::ServiceConfig =
            serde_json::from_value(self.config).unwrap_or_default();
        merged.host = Some(self.host);
        merged
    }
}
