//! How the service classifies MySQL's errors into the fleet's one [`AddonError`].

use fleet_shared::error::AddonError;
use sqlx::mysql::MySqlDatabaseError;

/// MySQL error numbers the service tells apart.
mod number {
    pub const ACCESS_DENIED: u16 = 1045;
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    pub const SERVER_SHUTDOWN: u16 = 1053;
}

/// What a driver error means to the caller: an unreachable or refusing server is UNAVAILABLE,
/// anything else INTERNAL (its details go to the log).
pub fn classify(error: sqlx::Error) -> AddonError {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => AddonError::Unavailable(format!(
            "cannot reach the server ({error}); check that it is running and \
             FLEET_MYSQL_ADMIN_URL"
        )),
        sqlx::Error::Database(db) => {
            let number = db
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(MySqlDatabaseError::number);
            match number {
                Some(number::ACCESS_DENIED) => AddonError::Unavailable(
                    "the server refused the service's admin credentials; check \
                     FLEET_MYSQL_ADMIN_URL (and FLEET_MYSQL_ADMIN_PASSWORD_FILE)"
                        .to_owned(),
                ),
                Some(number::TOO_MANY_CONNECTIONS | number::SERVER_SHUTDOWN) => {
                    AddonError::Unavailable(db.message().to_owned())
                }
                _ => AddonError::Internal(format!(
                    "MySQL error {}: {}",
                    number.unwrap_or_default(),
                    db.message()
                )),
            }
        }
        other => AddonError::Internal(other.to_string()),
    }
}
