//! What the services that talk to slapd share (feature `ldap`): the account a service reads
//! the directory with (its `FLEET_<SERVICE>_LDAP_*` settings and the bound connection), the
//! result codes they tell apart, which ldap3 errors mean slapd cannot be reached, and reading
//! an entry's attributes.

use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, SearchEntry};

use crate::{Secret, config::EnvReader};

/// The platform's users: `cn=<username>,ou=users,dc=cloudron` (`deploy/ldap`'s tree).
pub const USERS_DN: &str = "ou=users,dc=cloudron";
/// The directory administrator `deploy/ldap/cluster.sh` configures.
pub const ADMIN_DN: &str = "cn=admin,dc=cloudron";
/// How long connecting, and then each operation, may take unless `_LDAP_TIMEOUT_SECS` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The account a service reads the directory with.
#[derive(Debug, Clone)]
pub struct DirectoryAccount {
    /// `ldap://HOST:PORT` or `ldaps://HOST:PORT` (`<PREFIX>_LDAP_URL`).
    pub url: String,
    /// The account (`<PREFIX>_LDAP_BIND_DN`, default [`ADMIN_DN`]): best an app's bind
    /// account of the ldap addon, which reads exactly `ou=users` and `ou=groups`.
    pub bind_dn: String,
    /// Its password (`<PREFIX>_LDAP_BIND_PASSWORD_FILE`).
    pub bind_password: Secret<String>,
    /// How long connecting, and then each operation, may take (`<PREFIX>_LDAP_TIMEOUT_SECS`).
    pub timeout: Duration,
}

impl DirectoryAccount {
    /// Reads `<prefix>_LDAP_URL`, `_LDAP_BIND_DN`, `_LDAP_BIND_PASSWORD_FILE` and
    /// `_LDAP_TIMEOUT_SECS` (`prefix` like `FLEET_OIDC`). Without a URL: a problem if
    /// `required`, else `None` (the service runs without the directory).
    pub fn read(env: &mut EnvReader, prefix: &str, required: bool) -> Option<Self> {
        let url_name = format!("{prefix}_LDAP_URL");
        let url = if required {
            env.required(&url_name, "the directory's slapd, ldap://HOST:PORT")?
        } else {
            env.optional(&url_name)?
        };
        let bind_dn = env
            .optional(&format!("{prefix}_LDAP_BIND_DN"))
            .unwrap_or_else(|| ADMIN_DN.to_owned());
        let password_name = format!("{prefix}_LDAP_BIND_PASSWORD_FILE");
        let bind_password = env.secret_file(&password_name);
        if bind_password.is_none() && env.optional(&password_name).is_none() {
            env.problem(format!(
                "{password_name} is required with {url_name}: a file holding the password of \
                 {prefix}_LDAP_BIND_DN (an account that reads ou=users and ou=groups)"
            ));
        }
        let timeout = env.seconds(&format!("{prefix}_LDAP_TIMEOUT_SECS"), DEFAULT_TIMEOUT);
        Some(Self {
            url,
            bind_dn,
            bind_password: bind_password?,
            timeout,
        })
    }

    /// A new, unbound connection to the directory, its driver on a task of its own. Connecting
    /// times out after [`DirectoryAccount::timeout`]; callers time each operation with
    /// `with_timeout` (ldap3's timeouts count for one operation).
    pub async fn open(&self) -> Result<Ldap, LdapError> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        let (driver, ldap) = LdapConnAsync::with_settings(settings, &self.url).await?;
        tokio::spawn(async move {
            if let Err(error) = driver.drive().await {
                tracing::debug!(%error, "a connection to the directory (slapd) ended");
            }
        });
        Ok(ldap)
    }

    /// A new connection bound as the account.
    pub async fn connect(&self) -> Result<Ldap, LdapError> {
        let mut ldap = self.open().await?;
        ldap.with_timeout(self.timeout)
            .simple_bind(&self.bind_dn, self.bind_password.expose())
            .await?
            .success()?;
        Ok(ldap)
    }
}

/// LDAP result codes (RFC 4511, appendix A).
pub mod code {
    pub const SUCCESS: u32 = 0;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_DN_SYNTAX: u32 = 34;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const ENTRY_ALREADY_EXISTS: u32 = 68;
}

/// Whether a result code says slapd is busy or shutting down (retrying later may help).
pub fn busy(rc: u32) -> bool {
    matches!(rc, code::BUSY | code::UNAVAILABLE)
}

/// Whether `error` means slapd could not be reached, or the connection to it failed: the
/// caller answers UNAVAILABLE (and replaces a shared connection).
pub fn unreachable(error: &LdapError) -> bool {
    matches!(
        error,
        LdapError::Io { .. }
            | LdapError::Timeout { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream
            | LdapError::Rustls { .. }
            | LdapError::DNSName { .. }
    )
}

/// Every value of `attribute` in `entry` (attribute names compare without case, as in LDAP).
pub fn values<'a>(entry: &'a SearchEntry, attribute: &str) -> &'a [String] {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .map_or(&[], |(_, values)| values.as_slice())
}

/// The first value of `attribute` in `entry`, or empty.
pub fn value(entry: &SearchEntry, attribute: &str) -> String {
    values(entry, attribute)
        .first()
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn attributes_are_found_without_case() {
        let entry = SearchEntry {
            dn: "cn=a".to_owned(),
            attrs: HashMap::from([("memberOf".to_owned(), vec!["x".to_owned(), "y".to_owned()])]),
            bin_attrs: HashMap::new(),
        };
        assert_eq!(values(&entry, "memberof"), ["x", "y"]);
        assert_eq!(value(&entry, "MEMBEROF"), "x");
        assert!(values(&entry, "mail").is_empty());
        assert_eq!(value(&entry, "mail"), "");
        assert!(busy(code::BUSY) && busy(code::UNAVAILABLE) && !busy(code::SUCCESS));
        assert!(unreachable(&LdapError::EndOfStream));
    }
}
