//! The platform's users (slapd), who own their addresses: an app is never given one of them,
//! or it would receive their mail and send as them.

use fleet_shared::{
    error::AddonError,
    ldap::{self, DirectoryAccount, USERS_DN, unreachable},
};
use ldap3::{LdapError, Scope, ldap_escape};

use crate::mailbox::Address;

/// The users of the directory, read as one account.
#[derive(Debug, Clone)]
pub struct Directory {
    account: DirectoryAccount,
}

impl Directory {
    /// The directory `account` reads.
    pub fn new(account: DirectoryAccount) -> Self {
        Self { account }
    }

    /// The username of the user whose mail (or alternate mail) is `address`, if any.
    pub async fn holder_of(&self, address: &Address) -> Result<Option<String>, AddonError> {
        let address = ldap_escape(address.to_string()).into_owned();
        let filter =
            format!("(&(objectClass=user)(|(mail={address})(mailAlternateAddress={address})))");
        let mut ldap = self.account.connect().await.map_err(classify)?;
        let searched = ldap
            .with_timeout(self.account.timeout)
            .search(USERS_DN, Scope::OneLevel, &filter, vec!["username"])
            .await
            .and_then(|result| result.success());
        let _ = ldap.with_timeout(self.account.timeout).unbind().await;
        let (entries, _) = searched.map_err(classify)?;
        Ok(entries.into_iter().next().map(|entry| {
            let entry = ldap3::SearchEntry::construct(entry);
            ldap::value(&entry, "username")
        }))
    }
}

fn classify(error: LdapError) -> AddonError {
    if unreachable(&error) {
        AddonError::Unavailable(format!(
            "cannot reach the directory (slapd) to check the address ({error}); check \
             FLEET_MAIL_LDAP_URL"
        ))
    } else {
        AddonError::Internal(format!("the directory: {error}"))
    }
}
