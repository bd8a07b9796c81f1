//! The postgresql service's settings (`FLEET_POSTGRESQL_*`) on top of the common ones.

use std::{str::FromStr, time::Duration};

use fleet_shared::{
    Secret, catalog,
    config::{CommonConfig, ConfigError, DatabaseAdmin, EnvReader},
    service::ServiceConfig,
};
use sqlx::{ConnectOptions, postgres::PgConnectOptions};

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_POSTGRESQL_ADMIN_URL`: superuser connection, e.g.
    /// `postgres://postgres:secret@127.0.0.1:5432/postgres`; the password may instead come
    /// from the file named by `FLEET_POSTGRESQL_ADMIN_PASSWORD_FILE` (Docker secrets).
    pub admin: Secret<PgConnectOptions>,
    /// `FLEET_POSTGRESQL_APP_HOST`: host apps connect to (default: the admin URL's host).
    pub app_host: String,
    /// `FLEET_POSTGRESQL_APP_PORT`: port apps connect to (default: the admin URL's port).
    pub app_port: u16,
    /// `FLEET_POSTGRESQL_POOL_SIZE`: admin connections kept open (default 10).
    pub pool_size: u32,
    /// `FLEET_POSTGRESQL_CONNECT_TIMEOUT_SECS`: how long a call waits for an admin connection
    /// before failing with UNAVAILABLE (default 5).
    pub connect_timeout: Duration,
    /// `FLEET_POSTGRESQL_APP_CONNECTION_LIMIT`: connections one app may hold (default 50).
    pub app_connection_limit: u32,
}

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::POSTGRESQL.default_port);
        let database = DatabaseAdmin::read(
            &mut env,
            "POSTGRESQL",
            "postgres://USER:PASSWORD@HOST:PORT/postgres (a superuser)",
        );
        let admin = database.as_ref().and_then(|database| {
            match PgConnectOptions::from_str(database.url.expose()) {
                Ok(options) => Some(match &database.password {
                    Some(password) => options.password(password.expose()),
                    None => options,
                }),
                Err(_) => {
                    // The URL holds a password: say what is wrong without echoing it.
                    let problem = "FLEET_POSTGRESQL_ADMIN_URL is not a valid postgres:// URL";
                    env.problem(problem.to_owned());
                    None
                }
            }
        });
        let app_connection_limit = env.parsed("FLEET_POSTGRESQL_APP_CONNECTION_LIMIT", 50);
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
            app_connection_limit,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
