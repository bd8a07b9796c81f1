//! What the provider refuses, each with the answer a client library expects: the OAuth error
//! of the token endpoint (read through `openidconnect` where an app would use it), the error
//! redirect of the authorization endpoint, or a page that sends the code nowhere.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleet_shared::{
    proto::{addon::TokenSignatureAlgorithm, directory::User as DirectoryUser},
    testkit::harness::{deprovision, eventually},
};
use openidconnect::{
    AuthType, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    HttpClientError, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, StandardErrorResponse, TokenResponse,
    core::{
        CoreClient, CoreErrorResponseType, CoreProviderMetadata, CoreResponseType,
        CoreTokenResponse,
    },
};

use crate::support::*;

/// Where the test app's codes go: its registered `/auth/callback` (the provider runs with
/// `FLEET_OIDC_APP_SCHEME=http`).
const REDIRECT: &str = "http://chat.example.com/auth/callback";

type TokenResult = Result<
    CoreTokenResponse,
    RequestTokenError<
        HttpClientError<reqwest::Error>,
        StandardErrorResponse<CoreErrorResponseType>,
    >,
>;

/// A directory with one user, the provider, an app registered with `uris`, and a browser.
struct Setup {
    users: Users,
    user: DirectoryUser,
    provider: Provider,
    app: App,
    browser: reqwest::Client,
}

impl Setup {
    async fn start(extra: &[(&str, &str)], uris: &[&str]) -> Self {
        let mut users = Users::start(slapd()).await;
        let user = users.new_user().await;
        let provider = Provider::start(&users, extra).await;
        let app = provider
            .new_app("chat.example.com", uris, TokenSignatureAlgorithm::Rs256)
            .await;
        Self {
            users,
            user,
            provider,
            app,
            browser: browser(),
        }
    }

    /// The app's confidential client, returning to `redirect`.
    async fn rp(&self, redirect: &str) -> RelyingParty {
        self.app.relying_party(&self.browser, redirect).await
    }

    /// The app as a client without a secret (a native app), returning to `redirect`.
    async fn public_rp(&self, redirect: &str) -> RelyingParty {
        let issuer = IssuerUrl::new(self.app.var("ISSUER").to_owned()).unwrap();
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.browser)
            .await
            .unwrap();
        let client_id = ClientId::new(self.app.var("CLIENT_ID").to_owned());
        CoreClient::from_provider_metadata(metadata, client_id, None)
            .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).unwrap())
    }

    /// Opens `auth_url`: the provider's session answers at once, else the user signs in.
    async fn approve(&self, auth_url: &str) -> reqwest::Response {
        let page = self.browser.get(auth_url).send().await.unwrap();
        if page.status() == 303 {
            return page;
        }
        sign_in(
            &self.browser,
            &self.provider,
            auth_url,
            &self.user.username,
            PASSWORD,
        )
        .await
    }

    /// A code for `rp`, with a PKCE challenge when `pkce`.
    async fn log_in(&self, rp: &RelyingParty, pkce: bool) -> Grant {
        let mut request = rp.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        let mut verifier = None;
        if pkce {
            let (challenge, secret) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            verifier = Some(secret);
        }
        let (url, state, nonce) = request.url();
        let answer = self.approve(url.as_str()).await;
        let (_, params) = redirect_params(&answer);
        assert_eq!(&params["state"], state.secret());
        Grant {
            code: params["code"].clone(),
            verifier,
            nonce,
        }
    }

    /// `GET` of the userinfo endpoint with `access_token`: the status.
    async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.browser
            .get(self.app.var("PROFILE_ENDPOINT"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    /// A raw token request: `form`, with HTTP Basic `basic` if any; the status and the body.
    async fn token_request(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (
        reqwest::StatusCode,
        reqwest::header::HeaderMap,
        serde_json::Value,
    ) {
        let mut request = self.browser.post(self.app.var("TOKEN_ENDPOINT"));
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.form(form).send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap())
    }

    /// The authorization endpoint with `params` as its query.
    fn authorize_url(&self, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.provider.url("/openid/auth")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.into()
    }

    async fn stop(self) {
        self.provider.service.stop().await;
        self.users.stop().await;
    }
}

/// A code as the app receives it, with what it needs to redeem it.
struct Grant {
    code: String,
    verifier: Option<PkceCodeVerifier>,
    nonce: Nonce,
}

/// Redeems `code` as `rp`, with `verifier` if any.
async fn exchange(
    rp: &RelyingParty,
    http: &reqwest::Client,
    code: &str,
    verifier: Option<&PkceCodeVerifier>,
) -> TokenResult {
    let mut request = rp
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .unwrap();
    if let Some(verifier) = verifier {
        request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().clone()));
    }
    request.request_async(http).await
}

/// Redeems `grant` as `rp`.
async fn redeem(rp: &RelyingParty, http: &reqwest::Client, grant: &Grant) -> TokenResult {
    exchange(rp, http, &grant.code, grant.verifier.as_ref()).await
}

/// The OAuth error code of a token request the provider refused.
#[track_caller]
fn refusal(result: TokenResult) -> CoreErrorResponseType {
    match result {
        Err(RequestTokenError::ServerResponse(response)) => response.error().clone(),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

/// Whether a response sends the browser anywhere.
fn redirects(response: &reqwest::Response) -> bool {
    response.headers().contains_key("location")
}

/// Whether a response sets the provider's login session.
fn sets_session(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("fleet_oidc_session="))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_client_secret_is_invalid_client() {
    let setup = Setup::start(&[], &["/auth/callback"]).await;
    let rp = setup.rp(REDIRECT).await;
    let grant = setup.log_in(&rp, true).await;
    let wrong = ClientSecret::new("0".repeat(64));

    let basic = rp.clone().set_client_secret(wrong.clone());
    let answer = redeem(&basic, &setup.browser, &grant).await;
    assert_eq!(refusal(answer), CoreErrorResponseType::InvalidClient);
    let post = rp
        .clone()
        .set_client_secret(wrong.clone())
        .set_auth_type(AuthType::RequestBody);
    let answer = redeem(&post, &setup.browser, &grant).await;
    assert_eq!(refusal(answer), CoreErrorResponseType::InvalidClient);

    // RFC 6749 5.2: a 401, with the Basic challenge when the client used Basic.
    let id = setup.app.var("CLIENT_ID");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", grant.code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let (status, headers, body) = setup.token_request(Some((id, wrong.secret())), &form).await;
    assert_eq!(
        (status.as_u16(), &body["error"]),
        (401, &"invalid_client".into())
    );
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    // An unknown client is refused alike, even when the secret is a real one.
    let other_id = format!("cid-{}", "0".repeat(32));
    let secret = setup.app.var("CLIENT_SECRET");
    let (status, _, body) = setup.token_request(Some((&other_id, secret)), &form).await;
    assert_eq!(
        (status.as_u16(), &body["error"]),
        (401, &"invalid_client".into())
    );

    // The client is authenticated before the code is looked at: none of the above spent it.
    let tokens = redeem(&rp, &setup.browser, &grant).await.unwrap();
    assert!(!tokens.access_token().secret().is_empty());
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unregistered_redirect_uri_gets_a_page_not_a_redirect() {
    let setup = Setup::start(&[], &["/auth/callback"]).await;
    let id = setup.app.var("CLIENT_ID");
    let request = |redirect: &str| {
        setup.authorize_url(&[
            ("client_id", id),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s1"),
        ])
    };
    let registered = setup.browser.get(request(REDIRECT)).send().await.unwrap();
    assert_eq!(
        registered.status(),
        200,
        "the registered URI shows the login page"
    );
    for unregistered in [
        "http://chat.example.com/auth/callback/x",
        "http://chat.example.com/auth/callbac",
        "http://chat.example.com/auth/callback/",
        "http://chat.example.com/auth/callback?next=/",
        "http://chat.example.com/auth/callback/../callback",
        "https://chat.example.com/auth/callback",
        "http://chat.example.com.evil.example/auth/callback",
        "http://evil.example/auth/callback",
        "app.evil:/auth/callback",
    ] {
        let answer = setup
            .browser
            .get(request(unregistered))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{unregistered}");
        assert!(!redirects(&answer), "{unregistered} was redirected to");
        let page = answer.text().await.unwrap();
        assert!(page.contains("did not register"), "{unregistered}: {page}");
    }

    // The login form checks the request again: a form edited to return elsewhere signs no one
    // in, even with the right password.
    let page = setup.browser.get(request(REDIRECT)).send().await.unwrap();
    let mut form = hidden_fields(&page.text().await.unwrap());
    for (name, value) in &mut form {
        if name == "redirect_uri" {
            *value = "http://evil.example/auth/callback".to_owned();
        }
    }
    form.push(("username".to_owned(), setup.user.username.clone()));
    form.push(("password".to_owned(), PASSWORD.to_owned()));
    let answer = setup
        .browser
        .post(setup.provider.url("/openid/auth/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert!(!redirects(&answer) && !sets_session(&answer));

    // A code is redeemed with the redirect URI it was issued for, not another.
    let rp = setup.rp(REDIRECT).await;
    let grant = setup.log_in(&rp, false).await;
    let elsewhere = rp.set_redirect_uri(RedirectUrl::new(format!("{REDIRECT}/x")).unwrap());
    let answer = redeem(&elsewhere, &setup.browser, &grant).await;
    assert_eq!(refusal(answer), CoreErrorResponseType::InvalidGrant);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_is_redeemed_once() {
    let setup = Setup::start(&[], &["/auth/callback"]).await;
    let rp = setup.rp(REDIRECT).await;
    let grant = setup.log_in(&rp, true).await;
    let tokens = redeem(&rp, &setup.browser, &grant).await.unwrap();
    assert!(tokens.refresh_token().is_some());
    let again = redeem(&rp, &setup.browser, &grant).await;
    assert_eq!(refusal(again), CoreErrorResponseType::InvalidGrant);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_code_is_invalid_grant() {
    let setup = Setup::start(&[("FLEET_OIDC_CODE_SECS", "1")], &["/auth/callback"]).await;
    let rp = setup.rp(REDIRECT).await;

    // Codes live one second, counted in whole unix seconds. One redeemed within the second it
    // was asked for is certainly still valid; when the clock ticked over meanwhile, the check
    // would be a race, so it is only made when it cannot be one.
    let asked = unix_now();
    let fresh = setup.log_in(&rp, true).await;
    let answer = redeem(&rp, &setup.browser, &fresh).await;
    if unix_now() == asked {
        answer.expect("a code redeemed at once");
    }

    let grant = setup.log_in(&rp, true).await;
    // The code expires at most a second after the redirect that carried it: wait (watching
    // the clock, not sleeping a fixed time) until the provider's clock must be past that.
    let expired_by = unix_now() + 1;
    assert!(
        eventually(Duration::from_secs(5), || async {
            unix_now() >= expired_by
        })
        .await
    );
    let answer = redeem(&rp, &setup.browser, &grant).await;
    assert_eq!(refusal(answer), CoreErrorResponseType::InvalidGrant);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_or_missing_pkce_verifier_is_invalid_grant() {
    let setup = Setup::start(&[], &["/auth/callback"]).await;
    let rp = setup.rp(REDIRECT).await;

    let grant = setup.log_in(&rp, true).await;
    let (_, wrong) = PkceCodeChallenge::new_random_sha256();
    let answer = exchange(&rp, &setup.browser, &grant.code, Some(&wrong)).await;
    assert_eq!(refusal(answer), CoreErrorResponseType::InvalidGrant);
    // The wrong guess spent the code: a stolen code cannot be tried again.
    let answer = redeem(&rp, &setup.browser, &grant).await;
    assert_eq!(refusal(answer), CoreErrorResponseType::InvalidGrant);

    let grant = setup.log_in(&rp, true).await;
    let answer = exchange(&rp, &setup.browser, &grant.code, None).await;
    assert_eq!(refusal(answer), CoreErrorResponseType::InvalidGrant);

    // A verifier for a code whose request carried no challenge is refused as well.
    let grant = setup.log_in(&rp, false).await;
    let answer = exchange(&rp, &setup.browser, &grant.code, Some(&wrong)).await;
    assert_eq!(refusal(answer), CoreErrorResponseType::InvalidGrant);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deprovisioned_client_loses_its_tokens_and_codes() {
    let setup = Setup::start(&[], &["/auth/callback"]).await;
    let rp = setup.rp(REDIRECT).await;
    let grant = setup.log_in(&rp, true).await;
    let tokens = redeem(&rp, &setup.browser, &grant).await.unwrap();
    let access = tokens.access_token().secret();
    assert_eq!(setup.userinfo(access).await.status(), 200);
    let pending = setup.log_in(&rp, true).await;

    let mut client = setup.provider.service.client().await;
    deprovision(&mut client, &setup.app.app_id, "oidc")
        .await
        .unwrap();

    let answer = setup.userinfo(access).await;
    assert_eq!(answer.status(), 401);
    let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let refresh = tokens.refresh_token().unwrap();
    let refreshed = rp
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&setup.browser)
        .await;
    assert_eq!(refusal(refreshed), CoreErrorResponseType::InvalidClient);
    let answer = redeem(&rp, &setup.browser, &pending).await;
    assert_eq!(refusal(answer), CoreErrorResponseType::InvalidClient);
    let (url, _, _) = authorize_url(&rp);
    let answer = setup.browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(answer.status(), 400, "an unknown client gets a page");
    assert!(!redirects(&answer));
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_shows_the_form_again() {
    let setup = Setup::start(&[], &["/auth/callback"]).await;
    let rp = setup.rp(REDIRECT).await;
    let (url, _, _) = authorize_url(&rp);
    let ghost = unique("ghost");
    for (login, password) in [
        (setup.user.username.as_str(), "not the password"),
        (ghost.as_str(), PASSWORD),
    ] {
        let answer = sign_in(
            &setup.browser,
            &setup.provider,
            url.as_str(),
            login,
            password,
        )
        .await;
        assert_eq!(answer.status(), 401, "{login}");
        assert!(!redirects(&answer) && !sets_session(&answer), "{login}");
        let page = answer.text().await.unwrap();
        assert!(page.contains("Wrong username or password."), "{page}");
        assert!(page.contains("<form"), "the form is shown again: {page}");
    }
    let again = setup.browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(again.status(), 200, "no session: the login page again");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn five_wrong_passwords_throttle_the_user() {
    let mut setup = Setup::start(&[], &["/auth/callback"]).await;
    let other = setup.users.new_user().await;
    let rp = setup.rp(REDIRECT).await;
    let (url, _, _) = authorize_url(&rp);
    let name = setup.user.username.clone();
    let attempt = |login: String, password: &'static str| {
        let (browser, provider, url) = (&setup.browser, &setup.provider, url.as_str());
        async move { sign_in(browser, provider, url, &login, password).await }
    };
    for n in 1..=5 {
        let answer = attempt(name.clone(), "not the password").await;
        assert_eq!(answer.status(), 401, "attempt {n}");
    }
    // The name is counted without case, as the directory matches it.
    for login in [name.clone(), name.to_uppercase()] {
        let answer = attempt(login.clone(), PASSWORD).await;
        assert_eq!(answer.status(), 429, "{login} with the right password");
        assert!(!redirects(&answer) && !sets_session(&answer));
        let page = answer.text().await.unwrap();
        assert!(page.contains("Too many failed sign-ins"), "{page}");
    }
    // Another user signing in from the same address is not held back.
    let answer = attempt(other.username.clone(), PASSWORD).await;
    let (back, params) = redirect_params(&answer);
    assert_eq!(back, REDIRECT);
    assert!(params.contains_key("code"));
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_native_redirect_needs_pkce_and_needs_no_secret() {
    let native = "app.immich:/";
    let web = "https://chat.example.com/auth/callback";
    let setup = Setup::start(
        &[("FLEET_OIDC_APP_SCHEME", "https")],
        &["/auth/callback", native],
    )
    .await;
    let id = setup.app.var("CLIENT_ID");

    let without_pkce = setup.authorize_url(&[
        ("client_id", id),
        ("redirect_uri", native),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "s1"),
    ]);
    let answer = setup.browser.get(without_pkce).send().await.unwrap();
    let (back, params) = redirect_params(&answer);
    assert_eq!(back, native);
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], "s1");
    assert!(!params.contains_key("code"));

    // With PKCE the native app redeems its code with no secret, and gets a valid ID token.
    let public = setup.public_rp(native).await;
    let grant = setup.log_in(&public, true).await;
    let tokens = redeem(&public, &setup.browser, &grant).await.unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&public.id_token_verifier(), &grant.nonce)
        .unwrap();
    assert_eq!(claims.subject().as_str(), setup.user.username);

    // A web redirect's code needs the secret, with PKCE or without.
    let public_web = setup.public_rp(web).await;
    for pkce in [true, false] {
        let grant = setup.log_in(&public_web, pkce).await;
        let answer = redeem(&public_web, &setup.browser, &grant).await;
        assert_eq!(
            refusal(answer),
            CoreErrorResponseType::InvalidClient,
            "pkce: {pkce}"
        );
    }
    let rp = setup.rp(web).await;
    let grant = setup.log_in(&rp, true).await;
    redeem(&rp, &setup.browser, &grant).await.unwrap();
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_removed_from_the_directory_cannot_refresh() {
    let mut setup = Setup::start(&[], &["/auth/callback"]).await;
    let rp = setup.rp(REDIRECT).await;
    let grant = setup.log_in(&rp, true).await;
    let tokens = redeem(&rp, &setup.browser, &grant).await.unwrap();
    let refreshed = rp
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&setup.browser)
        .await
        .expect("a refresh while the user exists");

    let username = setup.user.username.clone();
    setup.users.delete_user(&username).await;
    let again = rp
        .exchange_refresh_token(refreshed.refresh_token().unwrap())
        .unwrap()
        .request_async(&setup.browser)
        .await;
    assert_eq!(refusal(again), CoreErrorResponseType::InvalidGrant);
    let answer = setup.userinfo(refreshed.access_token().secret()).await;
    assert_eq!(answer.status(), 401);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_login_form_is_forbidden() {
    let setup = Setup::start(&[], &["/auth/callback"]).await;
    let rp = setup.rp(REDIRECT).await;
    let (url, _, _) = authorize_url(&rp);
    let page = setup.browser.get(url.as_str()).send().await.unwrap();
    let mut form = hidden_fields(&page.text().await.unwrap());
    form.push(("username".to_owned(), setup.user.username.clone()));
    form.push(("password".to_owned(), PASSWORD.to_owned()));
    let with_csrf = |value: &str| {
        form.iter()
            .map(|(name, old)| {
                let new = if name == "csrf" { value } else { old.as_str() };
                (name.clone(), new.to_owned())
            })
            .collect::<Vec<_>>()
    };
    let post = |browser: &reqwest::Client, form: Vec<(String, String)>| {
        let request = browser
            .post(setup.provider.url("/openid/auth/login"))
            .form(&form);
        async move { request.send().await.unwrap() }
    };
    let token = form
        .iter()
        .find(|(name, _)| name == "csrf")
        .unwrap()
        .1
        .clone();

    // The token is bound to its browser's cookie: another browser cannot replay it, with no
    // CSRF cookie or with one of its own.
    let elsewhere = browser();
    let mut forgeries = vec![
        (
            "a wrong csrf field",
            post(&setup.browser, with_csrf("forged")).await,
        ),
        ("no csrf field", post(&setup.browser, with_csrf("")).await),
        ("no csrf cookie", post(&elsewhere, with_csrf(&token)).await),
    ];
    let other_page = elsewhere.get(url.as_str()).send().await.unwrap();
    assert_eq!(other_page.status(), 200);
    forgeries.push((
        "another browser's token",
        post(&elsewhere, with_csrf(&token)).await,
    ));
    for (what, answer) in forgeries {
        assert_eq!(answer.status(), 403, "{what}");
        assert!(!redirects(&answer) && !sets_session(&answer), "{what}");
    }

    let answer = post(&setup.browser, with_csrf(&token)).await;
    let (back, params) = redirect_params(&answer);
    assert_eq!(back, REDIRECT);
    assert!(params.contains_key("code"), "the genuine form signs in");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn other_flows_and_a_missing_openid_scope_go_back_as_errors() {
    let setup = Setup::start(&[], &["/auth/callback"]).await;
    let id = setup.app.var("CLIENT_ID");
    for (response_type, scope, error) in [
        ("token", "openid", "unsupported_response_type"),
        ("id_token token", "openid", "unsupported_response_type"),
        ("code token", "openid", "unsupported_response_type"),
        ("code", "profile email", "invalid_scope"),
        ("code", "", "invalid_scope"),
    ] {
        let url = setup.authorize_url(&[
            ("client_id", id),
            ("redirect_uri", REDIRECT),
            ("response_type", response_type),
            ("scope", scope),
            ("state", "s2"),
        ]);
        let answer = setup.browser.get(url).send().await.unwrap();
        let (back, params) = redirect_params(&answer);
        assert_eq!(back, REDIRECT, "{response_type} / {scope}");
        assert_eq!(params["error"], error, "{response_type} / {scope}");
        assert_eq!(params["state"], "s2");
        assert!(!params.contains_key("code") && !params.contains_key("access_token"));
    }
    setup.stop().await;
}
