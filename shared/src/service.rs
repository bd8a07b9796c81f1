//! A fleet service as one type, and its start in one place.
//!
//! Each service crate implements [`FleetService`] once: its binary's name, its settings prefix,
//! its configuration and its serve function. [`run`] is then the whole of its `main` (settings
//! from the environment, JSON logs, bind, serve until SIGTERM or SIGINT), and the test kit
//! (`testkit::harness::InProcess::serve`) starts the same service in-process from the same
//! type.
//!
//! `fleet-<service> probe` is the binary's own health check (the images' HEALTHCHECK and the
//! compose file's): it asks the server the same `FLEET_LISTEN` names for its overall
//! `grpc.health.v1` status and exits 0 when SERVING, 1 otherwise. It reads no secret, so it
//! works as any user of the container and downloads nothing.

use std::{
    error::Error,
    fmt,
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::{
    catalog,
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
/// With the argument `probe`, checks the running server's health instead ([`probe`]).
pub fn run<S: FleetService>() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("probe") {
        return probe::<S>();
    }
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

/// How long the probe waits for the whole check (connect and answer).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `fleet-<service> probe`: checks the health of the server this environment configures
/// (`FLEET_LISTEN`, or the service's default) on loopback. Exit 0 when it reports SERVING;
/// 1, with a one-line reason on stderr, when it does not, cannot be reached, or does not
/// answer within [`PROBE_TIMEOUT`]; 2 when `FLEET_LISTEN` is invalid.
pub fn probe<S: FleetService>() -> ExitCode {
    let default_port = catalog::SERVICES
        .iter()
        .find(|service| service.env == S::ENV_PREFIX)
        .map_or(catalog::COORDINATOR.default_port, |service| {
            service.default_port
        });
    probe_with(
        S::BINARY,
        EnvReader::from_process(S::ENV_PREFIX),
        default_port,
    )
}

/// [`probe`] with the settings in `env` and the service's well-known `default_port`. It
/// builds its own runtime: call it outside one.
pub fn probe_with(binary: &str, mut env: EnvReader, default_port: u16) -> ExitCode {
    // Only the listen address: the probe must work without the secrets the service reads.
    let listen = match env.optional("FLEET_LISTEN") {
        None => SocketAddr::from((Ipv4Addr::LOCALHOST, default_port)),
        Some(raw) => match raw.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(error) => {
                eprintln!("{binary} probe: FLEET_LISTEN is invalid: {error}");
                return ExitCode::from(2);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{binary} probe: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(check_health(probe_target(listen), PROBE_TIMEOUT)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{binary} probe: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Where a probe inside the service's container reaches a server listening on `listen`:
/// loopback for a wildcard address, the address itself otherwise.
pub fn probe_target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Why a health check did not find the server SERVING.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("nothing answers on {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("{addr} did not answer within {} s", .timeout.as_secs())]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("the health check on {addr} failed: {status}")]
    Call { addr: SocketAddr, status: String },
    #[error("{addr} reports {status}")]
    NotServing { addr: SocketAddr, status: String },
}

/// Asks the gRPC server at `addr` for its overall health (the empty service name), within
/// `timeout`; `Ok` only when it answers SERVING.
pub async fn check_health(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|error| ProbeError::Unreachable {
                addr,
                reason: error.to_string(),
            })?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|error| ProbeError::Unreachable {
                addr,
                reason: ErrorChain(&error).to_string(),
            })?;
        let response = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|status| ProbeError::Call {
                addr,
                status: format!("{:?}: {}", status.code(), status.message()),
            })?;
        match response.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(ProbeError::NotServing {
                addr,
                status: other.as_str_name().to_owned(),
            }),
        }
    };
    tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| ProbeError::Timeout { addr, timeout })?
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
