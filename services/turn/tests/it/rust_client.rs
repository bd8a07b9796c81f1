//! What an app written in Rust does with its bundle: it mints credentials the TURN REST way
//! (`expiry:user`, base64 of HMAC-SHA1 of it under `CLOUDRON_TURN_SECRET`) and allocates a
//! relay over UDP with webrtc-rs's TURN client, then talks to a peer through it. And what it
//! cannot: credentials with an expired timestamp, under a made-up secret, or under a secret
//! that was deprovisioned are refused (401).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use base64::Engine as _;
use fleet_shared::testkit::TurnServer;
use hmac::{Hmac, Mac as _};
use sha1::Sha1;
use tokio::{net::UdpSocket, time::timeout};
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

use crate::support::*;

/// How long one TURN exchange (an allocation, a relayed round trip) may take.
const EXCHANGE: Duration = Duration::from_secs(10);

/// The credentials an app mints from its secret: username `<expiry>:<user>`, password
/// base64(HMAC-SHA1(secret, username)).
fn mint(secret: &str, user: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{user}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// A TURN client on a fresh UDP socket of loopback, listening, for the server the bundle
/// names.
async fn client(env: &Env, username: &str, password: &str) -> Client {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = format!(
        "{}:{}",
        env["CLOUDRON_TURN_SERVER"], env["CLOUDRON_TURN_PORT"]
    );
    let client = Client::new(ClientConfig {
        stun_serv_addr: address.clone(),
        turn_serv_addr: address,
        username: username.to_owned(),
        password: password.to_owned(),
        realm: server().realm().to_owned(),
        software: "fleet-turn tests".to_owned(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    client
}

/// An allocation with `username` and `password`: the client and its relay, or the error.
async fn allocate(
    env: &Env,
    username: &str,
    password: &str,
) -> Result<(Client, Box<dyn Conn + Send + Sync>), String> {
    let client = client(env, username, password).await;
    let relay = match timeout(EXCHANGE, client.allocate()).await {
        Ok(Ok(relay)) => Ok(Box::new(relay) as Box<dyn Conn + Send + Sync>),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer to the allocation".to_owned()),
    };
    match relay {
        Ok(relay) => Ok((client, relay)),
        Err(e) => {
            client.close().await.unwrap();
            Err(e)
        }
    }
}

/// Sends `message` through `relay` to `peer` and waits for it to come back (the kit's peer
/// echoes), retrying a few times: UDP may lose a datagram.
async fn round_trip(relay: &(dyn Conn + Send + Sync), peer: SocketAddr, message: &[u8]) {
    let mut buf = vec![0u8; 1500];
    for attempt in 0..5 {
        relay.send_to(message, peer).await.unwrap();
        match timeout(Duration::from_secs(2), relay.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                assert_eq!(from, peer, "a datagram from elsewhere");
                assert_eq!(&buf[..n], message, "the peer echoed something else");
                return;
            }
            Ok(Err(e)) => panic!("reading from the relay: {e}"),
            Err(_) => eprintln!("no echo on attempt {attempt}; sending again"),
        }
    }
    panic!("no echo from {peer} through the relay");
}

/// The allocation was refused for its credentials (401 Unauthorized).
fn assert_unauthorized(outcome: Result<(Client, Box<dyn Conn + Send + Sync>), String>, what: &str) {
    match outcome {
        Ok((_, relay)) => panic!("{what} allocated a relay at {:?}", relay.local_addr().ok()),
        Err(e) => assert!(e.contains("401"), "{what}: refused, but not with 401: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_client_allocates_with_credentials_minted_the_turn_rest_way_and_relays() {
    if !runnable() {
        return;
    }
    let mut turn = Turn::start().await;
    let env = turn.provision(&app("rustclient"), 0).await.unwrap();
    let secret = &env["CLOUDRON_TURN_SECRET"];
    let expiry = now() + 3600;
    let (username, password) = mint(secret, "alice", expiry);
    // The app's minting agrees with the kit's, and with a known vector of the scheme.
    assert_eq!(
        (username.clone(), password.clone()),
        TurnServer::mint_at(secret, "alice", expiry).unwrap()
    );
    assert_eq!(
        mint("north", "alice", 1_700_000_000),
        (
            "1700000000:alice".to_owned(),
            "Cd/49soE35ICqcJF/bCTn8Z4OyE=".to_owned()
        )
    );

    let (client, relay) = allocate(&env, &username, &password).await.unwrap();
    let relayed = relay.local_addr().unwrap();
    assert_eq!(relayed.ip().to_string(), "127.0.0.1", "{relayed}");
    assert!(
        server().relay_ports().contains(&relayed.port()),
        "relayed at {relayed}, outside {:?}",
        server().relay_ports()
    );
    // STUN on the same port answers with the client's own address (loopback: no NAT).
    let reflexive = timeout(EXCHANGE, client.send_binding_request())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reflexive.ip().to_string(), "127.0.0.1", "{reflexive}");

    let peer = server().peer().unwrap();
    round_trip(relay.as_ref(), peer, b"hello through the relay").await;
    round_trip(relay.as_ref(), peer, b"and a second datagram").await;
    relay.close().await.unwrap();
    client.close().await.unwrap();

    // One client holds one allocation; a new one after the first was released works again.
    let (client, relay) = allocate(&env, &username, &password).await.unwrap();
    round_trip(relay.as_ref(), peer, b"again").await;
    relay.close().await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_client_is_refused_when_expired_made_up_or_deprovisioned() {
    if !runnable() {
        return;
    }
    let mut turn = Turn::start().await;
    let (victim, other) = (app("rustrevoked"), app("rustbystander"));
    let env = turn.provision(&victim, 0).await.unwrap();
    let bystander = turn.provision(&other, 0).await.unwrap();
    let secret = env["CLOUDRON_TURN_SECRET"].clone();

    let (username, password) = mint(&secret, "alice", now() - 60);
    assert_unauthorized(
        allocate(&env, &username, &password).await,
        "an expired timestamp",
    );
    let (username, password) = mint(&"0".repeat(64), "mallory", now() + 3600);
    assert_unauthorized(
        allocate(&env, &username, &password).await,
        "a made-up secret",
    );
    // The same secret with a valid timestamp: allocated (so the refusals above were for the
    // credentials, not for the client).
    let (username, password) = mint(&secret, "alice", now() + 3600);
    let (client, relay) = allocate(&env, &username, &password).await.unwrap();
    relay.close().await.unwrap();
    client.close().await.unwrap();

    deprovision(&mut turn.client, &victim, "turn")
        .await
        .unwrap();
    assert_unauthorized(
        allocate(&env, &username, &password).await,
        "credentials under a deprovisioned secret",
    );
    // Another app's secret keeps working.
    let (username, password) = mint(&bystander["CLOUDRON_TURN_SECRET"], "bob", now() + 3600);
    let (client, relay) = allocate(&bystander, &username, &password).await.unwrap();
    round_trip(relay.as_ref(), server().peer().unwrap(), b"still here").await;
    relay.close().await.unwrap();
    client.close().await.unwrap();
}
