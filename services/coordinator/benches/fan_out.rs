//! The fan-out ratio: InstallApp with mysql and postgresql against InstallApp with only the
//! slower of the two (postgresql). Concurrent fan-out should make the pair cost about as much
//! as its slowest member; sequential calls would cost the sum.
//!
//!     cargo bench -p fleet-coordinator --bench fan_out [-- ROUNDS]
//!
//! Real services (in-process, over gRPC) on a private PostgreSQL and MariaDB; rounds alternate
//! the two manifests so drift hits both alike. Each app is uninstalled after it is measured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fleet_coordinator::manifest::json;
use fleet_shared::{
    auth::SendBearer,
    proto::coordinator::{
        InstallAppRequest, UninstallAppRequest, coordinator_client::CoordinatorClient,
    },
    testkit::{
        MariaDbServer, PostgresServer,
        bench::Samples,
        harness::{InProcess, TestSecrets},
    },
};
use tonic::transport::Channel;

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pg = PostgresServer::start().expect("PostgreSQL");
    let maria = MariaDbServer::start().expect("MariaDB");
    runtime.block_on(bench(&pg, &maria, rounds));
}

async fn bench(pg: &PostgresServer, maria: &MariaDbServer, rounds: usize) {
    let secrets = TestSecrets::new().unwrap();
    let env = |extra: &[(&str, String)]| {
        let mut env = secrets.common_env();
        env.push(("FLEET_LOG".to_owned(), "warn".to_owned()));
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env
    };
    let pg_service = InProcess::serve::<fleet_postgresql::Service>(env(&[(
        "FLEET_POSTGRESQL_ADMIN_URL",
        pg.admin_url(),
    )]))
    .await
    .unwrap();
    let my_service = InProcess::serve::<fleet_mysql::Service>(env(&[(
        "FLEET_MYSQL_ADMIN_URL",
        maria.admin_url(),
    )]))
    .await
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let coordinator = InProcess::serve::<fleet_coordinator::Service>(env(&[
        (
            "FLEET_COORDINATOR_POSTGRESQL_URL",
            format!("http://{}", pg_service.addr),
        ),
        (
            "FLEET_COORDINATOR_MYSQL_URL",
            format!("http://{}", my_service.addr),
        ),
        (
            "FLEET_COORDINATOR_API_ORIGIN",
            "https://my.example.test".to_owned(),
        ),
        (
            "FLEET_COORDINATOR_STATE_URL",
            format!("sqlite://{}", state.path().join("state.db").display()),
        ),
    ]))
    .await
    .unwrap();
    let channel = Channel::from_shared(format!("http://{}", coordinator.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = CoordinatorClient::with_interceptor(
        channel,
        SendBearer::new(Some(&secrets.token)).unwrap(),
    );

    let manifests = [
        (
            "mysql + postgresql",
            serde_json::json!({"mysql": {}, "postgresql": {}}),
        ),
        ("postgresql alone", serde_json::json!({"postgresql": {}})),
        ("mysql alone", serde_json::json!({"mysql": {}})),
    ];
    let mut samples: Vec<Samples> = manifests.iter().map(|_| Samples::default()).collect();
    for round in 0..=rounds {
        for (index, (_, manifest)) in manifests.iter().enumerate() {
            let app_id = format!("bench-{index}-{round}");
            let request = InstallAppRequest {
                app_id: app_id.clone(),
                app_domain: "bench.example.test".to_owned(),
                addons: json::to_struct(manifest),
            };
            if round == 0 {
                // Warm-up round: connections, caches.
                client.install_app(request).await.unwrap();
            } else {
                samples[index]
                    .time(client.install_app(request))
                    .await
                    .unwrap();
            }
            client
                .uninstall_app(UninstallAppRequest { app_id })
                .await
                .unwrap();
        }
    }
    println!("InstallApp through the coordinator, {rounds} rounds:");
    for ((what, _), samples) in manifests.iter().zip(&samples) {
        println!("{}", samples.report(what));
    }
    println!(
        "fan-out ratio (both / slower alone, mean): {:.2}",
        samples[0].ratio_to(&samples[1])
    );
}
