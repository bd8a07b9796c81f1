//! `fleet-ldap`: configuration from the environment, JSON logs, then serve until SIGTERM.

use std::process::ExitCode;

use fleet_ldap::config::Config;
use fleet_shared::{config::EnvReader, server::GrpcServer, shutdown::shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env(EnvReader::from_process("LDAP")) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("fleet-ldap: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = telemetry::init(&config.common.log_filter) {
        eprintln!("fleet-ldap: {error}");
        return ExitCode::from(2);
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "fleet-ldap failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let server = GrpcServer::bind(&config.common).await?;
    fleet_ldap::serve(config, server, shutdown_signal()).await?;
    Ok(())
}
