//! Per-app locks: every call that changes an app holds its app's lock for the whole call.
//!
//! In one process an in-memory [`KeyedLocks`] serializes the calls. On PostgreSQL state, where
//! several coordinator replicas may share the store, the call also holds a transaction-level
//! advisory lock (`pg_advisory_xact_lock`) in a transaction of its own, on a connection of a
//! small pool kept for locks. The in-process lock is taken first, so waiters in one process do
//! not each hold a connection. The key is the first 8 bytes of SHA-256 of the app id (and a
//! fixed prefix), as an i64: two apps whose keys collide only wait for each other.
//!
//! Release on every path: the guard ends the transaction when dropped (sqlx rolls back a
//! dropped transaction before its connection is reused, and closes a connection it cannot
//! clean), so a failed, finished or cancelled call leaves no lock behind; a coordinator that
//! dies loses its session and with it the lock.
//!
//! Waits are bounded: in the process by a timer, in the database by `lock_timeout`. A wait
//! that runs out is [`Error::Busy`] (ABORTED, "another call on app X is in progress").
//!
//! SQLite state is one coordinator process: its lock is the in-process one alone.

use std::time::{Duration, Instant};

use fleet_shared::keyed_lock::{KeyedGuard, KeyedLocks};
use sha2::{Digest, Sha256};
use sqlx::{
    PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::error::Error;

/// Connections kept for app locks: how many apps one coordinator can change at once on
/// PostgreSQL (more wait for a connection, within the lock wait).
pub const LOCK_CONNECTIONS: u32 = 32;

/// PostgreSQL's SQLSTATE for a lock wait that ran out (`lock_timeout`).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The locks of one coordinator.
pub struct AppLocks {
    local: KeyedLocks,
    database: Option<PgPool>,
    wait: Duration,
}

/// One app's lock, held until dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct AppGuard {
    // Fields drop in order: the database lock goes before the in-process one, so the next
    // local waiter does not queue behind a lock its own process still holds.
    _database: Option<Transaction<'static, Postgres>>,
    _local: KeyedGuard,
}

impl AppLocks {
    /// Locks for a store at `state_url`: in the database too when it is PostgreSQL. A call
    /// waits at most `wait` for another call on the same app.
    pub fn new(state_url: &str, wait: Duration) -> Result<Self, Error> {
        let database = if state_url.starts_with("postgres") {
            let options: PgConnectOptions = state_url
                .parse()
                .map_err(|e| Error::Internal(format!("FLEET_COORDINATOR_STATE_URL: {e}")))?;
            Some(
                PgPoolOptions::new()
                    .max_connections(LOCK_CONNECTIONS)
                    .min_connections(0)
                    .acquire_timeout(wait.max(Duration::from_secs(1)))
                    .connect_lazy_with(options),
            )
        } else {
            None
        };
        Ok(Self {
            local: KeyedLocks::new(),
            database,
            wait,
        })
    }

    /// Waits (at most the configured wait) until no other call holds `app_id`'s lock, in this
    /// process or another coordinator on the same PostgreSQL, then holds it.
    pub async fn lock(&self, app_id: &str) -> Result<AppGuard, Error> {
        let deadline = Instant::now() + self.wait;
        let local = tokio::time::timeout(self.wait, self.local.lock(app_id))
            .await
            .map_err(|_| busy(app_id))?;
        let database = match &self.database {
            Some(pool) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                Some(
                    lock_in(pool, app_id, Some(remaining))
                        .await?
                        .ok_or_else(|| busy(app_id))?,
                )
            }
            None => None,
        };
        Ok(AppGuard {
            _database: database,
            _local: local,
        })
    }

    /// `app_id`'s lock if nobody holds it now (in this process or another coordinator);
    /// `None` if someone does.
    pub async fn try_lock(&self, app_id: &str) -> Result<Option<AppGuard>, Error> {
        let Ok(local) = tokio::time::timeout(Duration::ZERO, self.local.lock(app_id)).await else {
            return Ok(None);
        };
        let database = match &self.database {
            Some(pool) => match lock_in(pool, app_id, None).await? {
                Some(transaction) => Some(transaction),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(AppGuard {
            _database: database,
            _local: local,
        }))
    }
}

/// The advisory lock key of `app_id`: the first 8 bytes of SHA-256 of a prefix and the id.
pub fn lock_key(app_id: &str) -> i64 {
    let digest = Sha256::digest(format!("fleet-coordinator/app/{app_id}").as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Takes `app_id`'s advisory lock in a new transaction: waiting up to `wait` (rounded up to a
/// millisecond), or not at all when `None`. `None` if it is held elsewhere.
async fn lock_in(
    pool: &PgPool,
    app_id: &str,
    wait: Option<Duration>,
) -> Result<Option<Transaction<'static, Postgres>>, Error> {
    let mut transaction = pool.begin().await.map_err(|e| match e {
        sqlx::Error::PoolTimedOut => Error::Busy(format!(
            "this coordinator is changing {LOCK_CONNECTIONS} apps at once, its most; retry the \
             call on app {app_id} later"
        )),
        other => other.into(),
    })?;
    // A server-wide idle-in-transaction timeout would end the call's lock under it; 0 as
    // lock_timeout would mean "no limit".
    let millis = wait.map_or(1, |wait| wait.as_millis().clamp(1, i32::MAX as u128));
    sqlx::query(
        "SELECT set_config('idle_in_transaction_session_timeout', '0', true), \
         set_config('lock_timeout', $1, true)",
    )
    .bind(millis.to_string())
    .execute(&mut *transaction)
    .await?;
    let key = lock_key(app_id);
    if wait.is_none() {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(key)
            .fetch_one(&mut *transaction)
            .await?;
        return Ok(locked.then_some(transaction));
    }
    match sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *transaction)
        .await
    {
        Ok(_) => Ok(Some(transaction)),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
            Ok(None)
        }
        Err(other) => Err(other.into()),
    }
}

fn busy(app_id: &str) -> Error {
    Error::Busy(format!(
        "another call on app {app_id} is in progress (on this or another coordinator \
         replica); retry when it has finished"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn keys_are_stable_and_differ_by_app() {
        assert_eq!(lock_key("app-1"), lock_key("app-1"));
        assert_ne!(lock_key("app-1"), lock_key("app-2"));
    }

    #[tokio::test]
    async fn sqlite_locks_are_in_process_and_bounded() {
        let locks = AppLocks::new("sqlite://x.db", Duration::from_millis(50)).unwrap();
        let held = locks.lock("app").await.unwrap();
        let waited = locks.lock("app").await;
        assert!(
            matches!(&waited, Err(Error::Busy(m)) if m.contains("another call on app app")),
            "{:?}",
            waited.err()
        );
        assert!(locks.try_lock("app").await.unwrap().is_none());
        assert!(locks.lock("other").await.is_ok());
        drop(held);
        assert!(locks.try_lock("app").await.unwrap().is_some());
    }
}
