//! The oidc service: an OpenID provider for the directory's users (over HTTP), a client per
//! app (the `oidc` addon) and the proxyAuth wall in front of apps (the `proxyAuth` addon),
//! both provisioned through the fleet's gRPC addon contract.
//!
//! Layout: [`config`] reads the environment, [`request`] validates Provision calls,
//! [`provisioner`] writes the apps' clients (its gRPC layer is `fleet_shared::addon`),
//! [`clients`] names clients and derives their secrets, [`store`] holds the provider's state
//! (SQLite or PostgreSQL), [`keys`] and [`signing`] the signing keys and ID tokens,
//! [`directory`] reads users from slapd, [`throttle`] limits failed logins, [`provider`] is
//! the HTTP face (served by [`http`]), [`user`] the claims' source, [`error`] classifies the
//! store's errors into the fleet's one error type.

pub mod clients;
pub mod config;
pub mod directory;
pub mod error;
pub mod http;
pub mod keys;
pub mod provider;
pub mod provisioner;
pub mod request;
pub mod signing;
pub mod store;
pub mod throttle;
pub mod user;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use fleet_shared::{
    addon::serve_addon,
    catalog,
    error::AddonError,
    server::{GrpcServer, ServeError},
    service::FleetService,
};
use tokio::net::TcpListener;

use crate::{
    config::Config, directory::UserDirectory, http::GuardedListener, provider::Provider,
    provisioner::Provisioner, signing::Signer, store::Store,
};

/// How often expired codes, tokens and sessions are deleted and the signing keys re-read.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the state store: {0}")]
    Store(#[from] AddonError),
    #[error("the provider's HTTP listener ({address}): {source}")]
    Http {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-oidc` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-oidc";
    const ENV_PREFIX: &'static str = catalog::OIDC.env;
    type Config = Config;
    type Error = StartError;

    /// Serves the provider on `FLEET_OIDC_HTTP_LISTEN` and the addons on `server` until
    /// `shutdown` resolves, then drains both.
    async fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let store = Store::open(&config.state_url).await?;
        let signer = Signer::start(store.clone(), config.key_max_age).await?;
        let directory = UserDirectory::new(config.directory.clone());
        let provider = Arc::new(Provider::new(
            &config,
            store.clone(),
            directory,
            Arc::clone(&signer),
        ));
        let address = config.http_listen;
        let listener = TcpListener::bind(address)
            .await
            .and_then(|listener| GuardedListener::new(listener, config.common.limits))
            .map_err(|source| StartError::Http { address, source })?;
        tracing::info!(address = %address, issuer = config.issuer.as_str(), "provider listening");

        let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
        let app = provider::router(provider).into_make_service_with_connect_info::<http::Peer>();
        let http = tokio::spawn(async move {
            let mut stopped = http_stopped;
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        let housekeeping = spawn_housekeeping(store.clone(), Arc::clone(&signer));

        let provisioner = Provisioner::new(&config, store);
        let grace = config.common.shutdown_grace;
        let served = serve_addon(provisioner, server, async move {
            shutdown.await;
            let _ = stop_http.send(true);
        })
        .await;
        housekeeping.abort();
        match tokio::time::timeout(grace, http).await {
            Ok(Ok(Err(error))) => tracing::warn!(error = %error, "provider stopped with an error"),
            Ok(_) => {}
            Err(_) => tracing::warn!("provider requests still running after the grace period"),
        }
        Ok(served?)
    }
}

/// Deletes what expired and re-reads the signing keys, every [`HOUSEKEEPING_INTERVAL`].
fn spawn_housekeeping(store: Store, signer: Arc<Signer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(error) = store.purge_expired(provider::now()).await {
                tracing::warn!(error = %error, "expired grants not purged");
            }
            if let Err(error) = signer.refresh().await {
                tracing::warn!(error = %error, "signing keys not refreshed");
            }
        }
    })
}
