//! The coordinator: takes an app manifest's `addons` section, validates all of it, fans out to
//! the addon services, combines their bundles with the runtime variables, and records the app
//! durably, undoing everything when any part fails.
//!
//! Layout: [`config`] reads the environment, [`manifest`] validates the addons object (and
//! [`manifest::cron`] the scheduler's schedules), [`fleet`] calls the addon services,
//! [`store`] keeps app records (SQLite or PostgreSQL), [`coordinator`] is the domain,
//! [`grpc`] the thin gRPC layer, [`error`] the one status mapping.

pub mod config;
pub mod coordinator;
pub mod error;
pub mod fleet;
pub mod grpc;
pub mod manifest;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use fleet_shared::{
    proto::coordinator::coordinator_server::CoordinatorServer,
    server::{GrpcServer, ServeError},
};
use tonic::{server::NamedService, service::Routes};

use crate::{
    config::Config, coordinator::Coordinator, error::Error, fleet::Fleet, grpc::CoordinatorService,
    store::Store,
};

/// How often the addon services' health is checked.
const FLEET_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Why the coordinator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the state store: {0}")]
    Store(#[from] Error),
    #[error("{0}")]
    Fleet(String),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Opens the store, settles calls a previous run left unfinished, then serves on `server`
/// until `shutdown` resolves and drains.
pub async fn serve(
    config: Config,
    mut server: GrpcServer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let store = Store::open(config.state_url.expose()).await?;
    let fleet = Fleet::new(&config).map_err(StartError::Fleet)?;
    let coordinator = Arc::new(Coordinator::new(
        fleet,
        store,
        config.runtime.clone(),
        config.common.env_prefix.clone(),
    ));
    coordinator.recover().await?;

    let name = <CoordinatorServer<CoordinatorService> as NamedService>::NAME;
    let probed = Arc::clone(&coordinator);
    server.spawn_health_probe(&[name], FLEET_PROBE_INTERVAL, move || {
        let probed = Arc::clone(&probed);
        async move { probed.fleet().probe().await }
    });
    let service =
        CoordinatorServer::with_interceptor(CoordinatorService::new(coordinator), server.auth());
    Ok(server
        .serve(Routes::new(service), &[name], shutdown)
        .await?)
}
