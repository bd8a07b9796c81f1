//! The coordinator's one error type and its one mapping to gRPC statuses.

use tonic::{Code, Status};

use crate::limits::{
    MAX_LISTED_PROBLEMS, MAX_PROBLEM_BYTES, MAX_RELAYED_MESSAGE_BYTES, MAX_STATUS_MESSAGE_BYTES,
    truncate,
};

/// What can go wrong serving a call. Messages say what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: the first problems found, each `path: reason`, and how many
    /// more there were. The message lists at most [`MAX_LISTED_PROBLEMS`] and counts the rest.
    #[error("{}", invalid_message(.0, *.1))]
    Invalid(Vec<String>, usize),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// An addon service refused or failed; its status, prefixed with the addon's name.
    #[error("addon {addon}: {}", truncate(.status.message(), MAX_RELAYED_MESSAGE_BYTES))]
    Addon { addon: String, status: Status },
    /// Another call on the same app held its lock for longer than a call waits.
    #[error("{0}")]
    Busy(String),
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

impl Error {
    /// INVALID_ARGUMENT for one problem.
    pub fn invalid(problem: String) -> Self {
        Self::Invalid(vec![problem], 0)
    }
}

fn invalid_message(problems: &[String], unlisted: usize) -> String {
    let total = problems.len() + unlisted;
    let mut message = format!("invalid request ({total} problem(s)):");
    for problem in problems.iter().take(MAX_LISTED_PROBLEMS) {
        message.push_str("\n- ");
        message.push_str(&truncate(problem, MAX_PROBLEM_BYTES));
    }
    let more = total - problems.len().min(MAX_LISTED_PROBLEMS);
    if more > 0 {
        message.push_str(&format!("\n- and {more} more problems"));
    }
    message
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
        // A status message travels in one header: whatever produced it, it stays small.
        let message = truncate(&error.to_string(), MAX_STATUS_MESSAGE_BYTES);
        match error {
            Error::Invalid(..) => Status::invalid_argument(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::AlreadyExists(_) => Status::already_exists(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::Busy(_) => Status::aborted(message),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_short() {
        let relayed = Status::from(Error::Addon {
            addon: "mysql".to_owned(),
            status: Status::internal("x".repeat(100_000)),
        });
        assert!(relayed.message().starts_with("addon mysql: xxx"));
        assert!(relayed.message().len() <= MAX_RELAYED_MESSAGE_BYTES + 20);
        let problems = (0..1000)
            .map(|i| format!("p{i}: {}", "y".repeat(500)))
            .collect();
        let invalid = Status::from(Error::Invalid(problems, 5));
        assert!(invalid.message().len() <= MAX_STATUS_MESSAGE_BYTES);
        assert!(
            invalid
                .message()
                .starts_with("invalid request (1005 problem(s))")
        );
        assert!(invalid.message().ends_with("and 985 more problems"));
    }
}
