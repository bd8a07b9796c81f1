//! RP-initiated logout: ends the provider's session and returns to the client's registered
//! `post_logout_redirect_uri` (matched exactly), or shows that the user is signed out.

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

use super::{
    Provider,
    web::unavailable,
    web::{SESSION_COOKIE, cookie, error_page, page, redirect, set_cookie, with_query},
};
use crate::store::hash;

/// The end-session request's parameters.
#[derive(Debug, Default, Deserialize)]
pub struct EndSession {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
}

/// `GET /openid/session/end`.
pub async fn end_session(
    State(provider): State<Arc<Provider>>,
    headers: HeaderMap,
    Query(request): Query<EndSession>,
) -> Response {
    if let Some(session) = cookie(&headers, SESSION_COOKIE)
        && let Err(error) = provider.store.delete_session(&hash(&session)).await
    {
        return unavailable(&error);
    }
    let cleared = set_cookie(SESSION_COOKIE, "", "/", provider.secure_cookies(), 0);
    let Some(target) = request.post_logout_redirect_uri else {
        let mut response = page(StatusCode::OK, "Signed out", "<p>You are signed out.</p>");
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cleared);
        return response;
    };
    // The hint only chooses whose registered URIs to match; it grants nothing, so its
    // signature need not be checked here.
    let client_id = request
        .client_id
        .or_else(|| request.id_token_hint.as_deref().and_then(audience));
    let client = match client_id {
        Some(id) => match provider.store.client(&id).await {
            Ok(client) => client,
            Err(error) => return unavailable(&error),
        },
        None => None,
    };
    match client {
        Some(client) if client.post_logout_redirect_uris.contains(&target) => {
            let location = match &request.state {
                Some(state) => with_query(&target, &[("state", state)]),
                None => target,
            };
            redirect(&location, vec![cleared])
        }
        _ => {
            let mut response = error_page(
                StatusCode::BAD_REQUEST,
                "You are signed out, but the app asked to return to an address it did not \
                 register (post_logout_redirect_uri).",
            );
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, cleared);
            response
        }
    }
}

/// The first audience of an ID token, read without verifying it.
fn audience(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    match &claims["aud"] {
        serde_json::Value::String(aud) => Some(aud.clone()),
        serde_json::Value::Array(auds) => auds.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}
