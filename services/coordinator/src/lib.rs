//! The coordinator: takes an app manifest's `addons` section, validates all of it, fans out to
//! the addon services, combines their bundles with the runtime variables, and records the app
//! durably, undoing everything when any part fails.
//!
//! Layout: [`config`] reads the environment, [`manifest`] validates the addons object (and
//! [`manifest::cron`] the scheduler's schedules), [`fleet`] calls the addon services,
//! [`store`] keeps app records (SQLite or PostgreSQL), [`app_lock`] serializes calls on one
//! app (across coordinator replicas on PostgreSQL), [`coordinator`] is the domain,
//! [`grpc`] the thin gRPC layer, [`error`] the one status mapping, [`limits`] the bounds on
//! what an app may declare and on what an error message echoes.

pub mod app_lock;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod fleet;
pub mod grpc;
pub mod limits;
pub mod manifest;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use fleet_shared::{
    catalog,
    proto::coordinator::coordinator_server::CoordinatorServer,
    server::{GrpcServer, ServeError},
    service::FleetService,
};
use tonic::{server::NamedService, service::Routes};

use crate::{
    app_lock::AppLocks, config::Config, coordinator::Coordinator, error::Error, fleet::Fleet,
    grpc::CoordinatorService, store::Store,
};

/// How often the addon services' health (and the coordinator's store) is checked.
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

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-coordinator` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-coordinator";
    const ENV_PREFIX: &'static str = catalog::COORDINATOR.env;
    type Config = Config;
    type Error = StartError;

    /// Opens the store, settles calls a previous run left unfinished, then serves on `server`
    /// until `shutdown` resolves and drains.
    async fn serve(
        config: Config,
        mut server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let store = Store::open(config.state_url.expose()).await?;
        let fleet = Fleet::new(&config).map_err(StartError::Fleet)?;
        let locks = AppLocks::new(config.state_url.expose(), config.lock_wait)?;
        let coordinator = Arc::new(Coordinator::new(
            fleet,
            store,
            locks,
            config.runtime.clone(),
            config.common.env_prefix.clone(),
        ));
        coordinator.recover().await?;

        let name = <CoordinatorServer<CoordinatorService> as NamedService>::NAME;
        // "" and the service name report the coordinator itself (its store), not the AND of the
        // addon services: installs that do not need a down service still work. Each addon
        // service is reported under its own name (`fleet::health_name`) and in GetFleetStatus.
        let probed = Arc::clone(&coordinator);
        server.spawn_health_probe(&[name], FLEET_PROBE_INTERVAL, move || {
            let probed = Arc::clone(&probed);
            async move { probed.probe().await }
        });
        let probed = Arc::clone(&coordinator);
        server.spawn_health_report(FLEET_PROBE_INTERVAL, move || {
            let probed = Arc::clone(&probed);
            async move { probed.probe_services().await }
        });
        let service = CoordinatorServer::with_interceptor(
            CoordinatorService::new(coordinator),
            server.auth(),
        );
        Ok(server
            .serve(Routes::new(service), &[name], shutdown)
            .await?)
    }
}
