//! The postgresql addon service: per app, a login role and a UTF8 database that only it can
//! open, on a shared PostgreSQL server, with whitelisted extensions.
//!
//! Layout: [`config`] reads the environment, [`grpc`] is the thin `Addon` implementation,
//! [`request`] turns wire requests into validated specs, [`provisioner`] does the work in
//! PostgreSQL, [`error`] maps every failure to one gRPC status.

pub mod config;
pub mod error;
pub mod extensions;
pub mod grpc;
pub mod provisioner;
pub mod request;
mod scram;

use std::{future::Future, sync::Arc, time::Duration};

use fleet_shared::{
    proto::addon::addon_server::AddonServer,
    server::{GrpcServer, ServeError},
};
use tonic::{server::NamedService, service::Routes};

use crate::{config::Config, grpc::AddonService, provisioner::Provisioner};

/// How often health re-checks that PostgreSQL answers.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Serves the postgresql addon on `server` until `shutdown` resolves, then drains.
pub async fn serve(
    config: Config,
    mut server: GrpcServer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let provisioner = Arc::new(Provisioner::new(&config));
    let service_name = <AddonServer<AddonService> as NamedService>::NAME;
    let probed = Arc::clone(&provisioner);
    server.spawn_health_probe(service_name, HEALTH_PROBE_INTERVAL, move || {
        let probed = Arc::clone(&probed);
        async move { probed.ping().await }
    });
    let addon = AddonServer::with_interceptor(AddonService::new(provisioner), server.auth());
    server
        .serve(Routes::new(addon), &[service_name], shutdown)
        .await
}
