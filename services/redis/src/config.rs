//! The redis service's settings (`FLEET_REDIS_*`) on top of the common ones.

use std::{ops::RangeInclusive, path::PathBuf, time::Duration};

use fleet_shared::{
    catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    service::ServiceConfig,
};

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_REDIS_DATA_DIR`: one directory per app (config, AOF, log) (required).
    pub data_dir: PathBuf,
    /// `FLEET_REDIS_BIND`: address the instances listen on (default `127.0.0.1`).
    pub bind: String,
    /// `FLEET_REDIS_APP_HOST`: host apps are told (default: the bind address).
    pub app_host: String,
    /// `FLEET_REDIS_PORTS`: range instances take their ports from (default `46000-46999`).
    pub ports: RangeInclusive<u16>,
    /// `FLEET_REDIS_MAXMEMORY_MB`: memory limit of one instance (default 150, as the platform).
    pub maxmemory_mb: u32,
    /// `FLEET_REDIS_APPENDFSYNC`: `everysec` (default), `always` or `no`.
    pub appendfsync: String,
    /// `FLEET_REDIS_SERVER_BIN`: the redis-server binary (default `redis-server` on PATH).
    pub server_bin: PathBuf,
    /// `FLEET_REDIS_RUN_AS`: the unprivileged user instances run as when the service runs as
    /// root (default `redis`, which Debian's redis-server package creates). Ignored otherwise:
    /// instances then run as the service's own user.
    pub run_as: String,
    /// `FLEET_REDIS_SUPERVISE_SECS`: how often dead instances are looked for (default 2).
    pub supervise_every: Duration,
    /// `FLEET_REDIS_STOP_INSTANCES_ON_EXIT`: stop every instance when the service stops
    /// (default false: apps keep their caches while the service restarts).
    pub stop_instances_on_exit: bool,
}

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::REDIS.default_port);
        let data_dir = env.required(
            "FLEET_REDIS_DATA_DIR",
            "directory holding one sub-directory per app instance",
        );
        let bind = env
            .optional("FLEET_REDIS_BIND")
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let app_host = env.optional("FLEET_REDIS_APP_HOST");
        // An address to listen on, not one an app can connect to.
        if app_host.is_none() && matches!(bind.as_str(), "0.0.0.0" | "::" | "[::]") {
            env.problem(format!(
                "FLEET_REDIS_APP_HOST is required when FLEET_REDIS_BIND is {bind}: the name or \
                 address apps reach this service's instances at"
            ));
        }
        let ports = env
            .optional("FLEET_REDIS_PORTS")
            .unwrap_or_else(|| "46000-46999".to_owned());
        let ports = match ports
            .split_once('-')
            .map(|(a, b)| (a.parse::<u16>(), b.parse::<u16>()))
        {
            Some((Ok(low), Ok(high))) if low > 0 && low <= high => Some(low..=high),
            _ => {
                env.problem("FLEET_REDIS_PORTS must be a range LOW-HIGH of TCP ports".to_owned());
                None
            }
        };
        let maxmemory_mb = env.parsed("FLEET_REDIS_MAXMEMORY_MB", 150);
        let appendfsync = env
            .optional("FLEET_REDIS_APPENDFSYNC")
            .unwrap_or_else(|| "everysec".to_owned());
        if !["everysec", "always", "no"].contains(&appendfsync.as_str()) {
            env.problem("FLEET_REDIS_APPENDFSYNC must be everysec, always or no".to_owned());
        }
        let server_bin = env
            .optional("FLEET_REDIS_SERVER_BIN")
            .unwrap_or_else(|| "redis-server".to_owned());
        let run_as = env
            .optional("FLEET_REDIS_RUN_AS")
            .unwrap_or_else(|| "redis".to_owned());
        let supervise_every = env.seconds("FLEET_REDIS_SUPERVISE_SECS", Duration::from_secs(2));
        let stop_instances_on_exit = env.parsed("FLEET_REDIS_STOP_INSTANCES_ON_EXIT", false);
        env.finish()?;
        let (Some(common), Some(data_dir), Some(ports)) = (common, data_dir, ports) else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self {
            common,
            data_dir: PathBuf::from(data_dir),
            app_host: app_host.unwrap_or_else(|| bind.clone()),
            bind,
            ports,
            maxmemory_mb,
            appendfsync,
            server_bin: PathBuf::from(server_bin),
            run_as,
            supervise_every,
            stop_instances_on_exit,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(vars: &[(&str, &str)]) -> String {
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        match Config::from_env(EnvReader::from_vars("REDIS", vars)) {
            Ok(_) => String::new(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn listening_on_every_address_needs_the_host_apps_are_told() {
        let every = problems(&[
            ("FLEET_REDIS_DATA_DIR", "/tmp"),
            ("FLEET_REDIS_BIND", "0.0.0.0"),
        ]);
        assert!(
            every.contains("FLEET_REDIS_APP_HOST is required when FLEET_REDIS_BIND is 0.0.0.0"),
            "{every}"
        );
        let named = problems(&[
            ("FLEET_REDIS_DATA_DIR", "/tmp"),
            ("FLEET_REDIS_BIND", "0.0.0.0"),
            ("FLEET_REDIS_APP_HOST", "redis"),
        ]);
        assert!(!named.contains("FLEET_REDIS_APP_HOST"), "{named}");
    }
}
