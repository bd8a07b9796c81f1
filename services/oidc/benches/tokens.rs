//! ID-token signing, the code exchange and the full login round trip, per algorithm, against
//! the real provider (in-process, SQLite state) and a private slapd.
//!
//!     cargo bench -p fleet-oidc --bench tokens [-- ROUNDS]
//!
//! Signing is timed on the key ring alone; the exchange is the token endpoint over HTTP
//! (client authentication, the code spent, the user read from slapd, tokens stored and the ID
//! token signed); the round trip is what a new browser session costs: the login page, the
//! form (a bind to slapd as the user), the redirect with the code and its exchange.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use fleet_oidc::{
    keys::{self, Algorithm, IdTokenInput, KeyRing},
    user::User,
};
use fleet_shared::{
    proto::addon::{
        OidcOptions, ProvisionRequest, TokenSignatureAlgorithm, provision_request::Options,
    },
    testkit::{
        LdapServer,
        bench::Samples,
        harness::{InProcess, TestSecrets, addon_client, eventually},
    },
};
use ldap3::{LdapConnAsync, exop::PasswordModify};

const PASSWORD: &str = "correct horse battery";

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    signing(rounds * 10);
    let slapd = LdapServer::start().expect("slapd");
    runtime.block_on(provider(&slapd, rounds));
}

fn signing(rounds: usize) {
    let user = User {
        username: "ada".to_owned(),
        email: "ada@example.com".to_owned(),
        display_name: "Ada Lovelace".to_owned(),
        given_name: "Ada".to_owned(),
        family_name: "Lovelace".to_owned(),
        locale: "en-US".to_owned(),
        groups: vec!["staff".to_owned()],
    };
    let scopes = ["openid", "profile", "email"].map(str::to_owned);
    println!("ID-token signing ({rounds} tokens each, one thread):");
    for algorithm in [Algorithm::Rs256, Algorithm::EdDsa] {
        let ring = KeyRing::new(vec![keys::generate(algorithm).unwrap()]).unwrap();
        let input = IdTokenInput {
            issuer: "https://my.example.com",
            client_id: "cid-0123",
            user: &user,
            nonce: Some("n-0S6_WzA2Mj"),
            auth_time: 1_700_000_000,
            lifetime: Duration::from_secs(3600),
            access_token: Some("an-access-token"),
            code: Some("a-code"),
            scopes: &scopes,
        };
        let started = Instant::now();
        for _ in 0..rounds {
            ring.sign_id_token(algorithm, &input).unwrap();
        }
        let per_second = rounds as f64 / started.elapsed().as_secs_f64();
        println!("  {:<36} {per_second:>10.0} tokens/s", algorithm.as_str());
    }
}

async fn provider(slapd: &LdapServer, rounds: usize) {
    add_user(slapd, "ada").await;
    let secrets = TestSecrets::new().unwrap();
    std::fs::write(secrets.path("ldap-admin"), slapd.admin_password()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
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
            (
                "FLEET_OIDC_LDAP_BIND_PASSWORD_FILE",
                secrets.path("ldap-admin").display().to_string(),
            ),
            ("FLEET_OIDC_APP_SCHEME", "http".to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value)),
    );
    let server = InProcess::serve::<fleet_oidc::Service>(env).await.unwrap();
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    assert!(
        eventually(Duration::from_secs(30), || async {
            reqwest::get(&discovery)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await
    );
    let mut grpc = addon_client(server.addr.port(), Some(&secrets.token))
        .await
        .unwrap();
    println!("The provider ({rounds} rounds each, release build, SQLite state):");
    for (name, algorithm) in [
        ("RS256", TokenSignatureAlgorithm::Rs256),
        ("EdDSA", TokenSignatureAlgorithm::Eddsa),
    ] {
        let env: HashMap<String, String> = grpc
            .provision(ProvisionRequest {
                app_id: format!("bench-{name}").to_lowercase(),
                app_domain: "chat.example.com".to_owned(),
                credential_generation: 0,
                options: Some(Options::Oidc(OidcOptions {
                    login_redirect_uris: vec!["/cb".to_owned()],
                    logout_redirect_uri: String::new(),
                    token_signature_algorithm: algorithm.into(),
                })),
            })
            .await
            .unwrap()
            .into_inner()
            .env
            .into_iter()
            .collect();
        let client = Client {
            issuer: issuer.clone(),
            id: env["CLOUDRON_OIDC_CLIENT_ID"].clone(),
            secret: env["CLOUDRON_OIDC_CLIENT_SECRET"].clone(),
        };
        let mut exchange = Samples::default();
        let mut round_trip = Samples::default();
        let signed_in = browser();
        let code = client.sign_in(&signed_in).await;
        client.exchange(&code).await;
        for _ in 0..rounds {
            // A browser with a provider session: authorize answers with a code at once.
            let code = client.authorize(&signed_in).await;
            exchange.time(client.exchange(&code)).await;
            round_trip
                .time(async {
                    let code = client.sign_in(&browser()).await;
                    client.exchange(&code).await
                })
                .await;
        }
        println!("{}", exchange.report(&format!("{name}: code exchange")));
        println!(
            "  {:<36} {:>10.0} exchanges/s (one at a time)",
            format!("{name}: "),
            1.0 / exchange.mean().as_secs_f64()
        );
        println!(
            "{}",
            round_trip.report(&format!("{name}: full login round trip"))
        );
    }
    server.stop().await;
}

struct Client {
    issuer: String,
    id: String,
    secret: String,
}

impl Client {
    fn authorize_url(&self) -> String {
        format!(
            "{}/openid/auth?client_id={}&redirect_uri=http%3A%2F%2Fchat.example.com%2Fcb\
             &response_type=code&scope=openid%20profile%20email&state=s&nonce=n",
            self.issuer, self.id
        )
    }

    /// The login page, the form, and the code from the redirect.
    async fn sign_in(&self, browser: &reqwest::Client) -> String {
        let html = browser
            .get(self.authorize_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut form: Vec<(String, String)> = html
            .split("<input type=\"hidden\" ")
            .skip(1)
            .filter_map(|input| {
                let name = input.split("name=\"").nth(1)?.split('"').next()?;
                let value = input.split("value=\"").nth(1)?.split('"').next()?;
                Some((name.to_owned(), value.replace("&amp;", "&")))
            })
            .collect();
        form.push(("username".to_owned(), "ada".to_owned()));
        form.push(("password".to_owned(), PASSWORD.to_owned()));
        let answer = browser
            .post(format!("{}/openid/auth/login", self.issuer))
            .form(&form)
            .send()
            .await
            .unwrap();
        code_of(&answer)
    }

    async fn authorize(&self, browser: &reqwest::Client) -> String {
        code_of(&browser.get(self.authorize_url()).send().await.unwrap())
    }

    async fn exchange(&self, code: &str) -> serde_json::Value {
        let answer = reqwest::Client::new()
            .post(format!("{}/openid/token", self.issuer))
            .basic_auth(&self.id, Some(&self.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", "http://chat.example.com/cb"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        answer.json().await.unwrap()
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn code_of(answer: &reqwest::Response) -> String {
    assert_eq!(answer.status(), 303, "expected the redirect with the code");
    let location = answer.headers()["location"].to_str().unwrap();
    let query = location.split_once('?').unwrap().1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "code")
        .unwrap()
        .1
        .into_owned()
}

/// `cn=<username>,ou=users,dc=cloudron` with [`PASSWORD`], written as the directory service
/// writes users.
async fn add_user(slapd: &LdapServer, username: &str) {
    let (connection, mut ldap) = LdapConnAsync::new(&slapd.url()).await.unwrap();
    ldap3::drive!(connection);
    ldap.simple_bind("cn=admin,dc=cloudron", slapd.admin_password())
        .await
        .unwrap()
        .success()
        .unwrap();
    let dn = format!("cn={username},ou=users,dc=cloudron");
    let classes = [
        "top",
        "person",
        "organizationalPerson",
        "inetOrgPerson",
        "user",
    ];
    let attributes = vec![
        ("objectClass", classes.into_iter().collect()),
        ("objectCategory", ["person"].into_iter().collect()),
        ("cn", [username].into_iter().collect()),
        ("uid", [username].into_iter().collect()),
        ("username", [username].into_iter().collect()),
        ("sAMAccountName", [username].into_iter().collect()),
        ("mail", ["ada@example.com"].into_iter().collect()),
        ("displayName", ["Ada Lovelace"].into_iter().collect()),
        ("givenName", ["Ada"].into_iter().collect()),
        ("sn", ["Lovelace"].into_iter().collect()),
    ];
    ldap.add(&dn, attributes).await.unwrap().success().unwrap();
    ldap.extended(PasswordModify {
        user_id: Some(&dn),
        old_pass: None,
        new_pass: Some(PASSWORD),
    })
    .await
    .unwrap()
    .success()
    .unwrap();
    ldap.unbind().await.unwrap();
}
