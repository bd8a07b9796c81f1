//! The mail service: the `sendmail`, `recvmail` and `email` addons over a private Postfix +
//! Dovecot (`deploy/mail/cluster.sh`), served through the fleet's gRPC addon contract.
//!
//! Layout: [`config`] reads the environment, [`request`] validates Provision calls,
//! [`mailbox`] holds the address rules, mail domains and the server's directory,
//! [`accounts`] the credential store Dovecot and Postfix read, [`directory`] the platform's
//! users whose addresses apps may not take, [`provisioner`] what each addon writes (its gRPC
//! layer is `fleet_shared::addon`), [`milter`] checks the From header of what apps submit.

pub mod accounts;
pub mod config;
pub mod directory;
pub mod mailbox;
pub mod milter;
pub mod provisioner;
pub mod request;

use std::{future::Future, net::SocketAddr};

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
    #[error("the milter's listener ({address}): {source}")]
    Milter {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// This service as the fleet runs it: what [`fleet_shared::service::run`] starts as the
/// `fleet-mail` binary and the test kit starts in-process.
pub struct Service;

impl FleetService for Service {
    const BINARY: &'static str = "fleet-mail";
    const ENV_PREFIX: &'static str = catalog::MAIL.env;
    type Config = Config;
    type Error = StartError;

    /// Serves the mail addons on `server`, and the From-header milter on
    /// `FLEET_MAIL_MILTER_LISTEN` if set, until `shutdown` resolves, then drains.
    async fn serve(
        config: Config,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (stop_milter, milter_stopped) = tokio::sync::watch::channel(false);
        let milter = match config.milter_listen {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| StartError::Milter { address, source })?;
                tracing::info!(address = %address, "From-header milter listening");
                let mut stopped = milter_stopped;
                Some(tokio::spawn(milter::serve(listener, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })))
            }
            None => None,
        };
        let provisioner = Provisioner::new(&config);
        let grace = config.common.shutdown_grace;
        let served = serve_addon(provisioner, server, async move {
            shutdown.await;
            let _ = stop_milter.send(true);
        })
        .await;
        if let Some(milter) = milter {
            // Postfix holds a milter connection per SMTP session: wait for them no longer
            // than for gRPC calls.
            match tokio::time::timeout(grace, milter).await {
                Ok(Ok(Err(error))) => {
                    tracing::warn!(error = %error, "the milter stopped with an error");
                }
                Ok(Err(error)) => tracing::warn!(error = %error, "the milter task failed"),
                Ok(Ok(Ok(()))) => {}
                Err(_) => tracing::warn!("milter sessions still open after the grace period"),
            }
        }
        Ok(served?)
    }
}
