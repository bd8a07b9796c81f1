//! The mongodb service's settings (`FLEET_MONGODB_*`) on top of the common ones.

use fleet_shared::{
    catalog,
    config::{CommonConfig, ConfigError, DatabaseAdmin, EnvReader},
    service::ServiceConfig,
};

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_MONGODB_ADMIN_URL` (`mongodb://root:PASSWORD@HOST:PORT/?authSource=admin`), its
    /// password file, app host and port, pool size and connect timeout.
    pub admin: DatabaseAdmin,
}

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::MONGODB.default_port);
        let admin = DatabaseAdmin::read(
            &mut env,
            "MONGODB",
            "mongodb://USER:PASSWORD@HOST:PORT/?authSource=admin (a user with role root)",
        );
        if let Some(admin) = &admin
            && !admin.url.expose().starts_with("mongodb://")
        {
            env.problem("FLEET_MONGODB_ADMIN_URL must be a mongodb:// URL".to_owned());
        }
        env.finish()?;
        let (Some(common), Some(admin)) = (common, admin) else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self { common, admin })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
