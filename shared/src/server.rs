//! The server every binary runs: its own gRPC service plus `grpc.health.v1.Health`, server
//! reflection (v1 and v1alpha, for grpcurl and buf curl), a span per call, and graceful
//! shutdown: on the signal, health turns NOT_SERVING, the listener closes, in-flight calls
//! finish (up to a grace period) and `serve` returns.

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tonic::{service::Routes, transport::server::TcpIncoming};
use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

use crate::{auth::BearerAuth, config::CommonConfig, proto::FILE_DESCRIPTOR_SET};

/// Name under which health reports the server as a whole.
const WHOLE_SERVER: &str = "";

/// A bound, not yet serving gRPC server.
pub struct GrpcServer {
    listener: TcpListener,
    auth: BearerAuth,
    grace: Duration,
    health: HealthReporter,
    probes: Vec<JoinHandle<()>>,
}

/// The server could not start or failed while serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl GrpcServer {
    /// Binds `config.listen`.
    pub async fn bind(config: &CommonConfig) -> Result<Self, ServeError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self::from_listener(listener, config))
    }

    /// Serves on an already bound listener (tests bind port 0).
    pub fn from_listener(listener: TcpListener, config: &CommonConfig) -> Self {
        Self {
            listener,
            auth: BearerAuth::new(config.api_token.clone()),
            grace: config.shutdown_grace,
            health: HealthReporter::new(),
            probes: Vec::new(),
        }
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The interceptor to wrap the service's server in.
    pub fn auth(&self) -> BearerAuth {
        self.auth.clone()
    }

    /// Re-checks a backend every `interval` and reports `services` (and the whole server)
    /// SERVING or NOT_SERVING accordingly, until shutdown begins.
    pub fn spawn_health_probe<F, Fut>(
        &mut self,
        services: &[&'static str],
        interval: Duration,
        probe: F,
    ) where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let health = self.health.clone();
        let services: Vec<&'static str> = services.iter().copied().chain([WHOLE_SERVER]).collect();
        self.probes.push(tokio::spawn(async move {
            let mut last = None;
            loop {
                let up = probe().await;
                if last != Some(up) {
                    let status = if up {
                        tracing::info!(?services, "backend reachable: SERVING");
                        ServingStatus::Serving
                    } else {
                        tracing::warn!(?services, "backend unreachable: NOT_SERVING");
                        ServingStatus::NotServing
                    };
                    for service in &services {
                        health.set_service_status(*service, status).await;
                    }
                    last = Some(up);
                }
                tokio::time::sleep(interval).await;
            }
        }));
    }

    /// Serves `routes` (the service's own, already wrapped in [`GrpcServer::auth`]) until
    /// `shutdown` resolves, then drains. `services` are the fully qualified names health
    /// reports on.
    pub async fn serve(
        self,
        routes: Routes,
        services: &[&'static str],
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            grace,
            health,
            probes,
            ..
        } = self;
        // With a backend probe, the probe reports the services; without, they serve now.
        if probes.is_empty() {
            for service in services {
                health
                    .set_service_status(*service, ServingStatus::Serving)
                    .await;
            }
        }
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let routes = routes
            .add_service(HealthServer::new(HealthService::from_health_reporter(
                health.clone(),
            )))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        let owned_services: Vec<&'static str> = services.to_vec();
        let stop_accepting = async move {
            shutdown.await;
            for probe in &probes {
                probe.abort();
            }
            for service in owned_services.iter().chain([&WHOLE_SERVER]) {
                health
                    .set_service_status(*service, ServingStatus::NotServing)
                    .await;
            }
            tracing::info!(
                grace_secs = grace.as_secs(),
                "NOT_SERVING; draining in-flight calls"
            );
            let _ = draining_tx.send(());
        };

        let local = listener.local_addr().ok();
        tracing::info!(addr = ?local, "serving gRPC");
        let server = tonic::transport::Server::builder()
            .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY, a reply's headers, data and trailers wait on delayed
                // ACKs: ~40 ms added to every call.
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                stop_accepting,
            );
        let grace_expired = async move {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server => result?,
            () = grace_expired => {
                tracing::warn!("grace period over; exiting with calls still in flight");
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Runs `work` on its own task and waits for it. A caller that hangs up (or whose deadline
/// expires) drops the handler's future; work that changes a backend must not stop half-way
/// because of that, so handlers run it through here.
pub async fn to_completion<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::spawn(work).await
}
