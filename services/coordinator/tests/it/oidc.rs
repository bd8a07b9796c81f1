//! oidc and proxyAuth through the real oidc service: its provider (in-process, SQLite state,
//! slapd's administrator as its directory account) makes the clients the coordinator's
//! InstallApp asks for, answers on the URLs the app is given, and loses both clients with
//! UninstallApp. Refused options reach no service.

use base64::{Engine, engine::general_purpose::STANDARD};
use std::{collections::HashMap, time::Duration};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::Code;

use fleet_shared::testkit::{
    LdapServer, free_port,
    harness::{InProcess, TestSecrets, addon_client, list},
};

use crate::support::*;

/// The oidc service and a coordinator routing oidc and proxyAuth to it, with one master key
/// and token.
struct Fleet {
    coordinator: Coordinator,
    oidc: InProcess,
    /// `http://127.0.0.1:<port>`, where the provider answers.
    issuer: String,
    secrets: TestSecrets,
    _oidc_state: tempfile::TempDir,
}

impl Fleet {
    async fn start() -> Self {
        let slapd = LdapServer::shared().expect("slapd (deploy/install-deps.sh installs it)");
        let secrets = TestSecrets::new().unwrap();
        std::fs::write(secrets.path("ldap-admin"), slapd.admin_password()).unwrap();
        let state = tempfile::tempdir().unwrap();
        let port = free_port().unwrap();
        let issuer = format!("http://127.0.0.1:{port}");
        let mut env = secrets.common_env();
        env.extend(
            [
                ("FLEET_OIDC_ISSUER", issuer.clone()),
                ("FLEET_OIDC_HTTP_LISTEN", format!("127.0.0.1:{port}")),
                (
                    "FLEET_OIDC_STATE_URL",
                    format!("sqlite://{}", state.path().join("oidc.db").display()),
                ),
                ("FLEET_OIDC_LDAP_URL", slapd.url()),
                ("FLEET_OIDC_LDAP_BIND_DN", LdapServer::ADMIN_DN.to_owned()),
                (
                    "FLEET_OIDC_LDAP_BIND_PASSWORD_FILE",
                    secrets.path("ldap-admin").display().to_string(),
                ),
                ("FLEET_OIDC_APP_SCHEME", "http".to_owned()),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        let oidc = InProcess::serve::<fleet_oidc::Service>(env).await.unwrap();
        // The provider binds its HTTP port on the service's task, after serve returns.
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        assert!(
            eventually(Duration::from_secs(30), || async {
                http("GET", &discovery, &[], "")
                    .await
                    .is_ok_and(|(status, _)| status == 200)
            })
            .await,
            "the provider does not answer on {discovery}"
        );
        let oidc_url = format!("http://{}", oidc.addr);
        let coordinator =
            Coordinator::start_for(&secrets, &[("FLEET_COORDINATOR_OIDC_URL", &oidc_url)]).await;
        Self {
            coordinator,
            oidc,
            issuer,
            secrets,
            _oidc_state: state,
        }
    }

    /// The app ids the oidc service holds clients for, asked over its own gRPC port.
    async fn listed(&self) -> Vec<String> {
        let mut client = addon_client(self.oidc.addr.port(), Some(&self.secrets.token))
            .await
            .unwrap();
        list(&mut client).await.unwrap()
    }

    async fn stop(self) {
        self.coordinator.stop().await;
        self.oidc.stop().await;
    }
}

/// One HTTP/1.0 exchange with `url` (`http://host:port/path`): the status and the body.
async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let malformed = || std::io::Error::new(std::io::ErrorKind::InvalidData, url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(malformed)?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut stream = TcpStream::connect(authority).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let malformed = || std::io::Error::new(std::io::ErrorKind::InvalidData, response.clone());
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(malformed)?;
    Ok((status, body.to_owned()))
}

/// What the token endpoint says to `id:secret` (HTTP Basic) presenting a code it never issued.
async fn redeem_bogus_code(env: &HashMap<String, String>, id: &str, secret: &str) -> (u16, String) {
    let authorization = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    http(
        "POST",
        &env["CLOUDRON_OIDC_TOKEN_ENDPOINT"],
        &[
            ("Authorization", &authorization),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "grant_type=authorization_code&code=bogus",
    )
    .await
    .unwrap()
}

/// The wall's verdict on `uri` of `domain`, asked as the reverse proxy asks it.
async fn wall_check(issuer: &str, domain: &str, uri: &str) -> u16 {
    let url = format!("{issuer}/proxy-auth/check");
    let headers = [("X-Forwarded-Host", domain), ("X-Original-URI", uri)];
    http("GET", &url, &headers, "").await.unwrap().0
}

fn is_hex(text: &str, digits: usize) -> bool {
    text.len() == digits && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_oidc_service_makes_working_clients_and_uninstall_removes_both() {
    let fleet = Fleet::start().await;
    let mut client = fleet.coordinator.client().await;
    let app = app_id("oidcreal");
    let domain = format!("{app}.example.test");

    let reply = install(
        &mut client,
        &app,
        json!({
            "oidc": {
                "loginRedirectUri": "/auth/callback, app.immich:/",
                "logoutRedirectUri": "/home",
                "tokenSignatureAlgorithm": "EdDSA"
            },
            "proxyAuth": {"path": "!/webhooks", "basicAuth": true}
        }),
    )
    .await
    .unwrap();
    let env = env_of(&reply);

    // Every variable of the oidc addon, and none besides (proxyAuth returns none).
    let issuer = &fleet.issuer;
    let mut oidc_vars: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|name| name.starts_with("CLOUDRON_OIDC_"))
        .collect();
    oidc_vars.sort_unstable();
    assert_eq!(
        oidc_vars,
        [
            "CLOUDRON_OIDC_AUTH_ENDPOINT",
            "CLOUDRON_OIDC_CLIENT_ID",
            "CLOUDRON_OIDC_CLIENT_SECRET",
            "CLOUDRON_OIDC_DISCOVERY_URL",
            "CLOUDRON_OIDC_ISSUER",
            "CLOUDRON_OIDC_KEYS_ENDPOINT",
            "CLOUDRON_OIDC_PROFILE_ENDPOINT",
            "CLOUDRON_OIDC_PROVIDER_NAME",
            "CLOUDRON_OIDC_TOKEN_ENDPOINT",
        ]
    );
    for (name, value) in [
        ("PROVIDER_NAME", "Cloudron".to_owned()),
        ("ISSUER", issuer.clone()),
        (
            "DISCOVERY_URL",
            format!("{issuer}/.well-known/openid-configuration"),
        ),
        ("AUTH_ENDPOINT", format!("{issuer}/openid/auth")),
        ("TOKEN_ENDPOINT", format!("{issuer}/openid/token")),
        ("KEYS_ENDPOINT", format!("{issuer}/openid/jwks")),
        ("PROFILE_ENDPOINT", format!("{issuer}/openid/userinfo")),
    ] {
        assert_eq!(env[&format!("CLOUDRON_OIDC_{name}")], value, "{name}");
    }
    let id = env["CLOUDRON_OIDC_CLIENT_ID"].clone();
    let secret = env["CLOUDRON_OIDC_CLIENT_SECRET"].clone();
    assert!(
        id.strip_prefix("cid-").is_some_and(|hex| is_hex(hex, 32)),
        "{id}"
    );
    assert!(is_hex(&secret, 64), "the client secret is 64 hex digits");
    assert_eq!(env["CLOUDRON_APP_DOMAIN"], domain);

    // Discovery answers at the URL the app was given, naming the same issuer and token endpoint.
    let (status, body) = http("GET", &env["CLOUDRON_OIDC_DISCOVERY_URL"], &[], "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let metadata: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(metadata["issuer"], json!(issuer));
    assert_eq!(
        metadata["token_endpoint"],
        json!(env["CLOUDRON_OIDC_TOKEN_ENDPOINT"])
    );

    assert!(fleet.listed().await.contains(&app));
    // Past client authentication, a code it never issued is the grant's fault: the client
    // exists and the secret is its own. A wrong secret is refused before that.
    let (status, body) = redeem_bogus_code(env, &id, &secret).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_grant"), "{body}");
    let (status, body) = redeem_bogus_code(env, &id, &"0".repeat(64)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid_client"), "{body}");
    // The wall stands in front of the app's domain with the manifest's path rule.
    assert_eq!(wall_check(issuer, &domain, "/").await, 401);
    assert_eq!(wall_check(issuer, &domain, "/webhooks/push").await, 204);

    uninstall(&mut client, &app).await.unwrap();

    assert!(!fleet.listed().await.contains(&app));
    let (status, body) = redeem_bogus_code(env, &id, &secret).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid_client"), "{body}");
    // No wall for the domain: the proxy fails closed.
    assert_eq!(wall_check(issuer, &domain, "/").await, 403);

    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_oidc_options_create_no_client() {
    let fleet = Fleet::start().await;
    let mut client = fleet.coordinator.client().await;
    // A valid app beside it shows the service's List names what it holds.
    let valid = app_id("oidcvalid");
    install(
        &mut client,
        &valid,
        json!({"oidc": {"loginRedirectUri": "/callback"}}),
    )
    .await
    .unwrap();
    let app = app_id("oidcrefused");

    let status = expect_status(
        install(
            &mut client,
            &app,
            json!({
                "oidc": {"tokenSignatureAlgorithm": "HS256", "loginRedirectUri": "callback"},
                "proxyAuth": {"path": "!/webhooks", "basicAuth": true}
            }),
        )
        .await,
        Code::InvalidArgument,
        "addons.oidc.tokenSignatureAlgorithm",
    );
    assert!(
        status.message().contains("addons.oidc.loginRedirectUri"),
        "{status:?}"
    );

    let listed = fleet.listed().await;
    assert!(listed.contains(&valid), "{listed:?}");
    assert!(!listed.contains(&app), "{listed:?}");
    // Not even the valid proxyAuth half was made.
    let domain = format!("{app}.example.test");
    assert_eq!(wall_check(&fleet.issuer, &domain, "/").await, 403);
    expect_status(get(&mut client, &app).await, Code::NotFound, "");

    uninstall(&mut client, &valid).await.unwrap();
    fleet.stop().await;
}
