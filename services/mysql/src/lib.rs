//! The mysql addon service: per app, a utf8mb4 database (or, with `multiple_databases`, a
//! prefix under which the app creates its own) and a user with every privilege on it and on
//! nothing else, on a shared MySQL 8 or MariaDB server.
//!
//! Layout: [`config`] reads the environment, [`request`] turns wire requests into validated
//! specs, [`provisioner`] does the work in the server (the gRPC layer is
//! `fleet_shared::addon`), [`grants`] builds the only SQL that matters for isolation, [`error`]
//! classifies MySQL's errors into the fleet's one error type.

pub mod config;
pub mod error;
pub mod grants;
pub mod provisioner;
pub mod request;

use std::future::Future;

use fleet_shared::{
    addon::serve_addon,
    catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    server::{GrpcServer, ServeError},
    service::{FleetService, ServiceConfig},
};

use crate::{config::Config, provisioner::Provisioner};

/// Serves the mysql addon on `server` until `shutdown` resolves, then drains.
pub async fn serve(
    config: Config,
    server: GrpcServer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_addon(Provisioner::new(&config), server, shutdown).await
}

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-mysql` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-mysql";
    const ENV_PREFIX: &'static str = catalog::MYSQL.env;
    type Config = Config;
    type Error = ServeError;

    fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), ServeError>> + Send {
        serve(config, server, shutdown)
    }
}

impl ServiceConfig for Config {
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        // The inherent reader; this only names it for the shared start.
        Config::from_env(env)
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
