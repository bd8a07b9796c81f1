//! An addon service run as several replicas behind one URL list (what `--scale` gives): calls
//! spread over every replica, a replica that dies mid-load costs no install and leaves no
//! orphan, and every replica down fails cleanly, naming the service.

use std::{collections::BTreeSet, time::Duration};

use fleet_shared::{
    proto::coordinator::{GetFleetStatusRequest, ListAppsRequest, ServiceStatus},
    testkit::{
        CuttableProxy, free_port,
        harness::{InProcess, TestSecrets, addon_client, captured_logs, list},
    },
};
use serde_json::json;
use tonic::Code;

use crate::support::*;

/// One replica of the postgresql service, with its metrics on a port of their own.
struct Replica {
    server: InProcess,
    metrics: u16,
}

impl Replica {
    async fn start(secrets: &TestSecrets) -> Self {
        let metrics = free_port().unwrap();
        let mut env = secrets.common_env();
        for (key, value) in [
            ("FLEET_POSTGRESQL_ADMIN_URL", postgres().admin_url()),
            ("FLEET_METRICS_LISTEN", format!("127.0.0.1:{metrics}")),
            ("FLEET_SHUTDOWN_GRACE_SECS", "2".to_owned()),
        ] {
            env.push((key.to_owned(), value));
        }
        let server = InProcess::serve::<fleet_postgresql::Service>(env)
            .await
            .unwrap();
        Self { server, metrics }
    }

    fn port(&self) -> u16 {
        self.server.addr.port()
    }

    /// Provision calls this replica answered OK, from its own /metrics.
    async fn provisions(&self) -> u64 {
        ok_calls(self.metrics, "Provision").await
    }
}

fn list_url(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn postgresql_status(client: &mut Client) -> ServiceStatus {
    client
        .get_fleet_status(GetFleetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .services
        .into_iter()
        .find(|s| s.service == "postgresql")
        .unwrap()
}

/// The coordinator's apps whose id starts with `prefix`.
async fn apps_with(client: &mut Client, prefix: &str) -> BTreeSet<String> {
    let listed = client
        .list_apps(ListAppsRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.next_page_token.is_empty());
    listed
        .apps
        .into_iter()
        .map(|app| app.app_id)
        .filter(|id| id.starts_with(prefix))
        .collect()
}

/// The apps with `prefix` the postgresql service (through a replica on `port`) holds.
async fn held_with(port: u16, token: &str, prefix: &str) -> BTreeSet<String> {
    let mut client = addon_client(port, Some(token)).await.unwrap();
    list(&mut client)
        .await
        .unwrap()
        .into_iter()
        .filter(|id| id.starts_with(prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_spread_over_every_replica_of_a_service() {
    let secrets = TestSecrets::new().unwrap();
    let (one, two) = (
        Replica::start(&secrets).await,
        Replica::start(&secrets).await,
    );
    let configured = list_url(&[one.port(), two.port()]);
    let coordinator = Coordinator::start_for(
        &secrets,
        &[("FLEET_COORDINATOR_POSTGRESQL_URL", &configured)],
    )
    .await;
    let mut client = coordinator.client().await;

    let apps: Vec<String> = (0..10).map(|_| app_id("spread")).collect();
    for app in &apps {
        install(&mut client, app, json!({"postgresql": {}}))
            .await
            .unwrap();
    }
    let (first, second) = (one.provisions().await, two.provisions().await);
    assert_eq!(first + second, 10, "one Provision per install");
    assert!(
        first >= 3 && second >= 3,
        "round-robin: {first} and {second} Provision calls"
    );

    // Both serve, and the status says so with the URL list as configured.
    let both = eventually(Duration::from_secs(20), || {
        let mut client = client.clone();
        async move {
            let status = postgresql_status(&mut client).await;
            status.serving && status.detail == "2 of 2 replicas serving"
        }
    })
    .await;
    assert!(both, "{:?}", postgresql_status(&mut client).await);
    assert_eq!(postgresql_status(&mut client).await.endpoint, configured);

    // One replica stopped: the service still serves, through the other.
    one.server.stop().await;
    let one_left = eventually(Duration::from_secs(20), || {
        let mut client = client.clone();
        async move {
            let status = postgresql_status(&mut client).await;
            status.serving && status.detail == "1 of 2 replicas serving"
        }
    })
    .await;
    assert!(one_left, "{:?}", postgresql_status(&mut client).await);
    for app in &apps {
        uninstall(&mut client, app).await.unwrap();
    }
    assert_eq!(
        held_with(two.port(), &secrets.token, "spread-").await,
        BTreeSet::new()
    );
    coordinator.stop().await;
    two.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_dying_mid_load_costs_no_install_and_leaves_no_orphan() {
    let secrets = TestSecrets::new().unwrap();
    let (dying, surviving) = (
        Replica::start(&secrets).await,
        Replica::start(&secrets).await,
    );
    // The dying replica is reached through a proxy that can drop its connections mid-call,
    // the way a killed container's connections go.
    let proxy = CuttableProxy::start(dying.server.addr).await.unwrap();
    let configured = list_url(&[proxy.port(), surviving.port()]);
    let coordinator = Coordinator::start_for(
        &secrets,
        &[("FLEET_COORDINATOR_POSTGRESQL_URL", &configured)],
    )
    .await;
    let client = coordinator.client().await;

    let prefix = format!("midload-{}-", std::process::id());
    let apps: Vec<String> = (0..30).map(|_| app_id("midload")).collect();
    let calls: Vec<_> = apps
        .iter()
        .map(|app| {
            let (mut client, app) = (client.clone(), app.clone());
            tokio::spawn(async move {
                install(&mut client, &app, json!({"postgresql": {}}))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    // Kill it once it has done part of the work.
    assert!(
        eventually(Duration::from_secs(60), || async {
            dying.provisions().await >= 3
        })
        .await,
        "the first replica never got calls"
    );
    proxy.cut();
    let served_before_death = dying.provisions().await;
    dying.server.stop().await;

    let mut failed = Vec::new();
    for (app, call) in apps.iter().zip(calls) {
        if let Err(status) = call.await.unwrap() {
            failed.push((app.clone(), status));
        }
    }
    assert!(failed.is_empty(), "failed installs: {failed:?}");
    assert!(
        served_before_death < 30,
        "the replica died before the load was over"
    );
    let survivor_served = surviving.provisions().await;
    assert!(survivor_served > 0);

    // No orphans: the service holds exactly the apps the coordinator recorded.
    let mut client = client.clone();
    let recorded = apps_with(&mut client, &prefix).await;
    assert_eq!(recorded, apps.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(
        held_with(surviving.port(), &secrets.token, &prefix).await,
        recorded
    );
    // Retries were logged with the service and the replica's address, never a secret.
    let logs = captured_logs();
    let retry = logs
        .lines()
        .find(|line| {
            line.contains("trying the next one") && line.contains(&proxy.port().to_string())
        })
        .unwrap_or_else(|| panic!("no retry logged"));
    assert!(retry.contains("\"service\":\"postgresql\""), "{retry}");
    assert!(!logs.contains(&secrets.token));
    let retries = logs
        .lines()
        .filter(|line| {
            line.contains("trying the next one") && line.contains(&proxy.port().to_string())
        })
        .count();
    eprintln!(
        "30 installs: {served_before_death} served by the replica before it died, \
         {survivor_served} by the survivor, {retries} retried"
    );

    for app in &apps {
        uninstall(&mut client, app).await.unwrap();
    }
    assert_eq!(
        held_with(surviving.port(), &secrets.token, &prefix).await,
        BTreeSet::new()
    );
    coordinator.stop().await;
    surviving.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_replica_down_is_unavailable_naming_the_service_and_leaves_nothing() {
    let services = Services::start().await;
    let secrets = &services.secrets;
    let (one, two) = (Replica::start(secrets).await, Replica::start(secrets).await);
    let configured = list_url(&[one.port(), two.port()]);
    one.server.stop().await;
    two.server.stop().await;
    let mysql = format!(
        "http://127.0.0.1:{}",
        services.mysql.as_ref().unwrap().addr.port()
    );
    let coordinator = Coordinator::start_for(
        secrets,
        &[
            ("FLEET_COORDINATOR_POSTGRESQL_URL", &configured),
            ("FLEET_COORDINATOR_MYSQL_URL", &mysql),
        ],
    )
    .await;
    let mut client = coordinator.client().await;

    let app = app_id("alldown");
    let status = expect_status(
        install(&mut client, &app, json!({"mysql": {}, "postgresql": {}})).await,
        Code::Unavailable,
        "addon postgresql: the postgresql service did not answer (2 replica(s)",
    );
    assert!(status.message().contains(&configured), "{status:?}");
    // The mysql part was undone: nothing is half-made.
    assert_eq!(backend_traces(&app).await, NOTHING);
    expect_status(
        get(&mut client, &app).await,
        Code::NotFound,
        "not installed",
    );

    let down = eventually(Duration::from_secs(20), || {
        let mut client = client.clone();
        async move {
            let status = postgresql_status(&mut client).await;
            !status.serving && status.detail.starts_with("0 of 2 replicas serving: ")
        }
    })
    .await;
    assert!(down, "{:?}", postgresql_status(&mut client).await);
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_url_list_keeps_the_coordinator_from_starting() {
    let secrets = TestSecrets::new().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut env = secrets.common_env();
    for (key, value) in [
        (
            "FLEET_COORDINATOR_STATE_URL",
            format!("sqlite://{}", state.path().join("state.db").display()),
        ),
        (
            "FLEET_COORDINATOR_API_ORIGIN",
            "https://my.example.test".to_owned(),
        ),
        (
            "FLEET_COORDINATOR_POSTGRESQL_URL",
            "http://127.0.0.1:1,,http://127.0.0.1:2".to_owned(),
        ),
    ] {
        env.push((key.to_owned(), value));
    }
    let Err(error) = InProcess::serve::<fleet_coordinator::Service>(env).await else {
        panic!("a coordinator started with a malformed URL list");
    };
    let error = error.to_string();
    assert!(
        error.contains("FLEET_COORDINATOR_POSTGRESQL_URL: URL 2 of the list is empty"),
        "{error}"
    );
}
