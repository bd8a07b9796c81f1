//! The oidc service's settings (`FLEET_OIDC_*`) on top of the common ones.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use fleet_shared::{
    Secret, catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    service::ServiceConfig,
};
use url::Url;

use crate::directory::DirectorySettings;

/// The port the provider's HTTP face listens on unless `FLEET_OIDC_HTTP_LISTEN` says otherwise.
pub const DEFAULT_HTTP_PORT: u16 = 8056;

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has (the gRPC addon listens on `FLEET_LISTEN`).
    pub common: CommonConfig,
    /// `FLEET_OIDC_ISSUER`: the provider's public origin, e.g. `https://my.example.com`
    /// (required). Every endpoint is under it; ID tokens name it as `iss`.
    pub issuer: Issuer,
    /// `FLEET_OIDC_HTTP_LISTEN`: address of the provider's HTTP server (default
    /// `127.0.0.1:8056`); a reverse proxy terminates TLS in front of it.
    pub http_listen: SocketAddr,
    /// `FLEET_OIDC_STATE_URL`: where clients, codes, tokens, sessions and signing keys live:
    /// `sqlite:///path/oidc.db` (created if missing) or `postgres://...` for several replicas
    /// (required).
    pub state_url: Secret<String>,
    /// The directory users log in against (`FLEET_OIDC_LDAP_*`).
    pub directory: DirectorySettings,
    /// `FLEET_OIDC_APP_SCHEME`: scheme of the apps' origins that redirect URIs are built on
    /// (`https`, the default, or `http` for a platform without TLS).
    pub app_scheme: String,
    /// `FLEET_OIDC_PROVIDER_NAME`: what `CLOUDRON_OIDC_PROVIDER_NAME` tells apps to show on
    /// their "Login with ..." button (default `Cloudron`).
    pub provider_name: String,
    /// Lifetimes of what the provider issues (`FLEET_OIDC_*_SECS`).
    pub lifetimes: Lifetimes,
    /// `FLEET_OIDC_TRUSTED_PROXIES`: comma-separated addresses of reverse proxies whose
    /// `X-Forwarded-For` names the client (the login throttle counts per client address).
    pub trusted_proxies: Vec<IpAddr>,
    /// `FLEET_OIDC_KEY_MAX_AGE_DAYS`: a signing key older than this is replaced by a new one,
    /// which signs from then on while the old one stays published (default 90).
    pub key_max_age: Duration,
}

/// How long what the provider issues stays valid.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// `FLEET_OIDC_CODE_SECS`: authorization codes (default 60).
    pub code: Duration,
    /// `FLEET_OIDC_ACCESS_TOKEN_SECS`: access and ID tokens (default 3600).
    pub access_token: Duration,
    /// `FLEET_OIDC_REFRESH_TOKEN_SECS`: refresh tokens (default 30 days).
    pub refresh_token: Duration,
    /// `FLEET_OIDC_SESSION_SECS`: login sessions, the provider's and the proxyAuth walls'
    /// (default 7 days).
    pub session: Duration,
}

/// The provider's public origin and the URLs under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

impl Issuer {
    /// Parses an origin: `http(s)://host[:port]`, no path, query or fragment.
    pub fn parse(value: &str) -> Result<Self, String> {
        let url = Url::parse(value).map_err(|e| format!("is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "must be http:// or https://, not {}://",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("names no host".to_owned());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("must be an origin (scheme, host and port), without a path".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".to_owned());
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The origin, without a trailing `/` (the `iss` claim).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<origin><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// Whether browsers reach it over TLS (cookies are then `Secure`).
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::OIDC.default_port);
        let issuer = env
            .required(
                "FLEET_OIDC_ISSUER",
                "the provider's public origin, e.g. https://my.example.com",
            )
            .and_then(|value| match Issuer::parse(&value) {
                Ok(issuer) => Some(issuer),
                Err(reason) => {
                    env.problem(format!("FLEET_OIDC_ISSUER {reason}"));
                    None
                }
            });
        let http_listen = env.parsed(
            "FLEET_OIDC_HTTP_LISTEN",
            SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT)),
        );
        let state_url = env.required(
            "FLEET_OIDC_STATE_URL",
            "sqlite:///path/oidc.db, or postgres://USER@HOST/DB for several replicas",
        );
        if let Some(url) = &state_url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres"))
        {
            env.problem("FLEET_OIDC_STATE_URL must be a sqlite: or postgres:// URL".to_owned());
        }
        let directory = DirectorySettings::read(&mut env, "FLEET_OIDC", true);
        let app_scheme = env
            .optional("FLEET_OIDC_APP_SCHEME")
            .unwrap_or_else(|| "https".to_owned());
        if !matches!(app_scheme.as_str(), "https" | "http") {
            env.problem(format!(
                "FLEET_OIDC_APP_SCHEME must be https or http, not {app_scheme:?}"
            ));
        }
        let provider_name = env
            .optional("FLEET_OIDC_PROVIDER_NAME")
            .unwrap_or_else(|| "Cloudron".to_owned());
        let lifetimes = Lifetimes {
            code: env.seconds("FLEET_OIDC_CODE_SECS", Duration::from_secs(60)),
            access_token: env.seconds("FLEET_OIDC_ACCESS_TOKEN_SECS", Duration::from_secs(3600)),
            refresh_token: env.seconds(
                "FLEET_OIDC_REFRESH_TOKEN_SECS",
                Duration::from_secs(30 * 24 * 3600),
            ),
            session: env.seconds(
                "FLEET_OIDC_SESSION_SECS",
                Duration::from_secs(7 * 24 * 3600),
            ),
        };
        let mut trusted_proxies = Vec::new();
        for entry in env
            .optional("FLEET_OIDC_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            match entry.parse() {
                Ok(address) => trusted_proxies.push(address),
                Err(_) => env.problem(format!(
                    "FLEET_OIDC_TRUSTED_PROXIES: {entry:?} is not an IP address"
                )),
            }
        }
        let key_max_age_days: u64 = env.parsed("FLEET_OIDC_KEY_MAX_AGE_DAYS", 90);
        if key_max_age_days == 0 {
            env.problem("FLEET_OIDC_KEY_MAX_AGE_DAYS must be at least 1".to_owned());
        }
        env.finish()?;
        let (Some(common), Some(issuer), Some(state_url), Some(directory)) =
            (common, issuer, state_url, directory)
        else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self {
            common,
            issuer,
            http_listen,
            state_url: Secret::new(state_url),
            directory,
            app_scheme,
            provider_name,
            lifetimes,
            trusted_proxies,
            key_max_age: Duration::from_secs(key_max_age_days * 24 * 3600),
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_issuer_is_an_origin() {
        let issuer = Issuer::parse("https://my.example.com/").unwrap();
        assert_eq!(issuer.as_str(), "https://my.example.com");
        assert_eq!(
            issuer.url("/openid/jwks"),
            "https://my.example.com/openid/jwks"
        );
        assert!(issuer.is_https());
        assert!(!Issuer::parse("http://127.0.0.1:8056").unwrap().is_https());
        for bad in [
            "my.example.com",
            "ftp://x",
            "https://x/path",
            "https://x/?q",
            "https://u:p@x",
        ] {
            assert!(Issuer::parse(bad).is_err(), "{bad}");
        }
    }
}
