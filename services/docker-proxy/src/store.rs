//! The endpoints' table: which port serves which app, at which credential generation. It is
//! the one truth replicas share (`FLEET_DOCKER_PROXY_STATE_DIR/endpoints.db`): each replica
//! listens on the ports it names, and every call on an endpoint is checked against it, so an
//! endpoint removed by one replica answers no more calls on any.

use std::{collections::HashSet, ops::RangeInclusive, path::Path, time::Duration};

use fleet_shared::{AppId, backend_store::BackendStore, error::AddonError};
use sqlx::{
    Connection, Sqlite, SqliteConnection, SqlitePool,
    pool::PoolConnection,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};

/// The table's file in the state directory.
pub const DATABASE: &str = "endpoints.db";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS endpoints (
    app_id TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    port INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS last_port (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    port INTEGER NOT NULL
)";

/// One app's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The app it serves.
    pub app: String,
    /// The credential generation it was made for.
    pub generation: u32,
    /// Its port.
    pub port: u16,
}

/// What [`Endpoints::put`] did.
#[derive(Debug)]
pub enum Put<L> {
    /// The app already had an endpoint of this generation.
    Kept(Endpoint),
    /// A new endpoint, with what `bind` made for its port; the app's previous one (if any)
    /// is gone.
    Made(Endpoint, L),
}

/// The table.
#[derive(Debug, Clone)]
pub struct Endpoints {
    store: BackendStore,
    /// Connections kept open for reads: every call on an endpoint reads the table, and a new
    /// SQLite connection (a thread of sqlx's) costs more than the read.
    reads: SqlitePool,
}

impl Endpoints {
    /// Opens the table in `state_dir`, making the directory, the file and the table when
    /// missing (the state is this service's own).
    pub async fn open(state_dir: &Path) -> Result<Self, AddonError> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            AddonError::Unavailable(format!(
                "cannot create FLEET_DOCKER_PROXY_STATE_DIR {}: {e}",
                state_dir.display()
            ))
        })?;
        let db = state_dir.join(DATABASE);
        let store = BackendStore::new(
            db.clone(),
            "the endpoints' table",
            "check FLEET_DOCKER_PROXY_STATE_DIR",
        );
        // WAL: calls on endpoints read while another replica writes.
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| store.classify(e))?;
        sqlx::query(SCHEMA)
            .execute(&mut conn)
            .await
            .map_err(|e| store.classify(e))?;
        conn.close().await.map_err(|e| store.classify(e))?;
        let reads = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(
                SqliteConnectOptions::new()
                    .filename(&db)
                    .create_if_missing(false)
                    .read_only(true)
                    .busy_timeout(Duration::from_secs(5)),
            );
        Ok(Self { store, reads })
    }

    async fn read(&self) -> Result<PoolConnection<Sqlite>, AddonError> {
        self.reads
            .acquire()
            .await
            .map_err(|e| self.store.classify(e))
    }

    /// Every endpoint.
    pub async fn all(&self) -> Result<Vec<Endpoint>, AddonError> {
        let mut conn = self.read().await?;
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT app_id, generation, port FROM endpoints ORDER BY app_id")
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.store.classify(e))?;
        Ok(rows.into_iter().filter_map(endpoint).collect())
    }

    /// The endpoint on `port`, if any.
    pub async fn on_port(&self, port: u16) -> Result<Option<Endpoint>, AddonError> {
        let mut conn = self.read().await?;
        let row: Option<(String, i64, i64)> =
            sqlx::query_as("SELECT app_id, generation, port FROM endpoints WHERE port = ?1")
                .bind(i64::from(port))
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.store.classify(e))?;
        Ok(row.and_then(endpoint))
    }

    /// Gives `app` an endpoint of `generation`: its current one if it is of that generation,
    /// else the next port of `ports` after the last one given that no endpoint has and `bind`
    /// takes (the app's previous endpoint is then removed). RESOURCE_EXHAUSTED when no port is
    /// left.
    ///
    /// Ports are given in turn, not lowest first, so that a port an app lost (rotation,
    /// removal) goes to another app only after the whole range was given out: a stale
    /// `CLOUDRON_DOCKER_HOST` does not soon reach another app's endpoint.
    pub async fn put<L>(
        &self,
        app: &AppId,
        generation: u32,
        ports: RangeInclusive<u16>,
        mut bind: impl FnMut(u16) -> Option<L>,
    ) -> Result<Put<L>, AddonError> {
        let classify = |e| self.store.classify(e);
        let mut writer = self.store.writer().await?;
        let mut tx = writer.begin().await?;
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT app_id, generation, port FROM endpoints")
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
        let rows: Vec<Endpoint> = rows.into_iter().filter_map(endpoint).collect();
        if let Some(current) = rows.iter().find(|e| e.app == app.as_str())
            && current.generation == generation
        {
            return Ok(Put::Kept(current.clone()));
        }
        let taken: HashSet<u16> = rows.iter().map(|e| e.port).collect();
        let last: Option<i64> = sqlx::query_scalar("SELECT port FROM last_port")
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        let after = last
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| ports.contains(p))
            .unwrap_or(*ports.end());
        let in_turn = (after..=*ports.end()).skip(1).chain(*ports.start()..=after);
        let Some((port, bound)) = in_turn
            .filter(|p| !taken.contains(p))
            .find_map(|p| bind(p).map(|bound| (p, bound)))
        else {
            return Err(AddonError::ResourceExhausted(
                "every endpoint port (FLEET_DOCKER_PROXY_ENDPOINT_PORTS) is in use; widen the \
                 range or remove apps"
                    .to_owned(),
            ));
        };
        sqlx::query(
            "INSERT INTO endpoints (app_id, generation, port) VALUES (?1, ?2, ?3) \
             ON CONFLICT (app_id) DO UPDATE SET generation = excluded.generation, \
             port = excluded.port",
        )
        .bind(app.as_str())
        .bind(i64::from(generation))
        .bind(i64::from(port))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO last_port (one, port) VALUES (1, ?1) \
             ON CONFLICT (one) DO UPDATE SET port = excluded.port",
        )
        .bind(i64::from(port))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let made = Endpoint {
            app: app.as_str().to_owned(),
            generation,
            port,
        };
        Ok(Put::Made(made, bound))
    }

    /// Removes `app`'s endpoint; succeeds if it has none.
    pub async fn remove(&self, app: &AppId) -> Result<(), AddonError> {
        let classify = |e| self.store.classify(e);
        let mut writer = self.store.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query("DELETE FROM endpoints WHERE app_id = ?1")
            .bind(app.as_str())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    /// Whether the table can be read now.
    pub async fn ping(&self) -> bool {
        self.store.ping("SELECT 1 FROM endpoints LIMIT 1").await
    }
}

fn endpoint((app, generation, port): (String, i64, i64)) -> Option<Endpoint> {
    Some(Endpoint {
        app,
        generation: u32::try_from(generation).ok()?,
        port: u16::try_from(port).ok()?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn an_app_keeps_its_port_until_its_generation_changes() {
        let dir = tempfile::tempdir().unwrap();
        let table = Endpoints::open(dir.path()).await.unwrap();
        let app = |id: &str| AppId::parse(id).unwrap();
        let first = table.put(&app("a"), 0, 100..=103, Some).await.unwrap();
        assert!(matches!(first, Put::Made(Endpoint { port: 100, .. }, 100)));
        let again = table.put(&app("a"), 0, 100..=103, Some).await.unwrap();
        assert!(matches!(again, Put::Kept(Endpoint { port: 100, .. })));
        // Port 101 cannot be bound (someone else has it): b gets 102.
        let other = table
            .put(&app("b"), 0, 100..=103, |p| (p != 101).then_some(p))
            .await
            .unwrap();
        assert!(matches!(other, Put::Made(Endpoint { port: 102, .. }, _)));
        let rotated = table.put(&app("a"), 1, 100..=103, Some).await.unwrap();
        assert!(matches!(
            rotated,
            Put::Made(
                Endpoint {
                    port: 103,
                    generation: 1,
                    ..
                },
                _
            )
        ));
        assert_eq!(table.on_port(100).await.unwrap(), None);
        assert_eq!(table.on_port(103).await.unwrap().unwrap().app, "a");
        // The turn wraps around to the ports given up.
        let c = table.put(&app("c"), 0, 100..=103, Some).await.unwrap();
        assert!(matches!(c, Put::Made(Endpoint { port: 100, .. }, _)));
        let d = table.put(&app("d"), 0, 100..=103, Some).await.unwrap();
        assert!(matches!(d, Put::Made(Endpoint { port: 101, .. }, _)));
        let full = table.put(&app("e"), 0, 100..=103, Some).await;
        assert!(matches!(full, Err(AddonError::ResourceExhausted(_))));
        table.remove(&app("a")).await.unwrap();
        table.remove(&app("a")).await.unwrap();
        let all = table.all().await.unwrap();
        let apps: Vec<&str> = all.iter().map(|e| e.app.as_str()).collect();
        assert_eq!(apps, ["b", "c", "d"]);
    }
}
