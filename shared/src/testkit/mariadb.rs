//! A private MariaDB (standing in for MySQL 8), set up by `deploy/mysql/cluster.sh` like the
//! one `make up` starts.

use std::sync::OnceLock;

use super::{TestkitError, Watched, accepts_tcp, deploy_script};

/// A running MariaDB on 127.0.0.1 with admin account `fleet_admin`. Stopped when dropped or
/// when the test process exits.
pub struct MariaDbServer(Watched);

impl MariaDbServer {
    /// Name of the admin account.
    pub const ADMIN: &str = "fleet_admin";

    /// One server shared by all tests of this process, started on first use.
    pub fn shared() -> Result<&'static Self, TestkitError> {
        static SHARED: OnceLock<Result<MariaDbServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| e.0))
            .as_ref()
            .map_err(|e| TestkitError(e.clone()))
    }

    /// Starts a new server.
    pub fn start() -> Result<Self, TestkitError> {
        let script = deploy_script("mysql/cluster.sh");
        // Durability is not what tests measure.
        let extra = ["--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0"];
        Watched::start("mariadb", &script, &extra, "TERM", accepts_tcp).map(Self)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// The server's directory: data, socket, configuration, the admin's init file.
    pub fn dir(&self) -> &std::path::Path {
        &self.0.base
    }

    /// The admin's password.
    pub fn admin_password(&self) -> &str {
        &self.0.password
    }

    /// Admin URL, e.g. for the service's admin connection.
    pub fn admin_url(&self) -> String {
        self.url(Self::ADMIN, &self.0.password, "")
    }

    /// URL of `database` (may be empty) as `user` with `password`.
    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "mysql://{user}:{password}@127.0.0.1:{}/{database}",
            self.0.port
        )
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.0.stop()
    }
}
