//! ListApps: pages in app id order, and a stored record that cannot be read is listed with its
//! problem instead of failing the call.

use futures::future::join_all;
use serde_json::json;
use sqlx::{Connection, SqliteConnection};
use tonic::Code;

use fleet_shared::proto::coordinator::{App, ListAppsRequest};

use crate::support::*;

async fn page(client: &mut Client, page_size: i32, page_token: &str) -> (Vec<App>, String) {
    let reply = client
        .list_apps(ListAppsRequest {
            page_size,
            page_token: page_token.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    (reply.apps, reply.next_page_token)
}

#[tokio::test(flavor = "multi_thread")]
async fn list_apps_pages_in_app_id_order() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let client = coordinator.client().await;
    let mut apps: Vec<String> = (0..250).map(|i| app_id(&format!("page{i}"))).collect();
    let installs = join_all(apps.iter().map(|app| {
        let mut client = client.clone();
        async move { install(&mut client, app, json!({"tls": {}})).await }
    }))
    .await;
    assert!(installs.iter().all(Result::is_ok));
    apps.sort();
    let mut client = client;

    let mut listed = Vec::new();
    let mut token = String::new();
    let mut sizes = Vec::new();
    loop {
        let (apps, next) = page(&mut client, 100, &token).await;
        sizes.push(apps.len());
        listed.extend(apps.into_iter().map(|a| a.app_id));
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(listed, apps);

    // Default and largest page sizes.
    assert_eq!(page(&mut client, 0, "").await.0.len(), 100);
    let (all, next) = page(&mut client, 5000, "").await;
    assert_eq!((all.len(), next.as_str()), (250, ""));
    expect_status(
        client
            .list_apps(ListAppsRequest {
                page_size: -1,
                page_token: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "page_size",
    );
    expect_status(
        client
            .list_apps(ListAppsRequest {
                page_size: 10,
                page_token: "not a token".to_owned(),
            })
            .await,
        Code::InvalidArgument,
        "page_token",
    );
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_record_is_listed_with_its_problem() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let good = app_id("good");
    install(&mut client, &good, json!({"tls": {}}))
        .await
        .unwrap();
    // Records written by hand, as a damaged file or an older, laxer version would leave them.
    let path = coordinator.state.path().join("state.db");
    let mut db = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let (not_json, invalid) = (app_id("broken"), app_id("stale"));
    for (app, addons) in [
        (&not_json, "{not json"),
        (&invalid, r#"{"mysql": {"multipleDatabases": "yes"}}"#),
    ] {
        sqlx::query(
            "INSERT INTO apps (app_id, app_domain, addons, pending_addons, state, updated_at) \
             VALUES ($1, 'x.example.test', $2, NULL, 'installed', '0')",
        )
        .bind(app)
        .bind(addons)
        .execute(&mut db)
        .await
        .unwrap();
    }
    db.close().await.unwrap();

    // Twice: the second call answers from the parsed manifests.
    for _ in 0..2 {
        let (apps, _) = page(&mut client, 0, "").await;
        let find = |id: &str| apps.iter().find(|a| a.app_id == id).cloned().unwrap();
        assert!(find(&not_json).problem.contains("not JSON"), "{apps:?}");
        assert!(
            find(&invalid)
                .problem
                .contains("addons.mysql.multipleDatabases"),
            "{apps:?}"
        );
        let good_app = find(&good);
        assert!(good_app.problem.is_empty());
        assert!(good_app.tls.is_some_and(|t| t.enabled));
    }
    coordinator.stop().await;
}
