//! The ldap service's settings (`FLEET_LDAP_*`) on top of the common ones.

use std::time::Duration;

use fleet_shared::{
    Secret, catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    service::ServiceConfig,
};

/// The directory administrator `deploy/ldap/cluster.sh` configures.
pub const DEFAULT_ADMIN_DN: &str = "cn=admin,dc=cloudron";

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_LDAP_ADMIN_URL`: the slapd the service administers (`ldap://HOST:PORT`).
    pub admin_url: String,
    /// `FLEET_LDAP_ADMIN_DN`: the account it binds as, allowed to write the whole tree
    /// (default [`DEFAULT_ADMIN_DN`]).
    pub admin_dn: String,
    /// `FLEET_LDAP_ADMIN_PASSWORD_FILE`: that account's password.
    pub admin_password: Secret<String>,
    /// The scheme apps connect with: the admin URL's (`ldap` or `ldaps`).
    pub app_scheme: &'static str,
    /// `FLEET_LDAP_APP_HOST`: the host apps connect to (default: the admin URL's host).
    pub app_host: String,
    /// `FLEET_LDAP_APP_PORT`: the port apps connect to (default: the admin URL's port).
    pub app_port: u16,
    /// `FLEET_LDAP_CONNECT_TIMEOUT_SECS`: how long connecting to slapd may take (default 5).
    pub connect_timeout: Duration,
    /// `FLEET_LDAP_OPERATION_TIMEOUT_SECS`: how long one LDAP operation may take (default 10).
    pub operation_timeout: Duration,
}

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::LDAP.default_port);
        let admin_url = env.required(
            "FLEET_LDAP_ADMIN_URL",
            "the slapd to administer, ldap://HOST:PORT",
        );
        let admin_dn = env
            .optional("FLEET_LDAP_ADMIN_DN")
            .unwrap_or_else(|| DEFAULT_ADMIN_DN.to_owned());
        let admin_password = env.secret_file("FLEET_LDAP_ADMIN_PASSWORD_FILE");
        if admin_password.is_none() && env.optional("FLEET_LDAP_ADMIN_PASSWORD_FILE").is_none() {
            env.problem(
                "FLEET_LDAP_ADMIN_PASSWORD_FILE is required: a file holding the password of \
                 FLEET_LDAP_ADMIN_DN"
                    .to_owned(),
            );
        }
        let app_host = env.optional("FLEET_LDAP_APP_HOST");
        let app_port = env.parsed_optional("FLEET_LDAP_APP_PORT");
        let connect_timeout =
            env.seconds("FLEET_LDAP_CONNECT_TIMEOUT_SECS", Duration::from_secs(5));
        let operation_timeout =
            env.seconds("FLEET_LDAP_OPERATION_TIMEOUT_SECS", Duration::from_secs(10));
        let address = admin_url
            .as_deref()
            .and_then(|url| match server_address(url) {
                Ok(address) => Some(address),
                Err(reason) => {
                    env.problem(format!("FLEET_LDAP_ADMIN_URL {reason}"));
                    None
                }
            });
        env.finish()?;
        let (Some(common), Some(admin_url), Some(admin_password), Some((scheme, host, port))) =
            (common, admin_url, admin_password, address)
        else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self {
            common,
            admin_url,
            admin_dn,
            admin_password,
            app_scheme: scheme,
            app_host: app_host.unwrap_or(host),
            app_port: app_port.unwrap_or(port),
            connect_timeout,
            operation_timeout,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// The scheme, host and port of an `ldap://` or `ldaps://` URL (ports 389 and 636 by default).
fn server_address(url: &str) -> Result<(&'static str, String, u16), String> {
    let parsed = url::Url::parse(url).map_err(|error| format!("is not a URL: {error}"))?;
    let (scheme, default_port) = match parsed.scheme() {
        "ldap" => ("ldap", 389),
        "ldaps" => ("ldaps", 636),
        other => return Err(format!("must be ldap:// or ldaps://, not {other}://")),
    };
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or("names no host")?
        .trim_matches(['[', ']'])
        .to_owned();
    Ok((scheme, host, parsed.port().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_admin_url_gives_the_default_app_address() {
        assert_eq!(
            server_address("ldap://127.0.0.1:3890").unwrap(),
            ("ldap", "127.0.0.1".to_owned(), 3890)
        );
        assert_eq!(
            server_address("ldaps://ldap.internal").unwrap(),
            ("ldaps", "ldap.internal".to_owned(), 636)
        );
        assert_eq!(
            server_address("ldap://[::1]").unwrap(),
            ("ldap", "::1".to_owned(), 389)
        );
        assert!(server_address("http://x").unwrap_err().contains("ldap://"));
        assert!(server_address("not a url").is_err());
    }
}
