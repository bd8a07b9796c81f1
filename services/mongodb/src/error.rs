//! The service's one error type and its one mapping to gRPC statuses.

use fleet_shared::addon::InvalidField;
use mongodb::error::ErrorKind;
use tonic::Status;

/// What can go wrong serving a call. Messages say what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    FailedPrecondition(String),
    /// MongoDB cannot be reached or refuses the service.
    #[error("MongoDB is unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the details go to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

/// MongoDB error codes the service tells apart.
pub mod code {
    pub const AUTHENTICATION_FAILED: i32 = 18;
    pub const USER_NOT_FOUND: i32 = 11;
}

impl From<mongodb::error::Error> for Error {
    fn from(error: mongodb::error::Error) -> Self {
        match error.kind.as_ref() {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. } => Self::Unavailable(
                "cannot reach the server; check that it is running and FLEET_MONGODB_ADMIN_URL"
                    .to_owned(),
            ),
            ErrorKind::Authentication { .. } => Self::Unavailable(
                "the server refused the service's admin credentials; check \
                 FLEET_MONGODB_ADMIN_URL (and FLEET_MONGODB_ADMIN_PASSWORD_FILE)"
                    .to_owned(),
            ),
            ErrorKind::Command(command) if command.code == code::AUTHENTICATION_FAILED => {
                Self::Unavailable("the server refused the service's admin credentials".to_owned())
            }
            ErrorKind::Command(command) => Self::Internal(format!(
                "MongoDB error {} ({}): {}",
                command.code, command.code_name, command.message
            )),
            _ => Self::Internal(error.to_string()),
        }
    }
}

impl From<InvalidField> for Error {
    fn from(InvalidField { field, reason }: InvalidField) -> Self {
        Self::InvalidArgument { field, reason }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Internal(format!("provisioning task failed: {error}"))
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::Unavailable(_) => Status::unavailable(error.to_string()),
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error; the mongodb service's log has the details")
            }
        }
    }
}
