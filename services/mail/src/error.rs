//! How the service classifies the accounts store's errors into the fleet's one [`AddonError`].

use fleet_shared::error::AddonError;

/// What an accounts-store error means to the caller: a store that cannot be opened, is
/// locked past the busy timeout or is read-only is UNAVAILABLE; anything else INTERNAL (its
/// details go to the log).
pub fn classify(error: sqlx::Error) -> AddonError {
    match &error {
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => unavailable(&error),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLite's primary result code is the low byte of an extended one.
            match code.parse::<i32>().map(|c| c & 0xff) {
                // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN,
                // SQLITE_NOTADB (a file that is not the store)
                Ok(5 | 6 | 8 | 10 | 14 | 26) => unavailable(&error),
                _ => AddonError::Internal(format!("accounts store error {code}: {}", db.message())),
            }
        }
        _ => AddonError::Internal(format!("accounts store: {error}")),
    }
}

fn unavailable(error: &sqlx::Error) -> AddonError {
    AddonError::Unavailable(format!(
        "cannot use the accounts store ({error}); check that the mail server's directory \
         (FLEET_MAIL_DIR) is there and initialised by deploy/mail/cluster.sh"
    ))
}
