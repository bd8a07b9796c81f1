//! The service's one connection to slapd, bound as the directory administrator.
//!
//! LDAP multiplexes operations over a connection, so one is shared by every call; it is opened
//! on first use and opened again after slapd went away. [`Session`] is a handle on it whose
//! operations time out and turn transport failures into [`AddonError::Unavailable`].

use std::{collections::HashSet, time::Duration};

use fleet_shared::{Secret, error::AddonError};
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Mod, Scope, SearchEntry,
    exop::PasswordModify,
};
use tokio::sync::Mutex;

use crate::{
    config::Config,
    error::{classify, code, unexpected},
};

/// The administrator's connection, (re)opened on demand.
pub struct Connection {
    url: String,
    admin_dn: String,
    admin_password: Secret<String>,
    connect_timeout: Duration,
    operation_timeout: Duration,
    current: Mutex<Option<Ldap>>,
}

impl Connection {
    /// A connection to `config`'s slapd; nothing is opened yet.
    pub fn new(config: &Config) -> Self {
        Self {
            url: config.admin_url.clone(),
            admin_dn: config.admin_dn.clone(),
            admin_password: config.admin_password.clone(),
            connect_timeout: config.connect_timeout,
            operation_timeout: config.operation_timeout,
            current: Mutex::new(None),
        }
    }

    /// A session on the open connection, or on a new one.
    pub async fn session(&self) -> Result<Session<'_>, AddonError> {
        let mut current = self.current.lock().await;
        if let Some(ldap) = current.as_mut()
            && !ldap.is_closed()
        {
            return Ok(self.session_on(ldap.clone()));
        }
        *current = None;
        let ldap = self.open().await?;
        *current = Some(ldap.clone());
        Ok(self.session_on(ldap))
    }

    fn session_on(&self, ldap: Ldap) -> Session<'_> {
        Session {
            ldap,
            timeout: self.operation_timeout,
            connection: self,
        }
    }

    async fn open(&self) -> Result<Ldap, AddonError> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.connect_timeout);
        let (driver, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(classify)?;
        tokio::spawn(async move {
            if let Err(error) = driver.drive().await {
                tracing::warn!(%error, "connection to slapd lost");
            }
        });
        let bound = ldap
            .with_timeout(self.connect_timeout)
            .simple_bind(&self.admin_dn, self.admin_password.expose())
            .await
            .map_err(classify)?;
        if bound.rc != code::SUCCESS {
            return Err(unexpected("binding as FLEET_LDAP_ADMIN_DN", &bound));
        }
        tracing::info!(url = %self.url, "connected to slapd");
        Ok(ldap)
    }

    /// Drops the connection so the next session opens a new one.
    async fn discard(&self) {
        *self.current.lock().await = None;
    }
}

/// A handle for LDAP operations as the administrator. Each returns the server's result, whatever
/// its code, and fails only when slapd could not be asked.
pub struct Session<'a> {
    ldap: Ldap,
    timeout: Duration,
    connection: &'a Connection,
}

impl Session<'_> {
    /// Entries under `base` matching `filter`, with `attributes`; `(entries, result)`.
    pub async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<(Vec<SearchEntry>, LdapResult), AddonError> {
        let found = self
            .ldap
            .with_timeout(self.timeout)
            .search(base, scope, filter, attributes.to_vec())
            .await;
        let ldap3::SearchResult(entries, result) = self.checked(found).await?;
        Ok((
            entries.into_iter().map(SearchEntry::construct).collect(),
            result,
        ))
    }

    /// Adds the entry `dn` with `attributes`.
    pub async fn add(
        &mut self,
        dn: &str,
        attributes: Vec<(&str, HashSet<&str>)>,
    ) -> Result<LdapResult, AddonError> {
        let added = self
            .ldap
            .with_timeout(self.timeout)
            .add(dn, attributes)
            .await;
        self.checked(added).await
    }

    /// Applies `changes` to `dn` in one atomic operation.
    pub async fn modify(
        &mut self,
        dn: &str,
        changes: Vec<Mod<&str>>,
    ) -> Result<LdapResult, AddonError> {
        let modified = self
            .ldap
            .with_timeout(self.timeout)
            .modify(dn, changes)
            .await;
        self.checked(modified).await
    }

    /// Deletes the entry `dn`.
    pub async fn delete(&mut self, dn: &str) -> Result<LdapResult, AddonError> {
        let deleted = self.ldap.with_timeout(self.timeout).delete(dn).await;
        self.checked(deleted).await
    }

    /// Sets the password of `dn` with the Password Modify operation (RFC 3062), so slapd stores
    /// it hashed with its `password-hash` scheme.
    pub async fn set_password(
        &mut self,
        dn: &str,
        password: &str,
    ) -> Result<LdapResult, AddonError> {
        let exop = PasswordModify {
            user_id: Some(dn),
            old_pass: None,
            new_pass: Some(password),
        };
        let changed = self
            .ldap
            .with_timeout(self.timeout)
            .extended(exop)
            .await
            .map(|ldap3::result::ExopResult(_, result)| result);
        self.checked(changed).await
    }

    /// The operation's result; a transport failure also drops the connection.
    async fn checked<T>(&self, outcome: ldap3::result::Result<T>) -> Result<T, AddonError> {
        match outcome {
            Ok(value) => Ok(value),
            Err(error) => {
                let error = classify(error);
                if error.is_unavailable() {
                    self.connection.discard().await;
                }
                Err(error)
            }
        }
    }
}
