//! The service's one error type and its one mapping to gRPC statuses.

use fleet_shared::addon::InvalidField;
use tonic::Status;

/// What can go wrong serving a call. Messages say what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    FailedPrecondition(String),
    /// No port left in the configured range.
    #[error("{0}")]
    ResourceExhausted(String),
    /// An instance did not come up or the data directory is unusable.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else; the details go to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(String),
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

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::Internal(format!("data directory: {error}"))
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::ResourceExhausted(message) => Status::resource_exhausted(message),
            Error::Unavailable(message) => Status::unavailable(message),
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error; the redis service's log has the details")
            }
        }
    }
}
