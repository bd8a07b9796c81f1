//! Every isolation claim, tested from the losing side, including the GRANT wildcard hole.

use sqlx::Connection;
use tonic::Code;

use crate::support::*;

/// `name` with every `_` replaced: a name an unescaped grant on `name` would also match.
fn wildcard_twin(name: &str) -> String {
    name.replace('_', "z")
}

#[tokio::test(flavor = "multi_thread")]
async fn another_app_cannot_read_or_create_in_an_apps_database() {
    let service = start_service().await;
    let mut client = service.client().await;
    let a = provision(&mut client, request(&app_id("iso-a"), false))
        .await
        .unwrap();
    let b = provision(&mut client, request(&app_id("iso-b"), false))
        .await
        .unwrap();
    let a_database = &a["CLOUDRON_MYSQL_DATABASE"];
    let mut a_conn = connect(&a["CLOUDRON_MYSQL_URL"]).await.unwrap();
    run(&mut a_conn, "CREATE TABLE secret (v TEXT)")
        .await
        .unwrap();
    run(&mut a_conn, "INSERT INTO secret VALUES ('a only')")
        .await
        .unwrap();

    // B cannot open A's database, nor reach into it from its own.
    let error = connect_as(&b, a_database).await.unwrap_err();
    assert!(error.to_string().contains("Access denied"), "{error}");
    let mut b_conn = connect(&b["CLOUDRON_MYSQL_URL"]).await.unwrap();
    for sql in [
        format!("SELECT * FROM `{a_database}`.secret"),
        format!("CREATE TABLE `{a_database}`.planted (v INT)"),
        format!("DROP DATABASE `{a_database}`"),
        "CREATE DATABASE elsewhere".to_owned(),
        "SELECT * FROM fleet_meta.apps".to_owned(),
        "SELECT * FROM mysql.user".to_owned(),
    ] {
        let error = run(&mut b_conn, &sql).await.unwrap_err();
        assert!(error.to_string().contains("denied"), "{sql}: {error}");
    }
    // A's password does not open B's account.
    let error = connect(&mariadb().url(
        &b["CLOUDRON_MYSQL_USERNAME"],
        &a["CLOUDRON_MYSQL_PASSWORD"],
        "",
    ))
    .await
    .unwrap_err();
    assert!(error.to_string().contains("Access denied"), "{error}");
    b_conn.close().await.unwrap();
    a_conn.close().await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_database_grant_covers_no_other_name() {
    let service = start_service().await;
    let mut client = service.client().await;
    let env = provision(&mut client, request(&app_id("wild-single"), false))
        .await
        .unwrap();
    let database = &env["CLOUDRON_MYSQL_DATABASE"];
    let mut conn = connect(&env["CLOUDRON_MYSQL_URL"]).await.unwrap();
    // `app_x_01` unescaped would also match `appzxz01`: the grant must not.
    let twin = wildcard_twin(database);
    assert_ne!(&twin, database);
    for other in [
        twin.as_str(),
        &format!("{database}1"),
        &format!("{database}_x"),
    ] {
        let error = run(&mut conn, &format!("CREATE DATABASE `{other}`"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("denied"), "{other}: {error}");
    }
    // Nor may the app drop its own database and re-create it elsewhere.
    let grants: Vec<String> = sqlx::query_scalar("SHOW GRANTS")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        !grants.iter().any(|g| g.contains("GRANT OPTION")),
        "{grants:?}"
    );
    conn.close().await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prefix_grant_covers_its_prefix_and_nothing_else() {
    let service = start_service().await;
    let mut client = service.client().await;
    let env = provision(&mut client, request(&app_id("wild-multi"), true))
        .await
        .unwrap();
    let other_app = provision(&mut client, request(&app_id("wild-other"), false))
        .await
        .unwrap();
    let prefix = &env["CLOUDRON_MYSQL_DATABASE_PREFIX"];
    let mut conn = connect_as(&env, "").await.unwrap();
    run(&mut conn, &format!("CREATE DATABASE `{prefix}one`"))
        .await
        .unwrap();
    for other in [
        "other".to_owned(),
        format!("{}one", wildcard_twin(prefix)),
        prefix.trim_end_matches('_').to_owned(),
        other_app["CLOUDRON_MYSQL_DATABASE"].clone(),
    ] {
        let error = run(&mut conn, &format!("CREATE DATABASE `{other}`"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("denied"), "{other}: {error}");
    }
    let error = run(
        &mut conn,
        &format!(
            "SELECT 1 FROM `{}`.dual",
            other_app["CLOUDRON_MYSQL_DATABASE"]
        ),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("denied"), "{error}");
    conn.close().await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_taken_by_something_else_is_refused_not_shared() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("squat");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    let name = env["CLOUDRON_MYSQL_USERNAME"].clone();
    deprovision(&mut client, &app).await.unwrap();
    let mut admin = admin().await;
    run(
        &mut admin,
        &format!("CREATE USER '{name}'@'%' IDENTIFIED BY 'theirs'"),
    )
    .await
    .unwrap();

    expect_status(
        provision(&mut client, request(&app, false)).await,
        Code::FailedPrecondition,
        "does not belong to this app",
    );
    expect_status(
        deprovision(&mut client, &app).await,
        Code::FailedPrecondition,
        "does not belong to this app",
    );
    connect(&mariadb().url(&name, "theirs", "")).await.unwrap();
    assert_eq!(user_and_database_exist(&name).await, (true, false));
    run(&mut admin, &format!("DROP USER '{name}'@'%'"))
        .await
        .unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_runs_unprivileged_and_its_files_are_private() {
    use fleet_shared::testkit::host;
    // Some data written first, so the server has created files of its own.
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("files");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    let mut conn = connect(&env["CLOUDRON_MYSQL_URL"]).await.unwrap();
    run(&mut conn, "CREATE TABLE t (v TEXT)").await.unwrap();
    conn.close().await.unwrap();
    let exposed = host::exposure(mariadb().port(), mariadb().dir(), Some("mysql"));
    assert!(exposed.is_empty(), "{exposed:?}");
    if !host::running_as_root() {
        eprintln!("not root: MariaDB runs as this user; only the permissions were checked");
    }
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}
