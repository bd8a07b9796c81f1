//! The harness: a real PostgreSQL, the service served in-process on port 0, and clients.

pub use fleet_shared::testkit::harness::{
    AddonTestClient as Client, eventually, expect_status, unique_app_id as app_id,
};
use fleet_shared::{
    proto::addon::{PostgresqlOptions, ProvisionRequest, provision_request::Options},
    testkit::{PostgresServer, harness::TestSecrets},
};
use sqlx::{Connection, PgConnection};
use tonic::Status;

/// The PostgreSQL shared by the tests of this binary.
pub fn postgres() -> &'static PostgresServer {
    PostgresServer::shared().expect("PostgreSQL for the tests")
}

/// The service's own settings for `admin_url`, plus `extra`.
pub fn own_env(admin_url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("FLEET_POSTGRESQL_ADMIN_URL", admin_url),
        ("FLEET_POSTGRESQL_CONNECT_TIMEOUT_SECS", "5"),
        // A small pool, so the 50-call test proves a busy pool is not reported UNAVAILABLE.
        ("FLEET_POSTGRESQL_POOL_SIZE", "4"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// The whole environment of the binary: `secrets`' files and [`own_env`].
pub fn service_env(
    secrets: &TestSecrets,
    admin_url: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = secrets.common_env();
    env.extend(own_env(admin_url, extra));
    env
}

/// The service, served in-process on a free port.
pub use fleet_shared::testkit::harness::Served as Service;

/// Serves against the shared PostgreSQL.
pub async fn start_service() -> Service {
    start_service_with(&postgres().admin_url()).await
}

pub async fn start_service_with(admin_url: &str) -> Service {
    start_service_with_env(admin_url, &[]).await
}

/// Serves with extra settings.
pub async fn start_service_with_env(admin_url: &str, extra: &[(&str, &str)]) -> Service {
    Service::start::<fleet_postgresql::Service>(
        TestSecrets::new().unwrap(),
        own_env(admin_url, extra),
    )
    .await
    .unwrap()
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

pub use fleet_shared::testkit::harness::provision;

pub async fn deprovision(client: &mut Client, app_id: &str) -> Result<(), Status> {
    fleet_shared::testkit::harness::deprovision(client, app_id, "postgresql").await
}

pub async fn list(client: &mut Client) -> Vec<String> {
    fleet_shared::testkit::harness::list(client).await.unwrap()
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

pub const ENV_KEYS: [&str; 6] = [
    "CLOUDRON_POSTGRESQL_URL",
    "CLOUDRON_POSTGRESQL_HOST",
    "CLOUDRON_POSTGRESQL_PORT",
    "CLOUDRON_POSTGRESQL_USERNAME",
    "CLOUDRON_POSTGRESQL_PASSWORD",
    "CLOUDRON_POSTGRESQL_DATABASE",
];
