//! The harness: a real MariaDB, the service served in-process on port 0, and clients.

use std::collections::HashMap;

pub use fleet_shared::testkit::harness::{
    AddonTestClient as Client, eventually, expect_status, unique_app_id as app_id,
};
use fleet_shared::{
    proto::addon::{MysqlOptions, ProvisionRequest, provision_request::Options},
    testkit::{MariaDbServer, harness::TestSecrets},
};
use sqlx::{Connection, MySqlConnection};
use tonic::Status;

/// The MariaDB shared by the tests of this binary.
pub fn mariadb() -> &'static MariaDbServer {
    MariaDbServer::shared().expect("MariaDB for the tests")
}

/// The service's own settings for `admin_url`, plus `extra`.
pub fn own_env(admin_url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("FLEET_MYSQL_ADMIN_URL", admin_url),
        ("FLEET_MYSQL_CONNECT_TIMEOUT_SECS", "5"),
        // A small pool, so the 50-call test proves a busy pool is not reported UNAVAILABLE.
        ("FLEET_MYSQL_POOL_SIZE", "4"),
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

/// Serves against the shared MariaDB.
pub async fn start_service() -> Service {
    start_service_with(&mariadb().admin_url(), &[]).await
}

/// Serves against `admin_url` with extra settings.
pub async fn start_service_with(admin_url: &str, extra: &[(&str, &str)]) -> Service {
    Service::start::<fleet_mysql::Service>(TestSecrets::new().unwrap(), own_env(admin_url, extra))
        .await
        .unwrap()
}

pub fn request(app_id: &str, multiple_databases: bool) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app_id.to_owned(),
        app_domain: "app.example.test".to_owned(),
        credential_generation: 0,
        options: Some(Options::Mysql(MysqlOptions { multiple_databases })),
    }
}

pub use fleet_shared::testkit::harness::provision;

pub async fn deprovision(client: &mut Client, app_id: &str) -> Result<(), Status> {
    fleet_shared::testkit::harness::deprovision(client, app_id, "mysql").await
}

pub async fn list(client: &mut Client) -> Vec<String> {
    fleet_shared::testkit::harness::list(client).await.unwrap()
}

/// Connects the way an app does.
pub async fn connect(url: &str) -> Result<MySqlConnection, sqlx::Error> {
    MySqlConnection::connect(url).await
}

/// Connects with an app's credentials to `database` ("" for none).
pub async fn connect_as(
    env: &HashMap<String, String>,
    database: &str,
) -> Result<MySqlConnection, sqlx::Error> {
    connect(&mariadb().url(
        &env["CLOUDRON_MYSQL_USERNAME"],
        &env["CLOUDRON_MYSQL_PASSWORD"],
        database,
    ))
    .await
}

/// An admin connection.
pub async fn admin() -> MySqlConnection {
    connect(&mariadb().admin_url()).await.unwrap()
}

/// Runs statements one by one.
pub async fn run(conn: &mut MySqlConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Whether a user and a database of this name exist.
pub async fn user_and_database_exist(name: &str) -> (bool, bool) {
    let mut conn = admin().await;
    let user: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ?")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let database: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (user > 0, database > 0)
}

/// Databases whose names start with `prefix`.
pub async fn databases_starting_with(prefix: &str) -> Vec<String> {
    let all: Vec<String> =
        sqlx::query_scalar("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            .fetch_all(&mut admin().await)
            .await
            .unwrap();
    all.into_iter().filter(|d| d.starts_with(prefix)).collect()
}

pub const SINGLE_KEYS: [&str; 6] = [
    "CLOUDRON_MYSQL_DATABASE",
    "CLOUDRON_MYSQL_HOST",
    "CLOUDRON_MYSQL_PASSWORD",
    "CLOUDRON_MYSQL_PORT",
    "CLOUDRON_MYSQL_URL",
    "CLOUDRON_MYSQL_USERNAME",
];

pub const MULTIPLE_KEYS: [&str; 5] = [
    "CLOUDRON_MYSQL_DATABASE_PREFIX",
    "CLOUDRON_MYSQL_HOST",
    "CLOUDRON_MYSQL_PASSWORD",
    "CLOUDRON_MYSQL_PORT",
    "CLOUDRON_MYSQL_USERNAME",
];

pub fn sorted_keys(env: &HashMap<String, String>) -> Vec<&str> {
    let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}
