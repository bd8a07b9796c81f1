//! What an app does with its bundle, and what an attacker holding one cannot: allocations
//! on every transport with its own secret; refused with a made-up secret, an expired
//! timestamp, a rotated or a deprovisioned secret, while other apps' keep working.

use fleet_shared::testkit::Transport;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_bundle_allocates_relays_on_every_transport() {
    if !runnable() {
        return;
    }
    let mut turn = Turn::start().await;
    let app = app("alloc");
    let env = turn.provision(&app, 0).await.unwrap();
    let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
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
    assert_eq!(env["CLOUDRON_TURN_PORT"], server().port().to_string());
    assert_eq!(
        env["CLOUDRON_TURN_TLS_PORT"],
        server().tls_port().to_string()
    );
    assert_eq!(env["CLOUDRON_TURN_SECRET"].len(), 64);
    for transport in [Transport::Udp, Transport::Tcp, Transport::Tls] {
        let allocation = allocate(&env, transport).await;
        assert!(allocation.relayed(), "{transport:?}: {}", allocation.output);
    }
    // The same call again: the same secret.
    assert_eq!(turn.provision(&app, 0).await.unwrap(), env);
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_expired_rotated_and_deprovisioned_secrets_are_refused() {
    if !runnable() {
        return;
    }
    let mut turn = Turn::start().await;
    let (victim, other) = (app("revoked"), app("bystander"));
    let env = turn.provision(&victim, 0).await.unwrap();
    let bystander = turn.provision(&other, 0).await.unwrap();
    let secret = env["CLOUDRON_TURN_SECRET"].clone();

    let made_up = allocate_minted(&"0".repeat(64), "mallory", now() + 3600).await;
    assert!(
        !made_up.allocated(),
        "a made-up secret allocated: {}",
        made_up.output
    );
    let expired = allocate_minted(&secret, "alice", now() - 60).await;
    assert!(
        !expired.allocated(),
        "an expired timestamp allocated: {}",
        expired.output
    );
    let valid = allocate_minted(&secret, "alice", now() + 3600).await;
    assert!(valid.relayed(), "{}", valid.output);

    // Rotation: the new secret works, the old one no longer does.
    let rotated = turn.provision(&victim, 1).await.unwrap();
    assert_ne!(rotated["CLOUDRON_TURN_SECRET"], secret);
    assert!(allocate(&rotated, Transport::Udp).await.relayed());
    assert!(
        !allocate_minted(&secret, "alice", now() + 3600)
            .await
            .allocated()
    );

    // Deprovision: the app's secret is gone at once; the bystander's keeps working.
    deprovision(&mut turn.client, &victim, "turn")
        .await
        .unwrap();
    let gone = allocate(&rotated, Transport::Udp).await;
    assert!(
        !gone.allocated(),
        "allocated after Deprovision: {}",
        gone.output
    );
    assert!(allocate(&bystander, Transport::Tcp).await.relayed());
    let listed = list(&mut turn.client).await.unwrap();
    assert!(
        !listed.contains(&victim) && listed.contains(&other),
        "{listed:?}"
    );
    assert!(
        !server()
            .secrets()
            .unwrap()
            .contains(&rotated["CLOUDRON_TURN_SECRET"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_provisions_of_many_apps_lose_no_secret() {
    if !runnable() {
        return;
    }
    let turn = Turn::start().await;
    let apps: Vec<String> = (0..40).map(|_| app("many")).collect();
    let envs = futures::future::join_all(apps.iter().map(|app| {
        let mut client = turn.client.clone();
        let request = request(app, 0);
        async move { fleet_shared::testkit::harness::provision(&mut client, request).await }
    }))
    .await;
    let stored = server().secrets().unwrap();
    for (app, env) in apps.iter().zip(envs) {
        let env = env.unwrap_or_else(|e| panic!("Provision of {app}: {e:?}"));
        assert!(
            stored.contains(&env["CLOUDRON_TURN_SECRET"]),
            "the secret of {app} is not in coturn's table"
        );
    }
}
