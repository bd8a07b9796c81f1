//! The docker-proxy service: the `docker` addon. Each app gets an endpoint of its own
//! (`CLOUDRON_DOCKER_HOST=tcp://host:port`) that speaks the Docker Engine API, filtered so the
//! app manages its own containers on a real Docker Engine and nothing else.
//!
//! Layout: [`config`] reads the environment, [`request`] validates Provision calls,
//! [`store`] is the endpoints' table replicas share, [`listeners`] are this process's endpoint
//! sockets, [`routes`] and [`create`] say what an app may ask (deny by default), [`proxy`]
//! answers one call, [`engine`] talks to dockerd, and [`provisioner`] is the addon (its gRPC
//! layer is `fleet_shared::addon`).

pub mod config;
pub mod create;
pub mod engine;
pub mod listeners;
pub mod provisioner;
pub mod proxy;
pub mod request;
pub mod routes;
pub mod store;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use fleet_shared::{
    addon::serve_addon_with,
    catalog,
    error::AddonError,
    server::{GrpcServer, ServeError},
    service::FleetService,
};
use tonic::service::Routes;

use crate::{
    config::Config,
    engine::Engine,
    listeners::Listeners,
    provisioner::Provisioner,
    proxy::{Proxy, ProxySettings},
    store::Endpoints,
};

/// How often this process re-reads the endpoints' table, to open what another replica made
/// and close what it removed (calls on a removed endpoint are refused at once regardless).
const SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the endpoints' table: {0}")]
    State(#[source] AddonError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-docker-proxy` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-docker-proxy";
    const ENV_PREFIX: &'static str = catalog::DOCKER_PROXY.env;
    type Config = Config;
    type Error = StartError;

    /// Serves the docker addon on `server` and the apps' endpoints until `shutdown`
    /// resolves, then drains and closes the endpoints.
    async fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let endpoints = Endpoints::open(&config.state_dir)
            .await
            .map_err(StartError::State)?;
        let apps_data = config
            .apps_data_dir
            .clone()
            .zip(config.apps_data_host_dir.clone());
        let proxy = Arc::new(Proxy::new(
            Engine::new(config.engine_socket.clone()),
            endpoints.clone(),
            config.common.master_key.clone(),
            ProxySettings {
                network: config.network.clone(),
                apps_data,
                allow_published_ports: config.allow_published_ports,
                allow_from: config.allow_from.clone(),
            },
        ));
        if let Err(error) = proxy.refresh_network().await {
            // Not fatal: health says NOT_SERVING until the engine answers.
            tracing::warn!(%error, "the Docker Engine is not reachable yet");
        }
        let listeners = Arc::new(Listeners::new(
            Arc::clone(&proxy),
            config.endpoint_listen,
            config.max_connections_per_app,
            config.idle_timeout,
        ));
        let sync = tokio::spawn(keep_in_sync(endpoints.clone(), Arc::clone(&listeners)));
        let provisioner = Provisioner::new(
            proxy,
            Arc::clone(&listeners),
            endpoints,
            config.common.env_prefix.clone(),
            config.endpoint_host.clone(),
            config.endpoint_ports.clone(),
        );
        let served = serve_addon_with(
            Arc::new(provisioner),
            server,
            Routes::default(),
            &[],
            shutdown,
        )
        .await;
        sync.abort();
        listeners.close_all();
        Ok(served?)
    }
}

/// Opens and closes this process's endpoints as the table says, now and every
/// [`SYNC_INTERVAL`].
async fn keep_in_sync(endpoints: Endpoints, listeners: Arc<Listeners>) {
    let mut interval = tokio::time::interval(SYNC_INTERVAL);
    loop {
        interval.tick().await;
        let read = Instant::now();
        match endpoints.all().await {
            Ok(all) => listeners.sync(&all, read),
            Err(error) => tracing::warn!(%error, "cannot read the endpoints' table"),
        }
    }
}
