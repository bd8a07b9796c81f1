//! A private PostgreSQL cluster, set up by the same script as the one `make up` starts
//! (`deploy/postgresql/cluster.sh`): scram passwords over TCP, pgextwlist with the addon's
//! extension whitelist.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use super::{TestkitError, free_port, run};

/// The script that configures clusters for `make up` too.
const CLUSTER_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/postgresql/cluster.sh"
);

/// How long a cluster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL on 127.0.0.1 with superuser `postgres`. Stopped when dropped or when
/// the test process exits.
pub struct PostgresServer {
    port: u16,
    password: String,
    base: PathBuf,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl PostgresServer {
    /// One cluster shared by all tests of this process, started on first use.
    pub fn shared() -> Result<&'static Self, TestkitError> {
        static SHARED: OnceLock<Result<PostgresServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| e.0))
            .as_ref()
            .map_err(|e| TestkitError(e.clone()))
    }

    /// Starts a new cluster, configured by `deploy/postgresql/cluster.sh`.
    pub fn start() -> Result<Self, TestkitError> {
        let base = tempfile::Builder::new()
            .prefix("fleet-pg-")
            .tempdir()
            .map_err(|e| TestkitError::new(format!("cannot create a temp dir: {e}")))?
            .keep();
        let password = format!("pw{}{}", std::process::id(), free_port()?);
        let pwfile = base.join("pwfile");
        fs::write(&pwfile, &password)
            .map_err(|e| TestkitError::new(format!("cannot write {}: {e}", pwfile.display())))?;
        let mut init = Command::new(CLUSTER_SCRIPT);
        init.arg("init").arg(&base).arg(&pwfile);
        run(init, "cluster.sh init")?;

        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port()?;
            match Self::spawn(&base, port) {
                Ok((watchdog, stdin)) => {
                    let mut server = Self {
                        port,
                        password: password.clone(),
                        base: base.clone(),
                        watchdog,
                        stdin: Some(stdin),
                    };
                    match server.wait_ready() {
                        Ok(()) => return Ok(server),
                        Err(e) => last_error = e.0,
                    }
                }
                Err(e) => last_error = e.0,
            }
        }
        Err(TestkitError::new(format!(
            "PostgreSQL did not start: {last_error}"
        )))
    }

    fn spawn(base: &Path, port: u16) -> Result<(Child, ChildStdin), TestkitError> {
        // The watchdog shell stops the server when our end of its stdin closes, i.e. when this
        // process exits however it exits, then removes the cluster.
        let script = r#"
            "$@" >"$BASE/postgres.log" 2>&1 &
            pid=$!
            exec 3<&0
            ( read _ignored <&3; kill -INT "$pid" 2>/dev/null ) &
            wait "$pid"
            status=$?
            rm -rf "$BASE"
            exit "$status"
        "#;
        let mut watchdog = Command::new("sh");
        watchdog
            .current_dir(base)
            .env("BASE", base)
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(CLUSTER_SCRIPT)
            .arg("run")
            .arg(base)
            .arg(port.to_string())
            // Durability is not what tests measure.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "synchronous_commit=off", "-c", "max_connections=300"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = watchdog
            .spawn()
            .map_err(|e| TestkitError::new(format!("cannot start PostgreSQL: {e}")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| TestkitError::new("no stdin for the PostgreSQL watchdog"))?;
        Ok((child, stdin))
    }

    fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.watchdog.try_wait() {
                return Err(TestkitError::new(format!(
                    "postgres exited ({status}): {}",
                    self.log()
                )));
            }
            let ready = Command::new("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(TestkitError::new(format!(
            "not ready after {START_TIMEOUT:?}: {}",
            self.log()
        )))
    }

    fn log(&self) -> String {
        let mut text = String::new();
        let _ = fs::File::open(self.base.join("postgres.log"))
            .and_then(|mut f| f.read_to_string(&mut text));
        text
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Superuser URL of database `postgres`, e.g. for the service's admin connection.
    pub fn admin_url(&self) -> String {
        self.superuser_url("postgres")
    }

    /// Superuser URL of `database`.
    pub fn superuser_url(&self, database: &str) -> String {
        self.url("postgres", &self.password, database)
    }

    /// URL of `database` as `user` with `password`.
    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Stops the server (fast shutdown) and waits until it is gone.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        drop(self.stdin.take());
        self.watchdog
            .wait()
            .map(|_| ())
            .map_err(|e| TestkitError::new(format!("cannot wait for PostgreSQL to stop: {e}")))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
