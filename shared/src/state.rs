//! A service's own state store (feature `state`): an embedded SQLite file by default,
//! PostgreSQL when a URL says so, so that several replicas can share it. One portable schema
//! per service, run by the service with `sqlx::migrate!` on the pool this returns.

use std::{str::FromStr, time::Duration};

use sqlx::{
    AnyPool,
    any::{AnyConnectOptions, AnyPoolOptions},
};

/// Connections a PostgreSQL store keeps at most.
const POSTGRES_POOL: u32 = 10;
/// How long a call waits for a connection before failing (the caller reports UNAVAILABLE).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the store at `url` (`sqlite:///path/file.db`, created if missing, or
/// `postgres://...`). SQLite runs in WAL mode with one connection: it takes one writer at a
/// time, so more connections would only add lock waits.
pub async fn connect(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let url = if sqlite && !url.contains("mode=") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}mode=rwc")
    } else {
        url.to_owned()
    };
    let options = AnyConnectOptions::from_str(&url)?;
    let pool = AnyPoolOptions::new()
        .max_connections(if sqlite { 1 } else { POSTGRES_POOL })
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    if sqlite {
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    Ok(pool)
}
