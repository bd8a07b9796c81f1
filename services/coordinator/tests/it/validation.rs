//! Validation before any side effect: every problem at once, with field paths.

use serde_json::json;
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn every_problem_is_listed_and_nothing_is_touched() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let app = app_id("invalid");
    let status = expect_status(
        install(
            &mut client,
            &app,
            json!({
                "mysql": {"multipleDatabases": "yes"},
                "postgresql": {},
                "redis": {"noPassword": true, "extra": 1},
                "oidc": {"tokenSignatureAlgorithm": "HS256", "loginRedirectUri": "callback"},
                "localstorage": {"ftp": {"uid": "33", "uname": "www-data"}},
                "scheduler": {"bad": {"schedule": "0 0 * 12 *", "command": "x"}, "secs": {"schedule": "0 * * * * *", "command": "y"}},
                "proxyAuth": {"path": "admin", "supportsBearerAuth": "no"},
                "sendmail": {"optional": 1},
                "nosuchaddon": {}
            }),
        )
        .await,
        Code::InvalidArgument,
        "invalid request",
    );
    for path in [
        "addons.mysql.multipleDatabases",
        "addons.redis.extra",
        "addons.oidc.tokenSignatureAlgorithm",
        "addons.oidc.loginRedirectUri",
        "addons.localstorage.ftp.uid",
        "addons.scheduler.bad.schedule: month field",
        "addons.scheduler.secs.schedule: needs 5 fields",
        "addons.proxyAuth.path",
        "addons.proxyAuth.supportsBearerAuth",
        "addons.sendmail.optional",
        "addons.nosuchaddon: unknown addon",
    ] {
        assert!(
            status.message().contains(path),
            "{path} not in {}",
            status.message()
        );
    }
    assert!(
        status.message().contains("(11 problem(s))"),
        "{}",
        status.message()
    );
    assert_eq!(backend_traces(&app).await, NOTHING);
    expect_status(
        get(&mut client, &app).await,
        Code::NotFound,
        "not installed",
    );

    // The app id and domain are checked with the manifest.
    let bad = client
        .install_app(fleet_shared::proto::coordinator::InstallAppRequest {
            app_id: "../etc".to_owned(),
            app_domain: "not a domain".to_owned(),
            addons: Some(addons(json!({"mysql": {"typo": true}}))),
        })
        .await;
    let status = expect_status(bad, Code::InvalidArgument, "app_id");
    assert!(
        status.message().contains("app_domain") && status.message().contains("addons.mysql.typo")
    );
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_addon_without_a_service_here_is_a_failed_precondition_naming_it() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let app = app_id("noredis");
    let status = expect_status(
        install(
            &mut client,
            &app,
            json!({"mysql": {}, "redis": {}, "sendmail": {}, "email": {}}),
        )
        .await,
        Code::FailedPrecondition,
        "no service for email, redis, sendmail: configure FLEET_COORDINATOR_MAIL_URL, \
         FLEET_COORDINATOR_REDIS_URL or drop the addon",
    );
    assert!(!status.message().contains("mysql"), "{status:?}");
    assert_eq!(backend_traces(&app).await, NOTHING);
    // proxyAuth is the oidc service's, which this deployment lacks.
    expect_status(
        install(
            &mut client,
            &app,
            json!({"mysql": {}, "tls": {}, "proxyAuth": {"path": "!/webhooks"}}),
        )
        .await,
        Code::FailedPrecondition,
        "no service for proxyAuth: configure FLEET_COORDINATOR_OIDC_URL",
    );
    assert_eq!(backend_traces(&app).await, NOTHING);
    // Addons with no service of their own need none.
    install(&mut client, &app, json!({"localstorage": {}, "tls": {}}))
        .await
        .unwrap();
    let app_record = get(&mut client, &app).await.unwrap();
    assert!(app_record.tls.is_some() && app_record.local_storage.is_some());
    assert!(app_record.provisioned_addons.is_empty());
    uninstall(&mut client, &app).await.unwrap();
    coordinator.stop().await;
}
