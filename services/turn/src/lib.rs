//! The turn service: the `turn` addon over a private coturn (`deploy/turn/cluster.sh`), served
//! through the fleet's gRPC addon contract. Each app gets a shared secret of its own in
//! coturn's database, from which it mints short-lived TURN credentials; removing the secret
//! revokes them for new allocations.
//!
//! Layout: [`config`] reads the environment, [`request`] validates Provision calls,
//! [`secrets`] keeps coturn's secrets and their owners, [`provisioner`] is the addon (its gRPC
//! layer is `fleet_shared::addon`).

pub mod config;
pub mod provisioner;
pub mod request;
pub mod secrets;

use std::future::Future;

use fleet_shared::{
    addon::serve_addon,
    catalog,
    server::{GrpcServer, ServeError},
    service::FleetService,
};

use crate::{config::Config, provisioner::Provisioner};

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-turn` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-turn";
    const ENV_PREFIX: &'static str = catalog::TURN.env;
    type Config = Config;
    type Error = StartError;

    /// Serves the turn addon on `server` until `shutdown` resolves, then drains.
    async fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        Ok(serve_addon(Provisioner::new(&config), server, shutdown).await?)
    }
}
