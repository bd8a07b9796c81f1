//! The service's one error type and its one mapping to gRPC statuses.

use fleet_shared::addon::InvalidField;
use tonic::Status;

/// What can go wrong serving a call. Messages are for the caller: they say what was wrong and
/// what to do, and never carry credentials or SQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is malformed or not allowed.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The request is valid but the server's state does not allow it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// PostgreSQL cannot be reached.
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the details go to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An invalid request field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(format!(
                "cannot reach the server ({error}); check that it is running and \
                 FLEET_POSTGRESQL_ADMIN_URL"
            )),
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                match code.as_str() {
                    // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
                    "57P01" | "57P02" | "57P03" | "53300" => {
                        Self::Unavailable(db.message().to_owned())
                    }
                    // invalid_password, invalid_authorization_specification
                    "28P01" | "28000" => Self::Unavailable(
                        "the server refused the service's admin credentials; check \
                         FLEET_POSTGRESQL_ADMIN_URL (and FLEET_POSTGRESQL_ADMIN_PASSWORD_FILE)"
                            .to_owned(),
                    ),
                    _ => Self::Internal(format!("PostgreSQL error {code}: {}", db.message())),
                }
            }
            other => Self::Internal(other.to_string()),
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
                Status::internal("internal error; the postgresql service's log has the details")
            }
        }
    }
}
