//! The service's one error type and its one mapping to gRPC statuses.

use fleet_shared::addon::InvalidField;
use sqlx::mysql::MySqlDatabaseError;
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
    /// The MySQL server cannot be reached or refuses the service.
    #[error("MySQL is unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the details go to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

/// MySQL error numbers the service tells apart.
mod number {
    pub const ACCESS_DENIED: u16 = 1045;
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    pub const SERVER_SHUTDOWN: u16 = 1053;
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
                 FLEET_MYSQL_ADMIN_URL"
            )),
            sqlx::Error::Database(db) => {
                let number = db
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .map(MySqlDatabaseError::number);
                match number {
                    Some(number::ACCESS_DENIED) => Self::Unavailable(
                        "the server refused the service's admin credentials; check \
                         FLEET_MYSQL_ADMIN_URL (and FLEET_MYSQL_ADMIN_PASSWORD_FILE)"
                            .to_owned(),
                    ),
                    Some(number::TOO_MANY_CONNECTIONS | number::SERVER_SHUTDOWN) => {
                        Self::Unavailable(db.message().to_owned())
                    }
                    _ => Self::Internal(format!(
                        "MySQL error {}: {}",
                        number.unwrap_or_default(),
                        db.message()
                    )),
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
                Status::internal("internal error; the mysql service's log has the details")
            }
        }
    }
}
