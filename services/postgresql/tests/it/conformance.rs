//! The addon contract's conformance suite (`fleet_shared::testkit::conformance`) for the
//! postgresql service: its backend is the shared PostgreSQL behind a proxy of the test's own,
//! the app's client is sqlx with the returned URL.

use std::net::SocketAddr;

use fleet_shared::{
    AppId,
    proto::addon::{MysqlOptions, provision_request::Options},
    testkit::{
        CuttableProxy,
        conformance::{Env, Fixture},
    },
};
use sqlx::{Connection, PgConnection};

use crate::support::*;

/// The shared PostgreSQL, reached by the service through a proxy it can be cut off by.
pub struct PostgresqlFixture {
    proxy: CuttableProxy,
}

/// A superuser connection to `postgres`, not through the proxy.
async fn superuser() -> PgConnection {
    admin("postgres").await
}

impl Fixture for PostgresqlFixture {
    type Service = fleet_postgresql::Service;
    const ADDON: &'static str = "postgresql";

    async fn start() -> Self {
        let backend = SocketAddr::from(([127, 0, 0, 1], postgres().port()));
        Self {
            proxy: CuttableProxy::start(backend).await.unwrap(),
        }
    }

    fn service_env(&self) -> Vec<(String, String)> {
        let url = format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            postgres().admin_password(),
            self.proxy.port()
        );
        [
            ("FLEET_POSTGRESQL_ADMIN_URL", url),
            ("FLEET_POSTGRESQL_CONNECT_TIMEOUT_SECS", "2".to_owned()),
            ("FLEET_POSTGRESQL_POOL_SIZE", "4".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec()
    }

    fn options(&self) -> Option<Options> {
        None
    }

    fn foreign_options(&self) -> Options {
        Options::Mysql(MysqlOptions::default())
    }

    async fn write(&self, env: &Env, value: &str) -> Result<(), String> {
        let mut conn = connect(&env["CLOUDRON_POSTGRESQL_URL"])
            .await
            .map_err(|e| e.to_string())?;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS conformance (v text); DELETE FROM conformance")
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query("INSERT INTO conformance VALUES ($1)")
            .bind(value)
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        conn.close().await.map_err(|e| e.to_string())
    }

    async fn read(&self, env: &Env) -> Result<Option<String>, String> {
        let mut conn = connect(&env["CLOUDRON_POSTGRESQL_URL"])
            .await
            .map_err(|e| e.to_string())?;
        let value = sqlx::query_scalar("SELECT v FROM conformance")
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        conn.close().await.map_err(|e| e.to_string())?;
        Ok(value)
    }

    async fn squat(&self, app_id: &str) {
        let name = AppId::parse(app_id).unwrap().resource_name();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE \"{name}\" LOGIN PASSWORD 'squatter-password'"
        )))
        .execute(&mut superuser().await)
        .await
        .unwrap();
    }

    async fn squat_intact(&self, app_id: &str) -> bool {
        let name = AppId::parse(app_id).unwrap().resource_name();
        let row: Option<(Option<String>, bool)> = sqlx::query_as(
            "SELECT shobj_description(oid, 'pg_authid'), rolcanlogin FROM pg_roles \
             WHERE rolname = $1",
        )
        .bind(name.as_str())
        .fetch_optional(&mut superuser().await)
        .await
        .unwrap();
        let squatter_gets_in =
            connect(&postgres().url(name.as_str(), "squatter-password", "postgres"))
                .await
                .is_ok();
        row == Some((None, true)) && squatter_gets_in
    }

    async fn cut_backend(&self) {
        self.proxy.cut();
    }

    async fn restore_backend(&self) {
        self.proxy.restore();
    }

    fn secrets(&self) -> Vec<String> {
        vec![postgres().admin_password().to_owned()]
    }
}

fleet_shared::addon_conformance!(PostgresqlFixture);
