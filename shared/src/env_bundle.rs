//! The environment variables handed to an app, named with the deployment's prefix.

use std::{collections::BTreeMap, fmt, str::FromStr};

/// The prefix of every variable an app receives: `CLOUDRON` by default, giving
/// `CLOUDRON_POSTGRESQL_URL`. Upper-case letters, digits and `_`, starting with a letter.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvPrefix(String);

impl EnvPrefix {
    /// The platform's own prefix.
    pub const DEFAULT: &str = "CLOUDRON";

    /// The prefix itself: also the name of the variable telling apps they run on the platform
    /// (`CLOUDRON=1`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<PREFIX>_<suffix>`, e.g. `var("POSTGRESQL_URL")`.
    pub fn var(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.0)
    }
}

impl Default for EnvPrefix {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl FromStr for EnvPrefix {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let valid = value.starts_with(|c: char| c.is_ascii_uppercase())
            && value
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            && !value.ends_with('_');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(
                "must be upper-case letters, digits and '_', start with a letter and not end \
                 with '_' (e.g. CLOUDRON)"
                    .to_owned(),
            )
        }
    }
}

impl fmt::Debug for EnvPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Variables for one app, sorted by name.
pub type EnvBundle = BTreeMap<String, String>;

/// `host` as it goes into a URL: IPv6 literals in brackets.
pub fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_names_variables() {
        assert_eq!(EnvPrefix::default().var("MYSQL_URL"), "CLOUDRON_MYSQL_URL");
        let custom: Result<EnvPrefix, _> = "MY_PAAS".parse();
        assert_eq!(custom.map(|p| p.var("X")), Ok("MY_PAAS_X".to_owned()));
    }

    #[test]
    fn odd_prefixes_are_refused() {
        for bad in ["", "cloudron", "1X", "X-Y", "X_", "X Y"] {
            assert!(bad.parse::<EnvPrefix>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(url_host("::1"), "[::1]");
        assert_eq!(url_host("[::1]"), "[::1]");
        assert_eq!(url_host("db.internal"), "db.internal");
    }
}
