//! The one error type of the addon services and its one mapping to gRPC statuses. A service
//! only classifies its driver's errors into an [`AddonError`] (a small function of its own: the
//! orphan rule keeps `From<driver error>` out of here); what each kind means to the caller is
//! decided once, in [`AddonError::into_status`].

use tonic::Status;

use crate::addon::InvalidField;

/// What can go wrong serving an addon call. Messages are for the caller: they say what was
/// wrong and what to do, and never carry credentials, SQL or other internals.
#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    /// A request field is malformed or not allowed: INVALID_ARGUMENT.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// Path of the field in the request, e.g. `options.postgresql.locale`.
        field: String,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// What the call names does not exist: NOT_FOUND.
    #[error("{0}")]
    NotFound(String),
    /// What the call would create exists already: ALREADY_EXISTS.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the backend's state does not allow it: FAILED_PRECONDITION.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limited resource (ports, instances...) is used up: RESOURCE_EXHAUSTED.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The backend cannot be reached or refuses the service; retrying may help: UNAVAILABLE,
    /// prefixed with the backend's name (see [`Origin::backend`]).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: INTERNAL. The details go to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Who answers with a status: the names its messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The service, as INTERNAL messages name its log ("mysql").
    pub service: &'static str,
    /// The backend, as UNAVAILABLE messages start ("MySQL is unavailable: ..."); `None` where
    /// the messages name what is unavailable themselves.
    pub backend: Option<&'static str>,
}

impl AddonError {
    /// INVALID_ARGUMENT for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether the backend could not be reached (a connection is worth replacing).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The status for the caller; an internal error's details are logged here instead.
    pub fn into_status(self, origin: Origin) -> Status {
        match self {
            Self::InvalidArgument { .. } => Status::invalid_argument(self.to_string()),
            Self::NotFound(message) => Status::not_found(message),
            Self::AlreadyExists(message) => Status::already_exists(message),
            Self::FailedPrecondition(message) => Status::failed_precondition(message),
            Self::ResourceExhausted(message) => Status::resource_exhausted(message),
            Self::Unavailable(message) => match origin.backend {
                Some(backend) => {
                    Status::unavailable(format!("{backend} is unavailable: {message}"))
                }
                None => Status::unavailable(message),
            },
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal(format!(
                    "internal error; the {} service's log has the details",
                    origin.service
                ))
            }
        }
    }
}

impl From<InvalidField> for AddonError {
    fn from(InvalidField { field, reason }: InvalidField) -> Self {
        Self::InvalidArgument { field, reason }
    }
}

impl From<tokio::task::JoinError> for AddonError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Internal(format!("provisioning task failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    const MYSQL: Origin = Origin {
        service: "mysql",
        backend: Some("MySQL"),
    };

    #[test]
    fn each_kind_has_its_code_and_message() {
        let cases = [
            (
                AddonError::invalid("app_id", "is required"),
                Code::InvalidArgument,
                "app_id: is required",
            ),
            (
                AddonError::NotFound("no user named \"a\"".to_owned()),
                Code::NotFound,
                "no user named \"a\"",
            ),
            (
                AddonError::AlreadyExists("taken".to_owned()),
                Code::AlreadyExists,
                "taken",
            ),
            (
                AddonError::FailedPrecondition("held by another app".to_owned()),
                Code::FailedPrecondition,
                "held by another app",
            ),
            (
                AddonError::ResourceExhausted("no port left".to_owned()),
                Code::ResourceExhausted,
                "no port left",
            ),
            (
                AddonError::Unavailable("the service is shutting down".to_owned()),
                Code::Unavailable,
                "MySQL is unavailable: the service is shutting down",
            ),
            (
                AddonError::Internal("password=hunter2".to_owned()),
                Code::Internal,
                "internal error; the mysql service's log has the details",
            ),
        ];
        for (error, code, message) in cases {
            let status = error.into_status(MYSQL);
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }

    #[test]
    fn a_backend_without_a_name_keeps_the_message() {
        let origin = Origin {
            service: "redis",
            backend: None,
        };
        let status =
            AddonError::Unavailable("instance did not start".to_owned()).into_status(origin);
        assert_eq!(status.message(), "instance did not start");
    }

    #[test]
    fn an_invalid_field_is_invalid_argument() {
        let error = AddonError::from(InvalidField::new("options", "not mysql"));
        assert!(
            matches!(&error, AddonError::InvalidArgument { field, reason } if field == "options" && reason == "not mysql")
        );
    }
}
