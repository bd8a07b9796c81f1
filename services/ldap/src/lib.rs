//! The ldap service: the ldap addon (a read-only bind account per app) and the platform's user
//! directory (`fleet.directory.v1.Directory`), both on one OpenLDAP slapd.
//!
//! Layout: [`config`] reads the environment, [`request`] validates requests, [`tree`] names
//! entries and escapes names, [`connection`] holds the administrator's connection to slapd,
//! [`provisioner`] does the addon's work (its gRPC layer is `fleet_shared::addon`),
//! [`directory`] the directory's and [`grpc`] serves it; [`error`] classifies slapd's errors
//! into the fleet's one error type.

pub mod config;
pub mod connection;
pub mod directory;
pub mod error;
pub mod grpc;
pub mod provisioner;
pub mod request;
pub mod tree;

use std::{future::Future, sync::Arc};

use fleet_shared::{
    addon::serve_addon_with,
    catalog,
    proto::directory::directory_server::DirectoryServer,
    server::{GrpcServer, ServeError},
    service::FleetService,
};
use tonic::{server::NamedService, service::Routes};

use crate::{
    config::Config, connection::Connection, directory::Directory, grpc::DirectoryService,
    provisioner::Provisioner,
};

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-ldap` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-ldap";
    const ENV_PREFIX: &'static str = catalog::LDAP.env;
    type Config = Config;
    type Error = ServeError;

    /// Serves the ldap addon and the directory on `server` until `shutdown` resolves, then drains.
    /// slapd is connected to on first use, so the service starts (NOT_SERVING) while it is down.
    async fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let connection = Arc::new(Connection::new(&config));
        let provisioner = Arc::new(Provisioner::new(&config, Arc::clone(&connection)));
        let directory = DirectoryService::new(Arc::new(Directory::new(connection)));
        let directory = DirectoryServer::with_interceptor(directory, server.auth());
        let name = <DirectoryServer<DirectoryService> as NamedService>::NAME;
        serve_addon_with(
            provisioner,
            server,
            Routes::new(directory),
            &[name],
            shutdown,
        )
        .await
    }
}
