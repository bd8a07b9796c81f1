//! Bounds: what one app may declare, and how much of a request an error message echoes.

use serde_json::{Map, Value, json};
use tonic::Code;

use fleet_shared::proto::coordinator::InstallAppRequest;

use crate::support::*;

/// Status messages travel in one header; a default client takes a few KB.
const SHORT: usize = 4096;

#[tokio::test(flavor = "multi_thread")]
async fn huge_requests_get_short_invalid_argument_messages() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;

    // 10,000 unknown addons: the first problems by name, the rest counted.
    let unknown: Map<String, Value> = (0..10_000)
        .map(|i| (format!("unknown{i:05}"), json!({})))
        .collect();
    let app = app_id("unknown");
    let status = expect_status(
        install(&mut client, &app, Value::Object(unknown)).await,
        Code::InvalidArgument,
        "invalid request (10001 problem(s))",
    );
    let message = status.message();
    assert!(message.len() < SHORT, "{} bytes", message.len());
    assert!(
        message.contains("addons.unknown00000: unknown addon"),
        "{message}"
    );
    assert!(message.contains("and 9981 more problems"), "{message}");

    // A 9,000-character domain is INVALID_ARGUMENT, not a client-side metadata error.
    let status = expect_status(
        client
            .install_app(InstallAppRequest {
                app_id: app.clone(),
                app_domain: "a".repeat(9000),
                addons: Some(addons(json!({}))),
            })
            .await,
        Code::InvalidArgument,
        "app_domain: is 9000 bytes",
    );
    assert!(status.message().len() < 512, "{}", status.message());

    // Values are quoted only up to a short length.
    let status = expect_status(
        client
            .install_app(InstallAppRequest {
                app_id: app.clone(),
                app_domain: "x y".repeat(80),
                addons: Some(addons(json!({
                    "oidc": {"tokenSignatureAlgorithm": "é".repeat(1000)},
                }))),
            })
            .await,
        Code::InvalidArgument,
        "app_domain: \"x yx y",
    );
    let message = status.message();
    assert!(message.contains("…\" is not a domain name"), "{message}");
    assert!(
        message.contains("addons.oidc.tokenSignatureAlgorithm"),
        "{message}"
    );
    assert!(message.len() < 1024, "{message}");
    expect_status(
        get(&mut client, &app).await,
        Code::NotFound,
        "not installed",
    );
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bound_names_its_field() {
    let services = Services::start().await;
    let coordinator = Coordinator::start(&services).await;
    let mut client = coordinator.client().await;
    let app = app_id("bounds");
    let mut tasks: Map<String, Value> = (0..101)
        .map(|i| {
            let task = json!({"schedule": "* * * * *", "command": "x".repeat(2000)});
            (format!("task{i}"), task)
        })
        .collect();
    tasks.insert(
        "n".repeat(200),
        json!({"schedule": "* * * * *", "command": "true"}),
    );
    let mut extensions: Vec<Value> = (0..1001).map(|i| json!(format!("e{i:0100}"))).collect();
    extensions.push(json!("e".repeat(3000)));
    let status = expect_status(
        client
            .install_app(InstallAppRequest {
                app_id: app.clone(),
                app_domain: format!("{}.example.test", "a.".repeat(130)),
                addons: Some(addons(json!({
                    "scheduler": tasks,
                    "postgresql": {"extensions": extensions},
                    "oidc": {"loginRedirectUri": format!("/{}", "c".repeat(3000))},
                    "proxyAuth": {"path": format!("/{}", "p".repeat(3000))},
                }))),
            })
            .await,
        Code::InvalidArgument,
        "invalid request",
    );
    let message = status.message();
    for want in [
        "app_domain: is 273 bytes; a domain name has at most 253",
        "addons: has ",
        "keys and list items; at most 1000",
        "bytes; at most 262144 are accepted",
        "addons.scheduler: has 102 tasks; at most 100",
        "the task name is 200 bytes; at most 128",
        "addons.postgresql.extensions[1001]: is 3000 bytes; at most 2048",
        "addons.oidc.loginRedirectUri: is 3001 bytes; at most 2048",
        "addons.proxyAuth.path: is 3001 bytes; at most 2048",
    ] {
        assert!(message.contains(want), "{want:?} not in {message}");
    }
    assert!(message.len() < SHORT, "{} bytes", message.len());
    expect_status(
        get(&mut client, &app).await,
        Code::NotFound,
        "not installed",
    );

    // At the bounds, a manifest is accepted.
    let tasks: Map<String, Value> = (0..100)
        .map(|i| {
            let task = json!({"schedule": "*/5 * * * *", "command": "y".repeat(2048)});
            (format!("{i:0128}"), task)
        })
        .collect();
    let domain = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(domain.len(), 253);
    let reply = client
        .install_app(InstallAppRequest {
            app_id: app.clone(),
            app_domain: domain,
            addons: Some(addons(json!({"scheduler": tasks}))),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.app.unwrap().scheduled_tasks.len(), 100);
    // A proxyAuth path at the bound passes validation: only the missing oidc service stops it.
    expect_status(
        install(
            &mut client,
            &app_id("longpath"),
            json!({"proxyAuth": {"path": format!("/{}", "p".repeat(2047))}}),
        )
        .await,
        Code::FailedPrecondition,
        "no service for proxyAuth",
    );
    uninstall(&mut client, &app).await.unwrap();
    coordinator.stop().await;
}
