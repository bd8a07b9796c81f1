//! The platform's users and groups in slapd: what each Directory call does to the tree.
//!
//! A user is `cn=<username>,ou=users,…` with `cn`, `uid`, `username` and `sAMAccountName` all
//! equal to the username (usernames never change), a group `cn=<name>,ou=groups,…`. A membership
//! is two values on the group, written in one atomic modify: `member` (the user's DN, which
//! slapd's memberof overlay mirrors into the user's `memberOf`) and `memberUid` (the username).
//! slapd's unique overlay keeps `username`, `mail` and `gidNumber` unique.

use std::{collections::HashSet, sync::Arc};

use fleet_shared::{error::AddonError, ldap};
use ldap3::{LdapResult, Mod, Scope, SearchEntry};

use crate::{
    connection::{Connection, Session},
    error::{code, unexpected},
    request::{NewGroup, NewUser, UserChanges},
    tree::{GROUP_CLASS, GROUPS_DN, USER_CLASSES, USER_FILTER, USERS_DN, group_dn, user_dn},
};

/// Where automatically chosen gid numbers start.
pub const FIRST_GID_NUMBER: u32 = 10000;
/// How often CreateGroup picks a new gid number when a concurrent call took the last one.
const GID_ATTEMPTS: usize = 5;

const USER_ATTRIBUTES: &[&str] = &[
    "username",
    "mail",
    "displayName",
    "givenName",
    "sn",
    "mailAlternateAddress",
    "entryUUID",
];
const GROUP_ATTRIBUTES: &[&str] = &["cn", "gidNumber", "memberUid"];

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub alternate_email: String,
    pub entry_uuid: String,
    /// Names of its groups, sorted.
    pub groups: Vec<String>,
}

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid_number: u32,
    /// Usernames of its members, sorted.
    pub members: Vec<String>,
}

/// The users and groups under [`USERS_DN`] and [`GROUPS_DN`].
pub struct Directory {
    connection: Arc<Connection>,
}

impl Directory {
    /// The directory reached through `connection`.
    pub fn new(connection: Arc<Connection>) -> Self {
        Self { connection }
    }

    /// Creates `user`, with its password when one is given. Nothing is left if it fails.
    pub async fn create_user(&self, user: NewUser) -> Result<User, AddonError> {
        let mut session = self.connection.session().await?;
        let dn = user_dn(&user.username);
        let display_name = user.display_name.as_deref().unwrap_or(&user.username);
        let family_name = user.family_name.as_deref().unwrap_or(&user.username);
        let mut attributes = vec![
            ("objectClass", HashSet::from(USER_CLASSES)),
            ("cn", HashSet::from([user.username.as_str()])),
            ("uid", HashSet::from([user.username.as_str()])),
            ("username", HashSet::from([user.username.as_str()])),
            ("sAMAccountName", HashSet::from([user.username.as_str()])),
            ("objectCategory", HashSet::from(["person"])),
            ("mail", HashSet::from([user.email.as_str()])),
            ("displayName", HashSet::from([display_name])),
            ("sn", HashSet::from([family_name])),
        ];
        if let Some(given_name) = &user.given_name {
            attributes.push(("givenName", HashSet::from([given_name.as_str()])));
        }
        if let Some(alternate) = &user.alternate_email {
            attributes.push(("mailAlternateAddress", HashSet::from([alternate.as_str()])));
        }
        let added = session.add(&dn, attributes).await?;
        match added.rc {
            code::SUCCESS => {}
            code::ENTRY_ALREADY_EXISTS => return Err(user_exists(&user.username)),
            code::CONSTRAINT_VIOLATION => return Err(email_taken(&user.email)),
            _ => return Err(unexpected("adding the user", &added)),
        }
        if let Some(password) = &user.password {
            let set = session.set_password(&dn, password.expose()).await;
            if let Err(error) = set.and_then(|result| success("setting the password", &result)) {
                let _ = session.delete(&dn).await;
                return Err(error);
            }
        }
        tracing::info!(username = %user.username, "user created");
        read_user(&mut session, &user.username).await
    }

    /// Applies `changes` in one modify. The username stays.
    pub async fn update_user(&self, changes: UserChanges) -> Result<User, AddonError> {
        let mut session = self.connection.session().await?;
        let dn = user_dn(&changes.username);
        let mut modifications = Vec::new();
        if let Some(email) = &changes.email {
            modifications.push(Mod::Replace("mail", HashSet::from([email.as_str()])));
        }
        if let Some(value) = &changes.display_name {
            modifications.push(Mod::Replace(
                "displayName",
                value_or(value, &changes.username),
            ));
        }
        if let Some(value) = &changes.family_name {
            modifications.push(Mod::Replace("sn", value_or(value, &changes.username)));
        }
        if let Some(value) = &changes.given_name {
            modifications.push(Mod::Replace("givenName", values(value)));
        }
        if let Some(value) = &changes.alternate_email {
            modifications.push(Mod::Replace("mailAlternateAddress", values(value)));
        }
        if !modifications.is_empty() {
            let modified = session.modify(&dn, modifications).await?;
            match modified.rc {
                code::SUCCESS => {}
                code::NO_SUCH_OBJECT => return Err(no_user(&changes.username)),
                code::CONSTRAINT_VIOLATION => {
                    return Err(email_taken(changes.email.as_deref().unwrap_or_default()));
                }
                _ => return Err(unexpected("changing the user", &modified)),
            }
            tracing::info!(username = %changes.username, "user changed");
        }
        read_user(&mut session, &changes.username).await
    }

    /// Takes the user out of every group, then deletes it.
    pub async fn delete_user(&self, username: &str) -> Result<(), AddonError> {
        let mut session = self.connection.session().await?;
        let user = read_user(&mut session, username).await?;
        for group in &user.groups {
            remove_membership(&mut session, group, &user.username).await?;
        }
        let deleted = session.delete(&user_dn(&user.username)).await?;
        match deleted.rc {
            code::SUCCESS => {
                tracing::info!(username = %user.username, "user deleted");
                Ok(())
            }
            code::NO_SUCH_OBJECT => Err(no_user(username)),
            _ => Err(unexpected("deleting the user", &deleted)),
        }
    }

    /// Sets the user's password; slapd stores a salted hash of it.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), AddonError> {
        let mut session = self.connection.session().await?;
        let set = session.set_password(&user_dn(username), password).await?;
        match set.rc {
            code::SUCCESS => {
                tracing::info!(%username, "password set");
                Ok(())
            }
            code::NO_SUCH_OBJECT => Err(no_user(username)),
            _ => Err(unexpected("setting the password", &set)),
        }
    }

    /// Every user, sorted by username.
    pub async fn list_users(&self) -> Result<Vec<User>, AddonError> {
        let mut session = self.connection.session().await?;
        let (entries, result) = session
            .search(USERS_DN, Scope::OneLevel, USER_FILTER, USER_ATTRIBUTES)
            .await?;
        success("listing users", &result)?;
        let groups = list_groups(&mut session).await?;
        let mut users: Vec<User> = entries
            .iter()
            .map(|entry| user_from(entry, &groups))
            .collect();
        users.sort_by_key(|user| user.username.to_lowercase());
        Ok(users)
    }

    /// Creates an empty group, picking the next free gid number unless one is given.
    pub async fn create_group(&self, group: NewGroup) -> Result<Group, AddonError> {
        let mut session = self.connection.session().await?;
        let dn = group_dn(&group.name);
        for _ in 0..GID_ATTEMPTS {
            let gid_number = match group.gid_number {
                Some(gid_number) => gid_number,
                None => next_gid_number(&mut session).await?,
            };
            let gid_text = gid_number.to_string();
            let attributes = vec![
                ("objectClass", HashSet::from([GROUP_CLASS])),
                ("cn", HashSet::from([group.name.as_str()])),
                ("gidNumber", HashSet::from([gid_text.as_str()])),
            ];
            let added = session.add(&dn, attributes).await?;
            match added.rc {
                code::SUCCESS => {
                    tracing::info!(name = %group.name, gid_number, "group created");
                    return Ok(Group {
                        name: group.name,
                        gid_number,
                        members: Vec::new(),
                    });
                }
                code::ENTRY_ALREADY_EXISTS => {
                    return Err(AddonError::AlreadyExists(format!(
                        "a group named {:?} already exists",
                        group.name
                    )));
                }
                // Another call took this gid number; pick again unless the caller chose it.
                code::CONSTRAINT_VIOLATION if group.gid_number.is_none() => {}
                code::CONSTRAINT_VIOLATION => {
                    return Err(AddonError::AlreadyExists(format!(
                        "gid_number {gid_number} belongs to another group"
                    )));
                }
                _ => return Err(unexpected("adding the group", &added)),
            }
        }
        Err(AddonError::Unavailable(
            "too many concurrent group creations; try again".to_owned(),
        ))
    }

    /// Deletes the group; slapd drops it from its members' `memberOf`.
    pub async fn delete_group(&self, name: &str) -> Result<(), AddonError> {
        let mut session = self.connection.session().await?;
        let deleted = session.delete(&group_dn(name)).await?;
        match deleted.rc {
            code::SUCCESS => {
                tracing::info!(%name, "group deleted");
                Ok(())
            }
            code::NO_SUCH_OBJECT => Err(no_group(name)),
            _ => Err(unexpected("deleting the group", &deleted)),
        }
    }

    /// Makes the user a member of the group; already being one is fine.
    pub async fn add_member(&self, group: &str, username: &str) -> Result<(), AddonError> {
        let mut session = self.connection.session().await?;
        // The stored username: `memberUid` compares case-sensitively, logins do not.
        let username = stored_username(&mut session, username).await?;
        let member_dn = user_dn(&username);
        let both = vec![
            Mod::Add("member", HashSet::from([member_dn.as_str()])),
            Mod::Add("memberUid", HashSet::from([username.as_str()])),
        ];
        let added = session.modify(&group_dn(group), both).await?;
        match added.rc {
            code::SUCCESS => {}
            code::NO_SUCH_OBJECT => return Err(no_group(group)),
            // One of the two is there already: add each on its own.
            code::ATTRIBUTE_OR_VALUE_EXISTS => {
                for (attribute, value) in [("member", &member_dn), ("memberUid", &username)] {
                    let one = vec![Mod::Add(attribute, HashSet::from([value.as_str()]))];
                    let added = session.modify(&group_dn(group), one).await?;
                    if ![code::SUCCESS, code::ATTRIBUTE_OR_VALUE_EXISTS].contains(&added.rc) {
                        return Err(unexpected("adding the member", &added));
                    }
                }
            }
            _ => return Err(unexpected("adding the member", &added)),
        }
        tracing::info!(%group, %username, "member added");
        Ok(())
    }

    /// Takes the user out of the group; not being a member is fine.
    pub async fn remove_member(&self, group: &str, username: &str) -> Result<(), AddonError> {
        let mut session = self.connection.session().await?;
        let username = stored_username(&mut session, username).await?;
        remove_membership(&mut session, group, &username).await?;
        tracing::info!(%group, %username, "member removed");
        Ok(())
    }

    /// Every group, sorted by name.
    pub async fn list_groups(&self) -> Result<Vec<Group>, AddonError> {
        let mut session = self.connection.session().await?;
        let mut groups = list_groups(&mut session).await?;
        groups.sort_by_key(|group| group.name.to_lowercase());
        Ok(groups)
    }
}

/// The user named `username` (compared without case) with its groups, or NOT_FOUND.
async fn read_user(session: &mut Session<'_>, username: &str) -> Result<User, AddonError> {
    let entry = user_entry(session, username, USER_ATTRIBUTES).await?;
    let groups = list_groups(session).await?;
    Ok(user_from(&entry, &groups))
}

/// The username as stored (its case may differ from `username`'s), or NOT_FOUND.
async fn stored_username(session: &mut Session<'_>, username: &str) -> Result<String, AddonError> {
    let entry = user_entry(session, username, &["username"]).await?;
    Ok(ldap::value(&entry, "username"))
}

async fn user_entry(
    session: &mut Session<'_>,
    username: &str,
    attributes: &[&str],
) -> Result<SearchEntry, AddonError> {
    let (entries, result) = session
        .search(&user_dn(username), Scope::Base, USER_FILTER, attributes)
        .await?;
    if result.rc == code::NO_SUCH_OBJECT {
        return Err(no_user(username));
    }
    success("reading the user", &result)?;
    entries.into_iter().next().ok_or_else(|| no_user(username))
}

/// Removes both membership values; values already gone are fine.
async fn remove_membership(
    session: &mut Session<'_>,
    group: &str,
    username: &str,
) -> Result<(), AddonError> {
    let member_dn = user_dn(username);
    for (attribute, value) in [("member", member_dn.as_str()), ("memberUid", username)] {
        let one = vec![Mod::Delete(attribute, HashSet::from([value]))];
        let removed = session.modify(&group_dn(group), one).await?;
        match removed.rc {
            code::SUCCESS | code::NO_SUCH_ATTRIBUTE => {}
            code::NO_SUCH_OBJECT => return Err(no_group(group)),
            _ => return Err(unexpected("removing the member", &removed)),
        }
    }
    Ok(())
}

async fn list_groups(session: &mut Session<'_>) -> Result<Vec<Group>, AddonError> {
    let filter = format!("(objectClass={GROUP_CLASS})");
    let (entries, result) = session
        .search(GROUPS_DN, Scope::OneLevel, &filter, GROUP_ATTRIBUTES)
        .await?;
    success("listing groups", &result)?;
    Ok(entries.iter().map(group_from).collect())
}

async fn next_gid_number(session: &mut Session<'_>) -> Result<u32, AddonError> {
    let highest = list_groups(session)
        .await?
        .iter()
        .map(|group| group.gid_number)
        .max();
    Ok(highest.map_or(FIRST_GID_NUMBER, |gid| {
        gid.saturating_add(1).max(FIRST_GID_NUMBER)
    }))
}

fn user_from(entry: &SearchEntry, groups: &[Group]) -> User {
    let username = ldap::value(entry, "username");
    let mut member_of: Vec<String> = groups
        .iter()
        .filter(|group| group.members.contains(&username))
        .map(|group| group.name.clone())
        .collect();
    member_of.sort_by_key(|name| name.to_lowercase());
    User {
        email: ldap::value(entry, "mail"),
        display_name: ldap::value(entry, "displayName"),
        given_name: ldap::value(entry, "givenName"),
        family_name: ldap::value(entry, "sn"),
        alternate_email: ldap::value(entry, "mailAlternateAddress"),
        entry_uuid: ldap::value(entry, "entryUUID"),
        groups: member_of,
        username,
    }
}

fn group_from(entry: &SearchEntry) -> Group {
    let mut members = ldap::values(entry, "memberUid").to_vec();
    members.sort();
    Group {
        name: ldap::value(entry, "cn"),
        gid_number: ldap::value(entry, "gidNumber").parse().unwrap_or_default(),
        members,
    }
}

/// `value`, or `fallback` when it is cleared (for attributes the schema requires).
fn value_or<'a>(value: &'a Option<String>, fallback: &'a str) -> HashSet<&'a str> {
    HashSet::from([value.as_deref().unwrap_or(fallback)])
}

/// `value` as an attribute's values: none clears the attribute.
fn values(value: &Option<String>) -> HashSet<&str> {
    value.as_deref().into_iter().collect()
}

fn success(what: &str, result: &LdapResult) -> Result<(), AddonError> {
    if result.rc == code::SUCCESS {
        Ok(())
    } else {
        Err(unexpected(what, result))
    }
}

fn no_user(username: &str) -> AddonError {
    AddonError::NotFound(format!("no user named {username:?}"))
}

fn no_group(name: &str) -> AddonError {
    AddonError::NotFound(format!("no group named {name:?}"))
}

fn user_exists(username: &str) -> AddonError {
    AddonError::AlreadyExists(format!("a user named {username:?} already exists"))
}

fn email_taken(email: &str) -> AddonError {
    AddonError::AlreadyExists(format!("the email {email:?} belongs to another user"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(attributes: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: String::new(),
            attrs: attributes
                .iter()
                .map(|(name, values)| {
                    (
                        (*name).to_owned(),
                        values.iter().map(|v| (*v).to_owned()).collect(),
                    )
                })
                .collect(),
            bin_attrs: Default::default(),
        }
    }

    #[test]
    fn a_user_lists_the_groups_that_name_it_exactly() {
        let groups = [
            group_from(&entry(&[
                ("cn", &["b"]),
                ("gidnumber", &["10001"]),
                ("memberUid", &["alice", "bob"]),
            ])),
            group_from(&entry(&[
                ("cn", &["a"]),
                ("gidNumber", &["10000"]),
                ("memberUid", &["Alice"]),
            ])),
        ];
        assert_eq!(groups[0].gid_number, 10001);
        let user = user_from(
            &entry(&[("username", &["alice"]), ("MAIL", &["a@example.com"])]),
            &groups,
        );
        assert_eq!(user.groups, ["b"]);
        assert_eq!(user.email, "a@example.com");
        assert_eq!(user.given_name, "");
    }
}
