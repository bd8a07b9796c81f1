//! A private PostgreSQL cluster, set up by `deploy/postgresql/cluster.sh` like the one
//! `make up` starts: scram passwords over TCP, pgextwlist with the addon's whitelist.

use std::{process::Command, sync::OnceLock};

use super::{TestkitError, Watched, deploy_script};

/// A running PostgreSQL on 127.0.0.1 with superuser `postgres`. Stopped when dropped or when
/// the test process exits.
pub struct PostgresServer(Watched);

impl PostgresServer {
    /// One cluster shared by all tests of this process, started on first use.
    pub fn shared() -> Result<&'static Self, TestkitError> {
        static SHARED: OnceLock<Result<PostgresServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| e.0))
            .as_ref()
            .map_err(|e| TestkitError(e.clone()))
    }

    /// Starts a new cluster.
    pub fn start() -> Result<Self, TestkitError> {
        let script = deploy_script("postgresql/cluster.sh");
        // Durability is not what tests measure.
        let extra = [
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            // Every test runs its own services, each with its own pool of admin connections.
            "max_connections=1000",
        ];
        // SIGINT is PostgreSQL's fast shutdown.
        Watched::start("postgresql", &script, &extra, "INT", |port| {
            Command::new("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(Self)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// The cluster's directory: data, the Unix socket and pgextwlist's custom scripts.
    pub fn dir(&self) -> &std::path::Path {
        &self.0.base
    }

    /// The superuser's password.
    pub fn admin_password(&self) -> &str {
        &self.0.password
    }

    /// Superuser URL of database `postgres`, e.g. for the service's admin connection.
    pub fn admin_url(&self) -> String {
        self.superuser_url("postgres")
    }

    /// Superuser URL of `database`.
    pub fn superuser_url(&self, database: &str) -> String {
        self.url("postgres", &self.0.password, database)
    }

    /// URL of `database` as `user` with `password`.
    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}",
            self.0.port
        )
    }

    /// Stops the server (fast shutdown) and waits until it is gone.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.0.stop()
    }
}
