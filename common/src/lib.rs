//! Plumbing that every scalelab service shares, so that configuration, logs, metrics,
//! health, shutdown and errors look and behave the same in the gateway, the microservice
//! and the worker.

pub mod config;
pub mod db;
pub mod error;
pub mod guard;
pub use probe::host;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod redis_conn;
pub mod relay;
pub mod shutdown;
pub mod tasks;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ApiError, JsonObject};
pub use shutdown::Server;

/// The end of every service's `main`: a start-up failure is one clear line and exit code 1.
pub fn exit_on_error(service: &str, result: anyhow::Result<()>) {
    if let Err(err) = result {
        eprintln!("{service}: {err:#}");
        std::process::exit(1);
    }
}
