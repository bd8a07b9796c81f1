//! The service's one error type and its one mapping to gRPC statuses.

use fleet_shared::addon::InvalidField;
use ldap3::{LdapError, LdapResult};
use tonic::Status;

/// What can go wrong serving a call. Messages say what was wrong and what to do; they never
/// hold a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// slapd cannot be reached or refuses the service.
    #[error("slapd is unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the details go to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

/// LDAP result codes (RFC 4511, appendix A) the service tells apart.
pub mod code {
    pub const SUCCESS: u32 = 0;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const ENTRY_ALREADY_EXISTS: u32 = 68;
}

impl Error {
    /// An LDAP operation that ended with a code the caller did not expect; `what` says which.
    pub fn unexpected(what: &str, result: &LdapResult) -> Self {
        match result.rc {
            code::BUSY | code::UNAVAILABLE => {
                Self::Unavailable(format!("{what}: slapd is busy or shutting down"))
            }
            code::INVALID_CREDENTIALS => Self::Unavailable(
                "slapd refused the service's admin credentials; check FLEET_LDAP_ADMIN_DN and \
                 FLEET_LDAP_ADMIN_PASSWORD_FILE"
                    .to_owned(),
            ),
            rc => Self::Internal(format!("{what}: LDAP result {rc}: {}", result.text)),
        }
    }

    /// Whether slapd could not be reached (the connection is worth replacing).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<LdapError> for Error {
    fn from(error: LdapError) -> Self {
        match error {
            LdapError::LdapResult { result } => Self::unexpected("LDAP operation", &result),
            LdapError::Io { .. }
            | LdapError::Timeout { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream => Self::Unavailable(format!(
                "cannot reach it ({error}); check that it is running and FLEET_LDAP_ADMIN_URL"
            )),
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
        Self::Internal(format!("directory task failed: {error}"))
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            Error::NotFound(message) => Status::not_found(message),
            Error::AlreadyExists(message) => Status::already_exists(message),
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::Unavailable(_) => Status::unavailable(error.to_string()),
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error; the ldap service's log has the details")
            }
        }
    }
}
