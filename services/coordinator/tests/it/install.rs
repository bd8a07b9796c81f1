//! InstallApp, StartApp, GetApp, ListApps, UninstallApp with real services and backends.

use futures::future::join_all;
use serde_json::json;
use sqlx::{Connection, MySqlConnection, PgConnection};
use tonic::Code;

use fleet_shared::proto::coordinator::{GetFleetStatusRequest, ListAppsRequest, StartAppRequest};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn one_manifest_in_one_bundle_out_with_working_urls() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let app = app_id("both");
    let reply = install(
        &mut client,
        &app,
        json!({
            "mysql": {}, "postgresql": {"extensions": ["hstore"]},
            "localstorage": {"ftp": {"uid": 33, "uname": "www-data"}},
            "scheduler": {"feeds": {"schedule": "*/5 * * * *", "command": "/app/code/feeds.sh"}},
            "tls": {}
        }),
    )
    .await
    .unwrap();
    let env = env_of(&reply);
    for key in [
        "CLOUDRON_MYSQL_URL",
        "CLOUDRON_MYSQL_DATABASE",
        "CLOUDRON_POSTGRESQL_URL",
        "CLOUDRON_POSTGRESQL_DATABASE",
    ] {
        assert!(env.contains_key(key), "{key} missing from {:?}", env.keys());
    }
    assert_eq!(env["CLOUDRON"], "1");
    assert_eq!(env["CLOUDRON_APP_DOMAIN"], format!("{app}.example.test"));
    assert_eq!(
        env["CLOUDRON_APP_ORIGIN"],
        format!("https://{app}.example.test")
    );
    assert_eq!(env["CLOUDRON_API_ORIGIN"], "https://my.example.test");
    assert_eq!(env["CLOUDRON_WEBADMIN_ORIGIN"], "https://my.example.test");
    assert_eq!(env["CLOUDRON_PROXY_IP"], "172.18.0.1");
    MySqlConnection::connect(&env["CLOUDRON_MYSQL_URL"])
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    PgConnection::connect(&env["CLOUDRON_POSTGRESQL_URL"])
        .await
        .unwrap()
        .close()
        .await
        .unwrap();

    // What the orchestrator acts on comes back as structured data.
    let recorded = get(&mut client, &app).await.unwrap();
    assert_eq!(recorded.provisioned_addons, ["mysql", "postgresql"]);
    assert_eq!(recorded.scheduled_tasks.len(), 1);
    assert_eq!(recorded.scheduled_tasks[0].schedule, "*/5 * * * *");
    let ftp = recorded.local_storage.and_then(|l| l.ftp).unwrap();
    assert_eq!((ftp.uid, ftp.uname.as_str()), (33, "www-data"));
    assert_eq!(recorded.tls.unwrap().cert_path, "/etc/certs/tls_cert.pem");
    assert!(recorded.proxy_auth.is_none());
    let listed = client
        .list_apps(ListAppsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .apps;
    assert!(
        listed
            .iter()
            .any(|a| a.app_id == app && a.problem.is_empty())
    );

    // StartApp re-runs setup and hands out the same bundle.
    let started = client
        .start_app(StartAppRequest {
            app_id: app.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&started.env, env);
    expect_status(
        install(&mut client, &app, json!({})).await,
        Code::AlreadyExists,
        "already installed",
    );

    uninstall(&mut client, &app).await.unwrap();
    assert_eq!(backend_traces(&app).await, NOTHING);
    expect_status(
        get(&mut client, &app).await,
        Code::NotFound,
        "not installed",
    );
    uninstall(&mut client, &app).await.unwrap();
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provision_failure_undoes_every_addon() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let app = app_id("vector");
    let status = expect_status(
        install(
            &mut client,
            &app,
            json!({"mysql": {}, "postgresql": {"extensions": ["vector"]}}),
        )
        .await,
        Code::FailedPrecondition,
        "addon postgresql:",
    );
    assert!(status.message().contains("vector"), "{status:?}");
    assert_eq!(
        backend_traces(&app).await,
        NOTHING,
        "the mysql user and database were rolled back"
    );
    expect_status(
        get(&mut client, &app).await,
        Code::NotFound,
        "not installed",
    );
    // The same app installs fine afterwards.
    install(&mut client, &app, json!({"mysql": {}}))
        .await
        .unwrap();
    uninstall(&mut client, &app).await.unwrap();
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_service_fails_the_install_and_leaves_nothing() {
    use tonic_health_pb::*;
    let mut services = Services::start().await;
    services.stop_mysql().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let app = app_id("nomysql");
    expect_status(
        install(&mut client, &app, json!({"postgresql": {}, "mysql": {}})).await,
        Code::Unavailable,
        "addon mysql:",
    );
    assert_eq!(backend_traces(&app).await, NOTHING);

    // The coordinator says which service is down, under which health name.
    let down = eventually(std::time::Duration::from_secs(15), || {
        let mut client = client.clone();
        async move {
            let status = client
                .get_fleet_status(GetFleetStatusRequest {})
                .await
                .unwrap()
                .into_inner();
            status.services.iter().any(|s| {
                s.service == "mysql"
                    && !s.serving
                    && s.health_name == "fleet.coordinator.v1.Coordinator/mysql"
            }) && status
                .services
                .iter()
                .any(|s| s.service == "postgresql" && s.serving)
        }
    })
    .await;
    assert!(down);
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", coordinator.port()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    // The coordinator itself still serves: one addon service down fails only what needs it.
    let mut health = HealthClient::new(channel);
    for name in ["", "fleet.coordinator.v1.Coordinator"] {
        let answer = health
            .check(HealthCheckRequest {
                service: name.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            answer.status,
            health_check_response::ServingStatus::Serving as i32,
            "health of {name:?}"
        );
    }
    // Each addon service under its own health name: mysql down, postgresql up.
    for (name, expected) in [
        (
            "fleet.coordinator.v1.Coordinator/mysql",
            health_check_response::ServingStatus::NotServing,
        ),
        (
            "fleet.coordinator.v1.Coordinator/postgresql",
            health_check_response::ServingStatus::Serving,
        ),
    ] {
        let reached = eventually(std::time::Duration::from_secs(15), || {
            let mut health = health.clone();
            async move {
                health
                    .check(HealthCheckRequest {
                        service: name.to_owned(),
                    })
                    .await
                    .is_ok_and(|answer| answer.into_inner().status == expected as i32)
            }
        })
        .await;
        assert!(reached, "health of {name:?} is not {expected:?}");
    }
    let without_mysql = app_id("nomysql");
    let reply = install(&mut client, &without_mysql, json!({"postgresql": {}}))
        .await
        .unwrap();
    assert!(reply.env.contains_key("CLOUDRON_POSTGRESQL_URL"));
    uninstall(&mut client, &without_mysql).await.unwrap();
    coordinator.stop().await;
}

mod tonic_health_pb {
    pub use tonic_health::pb::{
        HealthCheckRequest, health_check_response, health_client::HealthClient,
    };
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_install_with_the_same_manifest_returns_the_app() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let app = app_id("retry");
    let manifest = json!({"postgresql": {}, "tls": {}});
    let first = install(&mut client, &app, manifest.clone()).await.unwrap();
    // The caller's first call timed out; its retry finds the app installed and gets it.
    let again = install(&mut client, &app, manifest).await.unwrap();
    assert_eq!(again.env, first.env);
    assert_eq!(again.app, first.app);
    // A different manifest, or domain, is another app: refused as before.
    expect_status(
        install(&mut client, &app, json!({"postgresql": {}})).await,
        Code::AlreadyExists,
        "already installed",
    );
    let other_domain = client
        .install_app(fleet_shared::proto::coordinator::InstallAppRequest {
            app_id: app.clone(),
            app_domain: "elsewhere.example.test".to_owned(),
            addons: Some(addons(json!({"postgresql": {}, "tls": {}}))),
        })
        .await;
    expect_status(other_domain, Code::AlreadyExists, "already installed");
    uninstall(&mut client, &app).await.unwrap();
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_installs_of_distinct_apps_all_succeed() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let client = coordinator.client().await;
    let apps: Vec<String> = (0..200).map(|i| app_id(&format!("crowd{i}"))).collect();
    let installs = join_all(apps.iter().map(|app| {
        let mut client = client.clone();
        async move { install(&mut client, app, json!({"mysql": {}, "postgresql": {}})).await }
    }))
    .await;
    let failures: Vec<_> = installs.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    let mut client = client;
    let listed = client
        .list_apps(ListAppsRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .apps;
    assert!(
        apps.iter()
            .all(|app| listed.iter().any(|a| &a.app_id == app))
    );
    let removals = join_all(apps.iter().map(|app| {
        let mut client = client.clone();
        async move { uninstall(&mut client, app).await }
    }))
    .await;
    let failures: Vec<_> = removals.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_on_one_app_are_serialized() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let client = coordinator.client().await;
    // Four installs of different manifests: one wins, the others find it installed.
    let app = app_id("race");
    let manifests = [
        json!({"mysql": {}}),
        json!({"postgresql": {}}),
        json!({"mysql": {}, "tls": {}}),
        json!({"mysql": {}, "postgresql": {}}),
    ];
    let results = join_all(manifests.into_iter().map(|manifest| {
        let mut client = client.clone();
        let app = app.clone();
        async move { install(&mut client, &app, manifest).await }
    }))
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let exists = results
        .iter()
        .filter(|r| r.as_ref().is_err_and(|s| s.code() == Code::AlreadyExists))
        .count();
    assert_eq!((ok, exists), (1, 3), "{results:?}");
    let mut client = client;
    uninstall(&mut client, &app).await.unwrap();

    // Four installs of one manifest (retries racing): one installs, the others get that app.
    let results = join_all((0..4).map(|_| {
        let mut client = client.clone();
        let app = app.clone();
        async move { install(&mut client, &app, json!({"mysql": {}})).await }
    }))
    .await;
    let envs: Vec<_> = results.into_iter().map(|r| r.unwrap().env).collect();
    assert!(envs.iter().all(|env| *env == envs[0]));
    uninstall(&mut client, &app).await.unwrap();
    assert_eq!(backend_traces(&app).await, NOTHING);
    coordinator.stop().await;
}
