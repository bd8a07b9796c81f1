//! Bad input, missing credentials and a dead backend.

use std::time::Duration;

use fleet_shared::{
    AppId,
    proto::addon::{
        DeprovisionRequest, MysqlOptions, ProvisionRequest, provision_request::Options,
    },
    testkit::PostgresServer,
};
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn odd_app_ids_are_invalid_and_create_nothing() {
    let service = start_service().await;
    let mut client = service.client().await;
    let long = "a".repeat(200);
    for odd in [
        "",
        long.as_str(),
        "x'; drop role postgres; --",
        "ünïcödé",
        "../a",
        "a b",
        "a\"b",
    ] {
        expect_status(
            provision(&mut client, request(odd, None)).await,
            Code::InvalidArgument,
            "app_id",
        );
        expect_status(
            deprovision(&mut client, odd).await,
            Code::InvalidArgument,
            "app_id",
        );
        assert!(!anything_owned_by(odd).await, "{odd:?}");
    }
    assert!(
        list(&mut client)
            .await
            .iter()
            .all(|id| AppId::parse(id).is_ok())
    );
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'")
            .fetch_one(&mut admin("postgres").await)
            .await
            .unwrap();
    assert!(superuser);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_addons_options_or_name_are_invalid() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("foreign");
    let foreign = ProvisionRequest {
        options: Some(Options::Mysql(MysqlOptions {
            multiple_databases: true,
        })),
        ..request(&app, None)
    };
    expect_status(
        provision(&mut client, foreign).await,
        Code::InvalidArgument,
        "options",
    );
    let wrong_addon = client
        .deprovision(DeprovisionRequest {
            app_id: app.clone(),
            addon: "mysql".to_owned(),
        })
        .await;
    expect_status(wrong_addon, Code::InvalidArgument, "addon");
    assert!(!anything_owned_by(&app).await);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_without_the_right_token_are_unauthenticated() {
    let service = start_service().await;
    let app = app_id("noauth");
    for token in [None, Some("wrong-token-0123456789")] {
        let mut client = service.client_with_token(token).await;
        expect_status(
            provision(&mut client, request(&app, None)).await,
            Code::Unauthenticated,
            "token",
        );
        expect_status(
            deprovision(&mut client, &app).await,
            Code::Unauthenticated,
            "token",
        );
        let listed = client
            .list(fleet_shared::proto::addon::ListRequest {})
            .await;
        expect_status(listed, Code::Unauthenticated, "token");
    }
    assert!(!anything_owned_by(&app).await);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_down_is_unavailable_and_says_so() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let mut own = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap();
    let admin_url = own.admin_url();
    let service = start_service_with(&admin_url).await;
    let mut client = service.client().await;
    provision(&mut client, request(&app_id("before-stop"), None))
        .await
        .unwrap();

    tokio::task::spawn_blocking(move || own.stop().map(|()| own))
        .await
        .unwrap()
        .unwrap();
    for call in 0..2 {
        let status = if call == 0 {
            provision(&mut client, request(&app_id("down"), None))
                .await
                .map(|_| ())
        } else {
            deprovision(&mut client, &app_id("down")).await
        };
        let status = expect_status(status, Code::Unavailable, "PostgreSQL is unavailable");
        assert!(!status.message().contains("postgres://"), "{status:?}");
    }
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
                    service: String::new(),
                })
                .await
                .is_ok_and(|r| r.into_inner().status == ServingStatus::NotServing as i32)
        }
    })
    .await;
    assert!(
        not_serving,
        "health should report NOT_SERVING while PostgreSQL is down"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_admin_credentials_are_unavailable_and_name_the_setting() {
    let wrong = postgres().url("postgres", "not-the-password", "postgres");
    let service = start_service_with(&wrong).await;
    let mut client = service.client().await;
    let status = expect_status(
        provision(&mut client, request(&app_id("wrong-admin"), None)).await,
        Code::Unavailable,
        "FLEET_POSTGRESQL_ADMIN_URL",
    );
    assert!(!status.message().contains("not-the-password"), "{status:?}");
    service.stop().await;
}
