//! Prometheus metrics of one server, in the OpenMetrics text format (the `prometheus-client`
//! crate, the Prometheus project's own Rust client), served on a port of their own
//! (`FLEET_METRICS_LISTEN`) at `/metrics`:
//!
//! - `fleet_grpc_calls_total{service,method,code}`: calls answered, by gRPC status code;
//! - `fleet_grpc_call_duration_seconds{service,method}`: how long they took, to the status;
//! - `fleet_backend_up{service}`: 1 while the backend answers the health probe, else 0;
//! - `fleet_apps{service}`: the apps the service has resources for (its List), refreshed with
//!   the probe.
//!
//! [`GrpcMetricsLayer`] observes every call (its status from the response headers, or from the
//! trailers when the call succeeded or failed after the headers).

use std::{
    fmt::Write as _,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Instant,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::net::TcpListener;

/// Labels of a call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: String,
    method: String,
    code: String,
}

/// Labels of a call's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
}

/// Labels of what a service reports about itself.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

/// The metrics of one server.
pub struct Metrics {
    service: String,
    registry: Mutex<Registry>,
    calls: Family<CallLabels, Counter>,
    durations: Family<MethodLabels, Histogram>,
    backend_up: Family<ServiceLabels, Gauge>,
    apps: Family<ServiceLabels, Gauge>,
}

impl Metrics {
    /// Empty metrics of the server of `service` (its catalog name).
    pub fn new(service: &str) -> Arc<Self> {
        let calls = Family::<CallLabels, Counter>::default();
        let durations = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            // 1 ms to about 16 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.001, 2.0, 15,
            ))
        });
        let backend_up = Family::<ServiceLabels, Gauge>::default();
        let apps = Family::<ServiceLabels, Gauge>::default();
        let mut registry = Registry::default();
        registry.register(
            "fleet_grpc_calls",
            "gRPC calls answered, by status code",
            calls.clone(),
        );
        registry.register(
            "fleet_grpc_call_duration_seconds",
            "Time from a call's arrival to its status",
            durations.clone(),
        );
        registry.register(
            "fleet_backend_up",
            "Whether the backend answered the last health probe",
            backend_up.clone(),
        );
        registry.register(
            "fleet_apps",
            "Apps the service holds resources for",
            apps.clone(),
        );
        Arc::new(Self {
            service: service.to_owned(),
            registry: Mutex::new(registry),
            calls,
            durations,
            backend_up,
            apps,
        })
    }

    fn service_labels(&self) -> ServiceLabels {
        ServiceLabels {
            service: self.service.clone(),
        }
    }

    /// Records a call of `method` that ended with `code` after `started`.
    fn record(&self, method: &str, code: &str, started: Instant) {
        self.calls
            .get_or_create(&CallLabels {
                service: self.service.clone(),
                method: method.to_owned(),
                code: code.to_owned(),
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels {
                service: self.service.clone(),
                method: method.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Records whether the backend answered.
    pub fn set_backend_up(&self, up: bool) {
        self.backend_up
            .get_or_create(&self.service_labels())
            .set(i64::from(up));
    }

    /// Records how many apps the service holds resources for.
    pub fn set_apps(&self, count: usize) {
        self.apps
            .get_or_create(&self.service_labels())
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        match self.registry.lock() {
            Ok(registry) => {
                if encode(&mut text, &registry).is_err() {
                    text.clear();
                }
            }
            Err(_) => {
                let _ = writeln!(text, "# metrics unavailable");
            }
        }
        text
    }

    /// Serves `/metrics` on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        use hyper::{server::conn::http1, service::service_fn};
        use hyper_util::rt::TokioIo;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&self);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let metrics = Arc::clone(&metrics);
                    async move {
                        let (status, body) = if request.uri().path() == "/metrics" {
                            (http::StatusCode::OK, metrics.encode())
                        } else {
                            (http::StatusCode::NOT_FOUND, "see /metrics\n".to_owned())
                        };
                        Response::builder()
                            .status(status)
                            .header(
                                http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                            .body(http_body_util::Full::new(Bytes::from(body)))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

/// Binds `addr` for [`Metrics::serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// A tower layer recording every call of the server in [`Metrics`].
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl GrpcMetricsLayer {
    /// Records into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// See [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// What a call needs to be recorded once its status is known.
struct Pending {
    metrics: Arc<Metrics>,
    method: String,
    started: Instant,
}

impl Pending {
    fn record(self, code: &str) {
        self.metrics.record(&self.method, code, self.started);
    }
}

/// The name of a gRPC status code, from its `grpc-status` value.
fn code_name(value: &[u8]) -> &'static str {
    let code = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(2);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn status_of(headers: &HeaderMap) -> Option<&'static str> {
    headers.get("grpc-status").map(|v| code_name(v.as_bytes()))
}

impl<S, B, R> tower::Service<Request<B>> for GrpcMetricsService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    R: Body<Data = Bytes>,
{
    type Response = Response<RecordedBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let pending = Pending {
            metrics: Arc::clone(&self.metrics),
            method: request.uri().path().to_owned(),
            started: Instant::now(),
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            // A status in the headers (trailers-only: every error of this fleet's unary
            // calls) is final; otherwise it comes in the trailers.
            let pending = match status_of(response.headers()) {
                Some(code) => {
                    pending.record(code);
                    None
                }
                None => Some(pending),
            };
            Ok(response.map(|inner| RecordedBody { inner, pending }))
        })
    }
}

/// A response body that records its call when the trailers carry the status (or, if the body
/// ends or is dropped without one, as CANCELLED: the client went away).
pub struct RecordedBody<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B> Drop for RecordedBody<B> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.record("CANCELLED");
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for RecordedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(trailers) = frame.trailers_ref()
            && let Some(code) = status_of(trailers)
            && let Some(pending) = self.pending.take()
        {
            pending.record(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
