//! The provider's HTTP face: discovery, keys, the authorization endpoint with its login page,
//! the token and userinfo endpoints, RP-initiated logout, and the proxyAuth walls' endpoints.
//!
//! Layout: [`authorize`] (login page, sessions, codes), [`token`] (code and refresh grants),
//! [`userinfo`], [`logout`], [`discovery`] (metadata and JWKS), [`wall`] (forward auth),
//! [`web`] (cookies, CSRF, pages, the client's source address).

pub mod authorize;
pub mod discovery;
pub mod logout;
pub mod token;
pub mod userinfo;
pub mod wall;
pub mod web;

use std::{net::IpAddr, sync::Arc};

use axum::{
    Router,
    routing::{get, post},
};
use fleet_shared::{Secret, error::AddonError};

use crate::{
    clients::ClientSecrets,
    config::{Config, Issuer, Lifetimes},
    directory::UserDirectory,
    signing::Signer,
    store::{Session, Store, hash},
    throttle::{Throttle, ThrottleSettings},
};

/// Where each endpoint is, under the issuer (and, for the wall, on the app's domain).
pub mod paths {
    /// Discovery document.
    pub const DISCOVERY: &str = "/.well-known/openid-configuration";
    /// JSON Web Key Set.
    pub const JWKS: &str = "/openid/jwks";
    /// Authorization endpoint (GET shows the login page).
    pub const AUTHORIZE: &str = "/openid/auth";
    /// Where the login page posts.
    pub const LOGIN: &str = "/openid/auth/login";
    /// Token endpoint.
    pub const TOKEN: &str = "/openid/token";
    /// Userinfo (profile) endpoint.
    pub const USERINFO: &str = "/openid/userinfo";
    /// RP-initiated logout.
    pub const END_SESSION: &str = "/openid/session/end";
    /// The wall's forward-auth check (nginx `auth_request`).
    pub const WALL_CHECK: &str = "/proxy-auth/check";
    /// The wall's login, which the app's `/login` is proxied to.
    pub const WALL_LOGIN: &str = "/proxy-auth/login";
    /// The wall's logout, which the app's `/logout` is proxied to.
    pub const WALL_LOGOUT: &str = "/proxy-auth/logout";
    /// The wall's login on the app's own domain (also its redirect URI).
    pub const APP_LOGIN: &str = "/login";
    /// The wall's logout on the app's own domain.
    pub const APP_LOGOUT: &str = "/logout";
}

/// Everything the endpoints share.
pub struct Provider {
    pub store: Store,
    pub directory: UserDirectory,
    pub signer: Arc<Signer>,
    pub secrets: ClientSecrets,
    pub throttle: Throttle,
    pub issuer: Issuer,
    pub lifetimes: Lifetimes,
    /// Scheme of the apps' origins (`https` unless configured otherwise).
    pub app_scheme: String,
    /// Key of the login form's CSRF tokens (derived from the master key, so every replica
    /// accepts a form another one rendered).
    pub csrf_key: Secret<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client's address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Users behind wall sessions whom the directory confirmed lately.
    pub wall_users: wall::CheckedUsers,
}

impl Provider {
    /// The provider `config` describes, over `store`, `directory` and `signer`.
    pub fn new(
        config: &Config,
        store: Store,
        directory: UserDirectory,
        signer: Arc<Signer>,
    ) -> Self {
        let master_key = config.common.master_key.clone();
        // The master key yields keys only through derive_password; an "addon" name no addon
        // has keeps this one apart from every app credential.
        let csrf_app = fleet_shared::AppId::parse("oidc-provider")
            .unwrap_or_else(|_| unreachable!("a valid app id"));
        Self {
            store,
            directory,
            signer,
            csrf_key: master_key.derive_password("oidc-csrf", &csrf_app, 0),
            secrets: ClientSecrets::new(master_key),
            throttle: Throttle::new(ThrottleSettings::default()),
            issuer: config.issuer.clone(),
            lifetimes: config.lifetimes,
            app_scheme: config.app_scheme.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            wall_users: wall::CheckedUsers::default(),
        }
    }

    /// Starts a login session of `username` for `client_id` (a wall's client, or
    /// [`crate::store::PROVIDER_SESSION`] for the provider's own); returns the value for the
    /// browser's cookie and when the user authenticated.
    pub async fn start_session(
        &self,
        client_id: &str,
        username: &str,
    ) -> Result<(String, i64), AddonError> {
        let session = web::random_token();
        let auth_time = now();
        let stored = Session {
            client_id: client_id.to_owned(),
            username: username.to_owned(),
            auth_time,
            expires_at: auth_time + secs(self.lifetimes.session),
        };
        self.store.insert_session(&hash(&session), &stored).await?;
        tracing::info!(username = %username, client_id = %client_id, "signed in");
        Ok((session, auth_time))
    }

    /// Whether cookies the provider sets on its own origin are `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.is_https()
    }
}

/// The provider's routes.
pub fn router(provider: Arc<Provider>) -> Router {
    Router::new()
        .route(paths::DISCOVERY, get(discovery::metadata))
        .route(paths::JWKS, get(discovery::jwks))
        .route(paths::AUTHORIZE, get(authorize::show))
        .route(paths::LOGIN, post(authorize::login))
        .route(paths::TOKEN, post(token::exchange))
        .route(
            paths::USERINFO,
            get(userinfo::claims).post(userinfo::claims),
        )
        .route(paths::END_SESSION, get(logout::end_session))
        .route(paths::WALL_CHECK, get(wall::check))
        .route(paths::WALL_LOGIN, get(wall::login))
        .route(paths::WALL_LOGOUT, get(wall::logout))
        .with_state(provider)
}

/// A duration in whole seconds, as stored.
pub fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Now, in unix seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
