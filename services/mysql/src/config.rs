//! The mysql service's settings (`FLEET_MYSQL_*`) on top of the common ones.

use std::{str::FromStr, time::Duration};

use fleet_shared::{
    Secret, catalog,
    config::{CommonConfig, ConfigError, DatabaseAdmin, EnvReader},
    service::ServiceConfig,
};
use sqlx::{ConnectOptions, mysql::MySqlConnectOptions};

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

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::MYSQL.default_port);
        let database = DatabaseAdmin::read(
            &mut env,
            "MYSQL",
            "mysql://USER:PASSWORD@HOST:PORT/ (all privileges and GRANT OPTION)",
        );
        let admin = database.as_ref().and_then(|database| {
            match MySqlConnectOptions::from_str(database.url.expose()) {
                Ok(options) => Some(match &database.password {
                    Some(password) => options.password(password.expose()),
                    None => options,
                }),
                Err(_) => {
                    // The URL holds a password: say what is wrong without echoing it.
                    env.problem("FLEET_MYSQL_ADMIN_URL is not a valid mysql:// URL".to_owned());
                    None
                }
            }
        });
        let max_user_connections = env.parsed("FLEET_MYSQL_MAX_USER_CONNECTIONS", 50);
        if max_user_connections == 0 {
            // 0 means "no limit" to MySQL; say so instead of silently lifting the limit.
            env.problem("FLEET_MYSQL_MAX_USER_CONNECTIONS must be at least 1".to_owned());
        }
        env.finish()?;
        // finish() succeeded, so nothing was missing.
        let (Some(common), Some(database), Some(admin)) = (common, database, admin) else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self {
            app_host: database
                .app_host
                .unwrap_or_else(|| admin.get_host().to_owned()),
            app_port: database.app_port.unwrap_or_else(|| admin.get_port()),
            admin: Secret::new(admin.disable_statement_logging()),
            common,
            pool_size: database.pool_size,
            connect_timeout: database.connect_timeout,
            max_user_connections,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
