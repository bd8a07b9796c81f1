//! How the service classifies the errors of its data directory into the fleet's one
//! [`AddonError`]; the service's own failures (no port left, an instance that does not come up)
//! are built where they happen.

use fleet_shared::error::AddonError;

/// A file operation in the data directory failed: UNAVAILABLE when the directory (or a part
/// of it) is missing or out of reach, which an operator fixes (a volume not mounted); INTERNAL
/// otherwise (its details go to the log).
pub fn classify(error: std::io::Error) -> AddonError {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            AddonError::Unavailable(format!(
                "the data directory (FLEET_REDIS_DATA_DIR) is not usable: {error}"
            ))
        }
        _ => AddonError::Internal(format!("data directory: {error}")),
    }
}
