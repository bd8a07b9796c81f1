//! Real backends on loopback for integration tests and benchmarks (feature `testkit`).
//!
//! Each server is set up by the same script under `deploy/` that `make up` uses
//! (`<script> init DIR PASSWORD_FILE`, then `<script> run DIR PORT`), gets a private directory
//! and a free port, and runs under a watchdog shell that stops it when the test process exits
//! (even on a panic or `kill -9`) and then deletes its directory. nginx, which fronts apps in
//! the proxyAuth tests, is started the same way from a configuration the test gives. The mail
//! server (Postfix + Dovecot) takes a block of consecutive ports from its base port on. The
//! Docker Engine listens on a socket in its directory, not on a port.

pub mod bench;
pub mod conformance;
mod docker;
pub mod harness;
pub mod host;
mod ldap;
mod mail;
mod mariadb;
mod mongodb;
mod nginx;
mod postgres;
mod proxy;
mod script;
mod turn;

pub use docker::DockerEngine;
pub use ldap::LdapServer;
pub use mail::MailServer;
pub use mariadb::MariaDbServer;
pub use mongodb::MongoServer;
pub use nginx::NginxServer;
pub use postgres::PostgresServer;
pub use proxy::CuttableProxy;
pub use turn::{Allocation, Credentials, Transport, TurnServer};

use std::{
    fs,
    io::Read,
    net::TcpListener,
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of the test kit: a backend could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TestkitError(pub String);

impl TestkitError {
    fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, TestkitError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| TestkitError::new(format!("no free port: {e}")))
}

/// The first of `count` consecutive ports that were all free a moment ago on 127.0.0.1.
pub fn free_port_block(count: u16) -> Result<u16, TestkitError> {
    for _attempt in 0..100 {
        let first = free_port()?;
        let Some(last) = first.checked_add(count.saturating_sub(1)) else {
            continue;
        };
        if (first + 1..=last).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return Ok(first);
        }
    }
    Err(TestkitError::new(format!(
        "no {count} consecutive free ports"
    )))
}

/// Path of a script under `deploy/`.
fn deploy_script(relative: &str) -> String {
    format!("{}/../deploy/{relative}", env!("CARGO_MANIFEST_DIR"))
}

/// A server run by a `deploy/` script under a watchdog.
pub struct Watched {
    name: &'static str,
    base: PathBuf,
    port: u16,
    password: String,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl Watched {
    /// Initialises a server with `script init` and a fresh superuser password, then starts it
    /// with `script run` (plus `extra` arguments) until `ready(port)` holds, trying a few
    /// ports in case another process takes the free one first.
    fn start(
        name: &'static str,
        script: &str,
        extra: &[&str],
        stop_signal: &str,
        ready: impl Fn(u16) -> bool,
    ) -> Result<Self, TestkitError> {
        Self::start_on(name, script, extra, stop_signal, free_port, ready)
    }

    /// [`Watched::start`] on a port chosen by `pick_port` (a server that listens on more than
    /// one port from its base port on needs them all free).
    fn start_on(
        name: &'static str,
        script: &str,
        extra: &[&str],
        stop_signal: &str,
        pick_port: impl Fn() -> Result<u16, TestkitError>,
        ready: impl Fn(u16) -> bool,
    ) -> Result<Self, TestkitError> {
        Self::start_in(name, script, extra, stop_signal, pick_port, |_, port| {
            ready(port)
        })
    }

    /// [`Watched::start_on`] for a server that is ready by something in its directory (the
    /// Docker Engine's socket), not by its port: `ready(dir, port)`.
    fn start_in(
        name: &'static str,
        script: &str,
        extra: &[&str],
        stop_signal: &str,
        pick_port: impl Fn() -> Result<u16, TestkitError>,
        ready: impl Fn(&std::path::Path, u16) -> bool,
    ) -> Result<Self, TestkitError> {
        let password = format!("pw{}x{}", std::process::id(), free_port()?);
        let mut last_error = String::new();
        for _attempt in 0..3 {
            // A directory of its own per attempt: the watchdog of a failed one removes its
            // directory when the server exits.
            let base = tempfile::Builder::new()
                .prefix(&format!("fleet-{name}-"))
                .tempdir()
                .map_err(|e| TestkitError::new(format!("cannot create a temp dir: {e}")))?
                .keep();
            let password_file = base.join("superuser-password");
            fs::write(&password_file, &password).map_err(|e| {
                TestkitError::new(format!("cannot write {}: {e}", password_file.display()))
            })?;
            let mut init = Command::new(script);
            init.arg("init").arg(&base).arg(&password_file);
            if let Err(error) = run(init, &format!("{name} init")) {
                let _ = fs::remove_dir_all(&base);
                return Err(error);
            }
            let port = pick_port()?;
            let (watchdog, stdin) = spawn_watched(script, &base, port, extra, stop_signal)?;
            let mut server = Self {
                name,
                base,
                port,
                password: password.clone(),
                watchdog,
                stdin: Some(stdin),
            };
            match server.wait_ready(&ready) {
                Ok(()) => return Ok(server),
                Err(e) => last_error = e.0,
            }
        }
        Err(TestkitError::new(format!(
            "{name} did not start: {last_error}"
        )))
    }

    fn wait_ready(
        &mut self,
        ready: &impl Fn(&std::path::Path, u16) -> bool,
    ) -> Result<(), TestkitError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.watchdog.try_wait() {
                return Err(TestkitError::new(format!(
                    "{} exited ({status}): {}",
                    self.name,
                    self.log()
                )));
            }
            if ready(&self.base, self.port) {
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
        let _ = fs::File::open(self.base.join("server.log"))
            .and_then(|mut f| f.read_to_string(&mut text));
        text
    }

    /// Stops the server and waits until it is gone.
    fn stop(&mut self) -> Result<(), TestkitError> {
        drop(self.stdin.take());
        self.watchdog
            .wait()
            .map(|_| ())
            .map_err(|e| TestkitError::new(format!("cannot wait for {} to stop: {e}", self.name)))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Runs `script run base port extra...` under a watchdog shell that stops the server when our
/// end of its stdin closes, i.e. when this process exits however it exits: `stop_signal` (the
/// one the server shuts down fastest on), SIGKILL if it is still there 20 s later; then
/// removes `base`.
fn spawn_watched(
    script: &str,
    base: &std::path::Path,
    port: u16,
    extra: &[&str],
    stop_signal: &str,
) -> Result<(Child, ChildStdin), TestkitError> {
    let watchdog_script = r#"
        "$@" >"$BASE/server.log" 2>&1 &
        pid=$!
        exec 3<&0
        (
            read _ignored <&3
            kill -"$STOP_SIGNAL" "$pid" 2>/dev/null
            for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null
        ) &
        wait "$pid"
        status=$?
        rm -rf "$BASE"
        exit "$status"
    "#;
    let mut watchdog = Command::new("sh");
    watchdog
        .current_dir(base)
        .env("BASE", base)
        .env("STOP_SIGNAL", stop_signal)
        .arg("-c")
        .arg(watchdog_script)
        .arg("sh")
        .arg(script)
        .arg("run")
        .arg(base)
        .arg(port.to_string())
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = watchdog
        .spawn()
        .map_err(|e| TestkitError::new(format!("cannot start {script}: {e}")))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| TestkitError::new("no stdin for the watchdog"))?;
    Ok((child, stdin))
}

/// Runs `command` to completion, failing with its output.
fn run(mut command: Command, what: &str) -> Result<(), TestkitError> {
    let output = command
        .output()
        .map_err(|e| TestkitError::new(format!("cannot run {what}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(TestkitError::new(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn accepts_tcp(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::{cell::Cell, os::unix::fs::PermissionsExt};

    use super::*;

    #[test]
    fn a_taken_port_is_retried_on_another_in_a_fresh_directory() {
        // A backend script of the usual shape whose server is a listener on PORT; it fails on
        // the port named after it, as a server does whose port someone took.
        let scripts = tempfile::tempdir().unwrap();
        let script = scripts.path().join("cluster.sh");
        fs::write(
            &script,
            "#!/bin/sh\ncase \"$1\" in\ninit) touch \"$2/initialised\" ;;\n\
             run) [ \"$3\" = \"$4\" ] && exit 1\n\
             exec python3 -c 'import socket,sys,time\n\
             s=socket.socket(); s.bind((\"127.0.0.1\", int(sys.argv[1]))); s.listen(); time.sleep(600)' \"$3\" ;;\n\
             esac\n",
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let taken_port = free_port().unwrap();
        let taken = taken_port.to_string();
        let first = Cell::new(true);
        let pick = || {
            if first.replace(false) {
                Ok(taken_port)
            } else {
                free_port()
            }
        };
        let mut server = Watched::start_on(
            "retry",
            script.to_str().unwrap(),
            &[&taken],
            "TERM",
            pick,
            accepts_tcp,
        )
        .expect("the second attempt starts");
        assert_ne!(server.port, taken_port);
        assert!(server.base.join("initialised").exists(), "init ran again");
        server.stop().unwrap();
    }
}
