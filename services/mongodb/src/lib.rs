//! The mongodb addon service: per app a SCRAM-SHA-256 user with `readWrite` on its own database
//! (and read access to the oplog when asked), on a shared MongoDB server.
//!
//! Layout: [`config`] reads the environment, [`request`] validates requests, [`provisioner`]
//! does the work in MongoDB (the gRPC layer is `fleet_shared::addon`), [`error`] classifies
//! MongoDB's errors into the fleet's one error type.

pub mod config;
pub mod error;
pub mod provisioner;
pub mod request;

use std::future::Future;

use fleet_shared::{
    addon::serve_addon,
    catalog,
    error::AddonError,
    server::{GrpcServer, ServeError},
    service::FleetService,
};

use crate::{config::Config, provisioner::Provisioner};

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}", client_message(.0))]
    Client(#[from] AddonError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A client error at start as the log reads it: UNAVAILABLE's message names MongoDB, as the
/// status would.
fn client_message(error: &AddonError) -> String {
    match error {
        AddonError::Unavailable(message) => format!("MongoDB is unavailable: {message}"),
        other => other.to_string(),
    }
}

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-mongodb` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-mongodb";
    const ENV_PREFIX: &'static str = catalog::MONGODB.env;
    type Config = Config;
    type Error = StartError;

    /// Serves the mongodb addon on `server` until `shutdown` resolves, then drains.
    async fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let provisioner = Provisioner::new(&config).await?;
        Ok(serve_addon(provisioner, server, shutdown).await?)
    }
}
