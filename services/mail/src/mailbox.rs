//! Mail addresses of apps and where their mail lives: the local part an app gets (named by
//! the platform or derived from the app id), the mail domains the server accepts, and the
//! mail server's directory (`deploy/mail/cluster.sh`'s layout).
//!
//! Addresses end up in SQL parameters, Postfix and Dovecot lookups and file names, so local
//! parts are held to a small alphabet here, once.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use fleet_shared::{AppId, domain::is_domain_name, error::AddonError};

/// Longest local part (RFC 5321's limit).
pub const MAX_LOCAL_PART: usize = 64;

/// Local parts that belong to the server's operator, never to an app.
const RESERVED: [&str; 6] = [
    "postmaster",
    "abuse",
    "hostmaster",
    "mailer-daemon",
    "root",
    "webmaster",
];

/// The part of an app's address before `@`: 1 to 64 of `[a-z0-9._-]`, starting and ending
/// with a letter or digit, no `..`, and not one of the operator's (postmaster, abuse, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPart(String);

impl LocalPart {
    /// Validates `value` (compared without case: stored in lower case).
    pub fn parse(value: &str) -> Result<Self, String> {
        let lower = value.to_ascii_lowercase();
        if lower.is_empty() || lower.len() > MAX_LOCAL_PART {
            return Err(format!(
                "must be 1 to {MAX_LOCAL_PART} characters, got {}",
                value.len()
            ));
        }
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
        let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
        if !lower.bytes().all(allowed)
            || !edge(lower.as_bytes().first())
            || !edge(lower.as_bytes().last())
            || lower.contains("..")
        {
            return Err(format!(
                "{value:?} is not a mailbox name: use letters, digits, '.', '_' and '-', \
                 starting and ending with a letter or digit"
            ));
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(format!("{lower:?} is reserved for the server's operator"));
        }
        Ok(Self(lower))
    }

    /// The local part the app gets when the platform names none: its resource name
    /// (`app_<readable>_<hash>`, see [`AppId::resource_name`]), the same for every mail addon.
    pub fn derived(app: &AppId) -> Self {
        Self(app.resource_name().as_str().to_owned())
    }

    /// The local part.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A full address of the server: a valid local part at one of its mail domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    local: LocalPart,
    domain: String,
}

impl Address {
    /// `local@domain`.
    pub fn new(local: LocalPart, domain: &str) -> Self {
        Self {
            local,
            domain: domain.to_ascii_lowercase(),
        }
    }

    /// Parses an address read back from the accounts store; `None` if it is not one an app
    /// could have been given.
    pub fn parse(value: &str) -> Option<Self> {
        let (local, domain) = value.rsplit_once('@')?;
        let local = LocalPart::parse(local).ok()?;
        is_domain_name(domain).then(|| Self::new(local, domain))
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The local part.
    pub fn local(&self) -> &LocalPart {
        &self.local
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local.0, self.domain)
    }
}

/// The mail domains the server accepts mail for, the primary one first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domains(Vec<String>);

impl Domains {
    /// Parses `DIR/domains`: one domain a line, the primary first; blank lines and `#`
    /// comments skipped.
    pub fn parse(text: &str) -> Result<Self, String> {
        let domains: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_ascii_lowercase)
            .collect();
        if let Some(bad) = domains.iter().find(|d| !is_domain_name(d)) {
            return Err(format!("{bad:?} is not a domain name"));
        }
        if domains.is_empty() {
            return Err("no mail domain is configured".to_owned());
        }
        Ok(Self(domains))
    }

    /// The primary domain.
    pub fn primary(&self) -> &str {
        &self.0[0]
    }

    /// Every domain, the primary first.
    pub fn all(&self) -> &[String] {
        &self.0
    }

    /// `requested` if it is one of them (without case), the primary one if it is empty.
    pub fn pick(&self, requested: &str) -> Result<&str, String> {
        if requested.is_empty() {
            return Ok(self.primary());
        }
        self.0
            .iter()
            .find(|d| d.eq_ignore_ascii_case(requested))
            .map(String::as_str)
            .ok_or_else(|| {
                format!(
                    "{requested:?} is not a mail domain of this server (it has: {})",
                    self.0.join(", ")
                )
            })
    }
}

/// The mail server's directory, as `deploy/mail/cluster.sh init DIR` lays it out.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The server at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The accounts store Dovecot and Postfix read (`deploy/mail/accounts.sql`).
    pub fn accounts_db(&self) -> PathBuf {
        self.dir.join("accounts").join("accounts.db")
    }

    /// The mail domains, read now (the operator may add one without restarting the service).
    pub async fn domains(&self) -> Result<Domains, AddonError> {
        let file = self.dir.join("domains");
        let text = tokio::fs::read_to_string(&file).await.map_err(|e| {
            AddonError::Unavailable(format!(
                "cannot read the mail domains ({}: {e}); check FLEET_MAIL_DIR",
                file.display()
            ))
        })?;
        Domains::parse(&text).map_err(|e| AddonError::Internal(format!("{}: {e}", file.display())))
    }

    /// Where Dovecot keeps the mail of an app's mailbox `address`.
    pub fn mailbox_home(&self, address: &Address) -> PathBuf {
        self.dir
            .join("mail")
            .join("apps")
            .join(address.domain())
            .join(address.local().as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn local_parts_keep_to_a_small_alphabet() {
        assert_eq!(LocalPart::parse("Notify.Me").unwrap().as_str(), "notify.me");
        for ok in ["a", "app_1-x.y", &"a".repeat(64)] {
            assert!(LocalPart::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            &"a".repeat(65),
            ".a",
            "a.",
            "a..b",
            "a@b",
            "a b",
            "a\r\nRCPT TO:<x@y>",
            "a+b",
            "../etc",
            "a/b",
            "a%b",
            "\"a\"",
            "ä",
            "-a",
            "postmaster",
            "Abuse",
        ] {
            assert!(LocalPart::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn derived_local_parts_are_valid_and_distinct() {
        let a = LocalPart::derived(&AppId::parse("9b2c4f1e-4f7a").unwrap());
        let b = LocalPart::derived(&AppId::parse("9b2c4f1e-4f7A").unwrap());
        assert_ne!(a, b);
        assert_eq!(LocalPart::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn domains_have_a_primary_and_pick_only_their_own() {
        let domains = Domains::parse("# mail\nExample.test\n\nother.test\n").unwrap();
        assert_eq!(domains.primary(), "example.test");
        assert_eq!(domains.pick("").unwrap(), "example.test");
        assert_eq!(domains.pick("OTHER.test").unwrap(), "other.test");
        assert!(
            domains
                .pick("evil.test")
                .unwrap_err()
                .contains("example.test")
        );
        assert!(Domains::parse("\n").is_err());
        assert!(Domains::parse("a b\n").is_err());
    }

    #[test]
    fn homes_stay_under_the_apps_tree() {
        let layout = Layout::new("/srv/mail");
        let address = Address::parse("app_x_1@example.test").unwrap();
        assert_eq!(
            layout.mailbox_home(&address),
            PathBuf::from("/srv/mail/mail/apps/example.test/app_x_1")
        );
        assert!(Address::parse("../x@example.test").is_none());
        assert!(Address::parse("x@../etc").is_none());
        assert!(Address::parse("x@").is_none());
    }
}
