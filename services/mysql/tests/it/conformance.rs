//! The addon contract's conformance suite (`fleet_shared::testkit::conformance`) for the mysql
//! service: its backend is the shared MariaDB behind a proxy of the test's own, the app's
//! client is sqlx with the returned URL.

use std::net::SocketAddr;

use fleet_shared::{
    AppId,
    proto::addon::{MysqlOptions, PostgresqlOptions, provision_request::Options},
    testkit::{
        CuttableProxy, MariaDbServer,
        conformance::{Env, Fixture},
    },
};
use sqlx::Connection;

use crate::support::*;

/// The shared MariaDB, reached by the service through a proxy it can be cut off by.
pub struct MysqlFixture {
    proxy: CuttableProxy,
}

const SQUATTER_PASSWORD: &str = "squatter-password";

impl Fixture for MysqlFixture {
    type Service = fleet_mysql::Service;
    const ADDON: &'static str = "mysql";

    async fn start() -> Self {
        let backend = SocketAddr::from(([127, 0, 0, 1], mariadb().port()));
        Self {
            proxy: CuttableProxy::start(backend).await.unwrap(),
        }
    }

    fn service_env(&self) -> Vec<(String, String)> {
        let url = format!(
            "mysql://{}:{}@127.0.0.1:{}/",
            MariaDbServer::ADMIN,
            mariadb().admin_password(),
            self.proxy.port()
        );
        [
            ("FLEET_MYSQL_ADMIN_URL", url),
            ("FLEET_MYSQL_CONNECT_TIMEOUT_SECS", "2".to_owned()),
            ("FLEET_MYSQL_POOL_SIZE", "4".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec()
    }

    fn options(&self) -> Option<Options> {
        Some(Options::Mysql(MysqlOptions::default()))
    }

    fn foreign_options(&self) -> Options {
        Options::Postgresql(PostgresqlOptions::default())
    }

    async fn write(&self, env: &Env, value: &str) -> Result<(), String> {
        let mut conn = connect(&env["CLOUDRON_MYSQL_URL"])
            .await
            .map_err(|e| e.to_string())?;
        run(
            &mut conn,
            "CREATE TABLE IF NOT EXISTS conformance (v TEXT); DELETE FROM conformance",
        )
        .await
        .map_err(|e| e.to_string())?;
        sqlx::query("INSERT INTO conformance VALUES (?)")
            .bind(value)
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        conn.close().await.map_err(|e| e.to_string())
    }

    async fn read(&self, env: &Env) -> Result<Option<String>, String> {
        let mut conn = connect(&env["CLOUDRON_MYSQL_URL"])
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
        run(
            &mut admin().await,
            &format!("CREATE USER '{name}'@'%' IDENTIFIED BY '{SQUATTER_PASSWORD}'"),
        )
        .await
        .unwrap();
    }

    async fn squat_intact(&self, app_id: &str) -> bool {
        let name = AppId::parse(app_id).unwrap().resource_name();
        let recorded: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM fleet_meta.apps WHERE name = ?")
                .bind(name.as_str())
                .fetch_one(&mut admin().await)
                .await
                .unwrap_or(0); // no table: nothing recorded
        let squatter_gets_in = connect(&mariadb().url(name.as_str(), SQUATTER_PASSWORD, ""))
            .await
            .is_ok();
        recorded == 0 && squatter_gets_in
    }

    async fn cut_backend(&self) {
        self.proxy.cut();
    }

    async fn restore_backend(&self) {
        self.proxy.restore();
    }

    fn secrets(&self) -> Vec<String> {
        vec![mariadb().admin_password().to_owned()]
    }
}

fleet_shared::addon_conformance!(MysqlFixture);
