//! The platform's users as the OpenID provider reads them from slapd: find a user by username
//! or email, check a password by binding as the user, read the claims and group names.
//!
//! Lookups go over one service connection, bound with the provider's own account, opened on
//! first use, shared by every call (LDAP multiplexes operations) and replaced after it failed.
//! A password is checked on a fresh connection that binds as the user and is then dropped, so
//! the shared connection never changes identity. Every value reaching a filter goes through
//! [`ldap_escape`] and every name reaching a DN through [`dn_escape`].

use fleet_shared::{
    error::AddonError,
    ldap::{self, busy, code, unreachable},
};
use ldap3::{Ldap, LdapError, LdapResult, Scope, SearchEntry, dn_escape, ldap_escape};
use tokio::sync::Mutex;

use crate::user::User;

/// The platform's users: `cn=<username>,ou=users,dc=cloudron`.
pub const USERS_DN: &str = "ou=users,dc=cloudron";
/// The platform's groups: `cn=<name>,ou=groups,dc=cloudron`.
pub const GROUPS_DN: &str = "ou=groups,dc=cloudron";
/// The `locale` of a user whose entry has no `preferredLanguage`.
pub const DEFAULT_LOCALE: &str = "en-US";

/// Matches user entries.
const USER_FILTER: &str = "(objectClass=user)";
/// What a user entry is read with (`memberOf` is operational: it must be asked for).
const USER_ATTRIBUTES: &[&str] = &[
    "username",
    "mail",
    "displayName",
    "givenName",
    "sn",
    "preferredLanguage",
    "memberOf",
];
/// Longest login looked up: usernames have at most 64 characters, emails 254.
const MAX_LOGIN_CHARS: usize = 256;
/// A DN no entry can have (there is no `ou=nobody`): binding to it when the login names nobody
/// takes about as long as checking a real user's password, so timing does not tell them apart.
const DECOY_DN: &str = "cn=nobody,ou=nobody,dc=cloudron";

/// Where the directory is and how the provider binds to it (`FLEET_OIDC_LDAP_*`): the
/// account lookups bind as must be able to read `ou=users` and `ou=groups`.
pub use fleet_shared::ldap::DirectoryAccount as DirectorySettings;

/// The directory's users, read through a shared service connection. `Send + Sync`: one per
/// process, shared by every request.
pub struct UserDirectory {
    settings: DirectorySettings,
    service: Mutex<ServiceConnection>,
}

/// The service connection, if open, and a count of those opened, so a caller that saw one
/// fail drops that one and not a newer one another caller opened meanwhile.
#[derive(Default)]
struct ServiceConnection {
    current: Option<(u64, Ldap)>,
    opened: u64,
}

/// The service connection lent to one operation.
struct Lent {
    ldap: Ldap,
    generation: u64,
    /// Whether it was open before this operation (then a broken one is worth one retry).
    reused: bool,
}

impl UserDirectory {
    /// The directory at `settings.url`; nothing is opened yet.
    pub fn new(settings: DirectorySettings) -> Self {
        Self {
            settings,
            service: Mutex::new(ServiceConnection::default()),
        }
    }

    /// The user whose username or email is `login` (case-insensitive, as the apps' LDAP login
    /// filter `(|(username=%s)(mail=%s))` does), if `password` binds as that user's DN. None
    /// for unknown user or wrong password alike (never says which). Empty password: None
    /// without binding.
    pub async fn authenticate(
        &self,
        login: &str,
        password: &str,
    ) -> Result<Option<User>, AddonError> {
        // An empty password would make the bind an unauthenticated one, which slapd accepts.
        if password.is_empty() || login.is_empty() || login.chars().count() > MAX_LOGIN_CHARS {
            return Ok(None);
        }
        let escaped = ldap_escape(login);
        let filter = format!("(&{USER_FILTER}(|(username={escaped})(mail={escaped})))");
        let (entries, result) = self.search(USERS_DN, Scope::OneLevel, &filter).await?;
        succeeded("finding the user", &result)?;
        let found = match entries.as_slice() {
            [entry] => user_from(entry).map(|user| (entry.dn.as_str(), user)),
            [] => None,
            _ => {
                tracing::warn!(
                    entries = entries.len(),
                    "a login matches several users; refusing it"
                );
                None
            }
        };
        // LDAP matching also ignores insignificant spaces and compatibility forms of
        // characters; only the stored username or email, in any ASCII case, gets a password
        // check, so a user can be guessed at under two names only (which the throttle counts).
        let found = found.filter(|(_, user)| {
            user.username.eq_ignore_ascii_case(login) || user.email.eq_ignore_ascii_case(login)
        });
        let Some((dn, user)) = found else {
            let _ = self.bind_as(DECOY_DN, password).await;
            return Ok(None);
        };
        if self.bind_as(dn, password).await? {
            Ok(Some(user))
        } else {
            Ok(None)
        }
    }

    /// The user `username` as the directory holds it now (None: removed).
    pub async fn user(&self, username: &str) -> Result<Option<User>, AddonError> {
        if username.is_empty() {
            return Ok(None);
        }
        let dn = format!("cn={},{USERS_DN}", dn_escape(username));
        let (entries, result) = self.search(&dn, Scope::Base, USER_FILTER).await?;
        match result.rc {
            // As for logins, a name LDAP merely takes for the username does not name the user.
            code::SUCCESS => Ok(entries
                .first()
                .and_then(user_from)
                .filter(|user| user.username.eq_ignore_ascii_case(username))),
            code::NO_SUCH_OBJECT | code::INVALID_DN_SYNTAX => Ok(None),
            _ => Err(unexpected("reading the user", &result)),
        }
    }

    /// Whether the directory answers a lookup over the service connection.
    pub async fn ping(&self) -> bool {
        let filter = "(objectClass=*)";
        match self
            .search_attributes(USERS_DN, Scope::Base, filter, &["1.1"])
            .await
        {
            Ok((_, result)) => result.rc == code::SUCCESS,
            Err(error) => {
                tracing::debug!(%error, "directory ping failed");
                false
            }
        }
    }

    /// Entries under `base` matching `filter`, with the user attributes.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
    ) -> Result<(Vec<SearchEntry>, LdapResult), AddonError> {
        self.search_attributes(base, scope, filter, USER_ATTRIBUTES)
            .await
    }

    /// A search over the service connection. A reused connection that turns out broken (slapd
    /// restarted since) is replaced and the search tried once more; a timeout is not retried.
    async fn search_attributes(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<(Vec<SearchEntry>, LdapResult), AddonError> {
        let mut retried = false;
        loop {
            let mut lent = self.lend().await?;
            let outcome = lent
                .ldap
                .with_timeout(self.settings.timeout)
                .search(base, scope, filter, attributes.to_vec())
                .await;
            let error = match outcome {
                Ok(ldap3::SearchResult(entries, result)) => {
                    let entries = entries.into_iter().map(SearchEntry::construct).collect();
                    return Ok((entries, result));
                }
                Err(error) => error,
            };
            let timed_out = matches!(error, LdapError::Timeout { .. });
            let error = classify(error);
            if !error.is_unavailable() {
                return Err(error);
            }
            self.discard(lent.generation).await;
            if retried || !lent.reused || timed_out {
                return Err(error);
            }
            retried = true;
        }
    }

    /// The open service connection, or a new one.
    async fn lend(&self) -> Result<Lent, AddonError> {
        let mut service = self.service.lock().await;
        if let Some((generation, ldap)) = service.current.as_mut()
            && !ldap.is_closed()
        {
            return Ok(Lent {
                ldap: ldap.clone(),
                generation: *generation,
                reused: true,
            });
        }
        service.current = None;
        let ldap = self.open_service().await?;
        service.opened += 1;
        let generation = service.opened;
        service.current = Some((generation, ldap.clone()));
        Ok(Lent {
            ldap,
            generation,
            reused: false,
        })
    }

    /// Drops the service connection `generation` (if still the current one) after it failed.
    async fn discard(&self, generation: u64) {
        let mut service = self.service.lock().await;
        if service
            .current
            .as_ref()
            .is_some_and(|(current, _)| *current == generation)
        {
            tracing::warn!("connection to the directory (slapd) lost; reconnecting on next use");
            service.current = None;
        }
    }

    /// A new connection bound as the provider's account.
    async fn open_service(&self) -> Result<Ldap, AddonError> {
        let DirectorySettings {
            url,
            bind_dn,
            bind_password,
            timeout,
        } = &self.settings;
        // Either empty would make the bind an anonymous one, which succeeds and sees nobody.
        if bind_dn.is_empty() || bind_password.expose().is_empty() {
            return Err(AddonError::Unavailable(
                "the directory (slapd) cannot be read without an account: set \
                 FLEET_OIDC_LDAP_BIND_DN and a non-empty FLEET_OIDC_LDAP_BIND_PASSWORD_FILE"
                    .to_owned(),
            ));
        }
        let mut ldap = self.connect().await?;
        let bound = ldap
            .with_timeout(*timeout)
            .simple_bind(bind_dn, bind_password.expose())
            .await
            .map_err(classify)?;
        match bound.rc {
            code::SUCCESS => {
                tracing::info!(%url, "connected to the directory (slapd)");
                Ok(ldap)
            }
            code::INVALID_CREDENTIALS => Err(AddonError::Unavailable(
                "the directory (slapd) refused the provider's account; check \
                 FLEET_OIDC_LDAP_BIND_DN and FLEET_OIDC_LDAP_BIND_PASSWORD_FILE"
                    .to_owned(),
            )),
            _ => Err(unexpected("binding as FLEET_OIDC_LDAP_BIND_DN", &bound)),
        }
    }

    /// Whether `password` binds as `dn`, on a connection of its own that is closed after.
    async fn bind_as(&self, dn: &str, password: &str) -> Result<bool, AddonError> {
        let mut ldap = self.connect().await?;
        let bound = ldap
            .with_timeout(self.settings.timeout)
            .simple_bind(dn, password)
            .await;
        // Closes the socket (the driver ends with it) whatever the bind said.
        let _ = ldap.with_timeout(self.settings.timeout).unbind().await;
        let bound = bound.map_err(classify)?;
        match bound.rc {
            code::SUCCESS => Ok(true),
            code::INVALID_CREDENTIALS => Ok(false),
            _ => Err(unexpected("checking the password", &bound)),
        }
    }

    /// A new, unbound connection whose driver runs on its own task.
    async fn connect(&self) -> Result<Ldap, AddonError> {
        self.settings.open().await.map_err(classify)
    }
}

/// `entry` as a [`User`]; None for an entry without a username (it cannot be a `sub`).
fn user_from(entry: &SearchEntry) -> Option<User> {
    let username = ldap::value(entry, "username");
    if username.is_empty() {
        tracing::warn!(dn = %entry.dn, "a user entry without a username; ignoring it");
        return None;
    }
    let mut groups: Vec<String> = ldap::values(entry, "memberOf")
        .iter()
        .filter_map(|dn| group_name(dn))
        .collect();
    groups.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
    groups.dedup();
    let locale = Some(ldap::value(entry, "preferredLanguage"))
        .filter(|locale| !locale.is_empty())
        .unwrap_or_else(|| DEFAULT_LOCALE.to_owned());
    Some(User {
        email: ldap::value(entry, "mail"),
        display_name: ldap::value(entry, "displayName"),
        given_name: ldap::value(entry, "givenName"),
        family_name: ldap::value(entry, "sn"),
        locale,
        groups,
        username,
    })
}

/// The name of the group `dn` is the DN of (`cn=<name>,ou=groups,dc=cloudron`), with RFC 4514
/// escapes (`\,`, `\2c`...) undone; None for any other DN.
fn group_name(dn: &str) -> Option<String> {
    let value = dn.get(..3).filter(|cn| cn.eq_ignore_ascii_case("cn="))?;
    let rest = &dn[value.len()..];
    let mut name = Vec::new();
    let mut chars = rest.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, escaped) = chars.next()?;
                if escaped.is_ascii_hexdigit() {
                    let (_, low) = chars.next()?;
                    let pair = [escaped, low].iter().collect::<String>();
                    name.push(u8::from_str_radix(&pair, 16).ok()?);
                } else if " \"#+,;<=>\\".contains(escaped) {
                    name.push(escaped as u8);
                } else {
                    return None;
                }
            }
            ',' => {
                let parent = &rest[at + 1..];
                return parent
                    .eq_ignore_ascii_case(GROUPS_DN)
                    .then(|| String::from_utf8(name).ok())
                    .flatten()
                    .filter(|name| !name.is_empty());
            }
            // A multi-valued RDN is no group's.
            '+' => return None,
            other => {
                let mut buffer = [0; 4];
                name.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    None
}

fn succeeded(what: &str, result: &LdapResult) -> Result<(), AddonError> {
    if result.rc == code::SUCCESS {
        Ok(())
    } else {
        Err(unexpected(what, result))
    }
}

/// An LDAP operation that ended with a code not expected; `what` says which.
fn unexpected(what: &str, result: &LdapResult) -> AddonError {
    match result.rc {
        rc if busy(rc) => AddonError::Unavailable(format!(
            "the directory (slapd) is busy or shutting down ({what})"
        )),
        rc => AddonError::Internal(format!(
            "{what} in the directory (slapd): LDAP result {rc}: {}",
            result.text
        )),
    }
}

/// What a driver error means: an unreachable slapd is UNAVAILABLE, a result code is classified
/// by [`unexpected`], anything else is INTERNAL. None of these carries a password.
fn classify(error: LdapError) -> AddonError {
    match error {
        LdapError::LdapResult { result } => unexpected("an LDAP operation", &result),
        error if unreachable(&error) => AddonError::Unavailable(format!(
            "the directory (slapd) cannot be reached ({error}); check that it is running and \
             FLEET_OIDC_LDAP_URL"
        )),
        other => AddonError::Internal(format!("the directory (slapd): {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(attributes: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: "cn=ada,ou=users,dc=cloudron".to_owned(),
            attrs: attributes
                .iter()
                .map(|(name, values)| {
                    let values = values.iter().map(|v| (*v).to_owned()).collect();
                    ((*name).to_owned(), values)
                })
                .collect(),
            bin_attrs: Default::default(),
        }
    }

    #[test]
    fn group_names_come_from_member_of_dns_unescaped() {
        let name = |dn: &str| group_name(dn);
        assert_eq!(
            name("cn=team,ou=groups,dc=cloudron").as_deref(),
            Some("team")
        );
        assert_eq!(
            name("CN=Team,OU=Groups,DC=cloudron").as_deref(),
            Some("Team")
        );
        assert_eq!(
            name(r"cn=a\2cb\2B\22c\5c\3c\3e\3b\3d\23\20,ou=groups,dc=cloudron").as_deref(),
            Some(r#"a,b+"c\<>;=# "#)
        );
        assert_eq!(
            name(r"cn=a\,b\+c\\d\ ,ou=groups,dc=cloudron").as_deref(),
            Some(r"a,b+c\d ")
        );
        assert_eq!(
            name(r"cn=\C3\BCber Ä,ou=groups,dc=cloudron").as_deref(),
            Some("über Ä")
        );
        for other in [
            "cn=team,ou=users,dc=cloudron",
            "cn=team,ou=groups,dc=cloudron,dc=x",
            "uid=team,ou=groups,dc=cloudron",
            "cn=a+uid=b,ou=groups,dc=cloudron",
            "cn=,ou=groups,dc=cloudron",
            r"cn=bad\zz,ou=groups,dc=cloudron",
            r"cn=bad\c3,ou=groups,dc=cloudron",
            r"cn=trailing\",
            "cn=nocomma",
            "",
        ] {
            assert_eq!(name(other), None, "{other}");
        }
    }

    #[test]
    fn a_user_has_its_claims_sorted_groups_and_a_default_locale() {
        let user = user_from(&entry(&[
            ("username", &["ada"]),
            ("MAIL", &["ada@example.com"]),
            ("displayName", &["Ada Lovelace"]),
            ("givenname", &["Ada"]),
            ("sn", &["Lovelace"]),
            (
                "memberOf",
                &[
                    "cn=b,ou=groups,dc=cloudron",
                    "cn=A,ou=groups,dc=cloudron",
                    "cn=c,ou=apps,dc=cloudron",
                    "cn=a,ou=groups,dc=cloudron",
                    "cn=b,ou=groups,dc=cloudron",
                ],
            ),
        ]));
        let expected = User {
            username: "ada".to_owned(),
            email: "ada@example.com".to_owned(),
            display_name: "Ada Lovelace".to_owned(),
            given_name: "Ada".to_owned(),
            family_name: "Lovelace".to_owned(),
            locale: DEFAULT_LOCALE.to_owned(),
            groups: vec!["A".to_owned(), "a".to_owned(), "b".to_owned()],
        };
        assert_eq!(user, Some(expected));
        let french = user_from(&entry(&[
            ("username", &["bob"]),
            ("preferredLanguage", &["fr-FR"]),
        ]));
        assert_eq!(french.map(|user| user.locale).as_deref(), Some("fr-FR"));
        assert_eq!(user_from(&entry(&[("mail", &["x@example.com"])])), None);
    }

    #[test]
    fn errors_say_what_is_unavailable_without_secrets() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = classify(LdapError::from(io));
        assert!(error.is_unavailable(), "{error}");
        assert!(
            error.to_string().contains("the directory (slapd)"),
            "{error}"
        );
        let busy = LdapResult {
            rc: code::BUSY,
            matched: String::new(),
            text: String::new(),
            refs: Vec::new(),
            ctrls: Vec::new(),
        };
        assert!(unexpected("x", &busy).is_unavailable());
        let other = LdapResult { rc: 80, ..busy };
        assert!(matches!(unexpected("x", &other), AddonError::Internal(_)));
    }
}
