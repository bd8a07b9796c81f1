//! Bad input, missing credentials and a dead backend.

use std::time::Duration;

use fleet_shared::{
    AppId,
    proto::addon::{
        DeprovisionRequest, ListRequest, PostgresqlOptions, ProvisionRequest,
        provision_request::Options,
    },
    testkit::{MariaDbServer, harness::addon_client},
};
use tonic::Code;

use crate::support::*;

async fn recorded(app_id: &str) -> bool {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fleet_meta.apps WHERE app_id = ?")
        .bind(app_id)
        .fetch_one(&mut admin().await)
        .await
        .unwrap_or(0);
    count > 0
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_app_ids_are_invalid_and_create_nothing() {
    let service = start_service().await;
    let mut client = service.client().await;
    let long = "a".repeat(200);
    for odd in [
        "",
        long.as_str(),
        "x'; DROP USER root; --",
        "ünïcödé",
        "../a",
        "a b",
        "a`b",
    ] {
        expect_status(
            provision(&mut client, request(odd, false)).await,
            Code::InvalidArgument,
            "app_id",
        );
        expect_status(
            deprovision(&mut client, odd).await,
            Code::InvalidArgument,
            "app_id",
        );
        assert!(!recorded(odd).await, "{odd:?}");
    }
    assert!(
        list(&mut client)
            .await
            .iter()
            .all(|id| AppId::parse(id).is_ok())
    );
    let root: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = 'root'")
        .fetch_one(&mut admin().await)
        .await
        .unwrap();
    assert_eq!(root, 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_addons_options_or_name_are_invalid() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("foreign");
    let foreign = ProvisionRequest {
        options: Some(Options::Postgresql(PostgresqlOptions::default())),
        ..request(&app, false)
    };
    expect_status(
        provision(&mut client, foreign).await,
        Code::InvalidArgument,
        "options",
    );
    let wrong_addon = client
        .deprovision(DeprovisionRequest {
            app_id: app.clone(),
            addon: "postgresql".to_owned(),
        })
        .await;
    expect_status(wrong_addon, Code::InvalidArgument, "addon");
    assert!(!recorded(&app).await);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_without_the_right_token_are_unauthenticated() {
    let service = start_service().await;
    let app = app_id("noauth");
    for token in [None, Some("wrong-token-0123456789")] {
        let mut client = addon_client(service.port(), token).await.unwrap();
        expect_status(
            provision(&mut client, request(&app, false)).await,
            Code::Unauthenticated,
            "token",
        );
        expect_status(
            deprovision(&mut client, &app).await,
            Code::Unauthenticated,
            "token",
        );
        expect_status(
            client.list(ListRequest {}).await,
            Code::Unauthenticated,
            "token",
        );
    }
    assert!(!recorded(&app).await);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_down_is_unavailable_and_says_so() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let mut own = tokio::task::spawn_blocking(MariaDbServer::start)
        .await
        .unwrap()
        .unwrap();
    let service = start_service_with(&own.admin_url(), &[]).await;
    let mut client = service.client().await;
    provision(&mut client, request(&app_id("before-stop"), false))
        .await
        .unwrap();

    tokio::task::spawn_blocking(move || own.stop().map(|()| own))
        .await
        .unwrap()
        .unwrap();
    let status = expect_status(
        provision(&mut client, request(&app_id("down"), false)).await,
        Code::Unavailable,
        "MySQL is unavailable",
    );
    assert!(!status.message().contains("mysql://"), "{status:?}");
    expect_status(
        deprovision(&mut client, &app_id("down")).await,
        Code::Unavailable,
        "MySQL is unavailable",
    );

    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", service.port()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let not_serving = eventually(Duration::from_secs(20), || {
        let mut health = HealthClient::new(channel.clone());
        async move {
            health
                .check(HealthCheckRequest {
                    service: "fleet.addon.v1.Addon".to_owned(),
                })
                .await
                .is_ok_and(|r| r.into_inner().status == ServingStatus::NotServing as i32)
        }
    })
    .await;
    assert!(
        not_serving,
        "health should report NOT_SERVING while MariaDB is down"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_admin_credentials_are_unavailable_and_name_the_setting() {
    let wrong = mariadb().url(MariaDbServer::ADMIN, "not-the-password", "");
    let service = start_service_with(&wrong, &[]).await;
    let mut client = service.client().await;
    let status = expect_status(
        provision(&mut client, request(&app_id("wrong-admin"), false)).await,
        Code::Unavailable,
        "FLEET_MYSQL_ADMIN_URL",
    );
    assert!(!status.message().contains("not-the-password"), "{status:?}");
    service.stop().await;
}
