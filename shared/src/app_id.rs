//! App ids and the resource names derived from them.
//!
//! An app id arrives from the network and ends up in names of roles, databases and users, so it
//! is validated once, here, and every name is *derived* from it (never pasted into a query).

use std::fmt;

use sha2::{Digest, Sha256};

/// Longest accepted app id. Platform ids are UUIDs (36 characters).
pub const MAX_APP_ID_LEN: usize = 64;

/// A validated app id: 1 to 64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(String);

/// Why a string is not an app id. The message is meant for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAppId {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_APP_ID_LEN} characters, got {0}")]
    TooLong(usize),
    #[error("must start with a letter or a digit")]
    BadStart,
    #[error("may only contain ASCII letters, digits, '.', '_' and '-'")]
    BadCharacter,
}

impl AppId {
    /// Validates `value` as an app id.
    pub fn parse(value: &str) -> Result<Self, InvalidAppId> {
        let length = value.chars().count();
        if length == 0 {
            return Err(InvalidAppId::Empty);
        }
        if length > MAX_APP_ID_LEN {
            return Err(InvalidAppId::TooLong(length));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(InvalidAppId::BadCharacter);
        }
        if !value.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(InvalidAppId::BadStart);
        }
        Ok(Self(value.to_owned()))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of this app's resources (role, database, user, bind account), derived as
    /// `app_<readable part>_<hash>`: the id lowercased with everything but `[a-z0-9]` dropped,
    /// cut to 16 characters, then 10 hex digits of SHA-256 of the whole id. At most 31
    /// characters of `[a-z0-9_]` starting with a letter, so it fits MySQL's 32-character user
    /// names and needs no quoting anywhere; distinct ids give distinct names (barring a 40-bit
    /// hash collision, which services detect by recording the owning app id with the resource).
    pub fn resource_name(&self) -> ResourceName {
        let readable: String = self
            .0
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .take(16)
            .collect();
        let digest = hex::encode(Sha256::digest(self.0.as_bytes()));
        ResourceName(format!("app_{readable}_{}", &digest[..10]))
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A name derived by [`AppId::resource_name`]: `[a-z0-9_]`, starts with a letter, at most 31
/// characters. Safe as an unquoted identifier in SQL, LDAP and file names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceName(String);

impl ResourceName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_platform_ids() {
        for id in [
            "9b2c4f1e-4f7a-4f3b-9a51-0c2d3e4f5a6b",
            "a",
            "App.1_x-y",
            "0abc",
        ] {
            assert_eq!(AppId::parse(id).map(|a| a.to_string()), Ok(id.to_owned()));
        }
    }

    #[test]
    fn refuses_odd_ids() {
        let long = "a".repeat(200);
        let cases = [
            ("", InvalidAppId::Empty),
            (long.as_str(), InvalidAppId::TooLong(200)),
            ("x'; drop role postgres; --", InvalidAppId::BadCharacter),
            ("héllo", InvalidAppId::BadCharacter),
            ("../a", InvalidAppId::BadCharacter),
            (".hidden", InvalidAppId::BadStart),
            ("-rf", InvalidAppId::BadStart),
            ("a b", InvalidAppId::BadCharacter),
            ("a\0b", InvalidAppId::BadCharacter),
        ];
        for (id, expected) in cases {
            assert_eq!(AppId::parse(id), Err(expected), "{id:?}");
        }
    }

    #[test]
    fn resource_names_are_safe_short_and_distinct() {
        let ids = [
            "9b2c4f1e-4f7a-4f3b-9a51-0c2d3e4f5a6b",
            "9b2c4f1e4f7a4f3b9a510c2d3e4f5a6b",
            "APP",
            "app",
            "a.p.p",
            &"z".repeat(64),
        ];
        let mut names: Vec<String> = ids
            .iter()
            .map(|id| {
                let name = AppId::parse(id).map(|a| a.resource_name().to_string());
                let name = name.unwrap_or_default();
                assert!(name.len() <= 31, "{name}");
                assert!(name.starts_with("app_"), "{name}");
                assert!(
                    name.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{name}"
                );
                name
            })
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ids.len());
    }

    #[test]
    fn resource_name_is_deterministic() {
        let name = AppId::parse("Chat-1").map(|a| a.resource_name().to_string());
        let expected = format!(
            "app_chat1_{}",
            &hex::encode(Sha256::digest(b"Chat-1"))[..10]
        );
        assert_eq!(name, Ok(expected));
    }
}
