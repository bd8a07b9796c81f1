//! The coordinator's settings (`FLEET_COORDINATOR_*`) on top of the common ones.

use std::{collections::BTreeMap, time::Duration};

use fleet_shared::{
    Secret, catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    service::ServiceConfig,
};

/// Everything the coordinator needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_COORDINATOR_<SERVICE>_URL` (e.g. `FLEET_COORDINATOR_POSTGRESQL_URL=
    /// http://127.0.0.1:50052`): the addon services of this deployment. An addon whose service
    /// is not configured cannot be installed.
    pub services: BTreeMap<&'static str, String>,
    /// `FLEET_COORDINATOR_SERVICE_TOKEN_FILE`: bearer token for calling the addon services
    /// (default: the file of `FLEET_API_TOKEN_FILE`, one token for the fleet).
    pub service_token: Secret<String>,
    /// `FLEET_COORDINATOR_STATE_URL`: where app records live: `sqlite://PATH` (default
    /// `sqlite://fleet-coordinator.db`, created if missing) or `postgres://…`.
    pub state_url: Secret<String>,
    /// `FLEET_COORDINATOR_CALL_TIMEOUT_SECS`: deadline of one call to an addon service
    /// (default 120; creating PostGIS takes seconds).
    pub call_timeout: Duration,
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
            if let Some(url) = env.optional(&variable) {
                if url.starts_with("http://") || url.starts_with("https://") {
                    services.insert(service.name, url);
                } else {
                    env.problem(format!("{variable} must be an http:// or https:// URL"));
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
