//! How the service classifies slapd's errors into the fleet's one [`AddonError`].

use fleet_shared::{
    catalog,
    error::{AddonError, Origin},
};
use ldap3::{LdapError, LdapResult};
use tonic::Status;

/// How the service's statuses name it and slapd, for the addon and the directory alike.
pub const ORIGIN: Origin = Origin {
    service: catalog::LDAP.name,
    backend: Some("slapd"),
};

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

/// An LDAP operation that ended with a code the caller did not expect; `what` says which.
pub fn unexpected(what: &str, result: &LdapResult) -> AddonError {
    match result.rc {
        code::BUSY | code::UNAVAILABLE => {
            AddonError::Unavailable(format!("{what}: slapd is busy or shutting down"))
        }
        code::INVALID_CREDENTIALS => AddonError::Unavailable(
            "slapd refused the service's admin credentials; check FLEET_LDAP_ADMIN_DN and \
             FLEET_LDAP_ADMIN_PASSWORD_FILE"
                .to_owned(),
        ),
        rc => AddonError::Internal(format!("{what}: LDAP result {rc}: {}", result.text)),
    }
}

/// What a driver error means to the caller: an unreachable slapd is UNAVAILABLE, a result code
/// is classified by [`unexpected`], anything else is INTERNAL (its details go to the log).
pub fn classify(error: LdapError) -> AddonError {
    match error {
        LdapError::LdapResult { result } => unexpected("LDAP operation", &result),
        LdapError::Io { .. }
        | LdapError::Timeout { .. }
        | LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::MiscSend { .. }
        | LdapError::EndOfStream => AddonError::Unavailable(format!(
            "cannot reach it ({error}); check that it is running and FLEET_LDAP_ADMIN_URL"
        )),
        other => AddonError::Internal(other.to_string()),
    }
}

/// `error` as the status the service answers with.
pub fn status(error: AddonError) -> Status {
    error.into_status(ORIGIN)
}

/// A directory task that did not finish (it panicked or was cancelled): INTERNAL.
pub fn task_failed(error: tokio::task::JoinError) -> AddonError {
    AddonError::Internal(format!("directory task failed: {error}"))
}
