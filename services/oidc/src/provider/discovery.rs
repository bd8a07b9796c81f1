//! Discovery (`/.well-known/openid-configuration`) and the JSON Web Key Set.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{Provider, paths};

/// `GET /.well-known/openid-configuration`.
pub async fn metadata(State(provider): State<Arc<Provider>>) -> Response {
    let issuer = &provider.issuer;
    let body = json!({
        "issuer": issuer.as_str(),
        "authorization_endpoint": issuer.url(paths::AUTHORIZE),
        "token_endpoint": issuer.url(paths::TOKEN),
        "userinfo_endpoint": issuer.url(paths::USERINFO),
        "jwks_uri": issuer.url(paths::JWKS),
        "end_session_endpoint": issuer.url(paths::END_SESSION),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "groups", "offline_access"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "given_name",
            "family_name", "preferred_username", "locale", "email", "email_verified", "groups"
        ],
        "authorization_response_iss_parameter_supported": true,
    });
    cached(Json(body).into_response())
}

/// `GET /openid/jwks`: every signing key, old ones too, so tokens they signed still verify.
pub async fn jwks(State(provider): State<Arc<Provider>>) -> Response {
    let keys = provider.signer.jwks().await;
    cached(Json(keys).into_response())
}

fn cached(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
