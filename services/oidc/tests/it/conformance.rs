//! The addon contract's conformance suite (`fleet_shared::testkit::conformance`) for the oidc
//! addon, with the provider's state in PostgreSQL (a database of the fixture's own, reached
//! through a proxy it can be cut off by) so that two replicas share one store. An app's client
//! stores nothing: the suite checks that its credentials get it through the token endpoint.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU32, Ordering},
};

use fleet_shared::{
    AppId,
    proto::addon::{
        MysqlOptions, OidcOptions, TokenSignatureAlgorithm, provision_request::Options,
    },
    testkit::{
        CuttableProxy, PostgresServer,
        conformance::{Env, Fixture},
        harness::TestSecrets,
    },
};
use sqlx::{Connection, PgConnection, PgPool};

use crate::support::*;

/// The app the squatting client row names as its owner.
const SQUATTER_APP: &str = "someone-else";
/// The squatting row as planted: every column after `client_id`.
const SQUATTER_ROW: (&str, &str, &str, i64, &str, &str, &str, Option<&str>) = (
    SQUATTER_APP,
    "oidc",
    "squatter.example.test",
    7,
    "RS256",
    "[\"https://squatter.example.test/cb\"]",
    "[\"https://squatter.example.test/\"]",
    None,
);

type ClientRow = (
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
);

fn postgres() -> &'static PostgresServer {
    PostgresServer::shared().expect("PostgreSQL (deploy/install-deps.sh installs it)")
}

/// A database no other fixture uses.
fn unique_database() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("oidc_conformance_{}_{n}", std::process::id())
}

/// The provider with its state in a PostgreSQL database of its own.
pub struct OidcFixture {
    /// The directory users sign in against (not cut: the state store is the backend here).
    users: Users,
    /// Holds the file with the directory bind password.
    files: TestSecrets,
    /// The shared PostgreSQL, as the service reaches it.
    proxy: CuttableProxy,
    database: String,
    /// The issuer's port, which the first service started listens on.
    issuer_port: u16,
    /// How many services were configured.
    started: AtomicU32,
}

impl OidcFixture {
    /// A superuser connection to the fixture's database, not through the proxy.
    async fn database(&self) -> PgConnection {
        PgConnection::connect(&postgres().superuser_url(&self.database))
            .await
            .unwrap()
    }

    /// Whether the app's client authenticates at the token endpoint with `env`'s id and
    /// secret: a bogus code is refused as `invalid_grant` only once the client is known.
    async fn authenticates(&self, env: &Env) -> Result<(), String> {
        let response = reqwest::Client::new()
            .post(&env["CLOUDRON_OIDC_TOKEN_ENDPOINT"])
            .basic_auth(
                &env["CLOUDRON_OIDC_CLIENT_ID"],
                Some(&env["CLOUDRON_OIDC_CLIENT_SECRET"]),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", "bogus"),
                ("redirect_uri", "x"),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        match (status, body["error"].as_str()) {
            (400, Some("invalid_grant")) => Ok(()),
            (401, Some("invalid_client")) => Err("the client's credentials are refused".into()),
            _ => Err(format!("unexpected answer {status}: {body}")),
        }
    }

    async fn squatter(&self, app_id: &str) -> Option<ClientRow> {
        let client_id = fleet_oidc::clients::client_id(&AppId::parse(app_id).unwrap(), "oidc");
        sqlx::query_as(
            "SELECT app_id, addon, app_domain, generation, algorithm, redirect_uris, \
             post_logout_redirect_uris, wall FROM clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&mut self.database().await)
        .await
        .unwrap()
    }
}

impl Fixture for OidcFixture {
    type Service = fleet_oidc::Service;
    const ADDON: &'static str = "oidc";
    const STORES_DATA: bool = false;

    async fn start() -> Self {
        let database = unique_database();
        let mut admin = PgConnection::connect(&postgres().admin_url())
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut admin)
            .await
            .unwrap();
        // The schema exists before any service runs, so a row can be planted whenever the
        // suite asks; the service then finds its migration applied (same migrator, same lock).
        let state = PgPool::connect(&postgres().superuser_url(&database))
            .await
            .unwrap();
        sqlx::migrate!("./migrations").run(&state).await.unwrap();
        state.close().await;
        let users = Users::start(slapd()).await;
        let files = TestSecrets::new().unwrap();
        std::fs::write(
            files.path("ldap-bind"),
            users.settings.bind_password.expose(),
        )
        .unwrap();
        let backend = SocketAddr::from(([127, 0, 0, 1], postgres().port()));
        Self {
            users,
            files,
            proxy: CuttableProxy::start(backend).await.unwrap(),
            database,
            issuer_port: free_port(),
            started: AtomicU32::new(0),
        }
    }

    fn service_env(&self) -> Vec<(String, String)> {
        // Replicas behind one proxy name one issuer (their bundles must agree) but each binds
        // its own address: the first listens on the issuer's port, where apps reach it.
        let first = self.started.fetch_add(1, Ordering::SeqCst) == 0;
        let port = if first { self.issuer_port } else { free_port() };
        let state_url = format!(
            "postgres://postgres:{}@127.0.0.1:{}/{}",
            postgres().admin_password(),
            self.proxy.port(),
            self.database
        );
        [
            (
                "FLEET_OIDC_ISSUER",
                format!("http://127.0.0.1:{}", self.issuer_port),
            ),
            ("FLEET_OIDC_HTTP_LISTEN", format!("127.0.0.1:{port}")),
            ("FLEET_OIDC_STATE_URL", state_url),
            ("FLEET_OIDC_LDAP_URL", self.users.settings.url.clone()),
            (
                "FLEET_OIDC_LDAP_BIND_DN",
                self.users.settings.bind_dn.clone(),
            ),
            (
                "FLEET_OIDC_LDAP_BIND_PASSWORD_FILE",
                self.files.path("ldap-bind").display().to_string(),
            ),
            ("FLEET_OIDC_APP_SCHEME", "http".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec()
    }

    fn options(&self) -> Option<Options> {
        Some(Options::Oidc(OidcOptions {
            login_redirect_uris: vec!["/auth/callback".to_owned()],
            logout_redirect_uri: "/".to_owned(),
            token_signature_algorithm: TokenSignatureAlgorithm::Rs256.into(),
        }))
    }

    fn foreign_options(&self) -> Options {
        Options::Mysql(MysqlOptions::default())
    }

    async fn write(&self, env: &Env, _value: &str) -> Result<(), String> {
        self.authenticates(env).await
    }

    async fn read(&self, env: &Env) -> Result<Option<String>, String> {
        self.authenticates(env).await.map(|()| None)
    }

    async fn squat(&self, app_id: &str) {
        let client_id = fleet_oidc::clients::client_id(&AppId::parse(app_id).unwrap(), "oidc");
        let (app, addon, domain, generation, algorithm, redirects, logouts, wall) = SQUATTER_ROW;
        sqlx::query(
            "INSERT INTO clients (client_id, app_id, addon, app_domain, generation, algorithm, \
             redirect_uris, post_logout_redirect_uris, wall) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(client_id)
        .bind(app)
        .bind(addon)
        .bind(domain)
        .bind(generation)
        .bind(algorithm)
        .bind(redirects)
        .bind(logouts)
        .bind(wall)
        .execute(&mut self.database().await)
        .await
        .unwrap();
    }

    async fn squat_intact(&self, app_id: &str) -> bool {
        let (app, addon, domain, generation, algorithm, redirects, logouts, wall) = SQUATTER_ROW;
        let planted = (
            app.to_owned(),
            addon.to_owned(),
            domain.to_owned(),
            generation,
            algorithm.to_owned(),
            redirects.to_owned(),
            logouts.to_owned(),
            wall.map(str::to_owned),
        );
        self.squatter(app_id).await == Some(planted)
    }

    async fn cut_backend(&self) {
        self.proxy.cut();
    }

    async fn restore_backend(&self) {
        self.proxy.restore();
    }

    fn secrets(&self) -> Vec<String> {
        vec![
            self.users.settings.bind_password.expose().clone(),
            postgres().admin_password().to_owned(),
        ]
    }
}

fleet_shared::addon_conformance!(OidcFixture);
