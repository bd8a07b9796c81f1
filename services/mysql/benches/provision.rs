//! Provision through the service against the same SQL issued directly, on a private MariaDB.
//!
//!     cargo bench -p fleet-mysql --bench provision [-- ROUNDS]
//!
//! Each round provisions a new app both ways (alternating, so drift hits both alike), then
//! re-provisions the service's app (the idempotent path every app start takes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fleet_shared::{
    proto::addon::{MysqlOptions, ProvisionRequest, provision_request::Options},
    testkit::{
        MariaDbServer,
        bench::Samples,
        harness::{InProcess, TestSecrets, addon_client},
    },
};
use sqlx::{AssertSqlSafe, Connection, MySqlConnection};

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = MariaDbServer::start().expect("MariaDB");
    runtime.block_on(bench(&server, rounds));
}

async fn bench(server: &MariaDbServer, rounds: usize) {
    let secrets = TestSecrets::new().unwrap();
    let mut env = secrets.common_env();
    env.push(("FLEET_MYSQL_ADMIN_URL".to_owned(), server.admin_url()));
    env.push(("FLEET_LOG".to_owned(), "warn".to_owned()));
    let service = InProcess::serve::<fleet_mysql::Service>(env).await.unwrap();
    let mut client = addon_client(service.addr.port(), Some(&secrets.token))
        .await
        .unwrap();
    let mut direct = MySqlConnection::connect(&server.admin_url()).await.unwrap();
    let provision = |app: String| ProvisionRequest {
        app_id: app,
        app_domain: String::new(),
        credential_generation: 0,
        options: Some(Options::Mysql(MysqlOptions {
            multiple_databases: false,
        })),
    };
    client
        .provision(provision("warmup".to_owned()))
        .await
        .unwrap();
    direct_sql(&mut direct, "warmup_direct").await;

    let (mut via_service, mut via_sql, mut again) =
        (Samples::default(), Samples::default(), Samples::default());
    for round in 0..rounds {
        let app = format!("bench-{round}");
        via_service
            .time(client.provision(provision(app.clone())))
            .await
            .unwrap();
        via_sql
            .time(direct_sql(&mut direct, &format!("direct_{round}")))
            .await;
        again.time(client.provision(provision(app))).await.unwrap();
    }
    println!("mysql Provision (single database), {rounds} rounds:");
    println!("{}", via_service.report("service Provision (new app)"));
    println!("{}", via_sql.report("direct SQL (same statements)"));
    println!("{}", again.report("service Provision (existing app)"));
    println!(
        "ratio service/direct (mean): {:.2}",
        via_service.ratio_to(&via_sql)
    );
    service.stop().await;
}

/// What an administrator would type to do the same by hand.
async fn direct_sql(conn: &mut MySqlConnection, name: &str) {
    let escaped = name.replace('_', "\\_");
    for sql in [
        format!(
            "CREATE USER '{name}'@'%' IDENTIFIED BY '{}' WITH MAX_USER_CONNECTIONS 50",
            "c".repeat(64)
        ),
        format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
        format!("GRANT ALL PRIVILEGES ON `{escaped}`.* TO '{name}'@'%'"),
    ] {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}
