//! How the service classifies PostgreSQL's errors into the fleet's one [`AddonError`].

use fleet_shared::error::AddonError;

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
             FLEET_POSTGRESQL_ADMIN_URL"
        )),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
                "57P01" | "57P02" | "57P03" | "53300" => {
                    AddonError::Unavailable(db.message().to_owned())
                }
                // invalid_password, invalid_authorization_specification
                "28P01" | "28000" => AddonError::Unavailable(
                    "the server refused the service's admin credentials; check \
                     FLEET_POSTGRESQL_ADMIN_URL (and FLEET_POSTGRESQL_ADMIN_PASSWORD_FILE)"
                        .to_owned(),
                ),
                _ => AddonError::Internal(format!("PostgreSQL error {code}: {}", db.message())),
            }
        }
        other => AddonError::Internal(other.to_string()),
    }
}
