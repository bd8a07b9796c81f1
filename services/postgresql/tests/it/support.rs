//! The harness: a real PostgreSQL, the service served in-process on port 0, and clients.

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use fleet_postgresql::config::Config;
use fleet_shared::{
    config::EnvReader,
    proto::addon::{
        DeprovisionRequest, ListRequest, PostgresqlOptions, ProvisionRequest,
        addon_client::AddonClient, provision_request::Options,
    },
    server::GrpcServer,
    testkit::PostgresServer,
};
use sqlx::{Connection, PgConnection};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

/// The PostgreSQL shared by the tests of this binary.
pub fn postgres() -> &'static PostgresServer {
    PostgresServer::shared().expect("PostgreSQL for the tests")
}

/// Sends the bearer token.
#[derive(Clone)]
pub struct Token(Option<MetadataValue<Ascii>>);

impl Interceptor for Token {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Client = AddonClient<InterceptedService<Channel, Token>>;

/// Files and settings a service instance runs with.
pub struct Secrets {
    pub dir: tempfile::TempDir,
    pub token: String,
}

impl Secrets {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token = format!("test-token-0123456789-{}", std::process::id());
        std::fs::write(
            dir.path().join("master.key"),
            "k".repeat(32) + "test-master-key",
        )
        .unwrap();
        std::fs::write(dir.path().join("token"), &token).unwrap();
        Self { dir, token }
    }

    /// The service's environment for `admin_url`.
    pub fn env(&self, admin_url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let path = |f: &str| self.dir.path().join(f).display().to_string();
        let mut vars = vec![
            ("FLEET_MASTER_KEY_FILE".to_owned(), path("master.key")),
            ("FLEET_API_TOKEN_FILE".to_owned(), path("token")),
            (
                "FLEET_POSTGRESQL_ADMIN_URL".to_owned(),
                admin_url.to_owned(),
            ),
            (
                "FLEET_POSTGRESQL_CONNECT_TIMEOUT_SECS".to_owned(),
                "2".to_owned(),
            ),
            // A small pool, so that the 50-call test proves a busy pool is not reported UNAVAILABLE.
            ("FLEET_POSTGRESQL_POOL_SIZE".to_owned(), "4".to_owned()),
        ];
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        vars
    }
}

/// The service, served in-process on a free port.
pub struct Service {
    pub addr: SocketAddr,
    pub secrets: Secrets,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Service {
    /// Serves against the shared PostgreSQL.
    pub async fn start() -> Self {
        Self::start_with(&postgres().admin_url()).await
    }

    pub async fn start_with(admin_url: &str) -> Self {
        Self::start_with_env(admin_url, &[]).await
    }

    /// Serves with extra settings.
    pub async fn start_with_env(admin_url: &str, extra: &[(&str, &str)]) -> Self {
        // The service's logs, shown with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        let secrets = Secrets::new();
        let mut env = secrets.env(admin_url, &[("FLEET_LISTEN", "127.0.0.1:0")]);
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = Config::from_env(EnvReader::from_vars("POSTGRESQL", env)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = GrpcServer::from_listener(listener, &config.common);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            fleet_postgresql::serve(config, server, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            secrets,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client {
        self.client_with_token(Some(&self.secrets.token)).await
    }

    pub async fn client_with_token(&self, token: Option<&str>) -> Client {
        Self::client_at(self.addr.port(), token).await
    }

    /// A client of any service on this machine's `port`.
    pub async fn client_for(port: u16, token: &str) -> Client {
        Self::client_at(port, Some(token)).await
    }

    async fn client_at(port: u16, token: Option<&str>) -> Client {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let token = token.map(|t| format!("Bearer {t}").parse().unwrap());
        AddonClient::with_interceptor(channel, Token(token))
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// A unique app id for one test.
pub fn app_id(test: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{test}-{}-{n}", std::process::id())
}

pub fn request(app_id: &str, options: Option<PostgresqlOptions>) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app_id.to_owned(),
        app_domain: "app.example.test".to_owned(),
        credential_generation: 0,
        options: options.map(Options::Postgresql),
    }
}

pub fn with_extensions(extensions: &[&str]) -> Option<PostgresqlOptions> {
    Some(PostgresqlOptions {
        locale: String::new(),
        extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
    })
}

pub fn with_locale(locale: &str) -> Option<PostgresqlOptions> {
    Some(PostgresqlOptions {
        locale: locale.to_owned(),
        extensions: Vec::new(),
    })
}

pub async fn provision(
    client: &mut Client,
    request: ProvisionRequest,
) -> Result<HashMap<String, String>, Status> {
    client.provision(request).await.map(|r| r.into_inner().env)
}

pub async fn deprovision(client: &mut Client, app_id: &str) -> Result<(), Status> {
    client
        .deprovision(DeprovisionRequest {
            app_id: app_id.to_owned(),
            addon: "postgresql".to_owned(),
        })
        .await
        .map(|_| ())
}

pub async fn list(client: &mut Client) -> Vec<String> {
    client
        .list(ListRequest {})
        .await
        .unwrap()
        .into_inner()
        .app_ids
}

/// Connects the way an app does, with its URL.
pub async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect(url).await
}

/// A superuser connection to `database`.
pub async fn admin(database: &str) -> PgConnection {
    connect(&postgres().superuser_url(database)).await.unwrap()
}

/// Whether a role and a database of this name exist.
pub async fn role_and_database_exist(name: &str) -> (bool, bool) {
    let mut conn = admin("postgres").await;
    let role: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let database: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    (role == 1, database == 1)
}

/// Whether anything on the server records `app_id` as its owner.
pub async fn anything_owned_by(app_id: &str) -> bool {
    let mut conn = admin("postgres").await;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_shdescription WHERE description = $1")
            .bind(format!("fleet-app:{app_id}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
    count > 0
}

pub fn assert_code<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    needle: &str,
) -> Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "{needle:?} not in {:?}",
        status.message()
    );
    status
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
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

pub const ENV_KEYS: [&str; 6] = [
    "CLOUDRON_POSTGRESQL_URL",
    "CLOUDRON_POSTGRESQL_HOST",
    "CLOUDRON_POSTGRESQL_PORT",
    "CLOUDRON_POSTGRESQL_USERNAME",
    "CLOUDRON_POSTGRESQL_PASSWORD",
    "CLOUDRON_POSTGRESQL_DATABASE",
];
