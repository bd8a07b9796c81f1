//! Several coordinator replicas on one PostgreSQL state store: calls on one app are serialized
//! across them by a lock in the database, a waiting call is bounded, a lock never outlives its
//! call, and a starting replica does not settle a call another one is still making.

use std::{collections::BTreeSet, time::Duration};

use fleet_coordinator::app_lock::AppLocks;
use fleet_shared::proto::coordinator::{InstallAppRequest, UpdateAppRequest};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tonic::Code;

use crate::support::*;

/// Advisory locks in `database`: (held, waited for).
async fn advisory_locks(database: &str) -> (i64, i64) {
    let mut admin = PgConnection::connect(&postgres().admin_url())
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE l.granted), count(*) FILTER (WHERE NOT l.granted) \
         FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND d.datname = $1",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

/// The state store's rows for `app`: (count, state of the first).
async fn rows(url: &str, app: &str) -> (i64, String) {
    let mut state = PgConnection::connect(url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM apps WHERE app_id = $1")
        .bind(app)
        .fetch_one(&mut state)
        .await
        .unwrap();
    let status: Option<String> = sqlx::query_scalar("SELECT state FROM apps WHERE app_id = $1")
        .bind(app)
        .fetch_optional(&mut state)
        .await
        .unwrap();
    (count, status.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_install_on_two_replicas_at_once_installs_once() {
    let services = Services::start().await;
    let (_, url) = state_database("sameinstall").await;
    let (a, b) = (
        Coordinator::start_with_env(&services, &url, &[]).await,
        Coordinator::start_with_env(&services, &url, &[]).await,
    );
    let (client_a, client_b) = (a.client().await, b.client().await);
    for _ in 0..5 {
        let app = app_id("twice");
        let manifest = json!({"postgresql": {}, "mysql": {}});
        let removed = (
            services.postgresql_calls("Deprovision").await,
            services.mysql_calls("Deprovision").await,
        );
        let (first, second) = tokio::join!(
            {
                let (mut client, app, manifest) = (client_a.clone(), app.clone(), manifest.clone());
                async move { install(&mut client, &app, manifest).await }
            },
            {
                let (mut client, app, manifest) = (client_b.clone(), app.clone(), manifest.clone());
                async move { install(&mut client, &app, manifest).await }
            }
        );
        // The second to get the app's lock finds it installed: a same-manifest retry, which
        // answers like the install itself.
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.env, second.env);
        assert_eq!(rows(&url, &app).await, (1, "installed".to_owned()));
        assert_eq!(backend_traces(&app).await, (true, true, true, true));
        // Installed once: neither call undid or "settled" what the other was making.
        assert_eq!(
            (
                services.postgresql_calls("Deprovision").await,
                services.mysql_calls("Deprovision").await,
            ),
            removed
        );
        let mut client = client_a.clone();
        uninstall(&mut client, &app).await.unwrap();
        assert_eq!(backend_traces(&app).await, NOTHING);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_through_two_replicas_end_consistent() {
    let services = Services::start().await;
    let (_, url) = state_database("updates").await;
    let (a, b) = (
        Coordinator::start_with_env(&services, &url, &[]).await,
        Coordinator::start_with_env(&services, &url, &[]).await,
    );
    let (client_a, client_b) = (a.client().await, b.client().await);
    let app = app_id("updates");
    let mut client = client_a.clone();
    install(&mut client, &app, json!({"postgresql": {}}))
        .await
        .unwrap();
    let both = || json!({"postgresql": {}, "mysql": {}});
    let one = || json!({"postgresql": {}});
    // Eight calls at once per round, alternating between the replicas: all adding mysql, all
    // dropping it, then a mix.
    let rounds: [(&str, Vec<serde_json::Value>, Option<u64>); 3] = [
        ("add", (0..8).map(|_| both()).collect(), Some(0)),
        ("drop", (0..8).map(|_| one()).collect(), Some(1)),
        (
            "mix",
            (0..8)
                .map(|i| if i % 3 == 0 { both() } else { one() })
                .collect(),
            None,
        ),
    ];
    for (round, manifests, mysql_removals) in rounds {
        let removed_before = services.mysql_calls("Deprovision").await;
        let calls: Vec<_> = manifests
            .into_iter()
            .enumerate()
            .map(|(i, manifest)| {
                let mut client = if i % 2 == 0 {
                    client_a.clone()
                } else {
                    client_b.clone()
                };
                let app = app.clone();
                tokio::spawn(async move {
                    client
                        .update_app(UpdateAppRequest {
                            app_id: app,
                            addons: Some(addons(manifest)),
                        })
                        .await
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        // Serialized, only a call that really drops mysql removes it: no call undoes or
        // "settles" another one's half-made update.
        let removed = services.mysql_calls("Deprovision").await - removed_before;
        if let Some(expected) = mysql_removals {
            assert_eq!(removed, expected, "round {round}: mysql removals");
        }
        // The record and the services agree: mysql is provisioned exactly when recorded.
        let recorded: BTreeSet<String> = get(&mut client, &app)
            .await
            .unwrap()
            .provisioned_addons
            .into_iter()
            .collect();
        let (pg_role, pg_db, my_user, my_db) = backend_traces(&app).await;
        assert!(pg_role && pg_db && recorded.contains("postgresql"));
        assert_eq!(
            (my_user, my_db),
            (recorded.contains("mysql"), recorded.contains("mysql")),
            "round {round}: recorded {recorded:?}"
        );
        assert_eq!(rows(&url, &app).await, (1, "installed".to_owned()));
    }
    uninstall(&mut client, &app).await.unwrap();
    assert_eq!(backend_traces(&app).await, NOTHING);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_on_one_replica_makes_the_other_wait_then_proceed() {
    let services = Services::start().await;
    let (database, url) = state_database("wait").await;
    let (a, b) = (
        Coordinator::start_with_env(&services, &url, &[]).await,
        Coordinator::start_with_env(&services, &url, &[]).await,
    );
    let app = app_id("wait");
    let manifest = json!({"postgresql": {}, "mysql": {}});
    let blocker = stall_postgresql(&app).await;
    let on_a = tokio::spawn({
        let (mut client, app, manifest) = (a.client().await, app.clone(), manifest.clone());
        async move { install(&mut client, &app, manifest).await }
    });
    // A holds the app's lock in the state database while it waits for the service.
    assert!(
        eventually(Duration::from_secs(20), || async {
            advisory_locks(&database).await == (1, 0) && backend_traces(&app).await.2
        })
        .await,
        "A never got half-way"
    );
    let on_b = tokio::spawn({
        let (mut client, app, manifest) = (b.client().await, app.clone(), manifest.clone());
        async move { install(&mut client, &app, manifest).await }
    });
    // B waits for it in the database.
    assert!(
        eventually(Duration::from_secs(20), || async {
            advisory_locks(&database).await == (1, 1)
        })
        .await,
        "B does not wait for A"
    );
    assert!(!on_b.is_finished());

    // A third replica starting now must not settle the install A is making, and its own call
    // gives up after its lock wait with a clear answer.
    let c = Coordinator::start_with_env(
        &services,
        &url,
        &[("FLEET_COORDINATOR_LOCK_WAIT_SECS", "1")],
    )
    .await;
    let mut client_c = c.client().await;
    expect_status(
        install(&mut client_c, &app, manifest.clone()).await,
        Code::Aborted,
        &format!("another call on app {app} is in progress"),
    );
    assert_eq!(rows(&url, &app).await, (1, "installing".to_owned()));
    assert!(backend_traces(&app).await.2, "C undid A's work");

    // A ends; B proceeds and finds the app installed.
    blocker.close().await.unwrap();
    let (first, second) = (on_a.await.unwrap().unwrap(), on_b.await.unwrap().unwrap());
    assert_eq!(first.env, second.env);
    assert_eq!(rows(&url, &app).await, (1, "installed".to_owned()));
    assert_eq!(backend_traces(&app).await, (true, true, true, true));
    assert!(
        eventually(Duration::from_secs(10), || async {
            advisory_locks(&database).await == (0, 0)
        })
        .await
    );
    uninstall(&mut client_c, &app).await.unwrap();
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_hanging_up_mid_call_leaves_no_lock_held() {
    let services = Services::start().await;
    let (database, url) = state_database("hangup").await;
    let (a, b) = (
        Coordinator::start_with_env(&services, &url, &[]).await,
        Coordinator::start_with_env(&services, &url, &[]).await,
    );
    let app = app_id("hangup");
    let blocker = stall_postgresql(&app).await;
    let mut client_a = a.client().await;
    let mut request = tonic::Request::new(InstallAppRequest {
        app_id: app.clone(),
        app_domain: format!("{app}.example.test"),
        addons: Some(addons(json!({"postgresql": {}}))),
    });
    request.set_timeout(Duration::from_secs(1));
    // The caller gives up while A holds the app's lock.
    let hung_up = client_a.install_app(request).await;
    assert!(hung_up.is_err(), "{hung_up:?}");
    assert_eq!(advisory_locks(&database).await, (1, 0));

    // The call ends on its own, and its lock with it: B can work on the app.
    blocker.close().await.unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            advisory_locks(&database).await == (0, 0)
        })
        .await,
        "the lock outlived the call"
    );
    let mut client_b = b.client().await;
    uninstall(&mut client_b, &app).await.unwrap();
    assert_eq!(backend_traces(&app).await, NOTHING);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_lock_call_never_leaves_the_database_lock_held() {
    let (database, url) = state_database("dropped").await;
    let wait = Duration::from_secs(30);
    let (one, two) = (
        std::sync::Arc::new(AppLocks::new(&url, wait).unwrap()),
        std::sync::Arc::new(AppLocks::new(&url, wait).unwrap()),
    );
    let held = one.lock("dropped-app").await.unwrap();
    assert_eq!(advisory_locks(&database).await, (1, 0));

    // A waiter dropped while it waits in the database.
    let waiter = tokio::spawn({
        let two = std::sync::Arc::clone(&two);
        async move { two.lock("dropped-app").await.map(|_| ()) }
    });
    assert!(
        eventually(Duration::from_secs(10), || async {
            advisory_locks(&database).await == (1, 1)
        })
        .await
    );
    waiter.abort();
    let _ = waiter.await;
    drop(held);
    // A holder dropped mid-call (its task cancelled).
    let holder = tokio::spawn({
        let two = std::sync::Arc::clone(&two);
        async move {
            let _guard = two.lock("dropped-app").await;
            std::future::pending::<()>().await;
        }
    });
    assert!(
        eventually(Duration::from_secs(10), || async {
            advisory_locks(&database).await == (1, 0)
        })
        .await
    );
    holder.abort();
    let _ = holder.await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            advisory_locks(&database).await == (0, 0)
        })
        .await,
        "a cancelled call left its lock: {:?}",
        advisory_locks(&database).await
    );
    let again = tokio::time::timeout(Duration::from_secs(5), one.lock("dropped-app")).await;
    assert!(matches!(again, Ok(Ok(_))));
}
