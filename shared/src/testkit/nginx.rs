//! Debian's nginx (`/usr/sbin/nginx`, installed by `deploy/install-deps.sh`) on loopback, with
//! the test's own server blocks: a reverse proxy in front of a test app, as operators run one
//! (e.g. `deploy/oidc/proxy-auth.nginx.conf`).
//!
//! The master runs in the foreground with a prefix, configuration, logs and temp paths in a
//! private directory, under a watchdog shell that stops it when the test process exits (even on
//! a panic or `kill -9`) and then deletes that directory. Ports for `listen`:
//! [`free_port`](super::free_port).

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use super::{START_TIMEOUT, TestkitError, free_port};

/// The nginx binary of Debian's `nginx` package.
const NGINX: &str = "/usr/sbin/nginx";

/// An nginx serving the given server blocks until dropped.
pub struct NginxServer {
    base: PathBuf,
    /// Where a private server block answers `GET /_testkit_ready` with 204.
    ready_port: u16,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl NginxServer {
    /// Starts nginx with `server_blocks` (one or more `server { ... }`, placed in its `http`
    /// block) and waits until it answers. Every port they listen on is bound by then: nginx
    /// binds all its sockets at start, or exits.
    pub fn start(server_blocks: &str) -> Result<Self, TestkitError> {
        if !Path::new(NGINX).exists() {
            return Err(TestkitError::new(format!(
                "{NGINX} is missing: run deploy/install-deps.sh (Debian package nginx)"
            )));
        }
        let mut last_error = String::new();
        // The private port may be taken by another process between choosing and binding it.
        for _attempt in 0..3 {
            let base = tempfile::Builder::new()
                .prefix("fleet-nginx-")
                .tempdir()
                .map_err(|e| TestkitError::new(format!("cannot create a temp dir: {e}")))?
                .keep();
            let ready_port = free_port()?;
            let config = base.join("nginx.conf");
            if let Err(e) = fs::write(&config, config_text(&base, ready_port, server_blocks)) {
                let _ = fs::remove_dir_all(&base);
                return Err(TestkitError::new(format!(
                    "cannot write {}: {e}",
                    config.display()
                )));
            }
            let (watchdog, stdin) = spawn_watched(&base, &config)?;
            let mut server = Self {
                base,
                ready_port,
                watchdog,
                stdin: Some(stdin),
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = e.0,
            }
        }
        Err(TestkitError::new(format!(
            "nginx did not start: {last_error}"
        )))
    }

    /// nginx's error log so far (startup messages included), for a failing test to show.
    pub fn error_log(&self) -> String {
        read_to_string(&self.base.join("error.log"))
    }

    fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let exited = self.base.join("exit-status");
            if exited.exists() {
                return Err(TestkitError::new(format!(
                    "nginx exited ({}): {}{}",
                    read_to_string(&exited).trim(),
                    read_to_string(&self.base.join("server.log")),
                    self.error_log()
                )));
            }
            if answers(self.ready_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(TestkitError::new(format!(
            "nginx not ready after {START_TIMEOUT:?}: {}",
            self.error_log()
        )))
    }
}

impl Drop for NginxServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// The whole configuration: everything nginx writes stays under `base`.
fn config_text(base: &Path, ready_port: u16, server_blocks: &str) -> String {
    let base = base.display();
    // As root, the master would run its workers as `nobody:nobody`, a group Debian lacks; they
    // only proxy on loopback, so they keep root. (Elsewhere `user` would only draw a warning.)
    let user = if is_root() { "user root root;\n" } else { "" };
    format!(
        "{user}worker_processes 1;
error_log {base}/error.log info;
events {{
    worker_connections 512;
}}
http {{
    access_log {base}/access.log;
    client_body_temp_path {base}/client_body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    server {{
        listen 127.0.0.1:{ready_port};
        location = /_testkit_ready {{
            return 204;
        }}
    }}
{server_blocks}
}}
"
    )
}

/// Whether this process runs as root: `/proc/self` belongs to the effective user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Runs nginx in the foreground under a watchdog shell. If nginx exits by itself, the shell
/// writes its status to `base/exit-status`. When our end of the shell's stdin closes (on drop,
/// or when this process exits however it exits) it stops nginx (SIGTERM: fast shutdown,
/// workers included; SIGKILL if it is still there 20 s later) and removes `base`.
fn spawn_watched(base: &Path, config: &Path) -> Result<(Child, ChildStdin), TestkitError> {
    let watchdog_script = r#"
        "$@" >"$BASE/server.log" 2>&1 &
        pid=$!
        exec 3<&0
        (
            read _ignored <&3
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null
        ) &
        stopper=$!
        wait "$pid"
        echo "$?" >"$BASE/exit-status"
        kill "$stopper" 2>/dev/null
        read _ignored <&3
        rm -rf "$BASE"
    "#;
    let globals = format!("daemon off; pid {}/nginx.pid;", base.display());
    let mut watchdog = Command::new("sh");
    watchdog
        .current_dir(base)
        .env("BASE", base)
        .arg("-c")
        .arg(watchdog_script)
        .arg("sh")
        .arg(NGINX)
        .arg("-p")
        .arg(base)
        .arg("-c")
        .arg(config)
        .arg("-e")
        .arg(base.join("error.log"))
        .arg("-g")
        .arg(globals)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = watchdog.spawn().map_err(|e| {
        let _ = fs::remove_dir_all(base);
        TestkitError::new(format!("cannot start nginx: {e}"))
    })?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| TestkitError::new("no stdin for the watchdog"))?;
    Ok((child, stdin))
}

/// Whether nginx answers `GET /_testkit_ready` on 127.0.0.1:`port` with 204.
fn answers(port: u16) -> bool {
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) =
        TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout)
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = "GET /_testkit_ready HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 204")
}

fn read_to_string(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}
