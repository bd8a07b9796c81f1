//! The postgresql addon service: per app, a login role and a UTF8 database that only it can
//! open, on a shared PostgreSQL server, with whitelisted extensions.
//!
//! Layout: [`config`] reads the environment, [`request`] turns wire requests into validated
//! specs, [`provisioner`] does the work in PostgreSQL (the gRPC layer is
//! `fleet_shared::addon`), [`error`] classifies
//! PostgreSQL's errors into the fleet's one error type.

pub mod config;
pub mod error;
pub mod extensions;
pub mod provisioner;
pub mod request;
mod scram;

use std::future::Future;

use fleet_shared::{
    addon::serve_addon,
    catalog,
    server::{GrpcServer, ServeError},
    service::FleetService,
};

use crate::{config::Config, provisioner::Provisioner};

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-postgresql` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-postgresql";
    const ENV_PREFIX: &'static str = catalog::POSTGRESQL.env;
    type Config = Config;
    type Error = ServeError;

    /// Serves the postgresql addon on `server` until `shutdown` resolves, then drains.
    async fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        serve_addon(Provisioner::new(&config), server, shutdown).await
    }
}
