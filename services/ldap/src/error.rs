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

pub use fleet_shared::ldap::code;

/// An LDAP operation that ended with a code the caller did not expect; `what` says which.
pub fn unexpected(what: &str, result: &LdapResult) -> AddonError {
    match result.rc {
        rc if fleet_shared::ldap::busy(rc) => {
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
        error if fleet_shared::ldap::unreachable(&error) => AddonError::Unavailable(format!(
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
