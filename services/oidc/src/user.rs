//! A directory user as the provider sees it: the one source of every claim it issues.

/// A user of the platform's directory (`cn=<username>,ou=users,dc=cloudron`), with the
/// attributes the provider turns into claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `sub` and `preferred_username`; usernames never change.
    pub username: String,
    /// `email` (always `email_verified`: the platform's administrators set it).
    pub email: String,
    /// `name`.
    pub display_name: String,
    /// `given_name`.
    pub given_name: String,
    /// `family_name`.
    pub family_name: String,
    /// `locale` (`preferredLanguage`, "en-US" when the entry has none).
    pub locale: String,
    /// `groups`: names of the groups the user is a member of, sorted.
    pub groups: Vec<String>,
}
