//! The token endpoint: authenticates the client (`client_secret_basic`, `client_secret_post`,
//! or none for a native app's PKCE-bound code), redeems single-use codes and refresh tokens,
//! and issues access, refresh and ID tokens. Errors are the JSON a client library expects
//! (RFC 6749 section 5.2).

use std::sync::Arc;

use axum::{
    Form, Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use fleet_shared::error::AddonError;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    Provider,
    authorize::is_native,
    now, secs,
    web::{protect, random_token},
};
use crate::{
    keys::IdTokenInput,
    store::{Client, Grant, TokenKind, hash},
    user::User,
};

/// The token request's form.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// An OAuth error answer.
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The client authenticated with HTTP Basic: a 401 then names the scheme.
    basic: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic: false,
        }
    }

    fn invalid_client(basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "client authentication failed".to_owned(),
            basic,
        }
    }

    fn invalid_grant(description: &str) -> Self {
        Self::new("invalid_grant", description)
    }
}

impl From<AddonError> for OAuthError {
    fn from(error: AddonError) -> Self {
        tracing::warn!(error = %error, "token request could not be completed");
        Self {
            status: if error.is_unavailable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            error: if error.is_unavailable() {
                "temporarily_unavailable"
            } else {
                "server_error"
            },
            description: "the provider cannot complete the request now; retry shortly".to_owned(),
            basic: false,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, Json(body)).into_response();
        protect(response.headers_mut());
        if self.status == StatusCode::UNAUTHORIZED && self.basic {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"token\""),
            );
        }
        response
    }
}

/// How the client identified itself.
struct Caller {
    client_id: String,
    secret: Option<String>,
    basic: bool,
}

/// `POST /openid/token`.
pub async fn exchange(
    State(provider): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    match grant(&provider, &headers, form).await {
        Ok(body) => {
            let mut response = Json(body).into_response();
            protect(response.headers_mut());
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn grant(
    provider: &Provider,
    headers: &HeaderMap,
    form: TokenForm,
) -> Result<serde_json::Value, OAuthError> {
    let caller = caller(headers, &form)?;
    let client = provider
        .store
        .client(&caller.client_id)
        .await?
        .ok_or(OAuthError::invalid_client(caller.basic))?;
    let authenticated = match &caller.secret {
        Some(secret) => {
            if !provider.secrets.verify(&client, secret) {
                tracing::info!(client_id = %client.client_id, "wrong client secret");
                return Err(OAuthError::invalid_client(caller.basic));
            }
            true
        }
        None => false,
    };
    match form.grant_type.as_str() {
        "authorization_code" => redeem_code(provider, &client, authenticated, form).await,
        "refresh_token" => {
            if !authenticated {
                return Err(OAuthError::invalid_client(caller.basic));
            }
            refresh(provider, &client, form).await
        }
        "" => Err(OAuthError::new("invalid_request", "grant_type is required")),
        _ => Err(OAuthError::new(
            "unsupported_grant_type",
            "use authorization_code or refresh_token",
        )),
    }
}

/// The client id and secret from HTTP Basic (form-urlencoded parts, RFC 6749 2.3.1) or the
/// form; both at once is refused.
fn caller(headers: &HeaderMap, form: &TokenForm) -> Result<Caller, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "));
    if let Some(encoded) = basic {
        if form.client_secret.is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method, not two",
            ));
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(OAuthError::invalid_client(true))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or(OAuthError::invalid_client(true))?;
        // Each part is form-urlencoded before it is joined (RFC 6749 2.3.1).
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(&part.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let client_id = decode(id);
        if form
            .client_id
            .as_ref()
            .is_some_and(|form_id| *form_id != client_id)
        {
            return Err(OAuthError::invalid_client(true));
        }
        return Ok(Caller {
            client_id,
            secret: Some(decode(secret)),
            basic: true,
        });
    }
    let client_id = form
        .client_id
        .clone()
        .ok_or(OAuthError::invalid_client(false))?;
    Ok(Caller {
        client_id,
        secret: form.client_secret.clone(),
        basic: false,
    })
}

async fn redeem_code(
    provider: &Provider,
    client: &Client,
    authenticated: bool,
    form: TokenForm,
) -> Result<serde_json::Value, OAuthError> {
    let code = form
        .code
        .ok_or_else(|| OAuthError::new("invalid_request", "code is required"))?;
    // Taken before any other check: a code is spent by its first presentation, whatever
    // comes of it, so a stolen code cannot be tried twice.
    let stored = provider
        .store
        .take_code(&hash(&code))
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the code is invalid, expired or already used"))?;
    if stored.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if stored.expires_at <= now() {
        return Err(OAuthError::invalid_grant(
            "the code is invalid, expired or already used",
        ));
    }
    if form.redirect_uri.as_deref() != Some(stored.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    match (&stored.code_challenge, &form.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                return Err(OAuthError::invalid_grant("the PKCE code_verifier is wrong"));
            }
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier is required (PKCE)",
            ));
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier given for a code issued without code_challenge",
            ));
        }
        (None, None) => {}
    }
    // A client without its secret may only redeem what only it can: a PKCE-bound code sent to
    // a native app's own scheme.
    let public_client = stored.code_challenge.is_some() && is_native(&stored.redirect_uri);
    if !(authenticated || public_client) {
        return Err(OAuthError::invalid_client(false));
    }
    let user = current_user(provider, &stored.username).await?;
    issue(
        provider,
        client,
        &user,
        &stored.scope,
        stored.auth_time,
        stored.nonce.as_deref(),
        Some(&code),
    )
    .await
}

async fn refresh(
    provider: &Provider,
    client: &Client,
    form: TokenForm,
) -> Result<serde_json::Value, OAuthError> {
    let token = form
        .refresh_token
        .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is required"))?;
    let grant = provider
        .store
        .take_token(&hash(&token), TokenKind::Refresh)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid or expired"))?;
    if grant.client_id != client.client_id || grant.expires_at <= now() {
        return Err(OAuthError::invalid_grant(
            "the refresh token is invalid or expired",
        ));
    }
    let user = current_user(provider, &grant.username).await?;
    issue(
        provider,
        client,
        &user,
        &grant.scope,
        grant.auth_time,
        None,
        None,
    )
    .await
}

/// The user as the directory holds them now; a user who left loses every token.
async fn current_user(provider: &Provider, username: &str) -> Result<User, OAuthError> {
    match provider.directory.user(username).await? {
        Some(user) => Ok(user),
        None => {
            provider.store.revoke_user(username).await?;
            tracing::info!(username = %username, "tokens of a removed user revoked");
            Err(OAuthError::invalid_grant(
                "the user no longer exists in the directory",
            ))
        }
    }
}

/// Access, refresh and ID tokens for `user`.
async fn issue(
    provider: &Provider,
    client: &Client,
    user: &User,
    scope: &str,
    auth_time: i64,
    nonce: Option<&str>,
    code: Option<&str>,
) -> Result<serde_json::Value, OAuthError> {
    let issued = now();
    let access_token = random_token();
    let refresh_token = random_token();
    let grant = |lifetime: std::time::Duration| Grant {
        client_id: client.client_id.clone(),
        username: user.username.clone(),
        scope: scope.to_owned(),
        auth_time,
        expires_at: issued + secs(lifetime),
    };
    let store = &provider.store;
    store
        .insert_token(
            &hash(&access_token),
            TokenKind::Access,
            &grant(provider.lifetimes.access_token),
        )
        .await?;
    store
        .insert_token(
            &hash(&refresh_token),
            TokenKind::Refresh,
            &grant(provider.lifetimes.refresh_token),
        )
        .await?;
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    let id_token = provider
        .signer
        .sign_id_token(
            client.algorithm,
            &IdTokenInput {
                issuer: provider.issuer.as_str(),
                client_id: &client.client_id,
                user,
                nonce,
                auth_time,
                lifetime: provider.lifetimes.access_token,
                access_token: Some(&access_token),
                code,
                scopes: &scopes,
            },
        )
        .await
        .map_err(|e| AddonError::Internal(format!("signing the ID token: {e}")))?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": secs(provider.lifetimes.access_token),
        "refresh_token": refresh_token,
        "id_token": id_token,
        "scope": scope,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn basic_credentials_are_form_urlencoded_parts() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("cid%3Ax%26y:s+e%2Bt%3A");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        let caller = caller(&headers, &TokenForm::default()).ok().unwrap();
        assert_eq!(caller.client_id, "cid:x&y");
        assert_eq!(caller.secret.as_deref(), Some("s e+t:"));
        assert!(caller.basic);

        let both = TokenForm {
            client_secret: Some("s".to_owned()),
            ..TokenForm::default()
        };
        assert!(caller_error(&headers, &both).contains("one client authentication method"));
        let other_id = TokenForm {
            client_id: Some("cid-other".to_owned()),
            ..TokenForm::default()
        };
        assert!(caller_error(&headers, &other_id).contains("invalid_client"));
    }

    fn caller_error(headers: &HeaderMap, form: &TokenForm) -> String {
        match caller(headers, form) {
            Ok(_) => String::new(),
            Err(error) => format!("{} {}", error.error, error.description),
        }
    }
}
