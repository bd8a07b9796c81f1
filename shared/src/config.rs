//! Configuration from environment variables, read once at start.
//!
//! Every setting of the fleet is a `FLEET_*` variable. A service reads the common ones with
//! [`CommonConfig::read`] and its own (`FLEET_<SERVICE>_*`) with the same [`EnvReader`], then
//! calls [`EnvReader::finish`], which reports every missing, malformed or unknown setting at
//! once, so a typo fails the start instead of being ignored.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Display,
    net::SocketAddr,
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use crate::{
    Secret,
    auth::{ApiToken, ApiTokenError},
    catalog,
    credentials::{MasterKey, MasterKeyError},
    env_bundle::EnvPrefix,
    listener::ServerLimits,
};

/// Prefix of every fleet setting.
pub const SETTINGS_PREFIX: &str = "FLEET_";

/// Reads `FLEET_*` variables, collecting every problem instead of stopping at the first.
#[derive(Debug)]
pub struct EnvReader {
    service: &'static str,
    vars: BTreeMap<String, Secret<String>>,
    read: BTreeSet<String>,
    problems: Vec<String>,
}

/// One or more settings were missing, malformed or unknown. The message lists them all.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl EnvReader {
    /// Reads this process's environment for `service` (the [`catalog::Service::env`] of one).
    pub fn from_process(service: &'static str) -> Self {
        Self::from_vars(service, std::env::vars())
    }

    /// Reads the given variables (for tests and embedding).
    pub fn from_vars(
        service: &'static str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let vars = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(SETTINGS_PREFIX))
            .map(|(name, value)| (name, Secret::new(value)))
            .collect();
        Self {
            service,
            vars,
            read: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    /// The raw value of `name`, if set.
    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.read.insert(name.to_owned());
        self.vars.get(name).map(|value| value.expose().clone())
    }

    /// The value of `name`, or a problem if it is unset or empty.
    pub fn required(&mut self, name: &str, meaning: &str) -> Option<String> {
        match self.optional(name) {
            Some(value) if !value.is_empty() => Some(value),
            _ => {
                self.problems.push(format!("{name} is required: {meaning}"));
                None
            }
        }
    }

    /// `name` parsed as `T`, or `default` when unset.
    pub fn parsed<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        // Values are never echoed in problems: some settings are secrets.
        self.parsed_optional(name).unwrap_or(default)
    }

    /// `name` parsed as `T`, or `None` when unset.
    pub fn parsed_optional<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.optional(name)?;
        match raw.parse() {
            Ok(value) => Some(value),
            Err(error) => {
                self.problems.push(format!("{name} is invalid: {error}"));
                None
            }
        }
    }

    /// `name` as a whole number of seconds, or `default` when unset.
    pub fn seconds(&mut self, name: &str, default: Duration) -> Duration {
        Duration::from_secs(self.parsed(name, default.as_secs()))
    }

    /// The contents of the file named by `name` (a password file), without its trailing
    /// newline; `None` when unset or unreadable (then a problem is recorded).
    pub fn secret_file(&mut self, name: &str) -> Option<Secret<String>> {
        let path = self.optional(name)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(Secret::new(text.trim_end_matches(['\r', '\n']).to_owned())),
            Err(error) => {
                self.problems
                    .push(format!("{name}: cannot read {path}: {error}"));
                None
            }
        }
    }

    /// Records a problem found while interpreting settings.
    pub fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    /// Fails with every problem found, including `FLEET_*` variables that no one read and that
    /// belong to no other service.
    pub fn finish(self) -> Result<(), ConfigError> {
        let mut problems = self.problems;
        // `FLEET_<NAME>_*` settings of the other services are left to them, so one environment
        // can configure the whole fleet.
        let others: Vec<String> = catalog::SERVICES
            .iter()
            .filter(|other| other.env != self.service)
            .map(|other| format!("{SETTINGS_PREFIX}{}_", other.env))
            .collect();
        for name in self.vars.keys() {
            let belongs_elsewhere = others.iter().any(|prefix| name.starts_with(prefix));
            if !self.read.contains(name) && !belongs_elsewhere {
                problems.push(format!(
                    "{name} is not a setting of the {} service (typo?)",
                    self.service.to_lowercase()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }
}

/// Settings every service has.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `FLEET_LISTEN`: address of the gRPC server (default `127.0.0.1:<service port>`).
    pub listen: SocketAddr,
    /// `FLEET_MASTER_KEY_FILE`: file holding the key passwords are derived from.
    pub master_key: MasterKey,
    /// `FLEET_API_TOKEN_FILE`: file holding the bearer token callers must present.
    pub api_token: ApiToken,
    /// `FLEET_ENV_PREFIX`: prefix of the variables returned to apps (default `CLOUDRON`).
    pub env_prefix: EnvPrefix,
    /// `FLEET_LOG`: log filter in `RUST_LOG` syntax (default `info`).
    pub log_filter: String,
    /// `FLEET_SHUTDOWN_GRACE_SECS`: how long in-flight calls may run after SIGTERM (default 30).
    pub shutdown_grace: Duration,
    /// Connection, request and stream limits of the server (`FLEET_MAX_CONNECTIONS`, ...).
    pub limits: ServerLimits,
    /// `FLEET_METRICS_LISTEN`: where Prometheus metrics are served at `/metrics` (default: not
    /// served; `make up` and the compose file set it for every service).
    pub metrics_listen: Option<SocketAddr>,
    /// The service's catalog name (found by its well-known port), the `service` label of its
    /// metrics.
    pub service_name: &'static str,
}

impl CommonConfig {
    /// Reads the common settings; `default_port` is the service's well-known port.
    /// `None` when a problem was recorded in `env`.
    pub fn read(env: &mut EnvReader, default_port: u16) -> Option<Self> {
        let listen = env.parsed(
            "FLEET_LISTEN",
            SocketAddr::from(([127, 0, 0, 1], default_port)),
        );
        let master_key = env
            .required(
                "FLEET_MASTER_KEY_FILE",
                "path of the file holding the master key that app passwords are derived from",
            )
            .and_then(|path| {
                MasterKey::from_file(&PathBuf::from(path))
                    .map_err(|e: MasterKeyError| env.problem(format!("FLEET_MASTER_KEY_FILE: {e}")))
                    .ok()
            });
        let api_token = env
            .required(
                "FLEET_API_TOKEN_FILE",
                "path of the file holding the bearer token callers must send",
            )
            .and_then(|path| {
                ApiToken::from_file(&PathBuf::from(path))
                    .map_err(|e: ApiTokenError| env.problem(format!("FLEET_API_TOKEN_FILE: {e}")))
                    .ok()
            });
        let env_prefix = env.parsed("FLEET_ENV_PREFIX", EnvPrefix::default());
        let log_filter = env
            .optional("FLEET_LOG")
            .unwrap_or_else(|| "info".to_owned());
        let shutdown_grace = env.seconds("FLEET_SHUTDOWN_GRACE_SECS", Duration::from_secs(30));
        let limits = ServerLimits::read(env);
        let metrics_listen = env.parsed_optional("FLEET_METRICS_LISTEN");
        let service_name = crate::catalog::SERVICES
            .iter()
            .find(|s| s.default_port == default_port)
            .map_or("unknown", |s| s.name);
        Some(Self {
            listen,
            master_key: master_key?,
            api_token: api_token?,
            env_prefix,
            log_filter,
            shutdown_grace,
            limits,
            metrics_listen,
            service_name,
        })
    }
}

/// The settings of a service that administers a database server (`FLEET_<SERVICE>_ADMIN_URL`
/// and friends); the service parses the URL with its driver.
#[derive(Debug, Clone)]
pub struct DatabaseAdmin {
    /// `FLEET_<SERVICE>_ADMIN_URL`: an account that may create users and databases.
    pub url: Secret<String>,
    /// `FLEET_<SERVICE>_ADMIN_PASSWORD_FILE`: the admin password, instead of the URL's
    /// (Docker secrets).
    pub password: Option<Secret<String>>,
    /// `FLEET_<SERVICE>_APP_HOST`: host apps connect to (default: the admin URL's host).
    pub app_host: Option<String>,
    /// `FLEET_<SERVICE>_APP_PORT`: port apps connect to (default: the admin URL's port).
    pub app_port: Option<u16>,
    /// `FLEET_<SERVICE>_POOL_SIZE`: admin connections kept open (default 10).
    pub pool_size: u32,
    /// `FLEET_<SERVICE>_CONNECT_TIMEOUT_SECS`: how long a call waits for an admin connection
    /// before failing with UNAVAILABLE (default 5).
    pub connect_timeout: Duration,
}

impl DatabaseAdmin {
    /// Reads `FLEET_<service>_*`; `example` shows the URL's form in the error when it is
    /// missing. `None` when a problem was recorded.
    pub fn read(env: &mut EnvReader, service: &str, example: &str) -> Option<Self> {
        let var = |suffix: &str| format!("{SETTINGS_PREFIX}{service}_{suffix}");
        let url = env.required(
            &var("ADMIN_URL"),
            &format!("the admin account's URL, {example}"),
        );
        let password = env.secret_file(&var("ADMIN_PASSWORD_FILE"));
        let app_host = env.optional(&var("APP_HOST"));
        let app_port = env.parsed_optional(&var("APP_PORT"));
        let pool_size = env.parsed(&var("POOL_SIZE"), 10);
        if pool_size == 0 {
            env.problem(format!("{} must be at least 1", var("POOL_SIZE")));
        }
        let connect_timeout = env.seconds(&var("CONNECT_TIMEOUT_SECS"), Duration::from_secs(5));
        Some(Self {
            url: Secret::new(url?),
            password,
            app_host,
            app_port,
            pool_size,
            connect_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(vars: &[(&str, &str)]) -> EnvReader {
        EnvReader::from_vars(
            "POSTGRESQL",
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut env = reader(&[
            ("FLEET_LISTEN", "not an address"),
            ("FLEET_POSTGRESQL_TYPO", "1"),
            ("FLEET_MYSQL_ADMIN_URL", "belongs to mysql"),
            ("PATH", "/bin"),
        ]);
        assert!(CommonConfig::read(&mut env, 50052).is_none());
        let problems = env.finish().map_err(|e| e.0).err().unwrap_or_default();
        let joined = problems.join("\n");
        assert_eq!(problems.len(), 4, "{joined}");
        assert!(joined.contains("FLEET_LISTEN is invalid"), "{joined}");
        assert!(
            joined.contains("FLEET_MASTER_KEY_FILE is required"),
            "{joined}"
        );
        assert!(
            joined.contains("FLEET_API_TOKEN_FILE is required"),
            "{joined}"
        );
        assert!(
            joined.contains("FLEET_POSTGRESQL_TYPO is not a setting"),
            "{joined}"
        );
        assert!(!joined.contains("MYSQL"), "{joined}");
    }

    #[test]
    fn values_are_not_echoed_in_problems() {
        let mut env = reader(&[("FLEET_SHUTDOWN_GRACE_SECS", "s3cret-value")]);
        env.seconds("FLEET_SHUTDOWN_GRACE_SECS", Duration::from_secs(1));
        let message = env
            .finish()
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            message.contains("FLEET_SHUTDOWN_GRACE_SECS is invalid"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn defaults_apply_when_unset() {
        let mut env = reader(&[]);
        assert_eq!(
            env.seconds("FLEET_X_SECS", Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(env.parsed("FLEET_Y", 7_u32), 7);
        assert!(env.finish().is_ok());
    }
}
