//! coturn's shared secrets and the apps they belong to, in coturn's own SQLite database:
//! coturn's table `turn_secret(realm, value)`, which it reads at every allocation, and the
//! fleet's `fleet_turn_apps(name, app_id, secret)` (both made by `deploy/turn/cluster.sh
//! init`). An app's row is named from its app id and records its owner; its secret is the
//! one row of `turn_secret` it owns. Each change is one transaction on the kit's
//! [`BackendStore`], so concurrent Provisions never lose a secret, and a deleted secret mints
//! no new allocation from its commit on.

use std::path::PathBuf;

use fleet_shared::{AppId, Secret, backend_store::BackendStore, error::AddonError};

/// What a change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The app's secret is as asked (written, or gone).
    Done,
    /// The app's name is held by another app; nothing was changed.
    Taken,
}

/// The secrets of one realm in coturn's database.
#[derive(Debug, Clone)]
pub struct Secrets {
    store: BackendStore,
    realm: String,
}

impl Secrets {
    /// The secrets of `realm` in the database file `db`.
    pub fn new(db: PathBuf, realm: String) -> Self {
        Self {
            store: BackendStore::new(
                db,
                "coturn's secrets database",
                "check that coturn's directory (FLEET_TURN_DIR) is there and initialised by \
                 deploy/turn/cluster.sh",
            ),
            realm,
        }
    }

    /// Makes `secret` the app's one secret: a previous one is deleted, so what was minted
    /// from it allocates no more.
    pub async fn put(&self, app: &AppId, secret: &Secret<String>) -> Result<Outcome, AddonError> {
        let name = app.resource_name();
        let classify = |e| self.store.classify(e);
        let mut writer = self.store.writer().await?;
        let mut tx = writer.begin().await?;
        let held: Option<(String, String)> =
            sqlx::query_as("SELECT app_id, secret FROM fleet_turn_apps WHERE name = ?1")
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
        match held {
            Some((owner, _)) if owner != app.as_str() => return Ok(Outcome::Taken),
            Some((_, old)) if old != *secret.expose() => {
                sqlx::query("DELETE FROM turn_secret WHERE realm = ?1 AND value = ?2")
                    .bind(&self.realm)
                    .bind(&old)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
            _ => {}
        }
        sqlx::query("INSERT OR IGNORE INTO turn_secret (realm, value) VALUES (?1, ?2)")
            .bind(&self.realm)
            .bind(secret.expose())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query(
            "INSERT INTO fleet_turn_apps (name, app_id, secret) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET secret = excluded.secret",
        )
        .bind(name.as_str())
        .bind(app.as_str())
        .bind(secret.expose())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Outcome::Done)
    }

    /// Deletes the app's secret (and its row); done if it had none.
    pub async fn remove(&self, app: &AppId) -> Result<Outcome, AddonError> {
        let name = app.resource_name();
        let classify = |e| self.store.classify(e);
        let mut writer = self.store.writer().await?;
        let mut tx = writer.begin().await?;
        let held: Option<(String, String)> =
            sqlx::query_as("SELECT app_id, secret FROM fleet_turn_apps WHERE name = ?1")
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
        let Some((owner, secret)) = held else {
            return Ok(Outcome::Done);
        };
        if owner != app.as_str() {
            return Ok(Outcome::Taken);
        }
        sqlx::query("DELETE FROM turn_secret WHERE realm = ?1 AND value = ?2")
            .bind(&self.realm)
            .bind(&secret)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("DELETE FROM fleet_turn_apps WHERE name = ?1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Outcome::Done)
    }

    /// The apps that have a secret, sorted.
    pub async fn app_ids(&self) -> Result<Vec<String>, AddonError> {
        let mut conn = self.store.connect().await?;
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT app_id FROM fleet_turn_apps ORDER BY app_id")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| self.store.classify(e))?;
        Ok(rows.into_iter().map(|(app,)| app).collect())
    }

    /// Whether the database opens and holds both tables now.
    pub async fn ping(&self) -> bool {
        self.store
            .ping("SELECT 1 FROM fleet_turn_apps, turn_secret LIMIT 1")
            .await
    }
}
