//! Provision against writing the same rows directly, and allocations per second with a Rust
//! TURN client (webrtc-rs's `turn`), on a private coturn (as root).
//!
//!     cargo bench -p fleet-turn --bench turn [-- ROUNDS]
//!
//! Provision is timed through the service's gRPC face (validation, the secret derived with
//! HMAC-SHA256 from the master key, one `BEGIN IMMEDIATE` transaction on coturn's database that
//! reads the app's row and writes `turn_secret` and `fleet_turn_apps`); the direct write is the
//! same derivation and the same two `INSERT`s in one `BEGIN IMMEDIATE` transaction on a
//! connection kept open, the floor any way of writing the secret has. Allocations are made
//! over UDP with credentials minted the TURN REST way from a provisioned secret: each round a
//! new client on a new socket allocates (two requests: the 401 challenge, then the
//! authenticated one) and releases it (a Refresh with lifetime 0), ROUNDS/4 rounds in a row,
//! then as many at once (at most half the server's relay ports).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use fleet_shared::{
    AppId,
    credentials::MasterKey,
    proto::addon::{ProvisionRequest, TurnOptions, provision_request::Options},
    testkit::{
        TurnServer,
        bench::Samples,
        harness::{InProcess, TestSecrets, addon_client},
        host::running_as_root,
    },
};
use futures::future::join_all;
use hmac::{Hmac, Mac as _};
use sha1::Sha1;
use sqlx::{Connection, SqliteConnection};
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

fn main() {
    if !running_as_root() {
        eprintln!("SKIPPED: the TURN backend needs root (cluster.sh starts turnserver as root)");
        return;
    }
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200)
        .max(4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = TurnServer::start().expect("coturn (deploy/install-deps.sh installs it)");
    runtime.block_on(run(&server, rounds));
}

fn request(app: String) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app,
        app_domain: "bench.example.test".to_owned(),
        credential_generation: 0,
        options: Some(Options::Turn(TurnOptions {})),
    }
}

async fn run(server: &TurnServer, rounds: usize) {
    let secrets = TestSecrets::new().unwrap();
    let mut env = secrets.common_env();
    env.extend(
        [
            ("FLEET_TURN_DIR", server.dir().display().to_string()),
            ("FLEET_TURN_REALM", server.realm().to_owned()),
            ("FLEET_TURN_PORT", server.port().to_string()),
            ("FLEET_TURN_TLS_PORT", server.tls_port().to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let service = InProcess::serve::<fleet_turn::Service>(env).await.unwrap();
    let mut client = addon_client(service.addr.port(), Some(&secrets.token))
        .await
        .unwrap();

    println!("Secrets ({rounds} each, sequential):");
    let mut provision = Samples::default();
    for n in 0..rounds {
        provision
            .time(client.provision(request(format!("bench-provision-{n}"))))
            .await
            .unwrap();
    }
    let master_key =
        MasterKey::from_file(&secrets.path("master.key")).expect("the test master key");
    let url = format!("sqlite://{}", server.db_path().display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let mut direct = Samples::default();
    for n in 0..rounds {
        let app = AppId::parse(&format!("bench-direct-{n}")).unwrap();
        direct
            .time(async {
                let secret = master_key.derive_password("turn", &app, 0);
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
                sqlx::query("INSERT OR IGNORE INTO turn_secret (realm, value) VALUES (?1, ?2)")
                    .bind(server.realm())
                    .bind(secret.expose())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(
                    "INSERT INTO fleet_turn_apps (name, app_id, secret) VALUES (?1, ?2, ?3)",
                )
                .bind(app.resource_name().as_str())
                .bind(app.as_str())
                .bind(secret.expose())
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            })
            .await;
    }
    drop(conn);
    println!("{}", provision.report("Provision (gRPC, turn)"));
    println!("{}", direct.report("the same rows written directly"));
    println!(
        "  ratio                                {:.2}x",
        provision.ratio_to(&direct)
    );

    let concurrent = Instant::now();
    let calls = (0..rounds).map(|n| {
        let mut client = client.clone();
        async move {
            client
                .provision(request(format!("bench-concurrent-{n}")))
                .await
                .unwrap();
        }
    });
    join_all(calls).await;
    let elapsed = concurrent.elapsed();
    println!(
        "  {rounds} concurrent Provisions           {:>8.2} ms  ({:.0}/s)",
        elapsed.as_secs_f64() * 1e3,
        rounds as f64 / elapsed.as_secs_f64()
    );

    // Allocations with credentials minted from an app's secret.
    let env = client
        .provision(request("bench-allocate".to_owned()))
        .await
        .unwrap()
        .into_inner()
        .env;
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let (username, password) = mint(&env["CLOUDRON_TURN_SECRET"], "bench", expiry);
    let address = format!(
        "{}:{}",
        env["CLOUDRON_TURN_SERVER"], env["CLOUDRON_TURN_PORT"]
    );
    let sequential = (rounds / 4).max(1);
    println!("Allocations over UDP (webrtc-rs turn client, allocate + release):");
    let mut allocations = Samples::default();
    let started = Instant::now();
    for _ in 0..sequential {
        allocations
            .time(allocate_and_release(&address, &username, &password))
            .await;
    }
    let elapsed = started.elapsed();
    println!("{}", allocations.report("one allocate + release, in a row"));
    println!(
        "  {sequential} in a row                          {:>8.2} ms  ({:.0}/s)",
        elapsed.as_secs_f64() * 1e3,
        sequential as f64 / elapsed.as_secs_f64()
    );
    let at_once = sequential.min(server.relay_ports().len() / 2);
    let started = Instant::now();
    join_all((0..at_once).map(|_| allocate_and_release(&address, &username, &password))).await;
    let elapsed = started.elapsed();
    println!(
        "  {at_once} at once                            {:>8.2} ms  ({:.0}/s)",
        elapsed.as_secs_f64() * 1e3,
        at_once as f64 / elapsed.as_secs_f64()
    );
    service.stop().await;
}

/// `expiry:user` and base64(HMAC-SHA1(secret, expiry:user)).
fn mint(secret: &str, user: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{user}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// A new client on a new socket allocates a relay and releases it.
async fn allocate_and_release(address: &str, username: &str, password: &str) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(ClientConfig {
        stun_serv_addr: address.to_owned(),
        turn_serv_addr: address.to_owned(),
        username: username.to_owned(),
        password: password.to_owned(),
        realm: String::new(),
        software: "fleet-turn bench".to_owned(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    let relay = tokio::time::timeout(Duration::from_secs(10), client.allocate())
        .await
        .expect("an answer to the allocation")
        .expect("the allocation");
    relay.close().await.unwrap();
    client.close().await.unwrap();
}
