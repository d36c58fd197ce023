//! Structured logging with `tracing`. `RUST_LOG` filters (default `info`), `LOG_FORMAT` picks
//! human or JSON lines.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls (several services in one test process)
/// are no-ops.
pub fn init(log_format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a log file or `docker logs` gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    let _ = if log_format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// For tests: logs only when `TEST_LOG` is set, so test output stays readable.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init("pretty");
    }
}
