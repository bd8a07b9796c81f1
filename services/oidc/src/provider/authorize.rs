//! The authorization endpoint: checks the request against the client, signs the user in (the
//! provider's session, or the login page checking the password against the directory, with
//! CSRF protection and the throttle), and sends a single-use code to the registered redirect
//! URI.

use std::sync::Arc;

use axum::{
    Form,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use fleet_shared::error::AddonError;
use serde::Deserialize;

use super::{
    Provider, now, paths, secs,
    web::{
        CSRF_COOKIE, SESSION_COOKIE, cookie, csrf_token, csrf_valid, error_page, escape, page,
        random_token, redirect, set_cookie, source, unavailable, with_query,
    },
};
use crate::{
    http::Peer,
    store::{Client, Code, PROVIDER_SESSION, hash},
    user::User,
};

/// The parameters of an authorization request (query of GET, hidden fields of the form).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthRequest {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub response_type: String,
    #[serde(default)]
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
}

/// What the login form posts: the request again, the credentials and the CSRF token.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(flatten)]
    pub request: AuthRequest,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub csrf: String,
}

/// An authorization request that passed every check.
pub struct Approved {
    pub client: Client,
    pub request: AuthRequest,
    /// Scopes granted (those the provider knows, from the requested ones).
    pub scope: String,
}

/// `GET /openid/auth`.
pub async fn show(
    State(provider): State<Arc<Provider>>,
    headers: HeaderMap,
    Query(request): Query<AuthRequest>,
) -> Response {
    let approved = match check(&provider, request).await {
        Ok(approved) => approved,
        Err(response) => return response,
    };
    if approved.request.prompt.as_deref() != Some("login")
        && let Some(user) = signed_in(&provider, &headers).await
    {
        return match issue_code(&provider, &approved, &user.0, user.1).await {
            Ok(location) => redirect(&location, vec![]),
            Err(error) => unavailable(&error),
        };
    }
    if approved.request.prompt.as_deref() == Some("none") {
        // Silent authentication: the app asked not to show anything.
        let mut params = vec![
            ("error", "login_required"),
            ("error_description", "the user is not signed in"),
        ];
        if let Some(state) = &approved.request.state {
            params.push(("state", state));
        }
        return redirect(&with_query(&approved.request.redirect_uri, &params), vec![]);
    }
    login_page(&provider, &headers, &approved.request, StatusCode::OK, None)
}

/// `POST /openid/auth/login`: the login form.
pub async fn login(
    State(provider): State<Arc<Provider>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let LoginForm {
        request,
        username,
        password,
        csrf,
    } = form;
    if !csrf_valid(&provider, &headers, &csrf) {
        return error_page(
            StatusCode::FORBIDDEN,
            "The sign-in form expired or did not come from this site. Go back to the app and \
             sign in again.",
        );
    }
    let approved = match check(&provider, request).await {
        Ok(approved) => approved,
        Err(response) => return response,
    };
    let login = username.trim();
    let source = source(&provider, peer, &headers);
    if let Err(wait) = provider.throttle.check(login, source) {
        let message = format!(
            "Too many failed sign-ins. Try again in {} seconds.",
            wait.as_secs().max(1)
        );
        return login_page(
            &provider,
            &headers,
            &approved.request,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&message),
        );
    }
    let user = match provider.directory.authenticate(login, &password).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            provider.throttle.failure(login, source);
            tracing::info!(source = %source, "failed sign-in");
            return login_page(
                &provider,
                &headers,
                &approved.request,
                StatusCode::UNAUTHORIZED,
                Some("Wrong username or password."),
            );
        }
        Err(error) => return unavailable(&error),
    };
    provider.throttle.success(login, source);
    let (session, auth_time) = match provider
        .start_session(PROVIDER_SESSION, &user.username)
        .await
    {
        Ok(started) => started,
        Err(error) => return unavailable(&error),
    };
    let cookie = set_cookie(
        SESSION_COOKIE,
        &session,
        "/",
        provider.secure_cookies(),
        secs(provider.lifetimes.session),
    );
    match issue_code(&provider, &approved, &user, auth_time).await {
        Ok(location) => redirect(&location, vec![cookie]),
        Err(error) => unavailable(&error),
    }
}

/// Checks `request` against its client. Errors that must not be sent to the redirect URI
/// (unknown client, unregistered URI) are a page; the others go back to the client.
pub async fn check(provider: &Provider, request: AuthRequest) -> Result<Approved, Response> {
    let client = match provider.store.client(&request.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "This app is not registered with the sign-in service (unknown client_id).",
            ));
        }
        Err(error) => return Err(unavailable(&error)),
    };
    if !client.redirect_uris.contains(&request.redirect_uri) {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "The app asked to return to an address it did not register (redirect_uri).",
        ));
    }
    let back = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        redirect(&with_query(&request.redirect_uri, &params), vec![])
    };
    if request.response_type != "code" {
        return Err(back(
            "unsupported_response_type",
            "only the authorization code flow (response_type=code) is supported",
        ));
    }
    let scopes: Vec<&str> = request.scope.split_whitespace().collect();
    if !scopes.contains(&"openid") {
        return Err(back("invalid_scope", "the openid scope is required"));
    }
    match (
        &request.code_challenge,
        request.code_challenge_method.as_deref(),
    ) {
        (Some(challenge), Some("S256")) if valid_challenge(challenge) => {}
        (Some(_), Some("S256")) => {
            return Err(back(
                "invalid_request",
                "code_challenge must be 43 characters of base64url (S256)",
            ));
        }
        (Some(_), _) => {
            return Err(back(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        (None, _) if is_native(&request.redirect_uri) => {
            return Err(back(
                "invalid_request",
                "PKCE (code_challenge with S256) is required for this redirect URI",
            ));
        }
        (None, _) => {}
    }
    let scope = scopes
        .iter()
        .filter(|s| {
            matches!(
                **s,
                "openid" | "profile" | "email" | "groups" | "offline_access"
            )
        })
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Approved {
        client,
        request,
        scope,
    })
}

/// Whether a redirect URI belongs to a native app (a scheme of its own): such clients cannot
/// keep a secret, so they must use PKCE and may redeem codes without one.
pub fn is_native(redirect_uri: &str) -> bool {
    !(redirect_uri.starts_with("https://") || redirect_uri.starts_with("http://"))
}

fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The user of the request's provider session, if it is valid and the user still exists.
async fn signed_in(provider: &Provider, headers: &HeaderMap) -> Option<(User, i64)> {
    let session = cookie(headers, SESSION_COOKIE)?;
    let stored = provider
        .store
        .session(&hash(&session), PROVIDER_SESSION, now())
        .await
        .ok()??;
    let user = provider.directory.user(&stored.username).await.ok()??;
    Some((user, stored.auth_time))
}

/// Records a code for `user` and returns where to send the browser with it.
pub async fn issue_code(
    provider: &Provider,
    approved: &Approved,
    user: &User,
    auth_time: i64,
) -> Result<String, AddonError> {
    let code = random_token();
    let request = &approved.request;
    provider
        .store
        .insert_code(
            &hash(&code),
            &Code {
                client_id: approved.client.client_id.clone(),
                username: user.username.clone(),
                redirect_uri: request.redirect_uri.clone(),
                scope: approved.scope.clone(),
                nonce: request.nonce.clone(),
                code_challenge: request.code_challenge.clone(),
                auth_time,
                expires_at: now() + secs(provider.lifetimes.code),
            },
        )
        .await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    params.push(("iss", provider.issuer.as_str()));
    Ok(with_query(&request.redirect_uri, &params))
}

/// The login page for `request`, with `message` (a failed attempt) if any.
fn login_page(
    provider: &Provider,
    headers: &HeaderMap,
    request: &AuthRequest,
    status: StatusCode,
    message: Option<&str>,
) -> Response {
    let (csrf_cookie, new_cookie) = match cookie(headers, CSRF_COOKIE) {
        Some(value) => (value, None),
        None => {
            let value = random_token();
            let header = set_cookie(CSRF_COOKIE, &value, "/", provider.secure_cookies(), 3600);
            (value, Some(header))
        }
    };
    let mut hidden = String::new();
    let fields = [
        ("client_id", Some(&request.client_id)),
        ("redirect_uri", Some(&request.redirect_uri)),
        ("response_type", Some(&request.response_type)),
        ("scope", Some(&request.scope)),
        ("state", request.state.as_ref()),
        ("nonce", request.nonce.as_ref()),
        ("code_challenge", request.code_challenge.as_ref()),
        (
            "code_challenge_method",
            request.code_challenge_method.as_ref(),
        ),
        ("csrf", Some(&csrf_token(provider, &csrf_cookie))),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            hidden.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(value)
            ));
        }
    }
    let error = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"{action}\">{hidden}\
         <label for=\"username\">Username or email</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        action = escape(paths::LOGIN),
    );
    let mut response = page(status, "Sign in", &body);
    if let Some(cookie) = new_cookie {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
    }
    response
}
