//! The server every binary runs: its own gRPC service plus `grpc.health.v1.Health`, server
//! reflection (v1 and v1alpha, for grpcurl and buf curl) of exactly the services it serves, a
//! span per call, the limits of [`ServerLimits`] (connections, silence, request time, streams
//! per connection), and graceful shutdown: on the signal, health turns NOT_SERVING, the
//! listener closes, in-flight calls finish (up to a grace period) and `serve` returns.

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{net::TcpListener, task::JoinHandle};
use tonic::service::Routes;
use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

use crate::{
    auth::BearerAuth,
    config::CommonConfig,
    listener::{ServerLimits, incoming},
    metrics::{GrpcMetricsLayer, Metrics},
    proto::FILE_DESCRIPTOR_SET,
};

/// Name under which health reports the server as a whole.
const WHOLE_SERVER: &str = "";
/// The names of what every server serves besides its own services, listed by reflection.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// A bound, not yet serving gRPC server.
pub struct GrpcServer {
    listener: TcpListener,
    auth: BearerAuth,
    grace: Duration,
    limits: ServerLimits,
    health: HealthReporter,
    probes: Vec<JoinHandle<()>>,
    /// Names reported by [`GrpcServer::spawn_health_report`], NOT_SERVING once shutdown begins.
    reported: Arc<Mutex<BTreeSet<String>>>,
    metrics: Arc<Metrics>,
    metrics_listen: Option<SocketAddr>,
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
            limits: config.limits,
            health: HealthReporter::new(),
            probes: Vec::new(),
            reported: Arc::default(),
            metrics: Metrics::new(config.service_name),
            metrics_listen: config.metrics_listen,
        }
    }

    /// The server's metrics, for what the service reports itself (backend, apps).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
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
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let names: Vec<String> = services
            .iter()
            .chain([&WHOLE_SERVER])
            .map(|name| (*name).to_owned())
            .collect();
        let probe = Arc::new(probe);
        self.spawn_health_report(interval, move || {
            let (probe, names) = (Arc::clone(&probe), names.clone());
            async move {
                let up = probe().await;
                names.into_iter().map(|name| (name, up)).collect()
            }
        });
    }

    /// Re-runs `report` every `interval` and reports each name it returns SERVING or
    /// NOT_SERVING (logging the changes), until shutdown begins, when every name reported
    /// turns NOT_SERVING. Only the names `report` returns: the coordinator reports its addon
    /// services this way, apart from the server as a whole (`""`).
    pub fn spawn_health_report<F, Fut>(&mut self, interval: Duration, report: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Vec<(String, bool)>> + Send,
    {
        let health = self.health.clone();
        let reported = Arc::clone(&self.reported);
        self.probes.push(tokio::spawn(async move {
            let mut last: HashMap<String, bool> = HashMap::new();
            loop {
                let changed: Vec<(String, bool)> = report()
                    .await
                    .into_iter()
                    .filter(|(name, up)| last.get(name) != Some(up))
                    .collect();
                let names = |up: bool| -> Vec<&str> {
                    changed
                        .iter()
                        .filter(|(_, u)| *u == up)
                        .map(|(name, _)| name.as_str())
                        .collect()
                };
                let (serving, not_serving) = (names(true), names(false));
                if !serving.is_empty() {
                    tracing::info!(services = ?serving, "reachable: SERVING");
                }
                if !not_serving.is_empty() {
                    tracing::warn!(services = ?not_serving, "unreachable: NOT_SERVING");
                }
                if let Ok(mut names) = reported.lock() {
                    names.extend(changed.iter().map(|(name, _)| name.clone()));
                }
                for (name, up) in changed {
                    let status = if up {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    health.set_service_status(name.clone(), status).await;
                    last.insert(name, up);
                }
                tokio::time::sleep(interval).await;
            }
        }));
    }

    /// Serves `routes` (the service's own, already wrapped in [`GrpcServer::auth`]) until
    /// `shutdown` resolves, then drains. `services` are the fully qualified names of the
    /// services in `routes`: health reports on them, and reflection lists them (with health
    /// and reflection), nothing else of the fleet's contract.
    pub async fn serve(
        self,
        routes: Routes,
        services: &[&'static str],
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            grace,
            limits,
            health,
            probes,
            reported,
            metrics,
            metrics_listen,
            ..
        } = self;
        let metrics_server = match metrics_listen {
            Some(addr) => {
                let listener = crate::metrics::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind { addr, source })?;
                tracing::info!(addr = ?listener.local_addr().ok(), "serving metrics at /metrics");
                Some(tokio::spawn(Arc::clone(&metrics).serve(listener)))
            }
            None => None,
        };
        // With a backend probe, the probe reports the services; without, they serve now.
        if probes.is_empty() {
            for service in services {
                health
                    .set_service_status(*service, ServingStatus::Serving)
                    .await;
            }
        }
        // Both reflection versions are served, so both list (and describe) both.
        let reflection = || {
            services
                .iter()
                .chain(&[HEALTH_SERVICE, REFLECTION_V1, REFLECTION_V1ALPHA])
                .fold(
                    tonic_reflection::server::Builder::configure()
                        .include_reflection_service(false)
                        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                        .register_encoded_file_descriptor_set(
                            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                        )
                        .register_encoded_file_descriptor_set(
                            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                        ),
                    |builder, service| builder.with_service_name(*service),
                )
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
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
            let reported: Vec<String> = reported
                .lock()
                .map(|names| names.iter().cloned().collect())
                .unwrap_or_default();
            let names = owned_services
                .iter()
                .chain([&WHOLE_SERVER])
                .map(|name| (*name).to_owned())
                .chain(reported);
            for name in names {
                health
                    .set_service_status(name, ServingStatus::NotServing)
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
            .timeout(limits.request_timeout)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(limits.keepalive_interval()))
            .http2_keepalive_timeout(Some(limits.keepalive_interval()))
            .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
            .layer(GrpcMetricsLayer::new(metrics))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming(listener, limits), stop_accepting);
        let grace_expired = async move {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let served = tokio::select! {
            result = server => result,
            () = grace_expired => {
                tracing::warn!("grace period over; exiting with calls still in flight");
                Ok(())
            }
        };
        if let Some(metrics_server) = metrics_server {
            metrics_server.abort();
        }
        served?;
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
