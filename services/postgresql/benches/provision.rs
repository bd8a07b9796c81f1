//! Provision through the service against the same SQL issued directly, on a private PostgreSQL.
//!
//!     cargo bench -p fleet-postgresql --bench provision [-- ROUNDS]
//!
//! Each round provisions a new app both ways (alternating, so drift hits both alike) and then
//! re-provisions the service's app (the idempotent path every app start takes). Prints the
//! mean and median of each and the ratio service / direct SQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use fleet_postgresql::config::Config;
use fleet_shared::{
    config::EnvReader,
    proto::addon::{ProvisionRequest, addon_client::AddonClient},
    server::GrpcServer,
    testkit::PostgresServer,
};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

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
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "b".repeat(64)).unwrap();
    std::fs::write(dir.path().join("token"), "bench-token-0123456789").unwrap();
    let path = |f: &str| dir.path().join(f).display().to_string();
    let config = Config::from_env(EnvReader::from_vars(
        "POSTGRESQL",
        [
            ("FLEET_MASTER_KEY_FILE".to_owned(), path("key")),
            ("FLEET_API_TOKEN_FILE".to_owned(), path("token")),
            ("FLEET_POSTGRESQL_ADMIN_URL".to_owned(), pg.admin_url()),
            ("FLEET_LOG".to_owned(), "warn".to_owned()),
        ],
    ))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = GrpcServer::from_listener(listener, &config.common);
    tokio::spawn(fleet_postgresql::serve(
        config,
        server,
        std::future::pending(),
    ));

    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token: MetadataValue<_> = "Bearer bench-token-0123456789".parse().unwrap();
    let mut client = AddonClient::with_interceptor(channel, move |mut r: Request<()>| {
        r.metadata_mut().insert("authorization", token.clone());
        Ok(r)
    });
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

    let (mut via_service, mut via_sql, mut again) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let app = format!("bench-{round}");
        let started = Instant::now();
        client.provision(provision(app.clone())).await.unwrap();
        via_service.push(started.elapsed());

        let started = Instant::now();
        direct_sql(&mut direct, &format!("direct_{round}")).await;
        via_sql.push(started.elapsed());

        let started = Instant::now();
        client.provision(provision(app)).await.unwrap();
        again.push(started.elapsed());
    }

    println!("postgresql Provision, {rounds} rounds (new app each round):");
    report("service Provision (new app)", &mut via_service);
    report("direct SQL (same statements)", &mut via_sql);
    report("service Provision (existing app)", &mut again);
    println!(
        "ratio service/direct (mean): {:.2}",
        mean(&via_service).as_secs_f64() / mean(&via_sql).as_secs_f64()
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

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len().max(1) as u32
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let median = samples.get(samples.len() / 2).copied().unwrap_or_default();
    println!(
        "  {what:<34} mean {:>8.2} ms   median {:>8.2} ms",
        mean(samples).as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3
    );
}
