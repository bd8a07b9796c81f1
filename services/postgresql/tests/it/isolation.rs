//! Every isolation claim, tested from the losing side: app B's credentials against app A.

use sqlx::Connection;
use tonic::Code;

use crate::support::*;

fn url_with(
    env: &std::collections::HashMap<String, String>,
    user: &str,
    password: &str,
    database: &str,
) -> String {
    format!(
        "postgres://{user}:{password}@{}:{}/{database}",
        env["CLOUDRON_POSTGRESQL_HOST"], env["CLOUDRON_POSTGRESQL_PORT"]
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn another_apps_credentials_cannot_open_an_apps_database() {
    let service = start_service().await;
    let mut client = service.client().await;
    let a = provision(&mut client, request(&app_id("iso-a"), None))
        .await
        .unwrap();
    let b = provision(&mut client, request(&app_id("iso-b"), None))
        .await
        .unwrap();
    let (b_user, b_password) = (
        &b["CLOUDRON_POSTGRESQL_USERNAME"],
        &b["CLOUDRON_POSTGRESQL_PASSWORD"],
    );
    let a_database = &a["CLOUDRON_POSTGRESQL_DATABASE"];

    // B, with its own valid password, cannot connect to A's database.
    let error = connect(&url_with(&a, b_user, b_password, a_database))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("permission denied for database"),
        "{error}"
    );
    // B cannot log in as A with B's password.
    let error = connect(&url_with(
        &a,
        &a["CLOUDRON_POSTGRESQL_USERNAME"],
        b_password,
        a_database,
    ))
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("password authentication failed"),
        "{error}"
    );
    // Nor can it reach A's data from its own database.
    let mut conn = connect(&b["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    let error = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET ROLE {}",
        a["CLOUDRON_POSTGRESQL_USERNAME"]
    )))
    .execute(&mut conn)
    .await
    .unwrap_err();
    assert!(error.to_string().contains("permission denied"), "{error}");
    // B may not create databases or roles.
    for sql in ["CREATE DATABASE sneaky", "CREATE ROLE sneaky"] {
        let error = sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_err();
        assert!(
            error.to_string().contains("permission denied"),
            "{sql}: {error}"
        );
    }
    conn.close().await.unwrap();
    // A still works.
    connect(&a["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_creates_whitelisted_extensions_itself_but_nothing_else() {
    let service = start_service().await;
    let mut client = service.client().await;
    let env = provision(&mut client, request(&app_id("ext-self"), None))
        .await
        .unwrap();
    let mut conn = connect(&env["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    // postgis is not a trusted extension: only pgextwlist lets a non-superuser create it.
    sqlx::raw_sql("CREATE EXTENSION postgis")
        .execute(&mut conn)
        .await
        .unwrap();
    let point: String = sqlx::query_scalar("SELECT ST_AsText(ST_MakePoint(1, 2))")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(point, "POINT(1 2)");
    let error = sqlx::raw_sql("CREATE EXTENSION adminpack")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("permission denied"), "{error}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_taken_by_something_else_is_refused_not_shared() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("squat");
    // Learn the derived name, then remove the app and let "someone else" take the name.
    let env = provision(&mut client, request(&app, None)).await.unwrap();
    let name = env["CLOUDRON_POSTGRESQL_USERNAME"].clone();
    deprovision(&mut client, &app).await.unwrap();
    let mut admin = admin("postgres").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {name} LOGIN PASSWORD 'theirs'"
    )))
    .execute(&mut admin)
    .await
    .unwrap();

    expect_status(
        provision(&mut client, request(&app, None)).await,
        Code::FailedPrecondition,
        "does not belong to this app",
    );
    expect_status(
        deprovision(&mut client, &app).await,
        Code::FailedPrecondition,
        "does not belong to this app",
    );
    // The squatter's role is untouched: same password, still there.
    connect(&postgres().url(&name, "theirs", "postgres"))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    service.stop().await;
}
