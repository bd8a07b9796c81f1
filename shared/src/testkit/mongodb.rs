//! A MongoDB-wire server for tests: SecantusDB set up by `deploy/mongodb/cluster.sh` (as
//! `make up` does), or a real mongod when `MONGODB_TEST_ADMIN_URL` names one
//! (`mongodb://root:PASSWORD@HOST:PORT/?authSource=admin`).
//!
//! SecantusDB is a stand-in: it does not enforce all of its own access control, which the
//! mongodb suite's attack tests report as known gaps. As root, it runs as the system user
//! `fleet-mongodb`, in a directory only that user can enter.

use std::{path::Path, sync::OnceLock};

use super::{TestkitError, Watched, accepts_tcp, deploy_script};

/// The variable naming a real mongod to test against instead of SecantusDB.
pub const EXTERNAL_URL_VARIABLE: &str = "MONGODB_TEST_ADMIN_URL";

/// A running server with an admin user `root`.
pub enum MongoServer {
    /// SecantusDB started here; stopped when dropped or when the test process exits.
    Local(Watched),
    /// A server someone else runs.
    External(String),
}

impl MongoServer {
    /// One server shared by all tests of this process.
    pub fn shared() -> Result<&'static Self, TestkitError> {
        static SHARED: OnceLock<Result<MongoServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| match std::env::var(EXTERNAL_URL_VARIABLE) {
                Ok(url) if !url.is_empty() => Ok(Self::External(url)),
                _ => Self::start().map_err(|e| e.0),
            })
            .as_ref()
            .map_err(|e| TestkitError(e.clone()))
    }

    /// Starts a new SecantusDB.
    pub fn start() -> Result<Self, TestkitError> {
        let script = deploy_script("mongodb/cluster.sh");
        Watched::start("mongodb", &script, &[], "TERM", accepts_tcp).map(Self::Local)
    }

    /// Whether this is SecantusDB (some MongoDB features are missing there).
    pub fn is_secantus(&self) -> bool {
        matches!(self, Self::Local(_))
    }

    /// The admin URL.
    pub fn admin_url(&self) -> String {
        match self {
            Self::Local(server) => format!(
                "mongodb://root:{}@127.0.0.1:{}/?authSource=admin",
                server.password, server.port
            ),
            Self::External(url) => url.clone(),
        }
    }

    /// The directory of a local server (data, password file, logs); `None` for an external one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Self::Local(server) => Some(&server.base),
            Self::External(_) => None,
        }
    }

    /// The TCP port of a local server; `None` for an external one.
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Local(server) => Some(server.port),
            Self::External(_) => None,
        }
    }

    /// Stops a local server; an external one is left alone.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        match self {
            Self::Local(server) => server.stop(),
            Self::External(_) => Ok(()),
        }
    }
}
