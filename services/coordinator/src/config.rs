//! The coordinator's settings (`FLEET_COORDINATOR_*`) on top of the common ones.

use std::{collections::BTreeMap, time::Duration};

use fleet_shared::{
    Secret, catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    service::ServiceConfig,
};
use tonic::codegen::http;

use crate::limits::quote;

/// Everything the coordinator needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_COORDINATOR_<SERVICE>_URL` (e.g. `FLEET_COORDINATOR_POSTGRESQL_URL=
    /// http://postgresql:50052` or a comma-separated list of URLs): the addon services of this
    /// deployment and where their replicas are. An addon whose service is not configured
    /// cannot be installed.
    pub services: BTreeMap<&'static str, ServiceUrls>,
    /// `FLEET_COORDINATOR_SERVICE_TOKEN_FILE`: bearer token for calling the addon services
    /// (default: the file of `FLEET_API_TOKEN_FILE`, one token for the fleet).
    pub service_token: Secret<String>,
    /// `FLEET_COORDINATOR_STATE_URL`: where app records live: `sqlite://PATH` (default
    /// `sqlite://fleet-coordinator.db`, created if missing) or `postgres://…`.
    pub state_url: Secret<String>,
    /// `FLEET_COORDINATOR_CALL_TIMEOUT_SECS`: deadline of one call to an addon service
    /// (default 120; creating PostGIS takes seconds), retries on other replicas included.
    pub call_timeout: Duration,
    /// `FLEET_COORDINATOR_LOCK_WAIT_SECS`: how long a call waits for another call on the same
    /// app (in this process or, on PostgreSQL state, in another coordinator replica) before it
    /// fails as ABORTED (default: the call timeout).
    pub lock_wait: Duration,
    /// Runtime variables every app gets.
    pub runtime: Runtime,
}

/// The platform's side of the app runtime (`CLOUDRON_API_ORIGIN`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// `FLEET_COORDINATOR_API_ORIGIN`, e.g. `https://my.example.com` (required).
    pub api_origin: String,
    /// `FLEET_COORDINATOR_WEBADMIN_ORIGIN` (default: the API origin).
    pub webadmin_origin: String,
    /// `FLEET_COORDINATOR_PROXY_IP`: the reverse proxy apps may trust (default `172.18.0.1`).
    pub proxy_ip: String,
    /// `FLEET_COORDINATOR_APP_SCHEME`: scheme of app origins (default `https`).
    pub app_scheme: String,
}

/// Where one addon service's replicas are: the setting as written and its URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrls {
    /// The setting's value as configured (shown by GetFleetStatus).
    pub configured: String,
    /// Its URLs, in the order written; each host may resolve to several replicas.
    pub urls: Vec<ServiceUrl>,
}

/// One URL of a service's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl {
    /// `https` (true) or `http`.
    pub https: bool,
    /// The host as written: a DNS name, an IPv4 literal or an IPv6 literal without brackets.
    pub host: String,
    /// The port (written, or 80/443 by scheme).
    pub port: u16,
}

impl ServiceUrl {
    /// `scheme://host:port`, the URL's origin.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Parses `variable`'s `value`: one or more comma-separated `http://` or `https://` URLs with
/// a host, an optional port and no path, query or credentials. Errors name `variable`.
pub fn parse_service_urls(variable: &str, value: &str) -> Result<ServiceUrls, String> {
    let mut urls = Vec::new();
    for (index, item) in value.split(',').map(str::trim).enumerate() {
        let which = index + 1;
        if item.is_empty() {
            return Err(format!(
                "{variable}: URL {which} of the list is empty; write URLs separated by single \
                 commas, e.g. http://postgresql:50052,http://10.0.0.7:50052"
            ));
        }
        let url = parse_service_url(item)
            .map_err(|reason| format!("{variable}: URL {which} ({}) {reason}", quote(item)))?;
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    Ok(ServiceUrls {
        configured: value.trim().to_owned(),
        urls,
    })
}

fn parse_service_url(item: &str) -> Result<ServiceUrl, String> {
    let (https, rest) = if let Some(rest) = item.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = item.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err("must be an http:// or https:// URL".to_owned());
    };
    let uri: http::Uri = item.parse().map_err(|e| format!("is not a URL: {e}"))?;
    if rest.contains('@') {
        return Err("must not carry credentials (the token comes from a file)".to_owned());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must name only a scheme, host and port, no path or query".to_owned());
    }
    let host = uri
        .host()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| "has no host".to_owned())?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    // The http crate ignores a port it cannot read; the authority's text says what was written.
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let after_host = authority
        .rsplit_once(']')
        .map_or(authority, |(_, rest)| rest);
    let port = match after_host.rsplit_once(':') {
        None => {
            if https {
                443
            } else {
                80
            }
        }
        Some((_, port)) => match port.parse::<u16>() {
            Ok(0) => return Err("has port 0".to_owned()),
            Ok(port) => port,
            Err(_) => return Err(format!("has an invalid port {}", quote(port))),
        },
    };
    Ok(ServiceUrl { https, host, port })
}

/// The setting naming where `service` is reached: `FLEET_COORDINATOR_<SERVICE>_URL`.
pub fn service_url_variable(service: &catalog::Service) -> String {
    format!("FLEET_COORDINATOR_{}_URL", service.env)
}

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::COORDINATOR.default_port);
        let mut services = BTreeMap::new();
        for service in catalog::addon_services() {
            let variable = service_url_variable(service);
            if let Some(value) = env.optional(&variable) {
                match parse_service_urls(&variable, &value) {
                    Ok(urls) => {
                        services.insert(service.name, urls);
                    }
                    Err(problem) => env.problem(problem),
                }
            }
        }
        let token_file = env
            .optional("FLEET_COORDINATOR_SERVICE_TOKEN_FILE")
            .map(|_| "FLEET_COORDINATOR_SERVICE_TOKEN_FILE")
            .unwrap_or("FLEET_API_TOKEN_FILE");
        let service_token = env
            .secret_file(token_file)
            .map(|t| Secret::new(t.expose().trim().to_owned()));
        let state_url = env
            .optional("FLEET_COORDINATOR_STATE_URL")
            .unwrap_or_else(|| "sqlite://fleet-coordinator.db".to_owned());
        if !(state_url.starts_with("sqlite:") || state_url.starts_with("postgres")) {
            env.problem(
                "FLEET_COORDINATOR_STATE_URL must be sqlite://PATH or postgres://…".to_owned(),
            );
        }
        let call_timeout = env.seconds(
            "FLEET_COORDINATOR_CALL_TIMEOUT_SECS",
            Duration::from_secs(120),
        );
        let lock_wait = env.seconds("FLEET_COORDINATOR_LOCK_WAIT_SECS", call_timeout);
        let api_origin = env.required(
            "FLEET_COORDINATOR_API_ORIGIN",
            "the platform API's origin apps are told (CLOUDRON_API_ORIGIN), e.g. https://my.example.com",
        );
        let webadmin_origin = env.optional("FLEET_COORDINATOR_WEBADMIN_ORIGIN");
        let proxy_ip = env
            .optional("FLEET_COORDINATOR_PROXY_IP")
            .unwrap_or_else(|| "172.18.0.1".to_owned());
        let app_scheme = env
            .optional("FLEET_COORDINATOR_APP_SCHEME")
            .unwrap_or_else(|| "https".to_owned());
        env.finish()?;
        let (Some(common), Some(service_token), Some(api_origin)) =
            (common, service_token, api_origin)
        else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self {
            common,
            services,
            service_token,
            state_url: Secret::new(state_url),
            call_timeout,
            lock_wait,
            runtime: Runtime {
                webadmin_origin: webadmin_origin.unwrap_or_else(|| api_origin.clone()),
                api_origin,
                proxy_ip,
                app_scheme,
            },
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    const VAR: &str = "FLEET_COORDINATOR_POSTGRESQL_URL";

    fn url(https: bool, host: &str, port: u16) -> ServiceUrl {
        ServiceUrl {
            https,
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn a_list_of_urls_is_parsed_in_order_without_duplicates() {
        let parsed = parse_service_urls(
            VAR,
            "http://postgresql:50052, http://10.0.0.7:50052,http://[::1]:7,https://pg.example.com,\
             http://postgresql:50052",
        )
        .unwrap();
        assert_eq!(
            parsed.urls,
            [
                url(false, "postgresql", 50052),
                url(false, "10.0.0.7", 50052),
                url(false, "::1", 7),
                url(true, "pg.example.com", 443),
            ]
        );
        assert_eq!(parsed.urls[2].origin(), "http://[::1]:7");
        assert_eq!(parsed.urls[3].origin(), "https://pg.example.com:443");
        let one = parse_service_urls(VAR, "http://127.0.0.1:50052/").unwrap();
        assert_eq!(one.urls, [url(false, "127.0.0.1", 50052)]);
        assert_eq!(one.configured, "http://127.0.0.1:50052/");
        assert_eq!(
            parse_service_urls(VAR, "http://localhost").unwrap().urls,
            [url(false, "localhost", 80)]
        );
    }

    #[test]
    fn a_bad_list_is_refused_naming_the_variable_and_the_url() {
        for (value, expected) in [
            ("", "URL 1 of the list is empty"),
            ("http://a:1,,http://b:1", "URL 2 of the list is empty"),
            ("http://a:1,", "URL 2 of the list is empty"),
            (
                "postgresql:50052",
                "URL 1 (\"postgresql:50052\") must be an http:// or https://",
            ),
            (
                "http://a:1,grpc://b:2",
                "URL 2 (\"grpc://b:2\") must be an http://",
            ),
            ("http://", "URL 1 (\"http://\") is not a URL"),
            ("http://a:1/v1", "no path or query"),
            ("http://a:1?x=1", "no path or query"),
            ("http://user:pw@a:1", "must not carry credentials"),
            ("http://a:99999", "has an invalid port \"99999\""),
            ("http://a:x", "has an invalid port \"x\""),
            ("http://a:0", "has port 0"),
        ] {
            let error = parse_service_urls(VAR, value).unwrap_err();
            assert!(
                error.starts_with(VAR) && error.contains(expected),
                "{value:?}: {error}"
            );
        }
    }
}
