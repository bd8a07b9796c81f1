//! Where things live in the directory, and the one place names become DNs and filters.
//!
//! Every name that reaches a DN goes through [`dn_escape`] (RFC 4514) and every value that
//! reaches a filter through [`ldap_escape`] (RFC 4515), so `*`, `(`, `)`, `,`, `=`, `\` or NUL
//! in a name are data, never syntax.

use fleet_shared::{AppId, app_id::ResourceName};
use ldap3::{dn_escape, ldap_escape};

/// The root of the tree slapd serves (`deploy/ldap/slapd.conf.in`).
pub const BASE_DN: &str = "dc=cloudron";
/// The platform's users: `cn=<username>,ou=users,dc=cloudron`.
pub const USERS_DN: &str = "ou=users,dc=cloudron";
/// The platform's groups: `cn=<name>,ou=groups,dc=cloudron`.
pub const GROUPS_DN: &str = "ou=groups,dc=cloudron";
/// The apps' bind accounts: `cn=<resource name>,ou=apps,dc=cloudron`.
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

/// The DN of the bind account named `name` (the app's [`fleet_shared::app_id::ResourceName`]:
/// `[a-z0-9_]` only, so no two apps' DNs compare equal, not even without case).
pub fn app_dn(name: &ResourceName) -> String {
    format!("cn={},{APPS_DN}", dn_escape(name.as_str()))
}

/// The DN the service gave an app's bind account before accounts were named by
/// [`ResourceName`]: `cn=<app id>`. Only read to remove such an account (see the provisioner).
pub fn legacy_app_dn(app_id: &AppId) -> String {
    format!("cn={},{APPS_DN}", dn_escape(app_id.as_str()))
}

/// The `description` value that records `app_id` as the owner of a bind account.
pub fn owner_tag(app_id: &AppId) -> String {
    format!("{OWNER_PREFIX}{app_id}")
}

/// The owner recorded in a `description` value written by [`owner_tag`], if it is one.
pub fn owner_of(description: &str) -> Option<&str> {
    description.strip_prefix(OWNER_PREFIX)
}

/// Prefix of the `description` value naming the app that owns a bind account.
const OWNER_PREFIX: &str = "fleet-app:";

/// `(attribute=value)` with `value` matched literally.
pub fn equals(attribute: &str, value: &str) -> String {
    format!("({attribute}={})", ldap_escape(value))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
        let app = AppId::parse("App.One").unwrap();
        assert_eq!(
            app_dn(&app.resource_name()),
            format!("cn={},ou=apps,dc=cloudron", app.resource_name())
        );
        assert!(app_dn(&app.resource_name()).starts_with("cn=app_appone_"));
        assert_eq!(legacy_app_dn(&app), "cn=App.One,ou=apps,dc=cloudron");
        assert_eq!(owner_tag(&app), "fleet-app:App.One");
        assert_eq!(owner_of(&owner_tag(&app)), Some("App.One"));
        assert_eq!(owner_of("something else"), None);
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
