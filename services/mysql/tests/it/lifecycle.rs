//! Provision, use, re-provision, rotate, deprovision, list, in both layouts.

use futures::future::join_all;
use sqlx::Connection;
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_single_database_is_usable_through_the_url_in_utf8mb4() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("single");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    assert_eq!(sorted_keys(&env), SINGLE_KEYS);
    let (user, password, database) = (
        &env["CLOUDRON_MYSQL_USERNAME"],
        &env["CLOUDRON_MYSQL_PASSWORD"],
        &env["CLOUDRON_MYSQL_DATABASE"],
    );
    assert_eq!(
        env["CLOUDRON_MYSQL_URL"],
        format!(
            "mysql://{user}:{password}@127.0.0.1:{}/{database}",
            mariadb().port()
        )
    );
    assert_eq!(env["CLOUDRON_MYSQL_HOST"], "127.0.0.1");
    assert_eq!(env["CLOUDRON_MYSQL_PORT"], mariadb().port().to_string());

    let mut conn = connect(&env["CLOUDRON_MYSQL_URL"]).await.unwrap();
    let (charset, collation): (String, String) =
        sqlx::query_as("SELECT @@character_set_database, @@collation_database")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        (charset.as_str(), collation.as_str()),
        ("utf8mb4", "utf8mb4_unicode_ci")
    );
    run(
        &mut conn,
        "CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT NOT NULL)",
    )
    .await
    .unwrap();
    sqlx::query("INSERT INTO notes (body) VALUES (?)")
        .bind("héllo 🎉")
        .execute(&mut conn)
        .await
        .unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM notes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(body, "héllo 🎉");
    conn.close().await.unwrap();
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn multiple_databases_give_a_prefix_and_no_database() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("multi");
    let env = provision(&mut client, request(&app, true)).await.unwrap();
    assert_eq!(sorted_keys(&env), MULTIPLE_KEYS);
    let prefix = env["CLOUDRON_MYSQL_DATABASE_PREFIX"].clone();
    assert_eq!(prefix, format!("{}_", env["CLOUDRON_MYSQL_USERNAME"]));
    assert!(
        databases_starting_with(&prefix).await.is_empty(),
        "no database is created"
    );

    let mut conn = connect_as(&env, "").await.unwrap();
    for suffix in ["one", "two"] {
        run(&mut conn, &format!("CREATE DATABASE `{prefix}{suffix}`"))
            .await
            .unwrap();
        run(
            &mut conn,
            &format!("CREATE TABLE `{prefix}{suffix}`.t (v INT)"),
        )
        .await
        .unwrap();
        run(
            &mut conn,
            &format!("INSERT INTO `{prefix}{suffix}`.t VALUES (1)"),
        )
        .await
        .unwrap();
    }
    let (charset,): (String,) = sqlx::query_as(
        "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(format!("{prefix}one"))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(charset, "utf8mb4");
    conn.close().await.unwrap();

    deprovision(&mut client, &app).await.unwrap();
    assert!(
        databases_starting_with(&prefix).await.is_empty(),
        "every prefixed database is dropped"
    );
    assert!(connect_as(&env, "").await.is_err());
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_twice_returns_the_same_env_and_keeps_the_data() {
    let service = start_service().await;
    let mut client = service.client().await;
    for multiple in [false, true] {
        let app = app_id("twice");
        let first = provision(&mut client, request(&app, multiple))
            .await
            .unwrap();
        let database = first
            .get("CLOUDRON_MYSQL_DATABASE")
            .cloned()
            .unwrap_or_else(|| format!("{}kept", first["CLOUDRON_MYSQL_DATABASE_PREFIX"]));
        let mut conn = connect_as(&first, "").await.unwrap();
        if multiple {
            run(&mut conn, &format!("CREATE DATABASE `{database}`"))
                .await
                .unwrap();
        }
        run(
            &mut conn,
            &format!("CREATE TABLE `{database}`.kept (v INT)"),
        )
        .await
        .unwrap();
        run(
            &mut conn,
            &format!("INSERT INTO `{database}`.kept VALUES (42)"),
        )
        .await
        .unwrap();
        conn.close().await.unwrap();

        let second = provision(&mut client, request(&app, multiple))
            .await
            .unwrap();
        assert_eq!(first, second);
        let replica = start_service().await;
        let third = provision(&mut replica.client().await, request(&app, multiple))
            .await
            .unwrap();
        assert_eq!(first, third, "another replica derives the same bundle");
        replica.stop().await;

        let mut conn = connect_as(&second, "").await.unwrap();
        let v: i32 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT v FROM `{database}`.kept"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(v, 42);
        conn.close().await.unwrap();
        deprovision(&mut client, &app).await.unwrap();
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn switching_layout_is_refused_and_loses_nothing() {
    let service = start_service().await;
    let mut client = service.client().await;
    for installed_multiple in [false, true] {
        let app = app_id("switch");
        let env = provision(&mut client, request(&app, installed_multiple))
            .await
            .unwrap();
        expect_status(
            provision(&mut client, request(&app, !installed_multiple)).await,
            Code::FailedPrecondition,
            "cannot switch",
        );
        assert_eq!(
            provision(&mut client, request(&app, installed_multiple))
                .await
                .unwrap(),
            env
        );
        connect_as(&env, "").await.unwrap();
        deprovision(&mut client, &app).await.unwrap();
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deprovision_removes_everything_closes_sessions_and_is_idempotent() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("gone");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    let name = env["CLOUDRON_MYSQL_USERNAME"].clone();
    assert!(list(&mut client).await.contains(&app));
    let mut session = connect(&env["CLOUDRON_MYSQL_URL"]).await.unwrap();
    run(&mut session, "SELECT 1").await.unwrap();

    deprovision(&mut client, &app).await.unwrap();
    assert_eq!(user_and_database_exist(&name).await, (false, false));
    assert!(!list(&mut client).await.contains(&app));
    let error = connect(&env["CLOUDRON_MYSQL_URL"]).await.unwrap_err();
    assert!(error.to_string().contains("Access denied"), "{error}");
    assert!(
        run(&mut session, "SELECT 1").await.is_err(),
        "the open session survived"
    );

    deprovision(&mut client, &app).await.unwrap();
    deprovision(&mut client, &app_id("never")).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_credential_generation_rotates_the_password() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("rotate");
    let old = provision(&mut client, request(&app, false)).await.unwrap();
    let mut next = request(&app, false);
    next.credential_generation = 1;
    let new = provision(&mut client, next).await.unwrap();
    assert_ne!(
        old["CLOUDRON_MYSQL_PASSWORD"],
        new["CLOUDRON_MYSQL_PASSWORD"]
    );
    assert!(connect(&old["CLOUDRON_MYSQL_URL"]).await.is_err());
    connect(&new["CLOUDRON_MYSQL_URL"]).await.unwrap();
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_per_user_connection_limit_holds() {
    let service = start_service_with(
        &mariadb().admin_url(),
        &[("FLEET_MYSQL_MAX_USER_CONNECTIONS", "2")],
    )
    .await;
    let mut client = service.client().await;
    let app = app_id("limit");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    let _first = connect(&env["CLOUDRON_MYSQL_URL"]).await.unwrap();
    let _second = connect(&env["CLOUDRON_MYSQL_URL"]).await.unwrap();
    let error = connect(&env["CLOUDRON_MYSQL_URL"]).await.unwrap_err();
    assert!(
        error.to_string().contains("max_user_connections"),
        "{error}"
    );
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
        async move { provision(&mut client, request(&app, app.len() % 2 == 0)).await }
    }))
    .await;
    let envs: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    let mut client = client;
    let listed = list(&mut client).await;
    for (app, env) in apps.iter().zip(&envs) {
        assert!(listed.contains(app), "{app} not listed");
        connect_as(env, "").await.unwrap().close().await.unwrap();
    }
    let removals = join_all(apps.iter().map(|app| {
        let mut client = client.clone();
        async move { deprovision(&mut client, app).await }
    }))
    .await;
    assert!(removals.iter().all(Result::is_ok), "{removals:?}");
    service.stop().await;
}
