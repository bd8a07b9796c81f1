//! What the services that talk to slapd share (feature `ldap`): the result codes they tell
//! apart, which ldap3 errors mean slapd cannot be reached, and reading an entry's attributes.

use ldap3::{LdapError, SearchEntry};

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
