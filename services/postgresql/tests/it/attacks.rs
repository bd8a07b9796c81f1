//! Attacks by an app holding its own bundle (and by a local user of the host), each shown
//! blocked: whitelisted extensions run their scripts as superuser, so none of them may be
//! steerable into giving the app more than a plain role; the local socket needs a password.

use std::process::Command;

use fleet_postgresql::extensions::whitelist;
use fleet_shared::testkit::host;
use sqlx::{
    Connection, PgConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tonic::Code;

use crate::support::*;

/// The search_path PostGIS's tiger geocoder and topology scripts paste into dynamic SQL: it
/// would make `role` a superuser if it were ever executed.
fn injecting_search_path(role: &str) -> String {
    format!("public,tiger,x;alter/**/role/**/{role}/**/superuser;--")
}

/// Every whitelisted extension this server has (`vector` is not packaged here).
async fn available_whitelisted() -> Vec<String> {
    let available: Vec<String> =
        sqlx::query_scalar("SELECT name::text FROM pg_available_extensions WHERE name = ANY($1)")
            .bind(whitelist())
            .fetch_all(&mut admin("postgres").await)
            .await
            .unwrap();
    assert!(available.len() >= 20, "{available:?}");
    available
}

/// A fresh app, provisioned, with its role name and the options its URL stands for.
async fn new_app(client: &mut Client, prefix: &str) -> (String, String, PgConnectOptions) {
    let app = app_id(prefix);
    let env = provision(client, request(&app, None)).await.unwrap();
    let options: PgConnectOptions = env["CLOUDRON_POSTGRESQL_URL"].parse().unwrap();
    (app, env["CLOUDRON_POSTGRESQL_USERNAME"].clone(), options)
}

/// What `role` holds beyond a plain login role owning its own database: attributes,
/// memberships, objects or grants outside its database. Empty for a plain role.
async fn privileges_of(role: &str, database: &str) -> Vec<String> {
    let mut admin = admin("postgres").await;
    let mut found: Vec<String> = sqlx::query_scalar(
        "SELECT a FROM pg_roles r, LATERAL (VALUES
             ('superuser', r.rolsuper), ('createrole', r.rolcreaterole),
             ('createdb', r.rolcreatedb), ('replication', r.rolreplication),
             ('bypassrls', r.rolbypassrls)) AS v(a, held)
         WHERE r.rolname = $1 AND held",
    )
    .bind(role)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    found.extend(
        sqlx::query_scalar::<_, String>(
            "SELECT 'member of ' || g.rolname FROM pg_auth_members m
               JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member
              WHERE r.rolname = $1",
        )
        .bind(role)
        .fetch_all(&mut admin)
        .await
        .unwrap(),
    );
    found.extend(
        sqlx::query_scalar::<_, String>(
            "SELECT 'owns or was granted ' || s.classid::regclass::text || ' ' || s.objid
               FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid,
                    (SELECT oid FROM pg_database WHERE datname = $2) AS own(db)
              WHERE r.rolname = $1 AND s.deptype IN ('o', 'a') AND s.dbid <> own.db
                AND NOT (s.dbid = 0 AND s.classid = 'pg_database'::regclass AND s.objid = own.db)",
        )
        .bind(role)
        .bind(database)
        .fetch_all(&mut admin)
        .await
        .unwrap(),
    );
    admin.close().await.unwrap();
    found
}

/// Asserts `role` is still a plain role, and that it cannot run programs on the host.
async fn assert_plain(role: &str, database: &str, app: &PgConnectOptions, context: &str) {
    let held = privileges_of(role, database).await;
    assert!(held.is_empty(), "{context}: the app's role gained {held:?}");
    let mut conn = PgConnection::connect_with(app).await.unwrap();
    let copy = sqlx::raw_sql("COPY (SELECT 1) TO PROGRAM 'true'")
        .execute(&mut conn)
        .await;
    assert!(
        copy.is_err(),
        "{context}: the app ran a program on the host"
    );
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_whitelisted_extension_obeys_a_hostile_session_search_path() {
    let service = start_service().await;
    let mut client = service.client().await;
    let (app, role, options) = new_app(&mut client, "ext-sp").await;
    let hostile = options
        .clone()
        .options([("search_path", injecting_search_path(&role))]);
    for extension in available_whitelisted().await {
        let mut conn = PgConnection::connect_with(&hostile).await.unwrap();
        let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE EXTENSION IF NOT EXISTS \"{extension}\" CASCADE"
        )))
        .execute(&mut conn)
        .await;
        // plpgsql exists in every database, so no script runs for it.
        if extension != "plpgsql" {
            let error = created.expect_err(&extension).to_string();
            assert!(
                error.contains("not a plain list of schema names"),
                "{extension}: {error}"
            );
        }
        conn.close().await.unwrap();
        assert_plain(&role, &role, &options, &extension).await;
    }
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_whitelisted_extension_is_created_under_hostile_settings_other_than_search_path() {
    let service = start_service().await;
    let mut client = service.client().await;
    let (app, role, options) = new_app(&mut client, "ext-guc").await;
    // Settings an app may set for its sessions that change how SQL is read or run; none of
    // them may turn an extension script into something else. The extensions must still be
    // created: an ordinary search_path is all the guard asks for.
    let hostile = options.clone().options([
        ("standard_conforming_strings", "off"),
        ("check_function_bodies", "on"),
        ("plpgsql.variable_conflict", "use_column"),
        ("default_table_access_method", "heap"),
        ("search_path", "\"$user\",public"),
        ("DateStyle", "SQL,DMY"),
    ]);
    let mut conn = PgConnection::connect_with(&hostile).await.unwrap();
    for extension in available_whitelisted().await {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE EXTENSION IF NOT EXISTS \"{extension}\" CASCADE"
        )))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{extension}: {e}"));
        assert_plain(&role, &role, &options, &extension).await;
    }
    // ALTER EXTENSION ... UPDATE runs scripts as superuser too.
    sqlx::raw_sql("ALTER EXTENSION postgis UPDATE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_plain(&role, &role, &options, "ALTER EXTENSION UPDATE").await;
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_search_path_stored_on_the_database_or_role_steers_neither_the_app_nor_provision() {
    let service = start_service().await;
    let mut client = service.client().await;
    let (app, role, options) = new_app(&mut client, "ext-stored").await;
    // set_config takes the value raw, and SET ... FROM CURRENT stores it raw: the tiger
    // geocoder's script reads the database's stored search_path and executes it.
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("SELECT set_config('search_path', $1, false)")
        .bind(injecting_search_path(&role))
        .execute(&mut conn)
        .await
        .unwrap();
    for statement in [
        format!("ALTER DATABASE \"{role}\" SET search_path FROM CURRENT"),
        format!("ALTER ROLE \"{role}\" SET search_path FROM CURRENT"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();

    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    let error = sqlx::raw_sql("CREATE EXTENSION postgis_tiger_geocoder CASCADE")
        .execute(&mut conn)
        .await
        .expect_err("the app created the tiger geocoder with a stored injection")
        .to_string();
    assert!(error.contains("not a plain list"), "{error}");
    conn.close().await.unwrap();
    assert_plain(&role, &role, &options, "app's CREATE EXTENSION").await;

    // The service's own, clean session is steered by the database's setting just as well.
    let status = expect_status(
        provision(
            &mut client,
            request(&app, with_extensions(&["postgis_tiger_geocoder"])),
        )
        .await,
        Code::FailedPrecondition,
        "postgis_tiger_geocoder",
    );
    assert!(status.message().contains("not a plain list"), "{status:?}");
    assert_plain(&role, &role, &options, "Provision's CREATE EXTENSION").await;
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn code_planted_in_the_schema_does_not_run_inside_an_untrusted_extension_script() {
    let service = start_service().await;
    let mut client = service.client().await;
    let (app, role, options) = new_app(&mut client, "ext-trojan").await;
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    // An overload that beats pg_catalog's lower(text) for varchar arguments: were the script
    // to call lower() on a varchar, it would run this as superuser.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE plpgsql AS $$
         BEGIN EXECUTE 'ALTER ROLE \"{role}\" SUPERUSER'; RETURN ''; END $$"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let error = sqlx::raw_sql("CREATE EXTENSION postgis")
        .execute(&mut conn)
        .await
        .expect_err("postgis was created beside the app's own lower()")
        .to_string();
    assert!(error.contains("function public.lower"), "{error}");
    // Extensions PostgreSQL marks trusted are written to be safe beside an app's code; and an
    // untrusted one goes into a schema of its own.
    sqlx::raw_sql(
        "CREATE EXTENSION hstore; CREATE SCHEMA gis; CREATE EXTENSION postgis SCHEMA gis",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    assert_plain(&role, &role, &options, "trojan").await;
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

/// The after-script, as cluster.sh installs it for `extension`.
fn after_check(extension: &str) -> String {
    let template = include_str!("../../../../deploy/postgresql/extension-guard/after.sql");
    template.replace("@extname@", extension)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_after_check_rolls_back_whatever_leaves_the_app_more_than_a_plain_role() {
    let service = start_service().await;
    let mut client = service.client().await;
    let (app, role, _) = new_app(&mut client, "ext-after").await;
    let mut admin = admin(&role).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(after_check("hstore")))
        .execute(&mut admin)
        .await
        .expect("a plain app passes the check");
    // What a script steered by the app could leave behind, one at a time.
    for (grant, finding) in [
        (
            format!("ALTER ROLE \"{role}\" CREATEROLE"),
            "privileged attribute",
        ),
        (
            format!("GRANT pg_execute_server_program TO \"{role}\""),
            "member of pg_execute_server_program",
        ),
        (format!("CREATE DATABASE \"{role}_other\""), ""),
        (
            format!("ALTER DATABASE \"{role}_other\" OWNER TO \"{role}\""),
            "outside its database",
        ),
        (
            "CREATE FUNCTION public.door(text) RETURNS void LANGUAGE plpgsql \
             SECURITY DEFINER AS $$ BEGIN EXECUTE $1; END $$"
                .to_owned(),
            "runs as superuser for its callers",
        ),
        (
            format!("ALTER ROLE \"{role}\" SET session_preload_libraries = 'x'"),
            "superuser-only setting",
        ),
    ] {
        if finding.is_empty() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(grant))
                .execute(&mut admin)
                .await
                .unwrap();
            continue;
        }
        let mut tx = admin.begin().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(grant.clone()))
            .execute(&mut *tx)
            .await
            .unwrap();
        let error = sqlx::raw_sql(sqlx::AssertSqlSafe(after_check("hstore")))
            .execute(&mut *tx)
            .await
            .expect_err(&grant)
            .to_string();
        assert!(error.contains(finding), "{grant}: {error}");
        tx.rollback().await.unwrap();
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{role}_other\""
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

/// `psql` as the superuser over the cluster's Unix socket, without a password, optionally as
/// another OS user; whether it got in.
fn local_superuser_login(as_user: Option<(&str, &str)>) -> bool {
    let server = postgres();
    let mut command = match as_user {
        Some((user, group)) => {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid",
                user,
                "--regid",
                group,
                "--clear-groups",
                "--",
                "psql",
            ]);
            c
        }
        None => Command::new("psql"),
    };
    command
        .args(["-X", "-w", "-h"])
        .arg(server.dir())
        .args([
            "-p",
            &server.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-Atc", "SELECT 1"])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/nonexistent");
    command.output().unwrap().status.success()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_user_cannot_reach_the_socket_or_log_in_as_postgres_without_a_password() {
    let dir = postgres().dir();
    // The server runs as postgres; its directory (socket included) is closed to others.
    let exposed = host::exposure(postgres().port(), dir, Some("postgres"));
    assert!(exposed.is_empty(), "{exposed:?}");
    // Even an OS user that can reach the socket (we can: root, or the server's own user
    // otherwise) needs the password for `postgres`, unless it is the server's own OS user.
    assert!(
        !local_superuser_login(None),
        "local login as postgres without a password"
    );
    if host::running_as_root() {
        // Any other OS user: not even the socket is reachable.
        assert!(
            !local_superuser_login(Some(("nobody", "nogroup"))),
            "nobody logged in as postgres"
        );
        // The server's own OS user keeps peer access, for maintenance.
        assert!(
            local_superuser_login(Some(("postgres", "postgres"))),
            "postgres lost peer access"
        );
    } else {
        eprintln!("not root: the other-OS-user checks of this test need root and were not run");
    }
    // And an app's password is needed on the socket too.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            PgConnectOptions::new()
                .socket(dir)
                .port(postgres().port())
                .username("postgres")
                .database("postgres"),
        )
        .await;
    assert!(
        pool.is_err(),
        "a passwordless socket connection as postgres"
    );
}
