//! Where things live in the directory, and the one place names become DNs and filters.
//!
//! Every name that reaches a DN goes through [`dn_escape`] (RFC 4514) and every value that
//! reaches a filter through [`ldap_escape`] (RFC 4515), so `*`, `(`, `)`, `,`, `=`, `\` or NUL
//! in a name are data, never syntax.

use ldap3::{dn_escape, ldap_escape};

/// The root of the tree slapd serves (`deploy/ldap/slapd.conf.in`).
pub const BASE_DN: &str = "dc=cloudron";
/// The platform's users: `cn=<username>,ou=users,dc=cloudron`.
pub const USERS_DN: &str = "ou=users,dc=cloudron";
/// The platform's groups: `cn=<name>,ou=groups,dc=cloudron`.
pub const GROUPS_DN: &str = "ou=groups,dc=cloudron";
/// The apps' bind accounts: `cn=<app id>,ou=apps,dc=cloudron`.
pub const APPS_DN: &str = "ou=apps,dc=cloudron";

/// Object classes of a user entry, `user` last (it derives from the others).
pub const USER_CLASSES: [&str; 5] = [
    "top",
    "person",
    "organizationalPerson",
    "inetOrgPerson",
    "user",
];
/// Matches user entries (the object class apps search users by).
pub const USER_FILTER: &str = "(objectClass=user)";
/// Object class of a group entry.
pub const GROUP_CLASS: &str = "group";
/// Object class of an app's bind account (`deploy/ldap/cloudron.schema`).
pub const APP_CLASS: &str = "appAccount";

/// The DN of the user named `username`.
pub fn user_dn(username: &str) -> String {
    format!("cn={},{USERS_DN}", dn_escape(username))
}

/// The DN of the group named `name`.
pub fn group_dn(name: &str) -> String {
    format!("cn={},{GROUPS_DN}", dn_escape(name))
}

/// The DN of the bind account of the app `app_id`.
pub fn app_dn(app_id: &str) -> String {
    format!("cn={},{APPS_DN}", dn_escape(app_id))
}

/// `(attribute=value)` with `value` matched literally.
pub fn equals(attribute: &str, value: &str) -> String {
    format!("({attribute}={})", ldap_escape(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_data_in_dns() {
        assert_eq!(user_dn("alice"), "cn=alice,ou=users,dc=cloudron");
        assert_eq!(
            user_dn("a,ou=apps"),
            r"cn=a\2cou\3dapps,ou=users,dc=cloudron"
        );
        assert_eq!(
            group_dn(r#"x+y"\<>;"#),
            r"cn=x\2by\22\5c\3c\3e\3b,ou=groups,dc=cloudron"
        );
        assert_eq!(user_dn("#a "), r"cn=\23a\20,ou=users,dc=cloudron");
        assert_eq!(app_dn("app.one"), "cn=app.one,ou=apps,dc=cloudron");
    }

    #[test]
    fn names_are_data_in_filters() {
        assert_eq!(equals("uid", "bob"), "(uid=bob)");
        assert_eq!(equals("uid", "*"), r"(uid=\2a)");
        assert_eq!(
            equals("memberUid", "x)(uid=*"),
            r"(memberUid=x\29\28uid=\2a)"
        );
        assert_eq!(equals("cn", "a\\b\0"), r"(cn=a\5cb\00)");
        // Every escaped filter still parses as one equality match.
        for hostile in ["*", "a)(|(uid=*", r"\", "(", "x\0y"] {
            assert!(
                ldap3::parse_filter(equals("uid", hostile)).is_ok(),
                "{hostile}"
            );
        }
    }
}
