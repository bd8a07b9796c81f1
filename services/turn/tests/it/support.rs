//! What the turn tests share: the coturn of the test kit, the service served in-process
//! against it, and allocations made with coturn's own client (`turnutils_uclient`) from an
//! app's bundle.

#![allow(dead_code)]

use fleet_shared::{
    proto::addon::{ProvisionRequest, TurnOptions, provision_request::Options},
    testkit::{
        Allocation, Credentials, Transport, TurnServer,
        harness::{AddonTestClient, Served, TestSecrets, provision, unique_app_id},
    },
};

pub use fleet_shared::testkit::{
    conformance::Env,
    harness::{deprovision, list},
};

/// Whether coturn can run here (it starts as root); prints why not.
pub fn runnable() -> bool {
    TurnServer::runnable()
}

/// The coturn shared by the tests of this process.
pub fn server() -> &'static TurnServer {
    TurnServer::shared().expect("coturn (deploy/install-deps.sh installs it)")
}

/// The service's settings for `server`, its directory reached at `dir`.
pub fn service_env(server: &TurnServer, dir: &std::path::Path) -> Vec<(String, String)> {
    [
        ("FLEET_TURN_DIR", dir.display().to_string()),
        ("FLEET_TURN_REALM", server.realm().to_owned()),
        ("FLEET_TURN_PORT", server.port().to_string()),
        ("FLEET_TURN_TLS_PORT", server.tls_port().to_string()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec()
}

/// The turn service served in-process against the shared coturn.
pub struct Turn {
    pub served: Served,
    pub client: AddonTestClient,
}

impl Turn {
    pub async fn start() -> Self {
        let server = server();
        let served = Served::start::<fleet_turn::Service>(
            TestSecrets::new().expect("secret files"),
            service_env(server, server.dir()),
        )
        .await
        .expect("the turn service");
        let client = served.client().await;
        Self { served, client }
    }

    /// Provisions the turn addon for `app` at `generation`.
    pub async fn provision(&mut self, app: &str, generation: u32) -> Result<Env, tonic::Status> {
        provision(&mut self.client, request(app, generation)).await
    }
}

/// A Provision request of the turn addon.
pub fn request(app: &str, generation: u32) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app.to_owned(),
        app_domain: "meet.example.test".to_owned(),
        credential_generation: generation,
        options: Some(Options::Turn(TurnOptions {})),
    }
}

/// A fresh app id for `test`.
pub fn app(test: &str) -> String {
    unique_app_id(test)
}

/// An allocation over `transport` with credentials coturn's client mints from the bundle's
/// secret (`-W`), relaying to the kit's loopback peer. Blocking: run off the runtime.
pub async fn allocate(env: &Env, transport: Transport) -> Allocation {
    let secret = env["CLOUDRON_TURN_SECRET"].clone();
    tokio::task::spawn_blocking(move || {
        server()
            .allocate(
                transport,
                Credentials::Secret {
                    secret: &secret,
                    user: "alice",
                },
            )
            .expect("turnutils_uclient")
    })
    .await
    .expect("the allocation task")
}

/// An allocation with credentials minted the TURN REST way from `secret` for `user`,
/// expiring at `expiry` (Unix seconds).
pub async fn allocate_minted(secret: &str, user: &str, expiry: u64) -> Allocation {
    let (username, password) = TurnServer::mint_at(secret, user, expiry).expect("minting");
    tokio::task::spawn_blocking(move || {
        server()
            .allocate(
                Transport::Udp,
                Credentials::Password {
                    username: &username,
                    password: &password,
                },
            )
            .expect("turnutils_uclient")
    })
    .await
    .expect("the allocation task")
}

/// Now in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
