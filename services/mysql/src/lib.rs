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
    server::{GrpcServer, ServeError},
    service::FleetService,
};

use crate::{config::Config, provisioner::Provisioner};

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-mysql` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-mysql";
    const ENV_PREFIX: &'static str = catalog::MYSQL.env;
    type Config = Config;
    type Error = ServeError;

    /// Serves the mysql addon on `server` until `shutdown` resolves, then drains.
    async fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        serve_addon(Provisioner::new(&config), server, shutdown).await
    }
}
