//! The coordinator's one error type and its one mapping to gRPC statuses.

use tonic::{Code, Status};

/// What can go wrong serving a call. Messages say what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every problem, each `path: reason`.
    #[error("invalid request ({} problem(s)):\n- {}", .0.len(), .0.join("\n- "))]
    Invalid(Vec<String>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// An addon service refused or failed; its status, prefixed with the addon's name.
    #[error("addon {addon}: {}", .status.message())]
    Addon { addon: String, status: Status },
    /// A call could not finish because a service is unavailable; retrying completes it.
    #[error("{0}")]
    Incomplete(String),
    /// The state store cannot be reached.
    #[error("the coordinator's state store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the details go to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                Self::Unavailable(error.to_string())
            }
            other => Self::Internal(format!("state store: {other}")),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Self::Internal(format!("state store migration: {error}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::Internal(format!("stored manifest: {error}"))
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Internal(format!("coordinator task failed: {error}"))
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::Invalid(_) => Status::invalid_argument(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::AlreadyExists(_) => Status::already_exists(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::Addon { status, .. } => {
                // A deadline or transport failure reaching the service reads as UNAVAILABLE.
                let code = match status.code() {
                    Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => Code::Unavailable,
                    code => code,
                };
                Status::new(code, message)
            }
            Error::Incomplete(_) | Error::Unavailable(_) => Status::unavailable(message),
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error; the coordinator's log has the details")
            }
        }
    }
}
