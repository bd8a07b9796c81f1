//! A SQLite file that a backend daemon reads and an addon service writes (feature
//! `backend-store`): Dovecot's and Postfix's accounts, coturn's secrets. The daemon's
//! `cluster.sh` creates the file and its schema; the service only changes rows.
//!
//! Every call opens its own short connection, so a file that went away is noticed at once
//! (and reported UNAVAILABLE), never replaced by a fresh empty one. The journal mode is the
//! backend's, set by its `cluster.sh` and never changed here: rollback (DELETE) for mail, whose
//! daemons read without write access, WAL for coturn, which reads without a busy timeout.
//! Writes run in `BEGIN IMMEDIATE` transactions, so writers of several processes (replicas
//! sharing the directory) queue on SQLite's lock instead of overwriting one another; writers of
//! one process first queue on a lock of their own, because SQLite's busy handler waits by
//! sleeping, which under contention costs far more than the commits.

use std::{path::PathBuf, sync::Arc, time::Duration};

use sqlx::{Connection, Sqlite, SqliteConnection, Transaction, sqlite::SqliteConnectOptions};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::AddonError;

/// How long a call waits for another process's write transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store in one file.
#[derive(Debug, Clone)]
pub struct BackendStore {
    db: PathBuf,
    /// What UNAVAILABLE messages call it and what to check ("the accounts store", "check
    /// FLEET_MAIL_DIR").
    what: &'static str,
    hint: &'static str,
    /// Taken by every write of this process before SQLite's own lock.
    writers: Arc<Mutex<()>>,
}

/// A connection of one writer of this process, which holds the process's write lock.
pub struct Writer {
    _turn: OwnedMutexGuard<()>,
    conn: SqliteConnection,
    store: BackendStore,
}

impl Writer {
    /// Starts the writer's transaction (`BEGIN IMMEDIATE`: the write lock is taken now, not at
    /// the first write, so two writers never both read and then both write).
    pub async fn begin(&mut self) -> Result<Transaction<'_, Sqlite>, AddonError> {
        let store = &self.store;
        self.conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| store.classify(e))
    }
}

impl BackendStore {
    /// The store in `db`, called `what` in messages that end with `hint`.
    pub fn new(db: PathBuf, what: &'static str, hint: &'static str) -> Self {
        Self {
            db,
            what,
            hint,
            writers: Arc::default(),
        }
    }

    /// A new connection for reading (or a single statement).
    pub async fn connect(&self) -> Result<SqliteConnection, AddonError> {
        let options = SqliteConnectOptions::new()
            .filename(&self.db)
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT);
        SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| self.classify(e))
    }

    /// A connection for writing, once this process's other writers are done.
    pub async fn writer(&self) -> Result<Writer, AddonError> {
        let turn = Arc::clone(&self.writers).lock_owned().await;
        let conn = self.connect().await?;
        Ok(Writer {
            _turn: turn,
            conn,
            store: self.clone(),
        })
    }

    /// Whether the store opens and `probe` (a query) runs now.
    pub async fn ping(&self, probe: &'static str) -> bool {
        match self.connect().await {
            Ok(mut conn) => sqlx::query(probe).fetch_optional(&mut conn).await.is_ok(),
            Err(_) => false,
        }
    }

    /// What a SQLite error means to the caller: a store that cannot be opened, is locked past
    /// the busy timeout or is read-only is UNAVAILABLE; anything else INTERNAL (its details go
    /// to the log).
    pub fn classify(&self, error: sqlx::Error) -> AddonError {
        let unavailable = |error: &sqlx::Error| {
            AddonError::Unavailable(format!("cannot use {} ({error}); {}", self.what, self.hint))
        };
        match &error {
            sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => unavailable(&error),
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // SQLite's primary result code is the low byte of an extended one.
                match code.parse::<i32>().map(|c| c & 0xff) {
                    // SQLITE_BUSY, _LOCKED, _READONLY, _IOERR, _CANTOPEN, _NOTADB (a file
                    // that is not the store)
                    Ok(5 | 6 | 8 | 10 | 14 | 26) => unavailable(&error),
                    _ => AddonError::Internal(format!(
                        "{} error {code}: {}",
                        self.what,
                        db.message()
                    )),
                }
            }
            _ => AddonError::Internal(format!("{}: {error}", self.what)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_missing_file_is_unavailable_and_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gone.db");
        let store = BackendStore::new(db.clone(), "the test store", "check the path");
        let error = store.connect().await.unwrap_err();
        assert!(
            matches!(&error, AddonError::Unavailable(m) if m.contains("the test store") && m.contains("check the path")),
            "{error}"
        );
        assert!(!store.ping("SELECT 1").await);
        assert!(!db.exists());
    }

    #[tokio::test]
    async fn the_files_journal_mode_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wal.db");
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&mut conn)
            .await
            .unwrap();
        let store = BackendStore::new(db, "the test store", "");
        let mut writer = store.writer().await.unwrap();
        let mut tx = writer.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&mut store.connect().await.unwrap())
            .await
            .unwrap();
        assert_eq!(mode.0, "wal");
    }

    #[tokio::test]
    async fn writers_of_one_process_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&mut conn)
            .await
            .unwrap();
        let store = BackendStore::new(db, "the test store", "");
        let writes = (0..20).map(|n| {
            let store = store.clone();
            async move {
                let mut writer = store.writer().await.unwrap();
                let mut tx = writer.begin().await.unwrap();
                sqlx::query("INSERT INTO t VALUES (?1)")
                    .bind(n)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        });
        futures::future::join_all(writes).await;
        let count: (i64,) = sqlx::query_as("SELECT count(*) FROM t")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(count.0, 20);
        assert!(store.ping("SELECT 1 FROM t LIMIT 1").await);
    }
}
