//! The mysql service's settings (`FLEET_MYSQL_*`) on top of the common ones.

use std::{str::FromStr, time::Duration};

use fleet_shared::{
    Secret,
    config::{CommonConfig, ConfigError, EnvReader},
};
use sqlx::{ConnectOptions, mysql::MySqlConnectOptions};

/// The service's well-known port.
pub const DEFAULT_PORT: u16 = 50051;

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_MYSQL_ADMIN_URL`: an account with every privilege and GRANT OPTION, e.g.
    /// `mysql://fleet_admin:secret@127.0.0.1:3306/`; the password may instead come from the file
    /// named by `FLEET_MYSQL_ADMIN_PASSWORD_FILE` (Docker secrets).
    pub admin: Secret<MySqlConnectOptions>,
    /// `FLEET_MYSQL_APP_HOST`: host apps connect to (default: the admin URL's host).
    pub app_host: String,
    /// `FLEET_MYSQL_APP_PORT`: port apps connect to (default: the admin URL's port).
    pub app_port: u16,
    /// `FLEET_MYSQL_POOL_SIZE`: admin connections kept open (default 10).
    pub pool_size: u32,
    /// `FLEET_MYSQL_CONNECT_TIMEOUT_SECS`: how long a call waits for an admin connection
    /// before failing with UNAVAILABLE (default 5).
    pub connect_timeout: Duration,
    /// `FLEET_MYSQL_MAX_USER_CONNECTIONS`: connections one app's user may hold (default 50).
    pub max_user_connections: u32,
}

impl Config {
    /// Reads and validates the environment, reporting every problem at once.
    pub fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, DEFAULT_PORT);
        let admin = env
            .required(
                "FLEET_MYSQL_ADMIN_URL",
                "URL of an account with all privileges and GRANT OPTION, \
                 mysql://USER:PASSWORD@HOST:PORT/",
            )
            .and_then(|url| match MySqlConnectOptions::from_str(&url) {
                Ok(options) => Some(options),
                Err(_) => {
                    // The URL holds a password: say what is wrong without echoing it.
                    env.problem("FLEET_MYSQL_ADMIN_URL is not a valid mysql:// URL".to_owned());
                    None
                }
            });
        let admin = match env.secret_file("FLEET_MYSQL_ADMIN_PASSWORD_FILE") {
            Some(password) => admin.map(|options| options.password(password.expose())),
            None => admin,
        };
        let app_host = env.optional("FLEET_MYSQL_APP_HOST");
        let app_port = env.parsed_optional::<u16>("FLEET_MYSQL_APP_PORT");
        let pool_size = env.parsed("FLEET_MYSQL_POOL_SIZE", 10);
        let connect_timeout =
            env.seconds("FLEET_MYSQL_CONNECT_TIMEOUT_SECS", Duration::from_secs(5));
        let max_user_connections = env.parsed("FLEET_MYSQL_MAX_USER_CONNECTIONS", 50);
        if pool_size == 0 {
            env.problem("FLEET_MYSQL_POOL_SIZE must be at least 1".to_owned());
        }
        if max_user_connections == 0 {
            // 0 means "no limit" to MySQL; say so instead of silently lifting the limit.
            env.problem("FLEET_MYSQL_MAX_USER_CONNECTIONS must be at least 1".to_owned());
        }
        env.finish()?;
        // finish() succeeded, so nothing was missing.
        let (Some(common), Some(admin)) = (common, admin) else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self {
            app_host: app_host.unwrap_or_else(|| admin.get_host().to_owned()),
            app_port: app_port.unwrap_or_else(|| admin.get_port()),
            admin: Secret::new(admin.disable_statement_logging()),
            common,
            pool_size,
            connect_timeout,
            max_user_connections,
        })
    }
}
