//! The userinfo (profile) endpoint: the claims of the access token's user, read from the
//! directory at the time of the call.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    Provider, now,
    web::{protect, unavailable},
};
use crate::{
    keys::userinfo_claims,
    store::{TokenKind, hash},
};

/// `GET|POST /openid/userinfo` with `Authorization: Bearer <access token>`.
pub async fn claims(State(provider): State<Arc<Provider>>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return invalid_token("an access token is required (Authorization: Bearer)");
    };
    let grant = match provider
        .store
        .token(&hash(token.trim()), TokenKind::Access, now())
        .await
    {
        Ok(Some(grant)) => grant,
        Ok(None) => return invalid_token("the access token is invalid or expired"),
        Err(error) => return unavailable(&error),
    };
    let user = match provider.directory.user(&grant.username).await {
        Ok(Some(user)) => user,
        Ok(None) => return invalid_token("the user no longer exists"),
        Err(error) => return unavailable(&error),
    };
    let scopes: Vec<String> = grant.scope.split_whitespace().map(str::to_owned).collect();
    let mut response = Json(userinfo_claims(&user, &scopes)).into_response();
    protect(response.headers_mut());
    response
}

fn invalid_token(description: &str) -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    protect(response.headers_mut());
    response
}
