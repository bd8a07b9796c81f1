//! The harness: backends, addon services, a coordinator, clients, and backend inspection.

use std::collections::HashMap;

pub use fleet_shared::testkit::harness::{eventually, expect_status, unique_app_id as app_id};
use fleet_shared::{
    AppId,
    auth::SendBearer,
    proto::coordinator::{
        GetAppRequest, InstallAppRequest, InstallAppResponse, UninstallAppRequest,
        coordinator_client::CoordinatorClient,
    },
    testkit::{
        MariaDbServer, PostgresServer, free_port,
        harness::{InProcess, TestSecrets},
    },
};
use sqlx::{Connection, MySqlConnection, PgConnection};
use tonic::{Status, service::interceptor::InterceptedService, transport::Channel};

pub type Client = CoordinatorClient<InterceptedService<Channel, SendBearer>>;

pub fn postgres() -> &'static PostgresServer {
    PostgresServer::shared().expect("PostgreSQL")
}

pub fn mariadb() -> &'static MariaDbServer {
    MariaDbServer::shared().expect("MariaDB")
}

/// The postgresql and mysql services, sharing one token and master key.
pub struct Services {
    pub secrets: TestSecrets,
    /// Held: dropping it stops the service.
    _postgresql: InProcess,
    pub mysql: Option<InProcess>,
    ports: (u16, u16),
    /// Where each serves its metrics: (postgresql, mysql).
    metrics: (u16, u16),
}

impl Services {
    pub async fn start() -> Self {
        let secrets = TestSecrets::new().unwrap();
        let metrics = (free_port().unwrap(), free_port().unwrap());
        let metrics_env = |port: u16| {
            (
                "FLEET_METRICS_LISTEN".to_owned(),
                format!("127.0.0.1:{port}"),
            )
        };
        let mut pg_env = secrets.common_env();
        pg_env.push(metrics_env(metrics.0));
        pg_env.push((
            "FLEET_POSTGRESQL_ADMIN_URL".to_owned(),
            postgres().admin_url(),
        ));
        let postgresql = InProcess::serve::<fleet_postgresql::Service>(pg_env)
            .await
            .unwrap();
        let mut my_env = secrets.common_env();
        my_env.push(metrics_env(metrics.1));
        my_env.push(("FLEET_MYSQL_ADMIN_URL".to_owned(), mariadb().admin_url()));
        let mysql = InProcess::serve::<fleet_mysql::Service>(my_env)
            .await
            .unwrap();
        let ports = (postgresql.addr.port(), mysql.addr.port());
        Self {
            secrets,
            _postgresql: postgresql,
            mysql: Some(mysql),
            ports,
            metrics,
        }
    }

    /// The `method` calls (`Provision`, `Deprovision`) the postgresql service answered OK.
    pub async fn postgresql_calls(&self, method: &str) -> u64 {
        ok_calls(self.metrics.0, method).await
    }

    /// The `method` calls the mysql service answered OK.
    pub async fn mysql_calls(&self, method: &str) -> u64 {
        ok_calls(self.metrics.1, method).await
    }

    /// The coordinator's environment for these services and `state_url`.
    pub fn coordinator_env(
        &self,
        state_url: &str,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut env = self.secrets.common_env();
        // A stopped service keeps its address: the coordinator must find it unreachable.
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let (pg, my) = (url(self.ports.0), url(self.ports.1));
        for (key, value) in [
            ("FLEET_COORDINATOR_POSTGRESQL_URL", pg.as_str()),
            ("FLEET_COORDINATOR_MYSQL_URL", my.as_str()),
            ("FLEET_COORDINATOR_STATE_URL", state_url),
            ("FLEET_COORDINATOR_API_ORIGIN", "https://my.example.test"),
            ("FLEET_COORDINATOR_CALL_TIMEOUT_SECS", "60"),
        ]
        .iter()
        .chain(extra)
        {
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        env
    }

    pub async fn stop_mysql(&mut self) {
        if let Some(mysql) = self.mysql.take() {
            mysql.stop().await;
        }
    }
}

/// The `method` calls of the `Addon` service answered OK, read from the server's own
/// Prometheus metrics on 127.0.0.1:`port`.
pub async fn ok_calls(port: u16, method: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let method = format!("method=\"/fleet.addon.v1.Addon/{method}\"");
    text.lines()
        .filter(|line| {
            line.starts_with("fleet_grpc_calls_total{")
                && line.contains(&method)
                && line.contains("code=\"OK\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A coordinator served in-process.
pub struct Coordinator {
    server: InProcess,
    token: String,
    pub state: tempfile::TempDir,
}

impl Coordinator {
    /// A coordinator with a fresh SQLite state file.
    pub async fn start(services: &Services) -> Self {
        let state = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", state.path().join("state.db").display());
        Self::start_with(services, &url, state).await
    }

    pub async fn start_with(
        services: &Services,
        state_url: &str,
        state: tempfile::TempDir,
    ) -> Self {
        Self::serve(services, state_url, state, &[]).await
    }

    /// A coordinator on `state_url` with `extra` settings.
    pub async fn start_with_env(
        services: &Services,
        state_url: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::serve(services, state_url, tempfile::tempdir().unwrap(), extra).await
    }

    async fn serve(
        services: &Services,
        state_url: &str,
        state: tempfile::TempDir,
        extra: &[(&str, &str)],
    ) -> Self {
        let env = services.coordinator_env(state_url, extra);
        let server = InProcess::serve::<fleet_coordinator::Service>(env)
            .await
            .unwrap();
        Self {
            server,
            token: services.secrets.token.clone(),
            state,
        }
    }

    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    pub async fn client(&self) -> Client {
        client(self.port(), &self.token).await
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.server.stop().await;
        self.state
    }
}

/// A coordinator client on `port`.
pub async fn client(port: u16, token: &str) -> Client {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    CoordinatorClient::with_interceptor(channel, SendBearer::new(Some(token)).unwrap())
}

/// A manifest `addons` object from JSON.
pub fn addons(json: serde_json::Value) -> prost_types::Struct {
    fleet_coordinator::manifest::json::to_struct(&json).unwrap()
}

pub async fn install(
    client: &mut Client,
    app_id: &str,
    manifest: serde_json::Value,
) -> Result<InstallAppResponse, Status> {
    client
        .install_app(InstallAppRequest {
            app_id: app_id.to_owned(),
            app_domain: format!("{app_id}.example.test"),
            addons: Some(addons(manifest)),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn get(
    client: &mut Client,
    app_id: &str,
) -> Result<fleet_shared::proto::coordinator::App, Status> {
    client
        .get_app(GetAppRequest {
            app_id: app_id.to_owned(),
        })
        .await
        .map(|r| r.into_inner().app.unwrap_or_default())
}

pub async fn uninstall(client: &mut Client, app_id: &str) -> Result<(), Status> {
    client
        .uninstall_app(UninstallAppRequest {
            app_id: app_id.to_owned(),
        })
        .await
        .map(|_| ())
}

/// What exists on the backends for `app_id`: (pg role, pg database, mysql user, mysql database).
pub async fn backend_traces(app_id: &str) -> (bool, bool, bool, bool) {
    let name = AppId::parse(app_id).unwrap().resource_name().to_string();
    let mut pg = PgConnection::connect(&postgres().admin_url())
        .await
        .unwrap();
    let pg_role: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(&name)
        .fetch_one(&mut pg)
        .await
        .unwrap();
    let pg_db: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut pg)
        .await
        .unwrap();
    let mut my = MySqlConnection::connect(&mariadb().admin_url())
        .await
        .unwrap();
    let my_user: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ?")
        .bind(&name)
        .fetch_one(&mut my)
        .await
        .unwrap();
    let my_db: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(&name)
    .fetch_one(&mut my)
    .await
    .unwrap();
    (pg_role > 0, pg_db > 0, my_user > 0, my_db > 0)
}

pub const NOTHING: (bool, bool, bool, bool) = (false, false, false, false);

pub fn env_of(reply: &InstallAppResponse) -> &HashMap<String, String> {
    &reply.env
}

impl Coordinator {
    /// A coordinator with a fresh SQLite state file and `secrets`' master key and token that
    /// knows only the addon services `urls` names (`FLEET_COORDINATOR_<SERVICE>_URL`, URL).
    pub async fn start_for(secrets: &TestSecrets, urls: &[(&str, &str)]) -> Self {
        let state = tempfile::tempdir().unwrap();
        let state_url = format!("sqlite://{}", state.path().join("state.db").display());
        let mut env = secrets.common_env();
        for (key, value) in [
            ("FLEET_COORDINATOR_STATE_URL", state_url.as_str()),
            ("FLEET_COORDINATOR_API_ORIGIN", "https://my.example.test"),
            ("FLEET_COORDINATOR_CALL_TIMEOUT_SECS", "60"),
        ]
        .iter()
        .chain(urls)
        {
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        let server = InProcess::serve::<fleet_coordinator::Service>(env)
            .await
            .unwrap();
        Self {
            server,
            token: secrets.token.clone(),
            state,
        }
    }
}

/// A fresh state database for one test: its name and URL.
pub async fn state_database(test: &str) -> (String, String) {
    let name = format!(
        "coordinator_{test}_{}_{}",
        std::process::id(),
        app_id("db").rsplit('-').next().unwrap()
    );
    let mut admin = PgConnection::connect(&postgres().admin_url())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = postgres().superuser_url(&name);
    (name, url)
}

/// Holds the postgresql service's own lock on `app`'s resources, so that a call provisioning
/// its postgresql addon stops half-way until the returned connection is closed.
pub async fn stall_postgresql(app: &str) -> PgConnection {
    let name = AppId::parse(app).unwrap().resource_name().to_string();
    let mut blocker = PgConnection::connect(&postgres().admin_url())
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock(x'666c6565'::int, hashtext($1))")
        .bind(&name)
        .execute(&mut blocker)
        .await
        .unwrap();
    blocker
}
