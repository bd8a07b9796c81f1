//! Durable state: restarts keep apps (SQLite and PostgreSQL stores), and a coordinator killed
//! mid-install leaves no orphans once it is back.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use fleet_shared::{proto::coordinator::StartAppRequest, testkit::free_port};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tonic::Code;

use crate::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_fleet-coordinator");

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_every_app_with_sqlite() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let app = app_id("restart");
    let installed = install(
        &mut client,
        &app,
        json!({"mysql": {}, "scheduler": {"t": {"schedule": "0 * * * *", "command": "x"}}}),
    )
    .await
    .unwrap();
    let state = coordinator.stop().await;

    let url = format!("sqlite://{}", state.path().join("state.db").display());
    let coordinator = Coordinator::start_with(&services, &url, state).await;
    let mut client = coordinator.client().await;
    assert_eq!(
        get(&mut client, &app).await.unwrap().scheduled_tasks.len(),
        1
    );
    let started = client
        .start_app(StartAppRequest {
            app_id: app.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.env, installed.env);
    uninstall(&mut client, &app).await.unwrap();
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_every_app_with_postgresql() {
    let (_, url) = state_database("restart").await;

    let services = Services::start().await;
    let coordinator = Coordinator::start_with(&services, &url, tempfile::tempdir().unwrap()).await;
    let mut client = coordinator.client().await;
    let app = app_id("pgstate");
    let installed = install(&mut client, &app, json!({"postgresql": {}}))
        .await
        .unwrap();
    coordinator.stop().await;

    let coordinator = Coordinator::start_with(&services, &url, tempfile::tempdir().unwrap()).await;
    let mut client = coordinator.client().await;
    let started = client
        .start_app(StartAppRequest {
            app_id: app.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.env, installed.env);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM apps WHERE app_id = $1")
        .bind(&app)
        .fetch_one(&mut PgConnection::connect(&url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(rows, 1, "the record lives in PostgreSQL");
    uninstall(&mut client, &app).await.unwrap();
    coordinator.stop().await;
}

/// The coordinator binary on a free port.
fn spawn(services: &Services, state_url: &str, port: u16) -> Child {
    Command::new(BINARY)
        .env_clear()
        .envs(
            services.coordinator_env(state_url, &[("FLEET_LISTEN", &format!("127.0.0.1:{port}"))]),
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

async fn listening(port: u16) -> bool {
    eventually(Duration::from_secs(30), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_install_then_restart_leaves_no_orphans() {
    let services = Services::start().await;
    let state = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", state.path().join("state.db").display());
    let port = free_port().unwrap();
    let mut coordinator = spawn(&services, &url, port);
    assert!(listening(port).await);

    // Hold the app's PostgreSQL lock so the install stops half-way: mysql done, postgresql
    // waiting.
    let app = app_id("kill9");
    let mut blocker = stall_postgresql(&app).await;
    let mut caller = client(port, &services.secrets.token).await;
    let call = tokio::spawn({
        let app = app.clone();
        async move { install(&mut caller, &app, json!({"mysql": {}, "postgresql": {}})).await }
    });
    let half_way = eventually(Duration::from_secs(20), || {
        let app = app.clone();
        async move {
            let (_, _, mysql_user, _) = backend_traces(&app).await;
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
            .fetch_one(
                &mut PgConnection::connect(&postgres().admin_url())
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
            mysql_user && waiting > 0
        }
    })
    .await;
    assert!(half_way, "the install never got half-way");

    coordinator.kill().unwrap(); // SIGKILL: no cleanup of any kind
    coordinator.wait().unwrap();
    assert!(
        call.await.unwrap().is_err(),
        "the caller sees the coordinator die"
    );
    // The postgresql service finishes what it started, leaving a role and database behind...
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut blocker)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            backend_traces(&app).await.0
        })
        .await
    );

    // ...which the restarted coordinator finds in its journal and removes.
    let port = free_port().unwrap();
    let mut restarted = spawn(&services, &url, port);
    assert!(listening(port).await);
    let clean = eventually(Duration::from_secs(30), || async {
        backend_traces(&app).await == NOTHING
    })
    .await;
    assert!(clean, "orphans left: {:?}", backend_traces(&app).await);
    let mut client = client(port, &services.secrets.token).await;
    expect_status(
        get(&mut client, &app).await,
        Code::NotFound,
        "not installed",
    );
    // And the app can be installed for real afterwards.
    install(&mut client, &app, json!({"mysql": {}, "postgresql": {}}))
        .await
        .unwrap();
    uninstall(&mut client, &app).await.unwrap();
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}
