//! A private OpenLDAP slapd, set up by `deploy/ldap/cluster.sh` like the one `make up` starts:
//! the platform's schema, `ou=users`, `ou=groups` and `ou=apps` under `dc=cloudron`, and the
//! ACLs app accounts are held to. As root, slapd runs as Debian's `openldap` user, in a
//! directory only that user can enter.

use std::{path::Path, sync::OnceLock};

use super::{TestkitError, Watched, accepts_tcp, deploy_script};

/// A running slapd on 127.0.0.1 with rootdn [`LdapServer::ADMIN_DN`]. Stopped when dropped or
/// when the test process exits.
pub struct LdapServer(Watched);

impl LdapServer {
    /// The directory's administrator.
    pub const ADMIN_DN: &str = "cn=admin,dc=cloudron";

    /// One server shared by all tests of this process, started on first use.
    pub fn shared() -> Result<&'static Self, TestkitError> {
        static SHARED: OnceLock<Result<LdapServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| e.0))
            .as_ref()
            .map_err(|e| TestkitError(e.clone()))
    }

    /// Starts a new server.
    pub fn start() -> Result<Self, TestkitError> {
        let script = deploy_script("ldap/cluster.sh");
        Watched::start("ldap", &script, &[], "TERM", accepts_tcp).map(Self)
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.0.port)
    }

    /// The administrator's password.
    pub fn admin_password(&self) -> &str {
        &self.0.password
    }

    /// The server's directory (data, slapd.conf, password file).
    pub fn dir(&self) -> &Path {
        &self.0.base
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.0.stop()
    }
}
