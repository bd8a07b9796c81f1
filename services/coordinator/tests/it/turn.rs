//! The turn addon through the real turn service (in-process) on the kit's private coturn:
//! InstallApp hands out the four CLOUDRON_TURN_* variables, whose secret gets a relayed
//! allocation from coturn's own client (`turnutils_uclient`), and UninstallApp revokes it: the
//! service no longer lists the app and the same allocation is refused, while another app's
//! secret keeps working.

use std::collections::HashMap;

use serde_json::json;
use tonic::Code;

use fleet_shared::testkit::{
    Allocation, Credentials, Transport, TurnServer,
    harness::{InProcess, TestSecrets, addon_client, list},
};

use crate::support::*;

/// The turn service on the shared coturn and a coordinator routing the turn addon to it, with
/// one master key and token.
struct Fleet {
    coordinator: Coordinator,
    turn: InProcess,
    server: &'static TurnServer,
    secrets: TestSecrets,
}

impl Fleet {
    async fn start() -> Self {
        let server = TurnServer::shared().expect("coturn (deploy/install-deps.sh installs it)");
        let secrets = TestSecrets::new().unwrap();
        let mut env = secrets.common_env();
        // As services/turn/tests/it/support.rs `service_env`, and the name apps are told.
        env.extend(
            [
                ("FLEET_TURN_DIR", server.dir().display().to_string()),
                ("FLEET_TURN_REALM", server.realm().to_owned()),
                ("FLEET_TURN_SERVER", "127.0.0.1".to_owned()),
                ("FLEET_TURN_PORT", server.port().to_string()),
                ("FLEET_TURN_TLS_PORT", server.tls_port().to_string()),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        let turn = InProcess::serve::<fleet_turn::Service>(env).await.unwrap();
        let turn_url = format!("http://{}", turn.addr);
        let coordinator =
            Coordinator::start_for(&secrets, &[("FLEET_COORDINATOR_TURN_URL", &turn_url)]).await;
        Self {
            coordinator,
            turn,
            server,
            secrets,
        }
    }

    /// The app ids the turn service holds secrets for, asked over its own gRPC port.
    async fn listed(&self) -> Vec<String> {
        let mut client = addon_client(self.turn.addr.port(), Some(&self.secrets.token))
            .await
            .unwrap();
        list(&mut client).await.unwrap()
    }

    /// An allocation over UDP with credentials coturn's client mints from the bundle's secret
    /// (`-W`, user `alice`), relaying to the kit's loopback peer. uclient blocks: run off the
    /// runtime.
    async fn allocate(&self, env: &HashMap<String, String>) -> Allocation {
        let server = self.server;
        let secret = env["CLOUDRON_TURN_SECRET"].clone();
        tokio::task::spawn_blocking(move || {
            server
                .allocate(
                    Transport::Udp,
                    Credentials::Secret {
                        secret: &secret,
                        user: "alice",
                    },
                )
                .expect("turnutils_uclient (deploy/install-deps.sh installs coturn)")
        })
        .await
        .expect("the allocation task")
    }

    async fn stop(self) {
        self.coordinator.stop().await;
        self.turn.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_turn_service_gives_a_relaying_secret_and_uninstall_revokes_it() {
    if !TurnServer::runnable() {
        return;
    }
    let fleet = Fleet::start().await;
    let server = fleet.server;
    let mut client = fleet.coordinator.client().await;
    let app = app_id("turnreal");
    let bystander = app_id("turnother");

    let reply = install(&mut client, &app, json!({"turn": {}}))
        .await
        .unwrap();
    let env = env_of(&reply).clone();
    let mut names: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|name| name.starts_with("CLOUDRON_TURN_"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "CLOUDRON_TURN_PORT",
            "CLOUDRON_TURN_SECRET",
            "CLOUDRON_TURN_SERVER",
            "CLOUDRON_TURN_TLS_PORT"
        ]
    );
    assert_eq!(env["CLOUDRON_TURN_SERVER"], "127.0.0.1");
    assert_eq!(env["CLOUDRON_TURN_PORT"], server.port().to_string());
    assert_eq!(env["CLOUDRON_TURN_TLS_PORT"], server.tls_port().to_string());
    let secret = env["CLOUDRON_TURN_SECRET"].clone();
    assert_eq!(secret.len(), 64, "{secret}");
    assert!(server.secrets().unwrap().contains(&secret));
    assert_eq!(
        reply.app.as_ref().map(|app| app.provisioned_addons.clone()),
        Some(vec!["turn".to_owned()])
    );

    let other = install(&mut client, &bystander, json!({"turn": {}}))
        .await
        .unwrap();
    let other_env = env_of(&other).clone();
    assert_ne!(other_env["CLOUDRON_TURN_SECRET"], secret);
    let listed = fleet.listed().await;
    assert!(
        listed.contains(&app) && listed.contains(&bystander),
        "{listed:?}"
    );

    // The secret gets an allocation that relays data to a peer and back.
    let allocation = fleet.allocate(&env).await;
    assert!(allocation.relayed(), "{}", allocation.output);

    uninstall(&mut client, &app).await.unwrap();

    let listed = fleet.listed().await;
    assert!(!listed.contains(&app), "{listed:?}");
    assert!(listed.contains(&bystander), "{listed:?}");
    expect_status(get(&mut client, &app).await, Code::NotFound, "");
    assert!(!server.secrets().unwrap().contains(&secret));
    // The secret is revoked: the same allocation is refused.
    let refused = fleet.allocate(&env).await;
    assert!(
        !refused.allocated(),
        "allocated after UninstallApp: {}",
        refused.output
    );
    // Another app's secret keeps working.
    let kept = fleet.allocate(&other_env).await;
    assert!(kept.relayed(), "{}", kept.output);

    uninstall(&mut client, &bystander).await.unwrap();
    assert!(!fleet.listed().await.contains(&bystander));
    fleet.stop().await;
}
