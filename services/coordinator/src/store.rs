//! Durable app records: an embedded SQLite file by default, PostgreSQL when a URL says so
//! (sqlx's `Any` driver, one portable schema under `migrations/`).

use sqlx::AnyPool;

use crate::error::Error;

/// Where a call on an app stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// InstallApp is under way (or crashed): the app is not installed yet.
    Installing,
    Installed,
    /// UpdateApp is under way: `addons` is still the old manifest, `pending` the new one.
    Updating,
    /// UpdateApp has provisioned the new manifest (`addons`) and is removing the addons it
    /// dropped (`pending` holds the old manifest).
    Committing,
    /// UninstallApp is under way.
    Uninstalling,
}

impl AppState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Installing => "installing",
            Self::Installed => "installed",
            Self::Updating => "updating",
            Self::Committing => "committing",
            Self::Uninstalling => "uninstalling",
        }
    }

    fn parse(value: &str) -> Result<Self, Error> {
        match value {
            "installing" => Ok(Self::Installing),
            "installed" => Ok(Self::Installed),
            "updating" => Ok(Self::Updating),
            "committing" => Ok(Self::Committing),
            "uninstalling" => Ok(Self::Uninstalling),
            other => Err(Error::Internal(format!(
                "unknown app state {other:?} in the store"
            ))),
        }
    }
}

/// One app as stored.
#[derive(Debug, Clone)]
pub struct AppRecord {
    pub app_id: String,
    pub app_domain: String,
    /// The installed manifest's `addons` (JSON).
    pub addons: serde_json::Value,
    /// During an update: the new manifest's `addons`.
    pub pending: Option<serde_json::Value>,
    pub state: AppState,
}

/// An installed app's row as ListApps reads it: the manifest as stored text, parsed by the
/// caller (once, however often it is listed).
#[derive(Debug, Clone)]
pub struct StoredApp {
    pub app_id: String,
    pub app_domain: String,
    /// The installed manifest's `addons` (JSON text, as stored).
    pub addons: String,
}

/// The app records.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

type Row = (String, String, String, Option<String>, String);

impl Store {
    /// Opens (and creates, for SQLite) the store at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, Error> {
        let pool = fleet_shared::state::connect(url)
            .await
            .map_err(|e| match e {
                sqlx::Error::Configuration(e) => {
                    Error::Internal(format!("FLEET_COORDINATOR_STATE_URL: {e}"))
                }
                other => other.into(),
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Records a new app as installing; `false` if the app id is already taken.
    pub async fn begin_install(
        &self,
        app_id: &str,
        app_domain: &str,
        addons: &serde_json::Value,
    ) -> Result<bool, Error> {
        let inserted = sqlx::query(
            "INSERT INTO apps (app_id, app_domain, addons, pending_addons, state, updated_at) \
             VALUES ($1, $2, $3, NULL, $4, $5) ON CONFLICT (app_id) DO NOTHING",
        )
        .bind(app_id)
        .bind(app_domain)
        .bind(addons.to_string())
        .bind(AppState::Installing.as_str())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// The app's record.
    pub async fn get(&self, app_id: &str) -> Result<Option<AppRecord>, Error> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT app_id, app_domain, addons, pending_addons, state FROM apps WHERE app_id = $1",
        )
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(record).transpose()
    }

    /// The ids of apps a call left unfinished (any state but installed), sorted.
    pub async fn unsettled(&self) -> Result<Vec<String>, Error> {
        Ok(
            sqlx::query_scalar("SELECT app_id FROM apps WHERE state <> $1 ORDER BY app_id")
                .bind(AppState::Installed.as_str())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Up to `limit` apps that are not being installed, sorted by app id, after `after`.
    pub async fn page(&self, after: Option<&str>, limit: usize) -> Result<Vec<StoredApp>, Error> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT app_id, app_domain, addons FROM apps WHERE app_id > $1 AND state <> $2 \
             ORDER BY app_id LIMIT $3",
        )
        .bind(after.unwrap_or_default())
        .bind(AppState::Installing.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(app_id, app_domain, addons)| StoredApp {
                app_id,
                app_domain,
                addons,
            })
            .collect())
    }

    /// Sets the app's state, installed manifest and pending manifest.
    pub async fn set(
        &self,
        app_id: &str,
        state: AppState,
        addons: &serde_json::Value,
        pending: Option<&serde_json::Value>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE apps SET state = $1, addons = $2, pending_addons = $3, updated_at = $4 \
             WHERE app_id = $5",
        )
        .bind(state.as_str())
        .bind(addons.to_string())
        .bind(pending.map(ToString::to_string))
        .bind(now())
        .bind(app_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the app.
    pub async fn delete(&self, app_id: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM apps WHERE app_id = $1")
            .bind(app_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn record((app_id, app_domain, addons, pending, state): Row) -> Result<AppRecord, Error> {
    Ok(AppRecord {
        app_id,
        app_domain,
        addons: serde_json::from_str(&addons)?,
        pending: pending.as_deref().map(serde_json::from_str).transpose()?,
        state: AppState::parse(&state)?,
    })
}

/// Seconds since the epoch, as text (portable across SQLite and PostgreSQL).
fn now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .unwrap_or_default()
}
