//! What provisioning means for the ldap addon: per app a bind account
//! `cn=<app id>,ou=apps,dc=cloudron` with a password derived from the master key. slapd's ACLs
//! (`deploy/ldap/slapd.conf.in`) let such accounts read users and groups, and nothing else: no
//! writes, no password hashes, no other app's account.

use std::{collections::HashSet, sync::Arc};

use fleet_shared::{
    AppId,
    addon::AddonBackend,
    credentials::MasterKey,
    env_bundle::{EnvBundle, EnvPrefix, url_host},
};
use ldap3::Scope;

use crate::{
    config::Config,
    connection::Connection,
    error::{Error, code},
    request::ProvisionSpec,
    tree::{APP_CLASS, APPS_DN, BASE_DN, GROUPS_DN, USERS_DN, app_dn},
};

/// The addon's name, as in manifests and in password derivation.
pub const ADDON: &str = "ldap";

/// Creates and removes apps' bind accounts.
pub struct Provisioner {
    connection: Arc<Connection>,
    master_key: MasterKey,
    env_prefix: EnvPrefix,
    app_url: String,
    app_host: String,
    app_port: u16,
}

impl Provisioner {
    /// A provisioner working through `connection`.
    pub fn new(config: &Config, connection: Arc<Connection>) -> Self {
        Self {
            connection,
            master_key: config.common.master_key.clone(),
            env_prefix: config.common.env_prefix.clone(),
            app_url: format!(
                "{}://{}:{}",
                config.app_scheme,
                url_host(&config.app_host),
                config.app_port
            ),
            app_host: config.app_host.clone(),
            app_port: config.app_port,
        }
    }

    fn env(&self, app: &AppId, password: &str) -> EnvBundle {
        let var = |suffix: &str| self.env_prefix.var(suffix);
        EnvBundle::from([
            (var("LDAP_SERVER"), self.app_host.clone()),
            (var("LDAP_HOST"), self.app_host.clone()),
            (var("LDAP_PORT"), self.app_port.to_string()),
            (var("LDAP_URL"), self.app_url.clone()),
            (var("LDAP_USERS_BASE_DN"), USERS_DN.to_owned()),
            (var("LDAP_GROUPS_BASE_DN"), GROUPS_DN.to_owned()),
            (var("LDAP_BIND_DN"), app_dn(app.as_str())),
            (var("LDAP_BIND_PASSWORD"), password.to_owned()),
        ])
    }
}

impl AddonBackend for Provisioner {
    const ADDON: &'static str = ADDON;
    type Spec = ProvisionSpec;
    type Error = Error;

    /// Creates the app's bind account if needed and (re)sets its derived password.
    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, Error> {
        let mut session = self.connection.session().await?;
        let dn = app_dn(spec.app.as_str());
        let description = format!("fleet-app:{}", spec.app);
        let attributes = vec![
            ("objectClass", HashSet::from([APP_CLASS])),
            ("cn", HashSet::from([spec.app.as_str()])),
            ("description", HashSet::from([description.as_str()])),
        ];
        let added = session.add(&dn, attributes).await?;
        if ![code::SUCCESS, code::ENTRY_ALREADY_EXISTS].contains(&added.rc) {
            return Err(Error::unexpected("adding the app's account", &added));
        }
        let password = self
            .master_key
            .derive_password(ADDON, &spec.app, spec.generation);
        let set = session.set_password(&dn, password.expose()).await?;
        if set.rc != code::SUCCESS {
            return Err(Error::unexpected("setting the app's password", &set));
        }
        tracing::info!(app_id = %spec.app, "provisioned");
        Ok(self.env(&spec.app, password.expose()))
    }

    /// Deletes the app's bind account. Succeeds when it is gone.
    async fn deprovision(&self, app: AppId) -> Result<(), Error> {
        let mut session = self.connection.session().await?;
        let deleted = session.delete(&app_dn(app.as_str())).await?;
        match deleted.rc {
            code::SUCCESS | code::NO_SUCH_OBJECT => {
                tracing::info!(app_id = %app, "deprovisioned");
                Ok(())
            }
            _ => Err(Error::unexpected("deleting the app's account", &deleted)),
        }
    }

    /// The apps with a bind account, sorted.
    async fn list(&self) -> Result<Vec<String>, Error> {
        let mut session = self.connection.session().await?;
        let filter = format!("(objectClass={APP_CLASS})");
        let (entries, result) = session
            .search(APPS_DN, Scope::OneLevel, &filter, &["cn"])
            .await?;
        if result.rc != code::SUCCESS {
            return Err(Error::unexpected("listing app accounts", &result));
        }
        let mut ids: Vec<String> = entries
            .into_iter()
            .filter_map(|entry| entry.attrs.get("cn")?.first().cloned())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Whether slapd answers a search of the tree's root as the administrator.
    async fn ping(&self) -> bool {
        let Ok(mut session) = self.connection.session().await else {
            return false;
        };
        session
            .search(BASE_DN, Scope::Base, "(objectClass=*)", &["1.1"])
            .await
            .is_ok_and(|(_, result)| result.rc == code::SUCCESS)
    }
}
