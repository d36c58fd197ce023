//! What scalelab's crates exchange, one typed definition each, with nothing but serde: the
//! run records the load generator writes and the report and the lab read (`record`), the
//! shapes that cross HTTP between the services and the lab (`wire`), the SLA's rules and
//! their verdicts (`sla`), and the order statistics every figure is quoted with (`stats`).
//! A load run's scenario and profile (`load`), its whole plan (`plan`), the load settings a
//! run fixes (`knob`) and the setting and metric names several crates spell (`names`) are
//! here too, with clap's derives behind the `cli` feature for the command lines that parse
//! them. Every crate that uses these depends on this one by name; the offline report and the
//! load generator depend on it, not on the services' kit (`common`: axum, Postgres, Redis).

pub mod knob;
pub mod load;
pub mod names;
pub mod plan;
pub mod record;
pub mod series;
pub mod sla;
pub mod stats;
pub mod time;
pub mod wire;
