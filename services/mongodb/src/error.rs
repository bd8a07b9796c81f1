//! How the service classifies MongoDB's errors into the fleet's one [`AddonError`].

use fleet_shared::error::AddonError;
use mongodb::error::ErrorKind;

/// MongoDB error codes the service tells apart.
pub mod code {
    pub const AUTHENTICATION_FAILED: i32 = 18;
    pub const USER_NOT_FOUND: i32 = 11;
    pub const DUPLICATE_KEY: i32 = 11000;
    pub const USER_ALREADY_EXISTS: i32 = 51003;
}

/// Whether `error` is the server's answer with `code`, to a command or to a write.
pub fn has_code(error: &mongodb::error::Error, code: i32) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Command(command) => command.code == code,
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(write)) => write.code == code,
        _ => false,
    }
}

/// What a driver error means to the caller: an unreachable or refusing server is UNAVAILABLE,
/// anything else INTERNAL (its details go to the log).
pub fn classify(error: mongodb::error::Error) -> AddonError {
    match error.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. } => AddonError::Unavailable(
            "cannot reach the server; check that it is running and FLEET_MONGODB_ADMIN_URL"
                .to_owned(),
        ),
        ErrorKind::Authentication { .. } => AddonError::Unavailable(
            "the server refused the service's admin credentials; check \
             FLEET_MONGODB_ADMIN_URL (and FLEET_MONGODB_ADMIN_PASSWORD_FILE)"
                .to_owned(),
        ),
        ErrorKind::Command(command) if command.code == code::AUTHENTICATION_FAILED => {
            AddonError::Unavailable("the server refused the service's admin credentials".to_owned())
        }
        ErrorKind::Command(command) => AddonError::Internal(format!(
            "MongoDB error {} ({}): {}",
            command.code, command.code_name, command.message
        )),
        _ => AddonError::Internal(error.to_string()),
    }
}
