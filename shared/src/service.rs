//! A fleet service as one type, and its start in one place.
//!
//! Each service crate implements [`FleetService`] once: its binary's name, its settings prefix,
//! its configuration and its serve function. [`run`] is then the whole of its `main` (settings
//! from the environment, JSON logs, bind, serve until SIGTERM or SIGINT), and the test kit
//! (`testkit::harness::InProcess::serve`) starts the same service in-process from the same
//! type.

use std::{error::Error, fmt, future::Future, process::ExitCode};

use crate::{
    config::{CommonConfig, ConfigError, EnvReader},
    server::GrpcServer,
    shutdown::shutdown_signal,
    telemetry,
};

/// A service's configuration, read from `FLEET_*` variables.
pub trait ServiceConfig: Sized + Send + 'static {
    /// Reads and validates the settings; the error lists every problem, never a value.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError>;

    /// The settings every service has (listen address, token, grace period...).
    fn common(&self) -> &CommonConfig;
}

/// One service of the fleet: what [`run`] and the test kit need to start it.
pub trait FleetService: 'static {
    /// The binary's name (`fleet-mysql`), which prefixes its messages on stderr.
    const BINARY: &'static str;
    /// The `<PREFIX>` of its own `FLEET_<PREFIX>_*` settings: its
    /// [`crate::catalog::Service::env`].
    const ENV_PREFIX: &'static str;

    /// Its configuration.
    type Config: ServiceConfig;
    /// Why it could not start or stopped serving.
    type Error: Error + Send + Sync + 'static;

    /// Serves on `server` until `shutdown` resolves, then drains.
    fn serve(
        config: Self::Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The whole `main` of a service binary: reads the configuration from this process's
/// environment (exit 2, printing every problem, when it is invalid), sets up JSON logs, binds
/// and serves until SIGTERM or SIGINT (exit 0), or logs why it failed (exit 1).
pub fn run<S: FleetService>() -> ExitCode {
    let config = match S::Config::from_env(EnvReader::from_process(S::ENV_PREFIX)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", S::BINARY);
            return ExitCode::from(2);
        }
    };
    if let Err(error) = telemetry::init(&config.common().log_filter) {
        eprintln!("{}: {error}", S::BINARY);
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return failed::<S>(&error),
    };
    runtime.block_on(async {
        let server = match GrpcServer::bind(config.common()).await {
            Ok(server) => server,
            Err(error) => return failed::<S>(&error),
        };
        match S::serve(config, server, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => failed::<S>(&error),
        }
    })
}

/// Logs why `S` failed and returns exit code 1.
fn failed<S: FleetService>(error: &dyn Error) -> ExitCode {
    tracing::error!(
        error = %ErrorChain(error),
        "{} failed",
        S::BINARY
    );
    ExitCode::FAILURE
}

/// Displays an error and its sources as `error: source: source's source`.
pub struct ErrorChain<'a>(pub &'a dyn Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn the_chain_shows_every_source() {
        assert_eq!(ErrorChain(&Outer(Inner)).to_string(), "outer: inner");
        assert_eq!(ErrorChain(&Inner).to_string(), "inner");
    }
}
