//! How the service classifies its state store's errors into the fleet's one [`AddonError`].

use fleet_shared::error::AddonError;

/// What a state-store error means to the caller: an unreachable store is UNAVAILABLE, anything
/// else INTERNAL (its details go to the log).
pub fn classify(error: sqlx::Error) -> AddonError {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => AddonError::Unavailable(format!(
            "cannot reach the state store ({error}); check that it is running and \
             FLEET_OIDC_STATE_URL"
        )),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
                "57P01" | "57P02" | "57P03" | "53300" => {
                    AddonError::Unavailable(db.message().to_owned())
                }
                _ => AddonError::Internal(format!("state store error {code}: {}", db.message())),
            }
        }
        other => AddonError::Internal(format!("state store: {other}")),
    }
}
