//! The proxyAuth wall as operators run it: a real nginx with server blocks rendered from
//! `deploy/oidc/proxy-auth.nginx.conf` in front of a tiny app that echoes what reached it, the
//! provider in-process, and a browser that resolves the apps' names to nginx. Sign-in and the
//! way back, the path rules (however spelled), Basic and bearer clients, forged identity
//! headers, sessions that belong to one app only, and logout.

use std::net::SocketAddr;

use axum::{
    Json, Router,
    http::{HeaderMap, Uri},
};
use fleet_shared::{
    proto::addon::{ProvisionRequest, ProxyAuthOptions, provision_request::Options},
    testkit::{
        NginxServer,
        harness::{provision, unique_app_id},
    },
};
use serde_json::{Value, json};

use crate::support::*;

/// The operators' template.
const TEMPLATE: &str = include_str!("../../../../deploy/oidc/proxy-auth.nginx.conf");

/// Echoes the request as the app saw it: URI, the identity headers and `Authorization`.
async fn echo(uri: Uri, headers: HeaderMap) -> Json<Value> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    Json(json!({
        "uri": uri.to_string(),
        "host": header("host"),
        "user": header("x-remote-user"),
        "underscore_user": header("x_remote_user"),
        "email": header("x-remote-email"),
        "authorization": header("authorization"),
    }))
}

/// The app on a free port of 127.0.0.1, served until the test's runtime ends.
async fn start_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback(echo))
            .await
            .unwrap();
    });
    address
}

/// Users, the provider, the echo app, and nginx serving it as `<name>.test:<port>` behind a
/// wall per name.
struct Walled {
    users: Users,
    provider: Provider,
    nginx: NginxServer,
    port: u16,
    names: Vec<&'static str>,
}

impl Walled {
    /// A wall with `options` for each `(name, options)`, on one nginx.
    async fn start(walls: &[(&'static str, ProxyAuthOptions)]) -> Self {
        let users = Users::start(slapd()).await;
        let provider = Provider::start(&users, &[]).await;
        let app = start_app().await;
        let port = free_port();
        let mut blocks = String::new();
        for (name, options) in walls {
            let domain = format!("{name}.test:{port}");
            let request = ProvisionRequest {
                app_id: unique_app_id("wall"),
                app_domain: domain.clone(),
                credential_generation: 0,
                options: Some(Options::ProxyAuth(options.clone())),
            };
            provision(&mut provider.service.client().await, request)
                .await
                .unwrap();
            blocks.push_str(
                &TEMPLATE
                    .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
                    .replace("@SERVER_NAME@", &format!("{name}.test"))
                    .replace("@APP_DOMAIN@", &domain)
                    .replace("@OIDC_HTTP@", &provider.issuer)
                    .replace("@APP_UPSTREAM@", &format!("http://{app}")),
            );
        }
        let nginx = tokio::task::spawn_blocking(move || NginxServer::start(&blocks))
            .await
            .unwrap()
            .expect("nginx (deploy/install-deps.sh installs it)");
        Self {
            users,
            provider,
            nginx,
            port,
            names: walls.iter().map(|(name, _)| *name).collect(),
        }
    }

    /// `http://<name>.test:<port><path>`.
    fn url(&self, name: &str, path: &str) -> String {
        format!("http://{name}.test:{}{path}", self.port)
    }

    /// A browser (cookies kept, redirects left to the test) that finds every app at nginx.
    fn browser(&self) -> reqwest::Client {
        let nginx = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut builder = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none());
        for name in &self.names {
            builder = builder.resolve(&format!("{name}.test"), nginx);
        }
        builder.build().unwrap()
    }

    /// Asserts that `response` is the wall sending the browser to the provider's login for
    /// app `name`, and returns where it sends it.
    fn expect_login(&self, response: &reqwest::Response, name: &str) -> String {
        assert_eq!(
            response.status(),
            303,
            "expected the wall of {name} to send the browser to the login; nginx: {}",
            self.nginx.error_log()
        );
        let to = location(response);
        let authorize = self.provider.url("/openid/auth?");
        assert!(to.starts_with(&authorize), "{to}");
        let (_, params) = redirect_params(response);
        assert_eq!(params["redirect_uri"], self.url(name, "/login"));
        assert_eq!(params["response_type"], "code");
        assert!(params["client_id"].starts_with("cid-"), "{params:?}");
        to
    }

    /// Goes through the login for app `name` after the wall sent the browser to `to_login`:
    /// the login form, back to the app's `/login`, and returns the wall's final answer there
    /// (a redirect to the page first asked for, with the session cookie).
    async fn sign_in(
        &self,
        browser: &reqwest::Client,
        name: &str,
        to_login: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let answer = sign_in(browser, &self.provider, to_login, username, password).await;
        let (back, params) = redirect_params(&answer);
        assert_eq!(back, self.url(name, "/login"));
        assert!(params.contains_key("code"), "{params:?}");
        let url = location(&answer);
        browser.get(&url).send().await.unwrap()
    }

    /// Signs `username` in at app `name` in `browser`, starting at `path`; returns the wall's
    /// final answer at `/login`.
    async fn signed_in(
        &self,
        browser: &reqwest::Client,
        name: &str,
        path: &str,
        username: &str,
    ) -> reqwest::Response {
        let refused = browser.get(self.url(name, path)).send().await.unwrap();
        let to_login = self.expect_login(&refused, name);
        self.sign_in(browser, name, &to_login, username, PASSWORD)
            .await
    }

    /// `/` of app `name` requested by a fresh browser carrying only the wall session cookie
    /// `session` (as someone who copied it would).
    async fn with_session(&self, name: &str, session: &str) -> reqwest::Response {
        self.browser()
            .get(self.url(name, "/"))
            .header("Cookie", format!("fleet_wall_session={session}"))
            .send()
            .await
            .unwrap()
    }

    async fn stop(self) {
        drop(self.nginx);
        self.provider.service.stop().await;
        self.users.stop().await;
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The app's echo of a request that reached it.
async fn reached(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "expected the app to answer");
    response.json().await.unwrap()
}

/// The value of the cookie `name` that `response` sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie: {:?}", response.headers()))
        .to_owned()
}

fn wall(path: &str, basic_auth: bool, supports_bearer_auth: bool) -> ProxyAuthOptions {
    ProxyAuthOptions {
        path: path.to_owned(),
        basic_auth,
        supports_bearer_auth,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_visitor_signs_in_and_returns_to_the_page_first_asked_for() {
    let mut walled = Walled::start(&[("app-a", wall("", false, false))]).await;
    let user = walled.users.new_user().await;
    let browser = walled.browser();

    let page = "/reports/2024?sort=desc&q=a%20b";
    let refused = browser.get(walled.url("app-a", page)).send().await.unwrap();
    let to_login = walled.expect_login(&refused, "app-a");
    let state = set_cookie(&refused, "fleet_wall_state");
    assert!(!state.is_empty());
    // The login page of the provider, for the wall's client.
    let login_page = browser.get(&to_login).send().await.unwrap();
    assert_eq!(login_page.status(), 200);

    let back = walled
        .sign_in(&browser, "app-a", &to_login, &user.username, PASSWORD)
        .await;
    assert_eq!(back.status(), 303, "{:?}", back.headers());
    assert_eq!(location(&back), page);
    let session = set_cookie(&back, "fleet_wall_session");
    assert!(!session.is_empty());

    let seen = reached(
        browser
            .get(walled.url("app-a", page))
            .header("X-Remote-User", "admin")
            .header("X_Remote_User", "admin")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["uri"], page);
    assert_eq!(seen["user"], user.username.as_str());
    assert_eq!(seen["email"], user.email.as_str());
    assert_eq!(seen["underscore_user"], Value::Null);
    assert_eq!(seen["host"], walled.url("app-a", "")["http://".len()..]);

    // A form posted anonymously also lands on the login page, not on a 405.
    let anonymous = walled.browser();
    let posted = anonymous
        .post(walled.url("app-a", "/reports"))
        .form(&[("title", "x")])
        .send()
        .await
        .unwrap();
    walled.expect_login(&posted, "app-a");
    // The wall's own endpoints are not reachable from outside by their internal path.
    let internal = anonymous
        .get(walled.url("app-a", "/_fleet_auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(internal.status(), 404);
    walled.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_excluded_path_is_open_and_no_client_can_name_the_user() {
    let walled = Walled::start(&[("hooks", wall("!/webhooks", false, false))]).await;
    let browser = walled.browser();

    let seen = reached(
        browser
            .get(walled.url("hooks", "/webhooks/x?event=push"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["uri"], "/webhooks/x?event=push");
    assert_eq!(seen["user"], Value::Null);

    let forged = reached(
        browser
            .post(walled.url("hooks", "/webhooks"))
            .header("X-Remote-User", "admin")
            .header("x-remote-user", "root")
            .header("X_Remote_User", "admin")
            .header("X-Remote-Email", "admin@example.com")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(forged["user"], Value::Null, "{forged}");
    assert_eq!(forged["underscore_user"], Value::Null, "{forged}");
    assert_eq!(forged["email"], Value::Null, "{forged}");

    for path in ["/", "/webhooksx", "/api/webhooks", "/WEBHOOKS"] {
        let refused = browser.get(walled.url("hooks", path)).send().await.unwrap();
        walled.expect_login(&refused, "hooks");
    }
    walled.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protected_prefix_is_walled_however_spelled() {
    let mut walled = Walled::start(&[("admin", wall("/admin", false, false))]).await;
    let user = walled.users.new_user().await;
    let browser = walled.browser();

    for path in ["/", "/public/admin", "/administrator"] {
        let seen = reached(browser.get(walled.url("admin", path)).send().await.unwrap()).await;
        assert_eq!(seen["uri"], path);
        assert_eq!(seen["user"], Value::Null);
    }
    for path in [
        "/admin",
        "/admin/users?id=1",
        "/%61dmin",
        "/ADMIN/x",
        "//admin",
    ] {
        let refused = browser.get(walled.url("admin", path)).send().await.unwrap();
        walled.expect_login(&refused, "admin");
    }

    let back = walled
        .signed_in(&browser, "admin", "/%61dmin/users", &user.username)
        .await;
    assert_eq!(location(&back), "/%61dmin/users");
    let seen = reached(
        browser
            .get(walled.url("admin", "/admin/users"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["user"], user.username.as_str());
    walled.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_passes_only_where_the_wall_enables_it() {
    let mut walled = Walled::start(&[
        ("basic", wall("", true, false)),
        ("plain", wall("", false, false)),
    ])
    .await;
    let user = walled.users.new_user().await;
    let client = walled.browser();

    let seen = reached(
        client
            .get(walled.url("basic", "/feed.xml"))
            .basic_auth(&user.username, Some(PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["user"], user.username.as_str());
    assert_eq!(seen["email"], user.email.as_str());

    let wrong = client
        .get(walled.url("basic", "/feed.xml"))
        .basic_auth(&user.username, Some("not the password"))
        .send()
        .await
        .unwrap();
    walled.expect_login(&wrong, "basic");
    let anonymous = client
        .get(walled.url("basic", "/feed.xml"))
        .send()
        .await
        .unwrap();
    walled.expect_login(&anonymous, "basic");

    let disabled = client
        .get(walled.url("plain", "/feed.xml"))
        .basic_auth(&user.username, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    walled.expect_login(&disabled, "plain");
    walled.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_token_reaches_the_app_only_where_the_wall_supports_it() {
    let walled = Walled::start(&[
        ("api", wall("", false, true)),
        ("plain", wall("", false, false)),
    ])
    .await;
    let client = walled.browser();

    let seen = reached(
        client
            .get(walled.url("api", "/api/v1/items"))
            .header("Authorization", "Bearer x")
            .header("X-Remote-User", "admin")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["authorization"], "Bearer x");
    assert_eq!(seen["user"], Value::Null, "{seen}");
    assert_eq!(seen["uri"], "/api/v1/items");

    let refused = client
        .get(walled.url("plain", "/api/v1/items"))
        .header("Authorization", "Bearer x")
        .send()
        .await
        .unwrap();
    walled.expect_login(&refused, "plain");
    walled.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_opens_only_the_wall_of_its_own_app() {
    let mut walled = Walled::start(&[
        ("app-a", wall("", false, false)),
        ("app-b", wall("", false, false)),
    ])
    .await;
    let user = walled.users.new_user().await;
    let browser = walled.browser();

    let back = walled
        .signed_in(&browser, "app-a", "/", &user.username)
        .await;
    let session = set_cookie(&back, "fleet_wall_session");
    let seen = reached(browser.get(walled.url("app-a", "/")).send().await.unwrap()).await;
    assert_eq!(seen["user"], user.username.as_str());

    // A's cookie, carried to B by hand (the browser would not send it there).
    let carried = walled.with_session("app-b", &session).await;
    walled.expect_login(&carried, "app-b");
    // Asked directly, the provider says the same.
    let check = reqwest::Client::new()
        .get(walled.provider.url("/proxy-auth/check"))
        .header("X-Forwarded-Host", format!("app-b.test:{}", walled.port))
        .header("X-Original-URI", "/")
        .header("Cookie", format!("fleet_wall_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 401);
    // ...and on a domain without a wall it fails closed.
    let unknown = reqwest::Client::new()
        .get(walled.provider.url("/proxy-auth/check"))
        .header("X-Forwarded-Host", "nowhere.test")
        .header("X-Original-URI", "/")
        .header("Cookie", format!("fleet_wall_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 403);
    walled.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_the_session() {
    let mut walled = Walled::start(&[("app-a", wall("", false, false))]).await;
    let user = walled.users.new_user().await;
    let browser = walled.browser();

    let back = walled
        .signed_in(&browser, "app-a", "/", &user.username)
        .await;
    let session = set_cookie(&back, "fleet_wall_session");
    reached(browser.get(walled.url("app-a", "/")).send().await.unwrap()).await;

    let logout = browser
        .get(walled.url("app-a", "/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    assert_eq!(set_cookie(&logout, "fleet_wall_session"), "");
    let (end, params) = redirect_params(&logout);
    assert_eq!(end, walled.provider.url("/openid/session/end"));
    assert_eq!(params["post_logout_redirect_uri"], walled.url("app-a", "/"));
    let ended = browser.get(location(&logout)).send().await.unwrap();
    let (home, _) = redirect_params(&ended);
    assert_eq!(home, walled.url("app-a", "/"));

    // Signed out at the wall and at the provider: the login form is shown again.
    let refused = browser.get(&home).send().await.unwrap();
    let to_login = walled.expect_login(&refused, "app-a");
    let page = browser.get(&to_login).send().await.unwrap();
    assert_eq!(page.status(), 200);
    // The old cookie is dead, not only forgotten by this browser.
    let replayed = walled.with_session("app-a", &session).await;
    walled.expect_login(&replayed, "app-a");
    walled.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_removed_from_the_directory_is_walled_out() {
    let mut walled = Walled::start(&[("app-a", wall("", true, false))]).await;
    let user = walled.users.new_user().await;
    let browser = walled.browser();
    let back = walled
        .signed_in(&browser, "app-a", "/", &user.username)
        .await;
    let session = set_cookie(&back, "fleet_wall_session");

    walled.users.delete_user(&user.username).await;
    // The wall asks the directory on the session's first use: the user is gone.
    let refused = browser.get(walled.url("app-a", "/")).send().await.unwrap();
    walled.expect_login(&refused, "app-a");
    // Their session was revoked, not only refused once; Basic fails too.
    let replayed = walled.with_session("app-a", &session).await;
    walled.expect_login(&replayed, "app-a");
    let basic = walled
        .browser()
        .get(walled.url("app-a", "/"))
        .basic_auth(&user.username, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    walled.expect_login(&basic, "app-a");
    walled.stop().await;
}
