//! The redis addon service: a persistent redis-server of its own for every app, with its own
//! port, password, memory limit and append-only file, supervised by the service.
//!
//! Layout: [`config`] reads the environment, [`request`] validates requests, [`provisioner`]
//! keeps the per-app instances (the gRPC layer is `fleet_shared::addon`), [`runner`] starts
//! and stops them behind a trait, [`error`] classifies file errors into the fleet's one error
//! type.

pub mod config;
pub mod error;
pub mod provisioner;
pub mod request;
pub mod runner;

use std::future::Future;

use fleet_shared::{
    addon::serve_addon,
    catalog,
    error::AddonError,
    server::{GrpcServer, ServeError},
    service::FleetService,
};

use crate::{
    config::Config,
    provisioner::Provisioner,
    runner::{Owner, ProcessRunner, prepare_data_dir},
};

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    DataDir(#[from] AddonError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-redis` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-redis";
    const ENV_PREFIX: &'static str = catalog::REDIS.env;
    type Config = Config;
    type Error = StartError;

    /// Serves the redis addon on `server` until `shutdown` resolves, then drains.
    async fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let owner = Owner::resolve(&config.run_as)?;
        let runner = ProcessRunner::new(config.server_bin.clone(), owner);
        let provisioner = Provisioner::new(&config, runner)?;
        prepare_data_dir(&config.data_dir, owner)?;
        let supervisor = provisioner.supervise(config.supervise_every);
        let served = serve_addon(provisioner.clone(), server, shutdown).await;
        supervisor.abort();
        if config.stop_instances_on_exit {
            provisioner.stop_all().await;
        }
        Ok(served?)
    }
}
