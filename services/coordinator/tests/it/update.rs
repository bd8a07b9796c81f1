//! UpdateApp: add, re-provision, remove; ldap and proxyAuth only at install.

use serde_json::json;
use tonic::Code;

use fleet_shared::proto::coordinator::UpdateAppRequest;

use crate::support::*;

async fn update(
    client: &mut Client,
    app: &str,
    manifest: serde_json::Value,
) -> Result<std::collections::HashMap<String, String>, tonic::Status> {
    client
        .update_app(UpdateAppRequest {
            app_id: app.to_owned(),
            addons: Some(addons(manifest)),
        })
        .await
        .map(|r| r.into_inner().env)
}

#[tokio::test(flavor = "multi_thread")]
async fn update_adds_keeps_and_removes_addons() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let app = app_id("update");
    let installed = install(&mut client, &app, json!({"postgresql": {}}))
        .await
        .unwrap();

    let env = update(&mut client, &app, json!({"postgresql": {}, "mysql": {}}))
        .await
        .unwrap();
    assert_eq!(
        env["CLOUDRON_POSTGRESQL_URL"],
        installed.env["CLOUDRON_POSTGRESQL_URL"]
    );
    assert!(env.contains_key("CLOUDRON_MYSQL_URL"));
    assert_eq!(backend_traces(&app).await, (true, true, true, true));

    let env = update(&mut client, &app, json!({"mysql": {}}))
        .await
        .unwrap();
    assert!(!env.contains_key("CLOUDRON_POSTGRESQL_URL"));
    assert_eq!(
        backend_traces(&app).await,
        (false, false, true, true),
        "postgresql was removed"
    );
    assert_eq!(
        get(&mut client, &app).await.unwrap().provisioned_addons,
        ["mysql"]
    );

    for install_only in ["ldap", "proxyAuth"] {
        let status = expect_status(
            update(&mut client, &app, json!({"mysql": {}, install_only: {}})).await,
            Code::FailedPrecondition,
            "cannot be added to an installed app",
        );
        assert!(status.message().contains(install_only), "{status:?}");
    }
    // A failing update changes nothing: the mysql layout cannot switch.
    expect_status(
        update(
            &mut client,
            &app,
            json!({"mysql": {"multipleDatabases": true}, "postgresql": {}}),
        )
        .await,
        Code::FailedPrecondition,
        "addon mysql:",
    );
    assert_eq!(
        backend_traces(&app).await,
        (false, false, true, true),
        "the added postgresql was undone"
    );
    assert_eq!(
        get(&mut client, &app).await.unwrap().provisioned_addons,
        ["mysql"]
    );
    expect_status(
        update(&mut client, &app_id("absent"), json!({})).await,
        Code::NotFound,
        "not installed",
    );
    uninstall(&mut client, &app).await.unwrap();
    assert_eq!(backend_traces(&app).await, NOTHING);
    coordinator.stop().await;
}
