//! What provisioning means for the ldap addon: per app a bind account
//! `cn=<resource name>,ou=apps,dc=cloudron` (the fleet's `app_<readable>_<hash>` name, never the
//! raw app id: DNs compare without case, so `cn=VICTIM1` would be `cn=victim1`'s entry) with a
//! password derived from the master key. The entry records its owner as
//! `description: fleet-app:<app id>`, compared exactly: an entry at the name that is not this
//! app's is refused (FAILED_PRECONDITION) and left alone. slapd's ACLs
//! (`deploy/ldap/slapd.conf.in`) let such accounts read users and groups, and nothing else: no
//! writes, no password hashes, no other app's account.

use std::{
    collections::{BTreeSet, HashSet},
    sync::Arc,
};

use fleet_shared::{
    AppId,
    addon::AddonBackend,
    catalog,
    credentials::MasterKey,
    env_bundle::{EnvBundle, EnvPrefix, url_host},
    error::AddonError,
};
use ldap3::{Scope, SearchEntry};

use crate::{
    config::Config,
    connection::{Connection, Session},
    error::{ORIGIN, code, unexpected},
    request::ProvisionSpec,
    tree::{
        APP_CLASS, APPS_DN, BASE_DN, GROUPS_DN, USERS_DN, app_dn, legacy_app_dn, owner_of,
        owner_tag,
    },
};
use fleet_shared::app_id::ResourceName;

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
            (var("LDAP_BIND_DN"), app_dn(&app.resource_name())),
            (var("LDAP_BIND_PASSWORD"), password.to_owned()),
        ])
    }
}

impl AddonBackend for Provisioner {
    const SERVICE: catalog::Service = catalog::LDAP;
    const BACKEND: Option<&'static str> = ORIGIN.backend;
    type Spec = ProvisionSpec;

    /// Creates the app's bind account if needed and (re)sets its derived password. An entry
    /// at the account's name that another app (or nobody) owns is FAILED_PRECONDITION, untouched.
    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, AddonError> {
        let mut session = self.connection.session().await?;
        let name = spec.app.resource_name();
        let dn = app_dn(&name);
        let tag = owner_tag(&spec.app);
        let attributes = vec![
            ("objectClass", HashSet::from([APP_CLASS])),
            ("cn", HashSet::from([name.as_str()])),
            ("description", HashSet::from([tag.as_str()])),
        ];
        // A concurrent Deprovision may delete the entry between the add and the owner check:
        // then add again.
        let mut ours = false;
        for _attempt in 0..3 {
            let added = session.add(&dn, attributes.clone()).await?;
            match added.rc {
                code::SUCCESS => ours = true,
                code::ENTRY_ALREADY_EXISTS => match owned_by(&mut session, &dn, &tag).await? {
                    Ownership::Ours => ours = true,
                    Ownership::Foreign => return Err(taken(&name)),
                    Ownership::Gone => continue,
                },
                _ => return Err(unexpected("adding the app's account", &added)),
            }
            break;
        }
        if !ours {
            return Err(AddonError::Unavailable(
                "the app's account kept disappearing while it was provisioned; try again"
                    .to_owned(),
            ));
        }
        let password =
            self.master_key
                .derive_password(catalog::LDAP.name, &spec.app, spec.generation);
        let set = session.set_password(&dn, password.expose()).await?;
        if set.rc != code::SUCCESS {
            return Err(unexpected("setting the app's password", &set));
        }
        // An account from before bind accounts were named by resource name would still bind
        // with this password; the app now gets the new DN, so the old entry goes (unless it is
        // the same entry: an app id that is itself a resource name).
        let legacy = legacy_app_dn(&spec.app);
        if !legacy.eq_ignore_ascii_case(&dn) {
            delete_if_owned(&mut session, &legacy, &tag).await?;
        }
        tracing::info!(app_id = %spec.app, name = %name, "provisioned");
        Ok(self.env(&spec.app, password.expose()))
    }

    /// Deletes the app's bind account. Succeeds when it is gone; an entry at its name that is
    /// not this app's is FAILED_PRECONDITION, untouched.
    async fn deprovision(&self, app: AppId, _addon: &'static str) -> Result<(), AddonError> {
        let mut session = self.connection.session().await?;
        let name = app.resource_name();
        let tag = owner_tag(&app);
        if delete_if_owned(&mut session, &app_dn(&name), &tag).await? == Ownership::Foreign {
            return Err(taken(&name));
        }
        // A foreign entry at the legacy DN (`cn=<app id>` compares without case) is another
        // app's and stays.
        delete_if_owned(&mut session, &legacy_app_dn(&app), &tag).await?;
        tracing::info!(app_id = %app, "deprovisioned");
        Ok(())
    }

    /// The apps recorded as owners of bind accounts, sorted, each once.
    async fn list(&self) -> Result<Vec<String>, AddonError> {
        let mut session = self.connection.session().await?;
        let filter = format!("(objectClass={APP_CLASS})");
        let (entries, result) = session
            .search(APPS_DN, Scope::OneLevel, &filter, &["description"])
            .await?;
        if result.rc != code::SUCCESS {
            return Err(unexpected("listing app accounts", &result));
        }
        let ids: BTreeSet<String> = entries
            .iter()
            .flat_map(descriptions)
            .filter_map(|description| owner_of(description).map(str::to_owned))
            .collect();
        Ok(ids.into_iter().collect())
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

/// Whose an entry is, by its recorded owner.
#[derive(Debug, PartialEq, Eq)]
enum Ownership {
    /// It records the app asked about.
    Ours,
    /// It exists and records another app, or no app.
    Foreign,
    /// There is no such entry.
    Gone,
}

/// Whose the entry `dn` is: ours when one of its `description` values is exactly `tag`
/// (compared here, with case: slapd's `description` matching ignores case, app ids do not).
async fn owned_by(session: &mut Session<'_>, dn: &str, tag: &str) -> Result<Ownership, AddonError> {
    let (entries, result) = session
        .search(dn, Scope::Base, "(objectClass=*)", &["description"])
        .await?;
    match result.rc {
        code::SUCCESS => {}
        code::NO_SUCH_OBJECT => return Ok(Ownership::Gone),
        _ => return Err(unexpected("reading an app account's owner", &result)),
    }
    let Some(entry) = entries.first() else {
        return Ok(Ownership::Gone);
    };
    if descriptions(entry).any(|description| description == tag) {
        Ok(Ownership::Ours)
    } else {
        Ok(Ownership::Foreign)
    }
}

/// Deletes the entry `dn` if it records `tag` as its owner; what it found.
async fn delete_if_owned(
    session: &mut Session<'_>,
    dn: &str,
    tag: &str,
) -> Result<Ownership, AddonError> {
    let ownership = owned_by(session, dn, tag).await?;
    if ownership == Ownership::Ours {
        let deleted = session.delete(dn).await?;
        if ![code::SUCCESS, code::NO_SUCH_OBJECT].contains(&deleted.rc) {
            return Err(unexpected("deleting the app's account", &deleted));
        }
    }
    Ok(ownership)
}

/// The `description` values of `entry` (attribute names compare without case).
fn descriptions(entry: &SearchEntry) -> impl Iterator<Item = &str> {
    entry
        .attrs
        .iter()
        .filter(|(attribute, _)| attribute.eq_ignore_ascii_case("description"))
        .flat_map(|(_, values)| values.iter().map(String::as_str))
}

fn taken(name: &ResourceName) -> AddonError {
    AddonError::FailedPrecondition(format!(
        "an LDAP entry cn={name},{APPS_DN} already exists and does not belong to this app; \
         refusing to share it (an operator must rename or remove it)"
    ))
}
