//! proxyAuth: the wall a reverse proxy puts in front of an app. The proxy asks [`check`]
//! before each request (nginx `auth_request`): 2xx lets it through, with the user in
//! `X-Auth-Request-User`/`X-Auth-Request-Email`; 401 sends the browser to the app's `/login`,
//! which the proxy forwards to [`login`]. That starts an authorization code flow of the
//! wall's own client at this provider and, on the way back, gives the browser a session
//! cookie on the app's domain. `deploy/oidc/proxy-auth.nginx.conf` is the proxy's side.
//!
//! The app is known by the host the proxy names (`X-Forwarded-Host`); a session belongs to
//! one app's wall, so a cookie of one app is nothing on another.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use fleet_shared::error::AddonError;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{
    Provider, now, paths, secs,
    web::unavailable,
    web::{
        WALL_COOKIE, WALL_STATE_COOKIE, cookie, error_page, random_token, redirect, set_cookie,
        source, with_query,
    },
};
use crate::{
    http::Peer,
    store::{Client, Wall, hash},
};

/// `GET /proxy-auth/check`: may this request reach the app?
pub async fn check(
    State(provider): State<Arc<Provider>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    let client = match wall_of(&provider, &headers).await {
        Ok(Some(client)) => client,
        // Fail closed, without sending the browser to a login that cannot work.
        Ok(None) => return StatusCode::FORBIDDEN.into_response(),
        Err(error) => return unavailable(&error),
    };
    let Some(wall) = &client.wall else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let uri = header_str(&headers, "x-original-uri").unwrap_or("/");
    if !protects(&wall.path, uri) {
        return StatusCode::NO_CONTENT.into_response();
    }
    let authorization = header_str(&headers, header::AUTHORIZATION.as_str());
    if let Some(value) = authorization {
        if wall.supports_bearer_auth && value.starts_with("Bearer ") {
            return StatusCode::NO_CONTENT.into_response();
        }
        if wall.basic_auth
            && let Some(encoded) = value.strip_prefix("Basic ")
        {
            return basic(&provider, peer, &headers, encoded).await;
        }
    }
    let Some(session) = cookie(&headers, WALL_COOKIE) else {
        return unauthorized(wall);
    };
    match provider
        .store
        .session(&hash(&session), &client.client_id, now())
        .await
    {
        Ok(Some(session)) => match email_of(&provider, &session.username).await {
            Ok(Some(email)) => allowed(&session.username, Some(&email)),
            Ok(None) => unauthorized(wall),
            Err(error) => unavailable(&error),
        },
        Ok(None) => unauthorized(wall),
        Err(error) => unavailable(&error),
    }
}

/// The email of `username` if they are still a user, asking the directory at most every
/// [`USER_RECHECK`] per user; one who left loses every session and token.
async fn email_of(provider: &Provider, username: &str) -> Result<Option<String>, AddonError> {
    if let Some(email) = provider.wall_users.fresh(username) {
        return Ok(Some(email));
    }
    if let Some(user) = provider.directory.user(username).await? {
        provider.wall_users.mark(username, &user.email);
        return Ok(Some(user.email));
    }
    provider.store.revoke_user(username).await?;
    tracing::info!(username = %username, "sessions of a removed user revoked");
    Ok(None)
}

/// How long a wall session's user is taken to exist after the directory last said so.
const USER_RECHECK: Duration = Duration::from_secs(60);
/// Users remembered at most; beyond that the memory starts over.
const CHECKED_USERS: usize = 10_000;

/// When the directory last confirmed each user behind a wall session, and their email, so
/// that not every request behind a wall costs a directory search.
#[derive(Debug, Default)]
pub struct CheckedUsers {
    seen: Mutex<HashMap<String, (Instant, String)>>,
}

impl CheckedUsers {
    fn fresh(&self, username: &str) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(username)
            .filter(|(at, _)| at.elapsed() < USER_RECHECK)
            .map(|(_, email)| email.clone())
    }

    fn mark(&self, username: &str, email: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= CHECKED_USERS {
            seen.clear();
        }
        seen.insert(username.to_owned(), (Instant::now(), email.to_owned()));
    }
}

/// HTTP Basic against the directory, throttled like the login page.
async fn basic(
    provider: &Provider,
    peer: SocketAddr,
    headers: &HeaderMap,
    encoded: &str,
) -> Response {
    let Some((login, password)) = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            text.split_once(':')
                .map(|(l, p)| (l.to_owned(), p.to_owned()))
        })
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let source = source(provider, peer, headers);
    if provider.throttle.check(&login, source).is_err() {
        // nginx's auth_request knows only 2xx, 401 and 403 (anything else becomes a 500):
        // a throttled client is simply not let in.
        tracing::info!(source = %source, "Basic sign-in throttled");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match provider.directory.authenticate(&login, &password).await {
        Ok(Some(user)) => {
            provider.throttle.success(&login, source);
            allowed(&user.username, Some(&user.email))
        }
        Ok(None) => {
            provider.throttle.failure(&login, source);
            StatusCode::UNAUTHORIZED.into_response()
        }
        Err(error) => unavailable(&error),
    }
}

fn allowed(username: &str, email: Option<&str>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(username) {
        headers.insert("x-auth-request-user", value);
    }
    if let Some(value) = email.and_then(|email| HeaderValue::from_str(email).ok()) {
        headers.insert("x-auth-request-email", value);
    }
    response
}

fn unauthorized(wall: &Wall) -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    if wall.basic_auth {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"login\""),
        );
    }
    response
}

/// The query of the app's `/login`: a fresh start (`rd`: where to return) or the provider's
/// answer (`code`, `state`, or `error`).
#[derive(Debug, Default, Deserialize)]
pub struct WallLogin {
    rd: Option<String>,
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /proxy-auth/login` (the app's `/login`).
pub async fn login(
    State(provider): State<Arc<Provider>>,
    headers: HeaderMap,
    Query(query): Query<WallLogin>,
) -> Response {
    let client = match wall_of(&provider, &headers).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return error_page(StatusCode::NOT_FOUND, "This app has no sign-in wall.");
        }
        Err(error) => return unavailable(&error),
    };
    let secure = provider.app_scheme == "https";
    if query.code.is_some() || query.error.is_some() {
        return finish(&provider, &client, &headers, query, secure).await;
    }
    // Where to return: the page the wall stopped (nginx names it), else `rd`, else `/`.
    let target = header_str(&headers, "x-original-uri")
        .map(str::to_owned)
        .or(query.rd)
        .filter(|rd| local_path(rd))
        .unwrap_or_else(|| "/".to_owned());
    let state = random_token();
    let state_cookie = format!("{state}.{}", URL_SAFE_NO_PAD.encode(target.as_bytes()));
    let location = with_query(
        &provider.issuer.url(paths::AUTHORIZE),
        &[
            ("client_id", &client.client_id),
            ("redirect_uri", &redirect_uri(&provider, &client)),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", &state),
        ],
    );
    let cookie = set_cookie(
        WALL_STATE_COOKIE,
        &state_cookie,
        paths::APP_LOGIN,
        secure,
        600,
    );
    redirect(&location, vec![cookie])
}

/// The provider's answer: checks the state against the browser's cookie, redeems the code
/// (here, as the wall's client) and starts the wall's session.
async fn finish(
    provider: &Provider,
    client: &Client,
    headers: &HeaderMap,
    query: WallLogin,
    secure: bool,
) -> Response {
    let Some((state, target)) = cookie(headers, WALL_STATE_COOKIE).and_then(|value| {
        let (state, target) = value.split_once('.')?;
        let target = String::from_utf8(URL_SAFE_NO_PAD.decode(target).ok()?).ok()?;
        Some((state.to_owned(), target))
    }) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in did not start here or took too long. Open the app again.",
        );
    };
    let presented = query.state.unwrap_or_default();
    if !bool::from(state.as_bytes().ct_eq(presented.as_bytes())) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in answer does not belong to this browser. Open the app again.",
        );
    }
    let Some(code) = query.code else {
        return error_page(StatusCode::FORBIDDEN, "Sign-in was refused.");
    };
    let username = match redeem(provider, client, &code).await {
        Ok(Some(username)) => username,
        Ok(None) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The sign-in expired. Open the app again.",
            );
        }
        Err(error) => return unavailable(&error),
    };
    let session = match provider.start_session(&client.client_id, &username).await {
        Ok((session, _)) => session,
        Err(error) => return unavailable(&error),
    };
    let target = if local_path(&target) {
        target
    } else {
        "/".to_owned()
    };
    redirect(
        &target,
        vec![
            set_cookie(
                WALL_COOKIE,
                &session,
                "/",
                secure,
                secs(provider.lifetimes.session),
            ),
            set_cookie(WALL_STATE_COOKIE, "", paths::APP_LOGIN, secure, 0),
        ],
    )
}

/// Redeems `code` for the wall's client: the user it was issued for, if it is valid.
async fn redeem(
    provider: &Provider,
    client: &Client,
    code: &str,
) -> Result<Option<String>, AddonError> {
    let Some(stored) = provider.store.take_code(&hash(code)).await? else {
        return Ok(None);
    };
    let valid = stored.client_id == client.client_id
        && stored.expires_at > now()
        && stored.redirect_uri == redirect_uri(provider, client);
    Ok(valid.then_some(stored.username))
}

/// `GET /proxy-auth/logout` (the app's `/logout`): ends the wall's session and the
/// provider's, then returns to the app.
pub async fn logout(State(provider): State<Arc<Provider>>, headers: HeaderMap) -> Response {
    let client = match wall_of(&provider, &headers).await {
        Ok(Some(client)) => client,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, "This app has no sign-in wall."),
        Err(error) => return unavailable(&error),
    };
    if let Some(session) = cookie(&headers, WALL_COOKIE)
        && let Err(error) = provider.store.delete_session(&hash(&session)).await
    {
        return unavailable(&error);
    }
    let secure = provider.app_scheme == "https";
    let home = format!("{}://{}/", provider.app_scheme, client.app_domain);
    let location = with_query(
        &provider.issuer.url(paths::END_SESSION),
        &[
            ("client_id", &client.client_id),
            ("post_logout_redirect_uri", &home),
        ],
    );
    redirect(&location, vec![set_cookie(WALL_COOKIE, "", "/", secure, 0)])
}

/// The wall's client of the app the proxy serves (by `X-Forwarded-Host`, else `Host`).
async fn wall_of(provider: &Provider, headers: &HeaderMap) -> Result<Option<Client>, AddonError> {
    let Some(host) = header_str(headers, "x-forwarded-host")
        .or_else(|| header_str(headers, header::HOST.as_str()))
    else {
        return Ok(None);
    };
    provider
        .store
        .wall_for_domain(&host.to_ascii_lowercase())
        .await
}

fn redirect_uri(provider: &Provider, client: &Client) -> String {
    format!(
        "{}://{}{}",
        provider.app_scheme,
        client.app_domain,
        paths::APP_LOGIN
    )
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A path on the same origin (`/x`), not a way elsewhere (`//host`, `/\host`, `https://`).
fn local_path(target: &str) -> bool {
    target.starts_with('/')
        && !target.starts_with("//")
        && !target.starts_with("/\\")
        && !target.chars().any(char::is_control)
}

/// Whether the wall's `rule` protects the request URI `uri`. The path is compared the way an
/// app may read it (percent-decoded, `.`/`..` resolved, repeated `/` merged) and, where that
/// decides for protection, without regard to case, so an encoding never walks past the wall.
pub fn protects(rule: &str, uri: &str) -> bool {
    let path = normalize(uri.split(['?', '#']).next().unwrap_or("/"));
    if rule.is_empty() {
        return true;
    }
    match rule.strip_prefix('!') {
        // Only exactly the excluded path is let through.
        Some(excluded) => !under(&path, &normalize(excluded), false),
        // Any spelling of the protected path is protected.
        None => under(&path, &normalize(rule), true),
    }
}

/// `path` as segments: percent-decoded, with empty and `.` segments dropped and `..` applied.
fn normalize(path: &str) -> Vec<String> {
    let decoded = percent_decode_str(path)
        .decode_utf8_lossy()
        .replace('\\', "/");
    let mut segments: Vec<String> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other.to_owned()),
        }
    }
    segments
}

fn under(path: &[String], prefix: &[String], ignore_case: bool) -> bool {
    path.len() >= prefix.len()
        && path.iter().zip(prefix).all(|(a, b)| {
            if ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_protected_however_spelled() {
        for uri in [
            "/admin",
            "/admin/",
            "/admin/x?y=1",
            "/ADMIN/x",
            "/%61dmin",
            "//admin",
            "/x/../admin",
            "/./admin",
            "/%2e%2e/admin",
            "/admin%2Fx",
        ] {
            assert!(protects("/admin", uri), "{uri} walked past /admin");
        }
        for uri in ["/", "/administrator", "/public/admin", "/?admin"] {
            assert!(!protects("/admin", uri), "{uri} is not under /admin");
        }
    }

    #[test]
    fn exclusions_let_only_that_path_through() {
        for uri in ["/webhooks", "/webhooks/github?x", "/%77ebhooks/x"] {
            assert!(!protects("!/webhooks", uri), "{uri} should be open");
        }
        for uri in [
            "/",
            "/WEBHOOKS",
            "/webhooksx",
            "/api/webhooks",
            "/webhooks/../admin",
        ] {
            assert!(protects("!/webhooks", uri), "{uri} should be protected");
        }
        assert!(protects("", "/anything"));
    }

    #[test]
    fn only_local_targets_are_returned_to() {
        assert!(local_path("/app?x=1"));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
            "x",
        ] {
            assert!(!local_path(bad), "{bad}");
        }
    }
}
