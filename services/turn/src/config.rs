//! The turn service's settings (`FLEET_TURN_*`) on top of the common ones.

use std::path::PathBuf;

use fleet_shared::{
    catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    domain::is_domain_name,
    service::ServiceConfig,
};

/// coturn's listening port unless `FLEET_TURN_PORT` says otherwise (the standard one).
pub const DEFAULT_PORT: u16 = 3478;
/// The realm `deploy/turn/cluster.sh` configures unless `TURN_REALM` says otherwise.
pub const DEFAULT_REALM: &str = "turn.example.test";

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_TURN_DIR`: coturn's directory, as `deploy/turn/cluster.sh init DIR` made it
    /// (required): its secrets database is in it.
    pub turn_dir: PathBuf,
    /// `FLEET_TURN_REALM`: coturn's realm (`TURN_REALM` of `cluster.sh`, default
    /// `turn.example.test`): secrets are stored for it.
    pub realm: String,
    /// `FLEET_TURN_SERVER`: the name apps reach coturn by (`CLOUDRON_TURN_SERVER`, default
    /// `127.0.0.1`).
    pub server: String,
    /// `FLEET_TURN_PORT`: TURN over UDP and TCP (default 3478, `cluster.sh run DIR PORT`).
    pub port: u16,
    /// `FLEET_TURN_TLS_PORT`: TURN over TLS (default the port after `FLEET_TURN_PORT`).
    pub tls_port: u16,
}

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::TURN.default_port);
        let turn_dir = env.required(
            "FLEET_TURN_DIR",
            "coturn's directory (deploy/turn/cluster.sh init DIR)",
        );
        let realm = env
            .optional("FLEET_TURN_REALM")
            .unwrap_or_else(|| DEFAULT_REALM.to_owned());
        if !is_domain_name(&realm) {
            env.problem(format!("FLEET_TURN_REALM is no domain name: {realm:?}"));
        }
        let server = env
            .optional("FLEET_TURN_SERVER")
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let port: u16 = env.parsed("FLEET_TURN_PORT", DEFAULT_PORT);
        let tls_port: u16 = env.parsed("FLEET_TURN_TLS_PORT", port.saturating_add(1));
        if port == 0 || tls_port == 0 || port == tls_port {
            env.problem(format!(
                "FLEET_TURN_PORT ({port}) and FLEET_TURN_TLS_PORT ({tls_port}) must be two ports"
            ));
        }
        env.finish()?;
        let (Some(common), Some(turn_dir)) = (common, turn_dir) else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self {
            common,
            turn_dir: PathBuf::from(turn_dir),
            realm,
            server,
            port,
            tls_port,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
