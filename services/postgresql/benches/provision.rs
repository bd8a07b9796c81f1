//! Provision through the service against the same SQL issued directly, on a private PostgreSQL.
//!
//!     cargo bench -p fleet-postgresql --bench provision [-- ROUNDS]
//!
//! Each round provisions a new app both ways (alternating, so drift hits both alike) and then
//! re-provisions the service's app (the idempotent path every app start takes). Prints the
//! mean and median of each and the ratio service / direct SQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fleet_shared::{
    proto::addon::ProvisionRequest,
    testkit::{
        PostgresServer,
        bench::Samples,
        harness::{InProcess, TestSecrets, addon_client},
    },
};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pg = PostgresServer::start().expect("PostgreSQL");
    runtime.block_on(bench(&pg, rounds));
}

async fn bench(pg: &PostgresServer, rounds: usize) {
    let secrets = TestSecrets::new().unwrap();
    let mut env = secrets.common_env();
    env.push(("FLEET_POSTGRESQL_ADMIN_URL".to_owned(), pg.admin_url()));
    env.push(("FLEET_LOG".to_owned(), "warn".to_owned()));
    let service = InProcess::serve::<fleet_postgresql::Service>(env)
        .await
        .unwrap();
    let mut client = addon_client(service.addr.port(), Some(&secrets.token))
        .await
        .unwrap();
    let mut direct = PgConnection::connect(&pg.admin_url()).await.unwrap();

    let provision = |app: String| ProvisionRequest {
        app_id: app,
        app_domain: String::new(),
        credential_generation: 0,
        options: None,
    };
    // Warm up both paths (connections, catalog caches).
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

    println!("postgresql Provision, {rounds} rounds (new app each round):");
    println!("{}", via_service.report("service Provision (new app)"));
    println!("{}", via_sql.report("direct SQL (same statements)"));
    println!("{}", again.report("service Provision (existing app)"));
    println!(
        "ratio service/direct (mean): {:.2}",
        via_service.ratio_to(&via_sql)
    );
}

/// What an administrator would type to do the same by hand.
async fn direct_sql(conn: &mut PgConnection, name: &str) {
    for sql in [
        format!(
            "CREATE ROLE {name} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
             NOBYPASSRLS CONNECTION LIMIT 50 PASSWORD '{}'",
            "c".repeat(64)
        ),
        format!("COMMENT ON ROLE {name} IS 'fleet-app:{name}'"),
        format!("CREATE DATABASE {name} OWNER {name} TEMPLATE template0 ENCODING 'UTF8'"),
        format!("COMMENT ON DATABASE {name} IS 'fleet-app:{name}'"),
        format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"),
    ] {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}
