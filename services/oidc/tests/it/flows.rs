//! The authorization code flow as an app integrating "Login with ..." runs it, with the
//! `openidconnect` crate as the relying party: discovery, PKCE and nonce, the login form, the
//! code exchange, the ID token verified against JWKS, userinfo, refresh and logout; for an
//! RS256 client and an EdDSA client.

use fleet_shared::proto::addon::TokenSignatureAlgorithm;
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, CsrfToken, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, Scope, TokenResponse,
    core::{CoreJwsSigningAlgorithm, CoreResponseType, CoreUserInfoClaims},
};

use crate::support::*;

async fn full_round_trip(algorithm: TokenSignatureAlgorithm, jws: CoreJwsSigningAlgorithm) {
    let mut users = Users::start(slapd()).await;
    let user = users.new_user().await;
    let group = unique("team");
    users.create_group(&group).await;
    users.add_member(&group, &user.username).await;
    let provider = Provider::start(&users, &[]).await;
    let app = provider
        .new_app("chat.example.com", &["/auth/callback"], algorithm)
        .await;
    assert_eq!(app.var("ISSUER"), provider.issuer);
    assert_eq!(
        app.var("DISCOVERY_URL"),
        provider.url("/.well-known/openid-configuration")
    );
    assert!(app.var("CLIENT_ID").starts_with("cid-"));
    assert_eq!(app.var("CLIENT_SECRET").len(), 64);

    let browser = browser();
    let redirect = "http://chat.example.com/auth/callback";
    let rp = app.relying_party(&browser, redirect).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = rp
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".to_owned()))
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("groups".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    // Signing in by email, in another case, as the apps' LDAP login filter allows.
    let answer = sign_in(
        &browser,
        &provider,
        auth_url.as_str(),
        &user.email.to_uppercase(),
        PASSWORD,
    )
    .await;
    let cookies: Vec<String> = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies
            .iter()
            .all(|c| c.contains("HttpOnly") && c.contains("SameSite")),
        "{cookies:?}"
    );
    let (back, params) = redirect_params(&answer);
    assert_eq!(back, redirect);
    assert_eq!(&params["state"], state.secret());
    assert_eq!(params["iss"], provider.issuer);

    let tokens = rp
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&browser)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = rp.id_token_verifier().set_allowed_algs(vec![jws.clone()]);
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("a valid ID token");
    assert_eq!(*id_token.signing_alg().unwrap(), jws);
    assert_eq!(claims.subject().as_str(), user.username);
    assert_eq!(claims.issuer().as_str(), provider.issuer);
    assert_eq!(claims.audiences()[0].as_str(), app.var("CLIENT_ID"));
    assert_eq!(claims.email().unwrap().as_str(), user.email);
    assert_eq!(claims.email_verified(), Some(true));
    assert_eq!(claims.preferred_username().unwrap().as_str(), user.username);
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));

    // Userinfo agrees with the directory entry.
    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&browser)
        .await
        .unwrap();
    assert_eq!(info.subject().as_str(), user.username);
    assert_eq!(info.email().unwrap().as_str(), user.email);
    let name = info.name().unwrap().get(None).unwrap().as_str();
    assert_eq!(name, user.display_name);
    assert_eq!(
        info.given_name().unwrap().get(None).unwrap().as_str(),
        user.given_name
    );
    assert_eq!(
        info.family_name().unwrap().get(None).unwrap().as_str(),
        user.family_name
    );
    let raw: serde_json::Value = browser
        .get(app.var("PROFILE_ENDPOINT"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["groups"], serde_json::json!([group]));
    assert_eq!(raw["locale"], "en-US");

    // Refresh: a new pair; the old refresh token is spent.
    let refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = rp
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&browser)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    let again = rp
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&browser)
        .await;
    assert!(again.is_err(), "a refresh token worked twice");

    // A second login of the same browser needs no password (the provider's session)...
    let (auth_url, _, _) = authorize_url(&rp);
    let silent = browser.get(auth_url.as_str()).send().await.unwrap();
    let (back, params) = redirect_params(&silent);
    assert_eq!(back, redirect);
    assert!(params.contains_key("code"));

    // ...until RP-initiated logout ends it and returns to the registered URI.
    let end = provider.url("/openid/session/end");
    let logout = browser
        .get(&end)
        .query(&[
            ("id_token_hint", id_token.to_string().as_str()),
            ("post_logout_redirect_uri", "http://chat.example.com/bye"),
            ("state", "s1"),
        ])
        .send()
        .await
        .unwrap();
    let (back, params) = redirect_params(&logout);
    assert_eq!(back, "http://chat.example.com/bye");
    assert_eq!(params["state"], "s1");
    let after = browser.get(auth_url.as_str()).send().await.unwrap();
    assert_eq!(after.status(), 200, "logged out, the login page is shown");
    // An unregistered return address is not followed.
    let elsewhere = browser
        .get(&end)
        .query(&[
            ("client_id", app.var("CLIENT_ID")),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 400);
    provider.service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_rs256_client_logs_a_user_in() {
    full_round_trip(
        TokenSignatureAlgorithm::Rs256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eddsa_client_logs_a_user_in() {
    full_round_trip(
        TokenSignatureAlgorithm::Eddsa,
        CoreJwsSigningAlgorithm::EdDsa,
    )
    .await;
}

/// Signs `login` in to `app` through the relying party and returns the ID token with the
/// nonce it was issued for.
async fn id_token(
    provider: &Provider,
    app: &App,
    login: &str,
    redirect: &str,
) -> (openidconnect::core::CoreIdToken, Nonce) {
    let browser = browser();
    let rp = app.relying_party(&browser, redirect).await;
    let (auth_url, _, nonce) = authorize_url(&rp);
    let answer = sign_in(&browser, provider, auth_url.as_str(), login, PASSWORD).await;
    let (_, params) = redirect_params(&answer);
    let tokens = rp
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .unwrap()
        .request_async(&browser)
        .await
        .unwrap();
    (tokens.id_token().unwrap().clone(), nonce)
}

/// The `kid` of a token's JOSE header.
fn kid_of(token: &openidconnect::core::CoreIdToken) -> String {
    use base64::Engine;
    let header = token.to_string().split('.').next().unwrap().to_owned();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_key_is_replaced_and_its_tokens_still_verify() {
    let mut users = Users::start(slapd()).await;
    let user = users.new_user().await;
    let provider = Provider::start(&users, &[]).await;
    let redirect = "http://chat.example.com/cb";
    let app = provider
        .new_app("chat.example.com", &["/cb"], TokenSignatureAlgorithm::Rs256)
        .await;
    let (old, old_nonce) = id_token(&provider, &app, &user.username, redirect).await;
    let old_kid = kid_of(&old);

    // The keys grow older than FLEET_OIDC_KEY_MAX_AGE_DAYS (90 by default) while the service
    // is down; at its next start it adds new ones.
    let store = fleet_shared::state::connect(&provider.state_url())
        .await
        .unwrap();
    let aged = sqlx::query("UPDATE signing_keys SET created_at = created_at - 100 * 86400")
        .execute(&store)
        .await
        .unwrap();
    assert_eq!(aged.rows_affected(), 2, "one key per algorithm at first");
    store.close().await;
    let provider = provider.restart(&users).await;

    let (new, _) = id_token(&provider, &app, &user.username, redirect).await;
    let new_kid = kid_of(&new);
    assert_ne!(new_kid, old_kid, "the old key still signs");
    let jwks: serde_json::Value = reqwest::get(provider.url("/openid/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|key| key["kid"].as_str())
        .collect();
    assert_eq!(kids.len(), 4, "{kids:?}");
    for kid in [&old_kid, &new_kid] {
        assert!(kids.contains(&kid.as_str()), "{kid:?} not published");
    }
    // A relying party that fetches the keys now still accepts the token of the old key.
    let rp = app.relying_party(&browser(), redirect).await;
    old.claims(&rp.id_token_verifier(), &old_nonce)
        .expect("a token of the replaced key verifies");
    provider.service.stop().await;
}
