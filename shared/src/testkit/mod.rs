//! Real backends on loopback for integration tests and benchmarks (feature `testkit`).
//!
//! Each server gets a private data directory and a free port, runs under a watchdog shell that
//! stops it when the test process exits (even on a panic or `kill -9`), and removes its data.

mod postgres;

pub use postgres::PostgresServer;

use std::{net::TcpListener, process::Command};

/// Errors of the test kit: a backend could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TestkitError(pub String);

impl TestkitError {
    fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, TestkitError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| TestkitError::new(format!("no free port: {e}")))
}

/// Runs `command` to completion, failing with its output.
pub(crate) fn run(mut command: Command, what: &str) -> Result<(), TestkitError> {
    let output = command
        .output()
        .map_err(|e| TestkitError::new(format!("cannot run {what}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(TestkitError::new(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}
