//! Provision, use, re-provision, rotate, deprovision, list.

use std::time::Duration;

use futures::future::join_all;
use sqlx::{Connection, Row};
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_app_uses_its_database_through_the_returned_url() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("use");
    let env = provision(&mut client, request(&app, None)).await.unwrap();

    let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = ENV_KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    let user = &env["CLOUDRON_POSTGRESQL_USERNAME"];
    let password = &env["CLOUDRON_POSTGRESQL_PASSWORD"];
    let database = &env["CLOUDRON_POSTGRESQL_DATABASE"];
    assert_eq!(env["CLOUDRON_POSTGRESQL_HOST"], "127.0.0.1");
    assert_eq!(
        env["CLOUDRON_POSTGRESQL_PORT"],
        postgres().port().to_string()
    );
    assert_eq!(
        env["CLOUDRON_POSTGRESQL_URL"],
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}",
            postgres().port()
        )
    );

    let mut conn = connect(&env["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    sqlx::raw_sql("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO notes (body) VALUES ($1)")
        .bind("hello, wörld")
        .execute(&mut conn)
        .await
        .unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM notes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(body, "hello, wörld");

    // The database is UTF8, owned by the app; the role has no special powers.
    let row = sqlx::query(
        "SELECT pg_encoding_to_char(d.encoding), r.rolname::text, r.rolsuper, r.rolcreatedb, \
         r.rolcreaterole, r.rolreplication, r.rolbypassrls \
         FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
    )
    .bind(database)
    .fetch_one(&mut admin("postgres").await)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "UTF8");
    assert_eq!(&row.get::<String, _>(1), user);
    for powers in 2..=6 {
        assert!(!row.get::<bool, _>(powers), "column {powers}");
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_twice_returns_the_same_env_and_keeps_the_data() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("twice");
    let first = provision(&mut client, request(&app, with_extensions(&["hstore"])))
        .await
        .unwrap();
    let mut conn = connect(&first["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    sqlx::raw_sql("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let second = provision(&mut client, request(&app, with_extensions(&["hstore"])))
        .await
        .unwrap();
    assert_eq!(first, second);
    // A new replica (same master key) derives the same bundle.
    let replica = start_service().await;
    let third = provision(&mut replica.client().await, request(&app, None))
        .await
        .unwrap();
    assert_eq!(first, third);

    let mut conn = connect(&second["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    let v: i32 = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, 42);
    service.stop().await;
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deprovision_removes_everything_and_is_idempotent() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("gone");
    let env = provision(&mut client, request(&app, None)).await.unwrap();
    let name = env["CLOUDRON_POSTGRESQL_DATABASE"].clone();
    assert!(list(&mut client).await.contains(&app));
    // An open session of the app does not block removal.
    let mut session = connect(&env["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut session).await.unwrap();

    deprovision(&mut client, &app).await.unwrap();
    assert_eq!(role_and_database_exist(&name).await, (false, false));
    assert!(!list(&mut client).await.contains(&app));
    let error = connect(&env["CLOUDRON_POSTGRESQL_URL"]).await.unwrap_err();
    assert!(
        error.to_string().contains("password authentication failed"),
        "{error}"
    );
    assert!(
        sqlx::query("SELECT 1").execute(&mut session).await.is_err(),
        "session survived"
    );

    deprovision(&mut client, &app).await.unwrap();
    // Never provisioned at all: also fine.
    deprovision(&mut client, &app_id("never")).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_credential_generation_rotates_the_password() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("rotate");
    let old = provision(&mut client, request(&app, None)).await.unwrap();
    let mut next = request(&app, None);
    next.credential_generation = 1;
    let new = provision(&mut client, next).await.unwrap();
    assert_ne!(
        old["CLOUDRON_POSTGRESQL_PASSWORD"],
        new["CLOUDRON_POSTGRESQL_PASSWORD"]
    );
    assert_eq!(
        old["CLOUDRON_POSTGRESQL_DATABASE"],
        new["CLOUDRON_POSTGRESQL_DATABASE"]
    );
    assert!(connect(&old["CLOUDRON_POSTGRESQL_URL"]).await.is_err());
    connect(&new["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_provisions_of_distinct_apps_all_succeed() {
    let service = start_service().await;
    let client = service.client().await;
    let apps: Vec<String> = (0..50).map(|i| app_id(&format!("many{i}"))).collect();
    let results = join_all(apps.iter().map(|app| {
        let mut client = client.clone();
        let app = app.clone();
        async move { provision(&mut client, request(&app, None)).await }
    }))
    .await;
    let envs: Vec<_> = results.into_iter().map(|r| r.unwrap()).collect();
    let mut client = client;
    let listed = list(&mut client).await;
    for (app, env) in apps.iter().zip(&envs) {
        assert!(listed.contains(app), "{app} not listed");
        connect(&env["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    }
    let removals = join_all(apps.iter().map(|app| {
        let mut client = client.clone();
        async move { deprovision(&mut client, app).await }
    }))
    .await;
    assert!(removals.iter().all(Result::is_ok), "{removals:?}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_provisions_of_the_same_app_agree() {
    let service = start_service().await;
    let client = service.client().await;
    let app = app_id("same");
    let results = join_all((0..8).map(|_| {
        let mut client = client.clone();
        let app = app.clone();
        async move { provision(&mut client, request(&app, None)).await }
    }))
    .await;
    let envs: Vec<_> = results.into_iter().map(|r| r.unwrap()).collect();
    assert!(envs.windows(2).all(|w| w[0] == w[1]));
    let mut client = client;
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_serving_while_postgresql_answers() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let service = start_service().await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", service.port()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut health = HealthClient::new(channel);
    let serving = eventually(Duration::from_secs(10), || {
        let mut health = health.clone();
        async move {
            health
                .check(HealthCheckRequest {
                    service: "fleet.addon.v1.Addon".to_owned(),
                })
                .await
                .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
        }
    })
    .await;
    assert!(serving);
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".to_owned(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_password_can_come_from_a_file_and_apps_get_the_configured_address() {
    let url = postgres().admin_url();
    let credentials_and_rest = url.strip_prefix("postgres://postgres:").unwrap();
    let (password, host_and_database) = credentials_and_rest.split_once('@').unwrap();
    let without_password = format!("postgres://postgres@{host_and_database}");
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("pg-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let password_file = password_file.display().to_string();
    let service = start_service_with_env(
        &without_password,
        &[
            ("FLEET_POSTGRESQL_ADMIN_PASSWORD_FILE", &password_file),
            ("FLEET_POSTGRESQL_APP_HOST", "db.internal"),
            ("FLEET_POSTGRESQL_APP_PORT", "6432"),
        ],
    )
    .await;
    let mut client = service.client().await;
    let app = app_id("pwfile");
    let env = provision(&mut client, request(&app, None)).await.unwrap();
    assert_eq!(env["CLOUDRON_POSTGRESQL_HOST"], "db.internal");
    assert_eq!(env["CLOUDRON_POSTGRESQL_PORT"], "6432");
    assert!(env["CLOUDRON_POSTGRESQL_URL"].contains("@db.internal:6432/"));
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}
