//! What a client of the stack uses, without the services' kit: the load generator and the
//! lab reach the stack through these (`common` re-exports them for the services' tests).
//! - `client`: an HTTP client whose every request has a timeout, and the lab users' login
//! - `exposition`: the Prometheus text format, parsed, summed and scraped
//! - `host`: this process's CPU time, the machine's CPU busy share, the container's CPU limit
//! - `sampler`: one reading of every metrics endpoint the caller names, scraped at once: the
//!   load generator's, the experiments' and the autoscaler's readings

pub mod client;
pub mod exposition;
pub mod host;
pub mod sampler;
