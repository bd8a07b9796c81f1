//! The addon's options: locale and extensions.

use sqlx::Connection;
use tonic::Code;

use crate::support::*;

async fn extensions_in(database: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT extname::text FROM pg_extension ORDER BY 1")
        .fetch_all(&mut admin(database).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn requested_extensions_are_present_after_provision() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("ext");
    let env = provision(
        &mut client,
        request(&app, with_extensions(&["hstore", "postgis"])),
    )
    .await
    .unwrap();
    let present = extensions_in(&env["CLOUDRON_POSTGRESQL_DATABASE"]).await;
    for wanted in ["hstore", "postgis"] {
        assert!(
            present.iter().any(|e| e == wanted),
            "{wanted} missing from {present:?}"
        );
    }
    // The app can use them.
    let mut conn = connect(&env["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    let value: Option<String> = sqlx::query_scalar("SELECT 'a=>1'::hstore -> 'a'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("1"));
    conn.close().await.unwrap();
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extension_off_the_whitelist_is_invalid_and_nothing_is_created() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("ext-bad");
    let status = expect_status(
        provision(
            &mut client,
            request(&app, with_extensions(&["hstore", "adminpack"])),
        )
        .await,
        Code::InvalidArgument,
        "options.postgresql.extensions",
    );
    assert!(status.message().contains("adminpack"), "{status:?}");
    assert!(!anything_owned_by(&app).await);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whitelisted_extension_missing_on_the_server_is_a_failed_precondition() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("ext-vector");
    let status = expect_status(
        provision(
            &mut client,
            request(&app, with_extensions(&["hstore", "vector"])),
        )
        .await,
        Code::FailedPrecondition,
        "vector",
    );
    assert!(
        status
            .message()
            .contains("not installed on the PostgreSQL server"),
        "{status:?}"
    );
    assert!(!anything_owned_by(&app).await);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn locale_sets_collation_and_ctype() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("locale");
    let env = provision(&mut client, request(&app, with_locale("de_DE.UTF-8")))
        .await
        .unwrap();
    let (collate, ctype): (String, String) = sqlx::query_as(
        "SELECT datcollate::text, datctype::text FROM pg_database WHERE datname = $1",
    )
    .bind(&env["CLOUDRON_POSTGRESQL_DATABASE"])
    .fetch_one(&mut admin("postgres").await)
    .await
    .unwrap();
    assert_eq!(
        (collate.as_str(), ctype.as_str()),
        ("de_DE.UTF-8", "de_DE.UTF-8")
    );
    // German collation sorts ä with a, not after z (as C would).
    let mut conn = connect(&env["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    let sorted: Vec<String> =
        sqlx::query_scalar("SELECT w FROM unnest(ARRAY['z', 'ä', 'a']) w ORDER BY w")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(sorted, ["a", "ä", "z"]);
    conn.close().await.unwrap();

    // Same locale again: fine. Another locale: the database cannot change, so refused.
    provision(&mut client, request(&app, with_locale("de_DE.UTF-8")))
        .await
        .unwrap();
    expect_status(
        provision(&mut client, request(&app, with_locale("fr_FR.UTF-8"))).await,
        Code::FailedPrecondition,
        "cannot change",
    );
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_locale_is_invalid_names_it_and_creates_nothing() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("locale-bad");
    let status = expect_status(
        provision(&mut client, request(&app, with_locale("xx_YY.UTF-8"))).await,
        Code::InvalidArgument,
        "options.postgresql.locale",
    );
    assert!(status.message().contains("xx_YY.UTF-8"), "{status:?}");
    assert!(!anything_owned_by(&app).await);
    let malformed = provision(
        &mut client,
        request(&app, with_locale("de_DE'; DROP ROLE postgres; --")),
    )
    .await;
    expect_status(
        malformed,
        Code::InvalidArgument,
        "options.postgresql.locale",
    );
    assert!(!anything_owned_by(&app).await);
    service.stop().await;
}
