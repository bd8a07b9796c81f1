//! Structured JSON logs to stdout, one object per line.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax (`info`,
/// `fleet_postgresql=debug,info`). Statement logs of database drivers are off regardless, since
/// DDL can carry credentials.
pub fn init(filter: &str) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(format!("{filter},sqlx=warn"))
        .map_err(|error| TelemetryError(format!("invalid log filter {filter:?}: {error}")))?;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init()
        .map_err(|error| TelemetryError(error.to_string()))
}

/// The log filter was invalid or a subscriber was already installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up logging: {0}")]
pub struct TelemetryError(String);
