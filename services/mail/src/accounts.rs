//! The accounts store Dovecot and Postfix read: one SQLite row per address and addon, its
//! password only as a `{SHA512-CRYPT}` hash (schema and readers: `deploy/mail/accounts.sql`,
//! `deploy/mail/cluster.sh`).
//!
//! The file is a [`BackendStore`]: each change is one `BEGIN IMMEDIATE` transaction on a
//! connection of its own, so concurrent Provision calls, here or in replicas on the same
//! directory, never lose an entry. Dovecot reads the store at every login (no cache), so a
//! removed row refuses the very next login.

use std::path::PathBuf;

use fleet_shared::{AppId, Secret, backend_store::BackendStore, error::AddonError};
use sha_crypt::{Sha512Params, sha512_simple};

use crate::mailbox::Address;
/// SHA512-CRYPT rounds: crypt(3)'s default. The passwords are 256-bit random values, so
/// the rounds only have to make a stolen store no easier than the hash is.
const ROUNDS: usize = 5_000;

/// What writing an account found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// The account is as given; `moved_from` is the app's previous address for this addon,
    /// now gone, if it had another.
    Written { moved_from: Option<String> },
    /// The address belongs to another app or to the operator; nothing was changed.
    Taken,
}

/// What removing an account found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The app's account is gone (or there was none).
    Removed {
        /// The addresses it had.
        addresses: Vec<String>,
        /// Those of the default addresses that nobody else holds.
        free_derived: Vec<Address>,
    },
    /// The app has no account and its default address is another's: nothing was removed.
    Taken,
}

/// The store at `DIR/accounts/accounts.db`.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: BackendStore,
}

impl Accounts {
    /// The store in the file `db`, which `cluster.sh init` creates.
    pub fn new(db: PathBuf) -> Self {
        Self {
            store: BackendStore::new(
                db,
                "the accounts store",
                "check that the mail server's directory (FLEET_MAIL_DIR) is there and \
                 initialised by deploy/mail/cluster.sh",
            ),
        }
    }

    /// Gives `app` the account `address` for `addon` with `password` (stored hashed),
    /// replacing the app's previous address for that addon. Refused if another app, or the
    /// operator, holds the address.
    pub async fn put(
        &self,
        app: &AppId,
        addon: &str,
        address: &Address,
        password: &Secret<String>,
    ) -> Result<Put, AddonError> {
        let hash = hash(password).await?;
        let address = address.to_string();
        let mut writer = self.store.writer().await?;
        let mut tx = writer.begin().await?;
        let foreign: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT app_id FROM accounts WHERE address = ?1 AND app_id IS NOT ?2 LIMIT 1",
        )
        .bind(&address)
        .bind(app.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.store.classify(e))?;
        if foreign.is_some() {
            return Ok(Put::Taken);
        }
        let previous: Option<(String,)> = sqlx::query_as(
            "SELECT address FROM accounts WHERE app_id = ?1 AND addon = ?2 AND address <> ?3",
        )
        .bind(app.as_str())
        .bind(addon)
        .bind(&address)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.store.classify(e))?;
        sqlx::query("DELETE FROM accounts WHERE app_id = ?1 AND addon = ?2 AND address <> ?3")
            .bind(app.as_str())
            .bind(addon)
            .bind(&address)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.store.classify(e))?;
        sqlx::query(
            "INSERT INTO accounts (address, addon, app_id, password) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (address, addon) DO UPDATE SET password = excluded.password",
        )
        .bind(&address)
        .bind(addon)
        .bind(app.as_str())
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.store.classify(e))?;
        tx.commit().await.map_err(|e| self.store.classify(e))?;
        Ok(Put::Written {
            moved_from: previous.map(|(address,)| address),
        })
    }

    /// Removes `app`'s account for `addon`. `derived` are the addresses the service would
    /// give the app by default: if the app has no account but one of them is held by another
    /// app or the operator, the name is squatted and nothing is removed.
    pub async fn remove(
        &self,
        app: &AppId,
        addon: &str,
        derived: &[Address],
    ) -> Result<Removal, AddonError> {
        let mut writer = self.store.writer().await?;
        let mut tx = writer.begin().await?;
        let removed: Vec<(String,)> = sqlx::query_as(
            "DELETE FROM accounts WHERE app_id = ?1 AND addon = ?2 RETURNING address",
        )
        .bind(app.as_str())
        .bind(addon)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.store.classify(e))?;
        let mut free = Vec::new();
        for address in derived {
            let held: Option<(i64,)> = sqlx::query_as(
                "SELECT 1 FROM accounts WHERE address = ?1 AND app_id IS NOT ?2 LIMIT 1",
            )
            .bind(address.to_string())
            .bind(app.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.store.classify(e))?;
            if held.is_none() {
                free.push(address.clone());
            }
        }
        if removed.is_empty() && free.len() < derived.len() {
            return Ok(Removal::Taken);
        }
        tx.commit().await.map_err(|e| self.store.classify(e))?;
        Ok(Removal::Removed {
            addresses: removed.into_iter().map(|(address,)| address).collect(),
            free_derived: free,
        })
    }

    /// The apps that have an account, sorted.
    pub async fn app_ids(&self) -> Result<Vec<String>, AddonError> {
        let mut conn = self.store.connect().await?;
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT app_id FROM accounts WHERE app_id IS NOT NULL ORDER BY app_id",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(|e| self.store.classify(e))?;
        Ok(rows.into_iter().map(|(app,)| app).collect())
    }

    /// Whether the store can be opened and read now.
    pub async fn ping(&self) -> bool {
        self.store.ping("SELECT 1 FROM accounts LIMIT 1").await
    }
}

/// `password` as Dovecot's passdb stores it: `{SHA512-CRYPT}$6$<salt>$<hash>`, on a blocking
/// thread (thousands of SHA-512 rounds).
pub async fn hash(password: &Secret<String>) -> Result<String, AddonError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let params = Sha512Params::new(ROUNDS)
            .map_err(|e| AddonError::Internal(format!("SHA512-CRYPT parameters: {e:?}")))?;
        sha512_simple(password.expose(), &params)
            .map(|hash| format!("{{SHA512-CRYPT}}{hash}"))
            .map_err(|e| AddonError::Internal(format!("SHA512-CRYPT: {e:?}")))
    })
    .await
    .map_err(|e| AddonError::Internal(format!("the hashing task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_sha512_crypt_that_verify() {
        let password = Secret::new("correct horse".to_owned());
        let first = hash(&password).await.unwrap();
        let second = hash(&password).await.unwrap();
        assert!(first.starts_with("{SHA512-CRYPT}$6$"), "{first}");
        assert_ne!(first, second, "no salt");
        let crypt = first.strip_prefix("{SHA512-CRYPT}").unwrap();
        assert!(sha_crypt::sha512_check("correct horse", crypt).is_ok());
        assert!(sha_crypt::sha512_check("wrong horse", crypt).is_err());
        assert!(!first.contains("correct horse"));
    }
}
