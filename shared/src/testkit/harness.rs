//! What every service's integration tests need besides a backend: secret files, a service
//! served in-process on a free port, an authenticated `Addon` client, and small assertions.

// Assertions fail tests the way tests fail: by panicking.
#![allow(clippy::panic)]

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Code, Status, service::interceptor::InterceptedService, transport::Channel};

use super::TestkitError;
use crate::{
    auth::SendBearer,
    config::{CommonConfig, ConfigError, EnvReader},
    proto::addon::{DeprovisionRequest, ListRequest, ProvisionRequest, addon_client::AddonClient},
    server::GrpcServer,
    service::{ErrorChain, FleetService, ServiceConfig},
};

/// A master key file and an API token file in a temp dir.
pub struct TestSecrets {
    dir: tempfile::TempDir,
    /// The bearer token.
    pub token: String,
}

impl TestSecrets {
    /// Fresh files.
    pub fn new() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let token = format!("test-token-0123456789-{}", std::process::id());
        std::fs::write(
            dir.path().join("master.key"),
            "k".repeat(32) + "-test-master-key",
        )?;
        std::fs::write(dir.path().join("token"), &token)?;
        Ok(Self { dir, token })
    }

    /// A path inside the secrets dir (for more files a test needs).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// `FLEET_MASTER_KEY_FILE` and `FLEET_API_TOKEN_FILE`.
    pub fn common_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "FLEET_MASTER_KEY_FILE".to_owned(),
                self.path("master.key").display().to_string(),
            ),
            (
                "FLEET_API_TOKEN_FILE".to_owned(),
                self.path("token").display().to_string(),
            ),
        ]
    }
}

/// An `Addon` client.
pub type AddonTestClient = AddonClient<InterceptedService<Channel, SendBearer>>;

/// A client of the `Addon` service on 127.0.0.1:`port`, sending `token` if any.
pub async fn addon_client(
    port: u16,
    token: Option<&str>,
) -> Result<AddonTestClient, Box<dyn std::error::Error + Send + Sync>> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect()
        .await?;
    Ok(AddonClient::with_interceptor(
        channel,
        SendBearer::new(token)?,
    ))
}

/// Provisions through `client`; the app's variables.
pub async fn provision(
    client: &mut AddonTestClient,
    request: ProvisionRequest,
) -> Result<std::collections::HashMap<String, String>, Status> {
    client.provision(request).await.map(|r| r.into_inner().env)
}

/// Deprovisions `addon` of `app_id` through `client`.
pub async fn deprovision(
    client: &mut AddonTestClient,
    app_id: &str,
    addon: &str,
) -> Result<(), Status> {
    let request = DeprovisionRequest {
        app_id: app_id.to_owned(),
        addon: addon.to_owned(),
    };
    client.deprovision(request).await.map(|_| ())
}

/// The app ids `client`'s service lists.
pub async fn list(client: &mut AddonTestClient) -> Result<Vec<String>, Status> {
    Ok(client.list(ListRequest {}).await?.into_inner().app_ids)
}

/// A service served in-process until [`InProcess::stop`].
pub struct InProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Serves `S` on 127.0.0.1 and a free port, configured by `env` (its `FLEET_*` variables,
    /// read as `S`'s binary reads its environment), until [`InProcess::stop`] or drop. Fails
    /// when the configuration is invalid; a service that fails later panics its task, so the
    /// test's output shows why.
    pub async fn serve<S: FleetService>(
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, TestkitError> {
        let config = S::Config::from_env(EnvReader::from_vars(S::ENV_PREFIX, env))
            .map_err(|error| TestkitError(format!("{}: {error}", S::BINARY)))?;
        Self::start(|listener, stopped| async move {
            let server = GrpcServer::from_listener(listener, config.common());
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(error) = S::serve(config, server, shutdown).await {
                panic!("{} failed: {}", S::BINARY, ErrorChain(&error));
            }
        })
        .await
        .map_err(|error| TestkitError(format!("cannot listen on 127.0.0.1: {error}")))
    }

    /// Binds a free port and runs `serve(listener, shutdown)` on a task.
    async fn start<F, Fut>(serve: F) -> std::io::Result<Self>
    where
        F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        capture_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, stopped));
        Ok(Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Signals shutdown and waits for the server to drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The configuration of a test server that has only the settings every service has.
pub struct CommonOnly(pub CommonConfig);

impl ServiceConfig for CommonOnly {
    fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let common = CommonConfig::read(&mut env, 0);
        env.finish()?;
        common
            .map(Self)
            .ok_or_else(|| ConfigError(vec!["incomplete common settings".to_owned()]))
    }

    fn common(&self) -> &CommonConfig {
        &self.0
    }
}

/// A service of the fleet served in-process, with its secret files: what a test needs to
/// call it.
pub struct Served {
    server: InProcess,
    /// Its master key and token files; [`Served::client`] sends the token.
    pub secrets: TestSecrets,
}

impl Served {
    /// Serves `S` with `secrets`' master key and token plus `env`, its own settings.
    pub async fn start<S: FleetService>(
        secrets: TestSecrets,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, TestkitError> {
        let mut all = secrets.common_env();
        all.extend(env);
        let server = InProcess::serve::<S>(all).await?;
        Ok(Self { server, secrets })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    /// An `Addon` client sending the right token.
    pub async fn client(&self) -> AddonTestClient {
        self.client_with_token(Some(&self.secrets.token)).await
    }

    /// An `Addon` client sending `token`, or none.
    pub async fn client_with_token(&self, token: Option<&str>) -> AddonTestClient {
        addon_client(self.port(), token)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{}: {e}", self.port()))
    }

    /// The server's health as a whole (a `ServingStatus`), or `None` if it does not answer.
    pub async fn health(&self) -> Option<i32> {
        let channel = Channel::from_shared(format!("http://{}", self.server.addr))
            .ok()?
            .connect()
            .await
            .ok()?;
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()
            .map(|reply| reply.into_inner().status)
    }

    /// Signals shutdown and waits for the server to drain.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A unique app id for one test: `<test>-<pid>-<n>`.
pub fn unique_app_id(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{test}-{}-{n}", std::process::id())
}

/// Fails the test unless `result` is a status with `code` whose message contains `needle`;
/// returns the status for further checks.
#[track_caller]
pub fn expect_status<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    needle: &str,
) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, but the call succeeded: {value:?}"),
        Err(status) if status.code() == code && status.message().contains(needle) => status,
        Err(status) => panic!("expected {code:?} containing {needle:?}, got {status:?}"),
    }
}

/// Polls `check` until it holds or `timeout` passes; whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Everything the services of this test process logged at `info` and above (the level they
/// log at in production), as JSON lines: for checks that no secret is ever logged.
pub fn captured_logs() -> String {
    LOGS.lock()
        .map(|logs| String::from_utf8_lossy(&logs).into_owned())
        .unwrap_or_default()
}

static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Sends the services' logs to the test's output (warnings and errors, shown with a failing
/// test) and, from `info` up, to [`captured_logs`]. Once per process.
fn capture_logs() {
    use tracing_subscriber::{
        EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt,
    };
    let shown = fmt::layer()
        .with_test_writer()
        .with_filter(EnvFilter::new("warn"));
    let captured = fmt::layer()
        .json()
        .with_writer(|| Captured)
        .with_filter(EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(shown)
        .with(captured)
        .try_init();
}

/// A writer appending to [`LOGS`].
struct Captured;

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = LOGS.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
