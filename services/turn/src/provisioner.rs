//! What provisioning means here: a shared secret of the app's own in coturn, from which the
//! app mints TURN credentials the TURN REST way (`expiry:user`, HMAC-SHA1 under the secret).

use fleet_shared::{
    AppId,
    addon::AddonBackend,
    catalog,
    credentials::MasterKey,
    env_bundle::{EnvBundle, EnvPrefix},
    error::AddonError,
};

use crate::{
    config::Config,
    request::ProvisionSpec,
    secrets::{Outcome, Secrets},
};

/// coturn's secrets database in its directory (`deploy/turn/cluster.sh`).
pub const DATABASE: &str = "db/turndb";

/// Writes and removes the apps' secrets.
pub struct Provisioner {
    secrets: Secrets,
    master_key: MasterKey,
    prefix: EnvPrefix,
    server: String,
    port: u16,
    tls_port: u16,
}

impl Provisioner {
    /// Secrets of the coturn `config` names.
    pub fn new(config: &Config) -> Self {
        Self {
            secrets: Secrets::new(config.turn_dir.join(DATABASE), config.realm.clone()),
            master_key: config.common.master_key.clone(),
            prefix: config.common.env_prefix.clone(),
            server: config.server.clone(),
            port: config.port,
            tls_port: config.tls_port,
        }
    }
}

fn taken(app: &AppId) -> AddonError {
    AddonError::FailedPrecondition(format!(
        "the secret name {} is held by another app; nothing was changed",
        app.resource_name()
    ))
}

impl AddonBackend for Provisioner {
    const SERVICE: catalog::Service = catalog::TURN;
    const BACKEND: Option<&'static str> = Some("coturn's secrets database");
    type Spec = ProvisionSpec;

    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, AddonError> {
        let secret = self
            .master_key
            .derive_password("turn", &spec.app, spec.generation);
        if self.secrets.put(&spec.app, &secret).await? == Outcome::Taken {
            return Err(taken(&spec.app));
        }
        let var = |suffix: &str| self.prefix.var(suffix);
        let mut env = EnvBundle::new();
        env.insert(var("TURN_SERVER"), self.server.clone());
        env.insert(var("TURN_PORT"), self.port.to_string());
        env.insert(var("TURN_TLS_PORT"), self.tls_port.to_string());
        env.insert(var("TURN_SECRET"), secret.expose().clone());
        Ok(env)
    }

    async fn deprovision(&self, app: AppId, _addon: &'static str) -> Result<(), AddonError> {
        match self.secrets.remove(&app).await? {
            Outcome::Done => Ok(()),
            Outcome::Taken => Err(taken(&app)),
        }
    }

    async fn list(&self) -> Result<Vec<String>, AddonError> {
        self.secrets.app_ids().await
    }

    async fn ping(&self) -> bool {
        self.secrets.ping().await
    }
}
