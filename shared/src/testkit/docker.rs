//! A private Docker Engine (Debian's dockerd 20.10), set up by `deploy/docker-proxy/engine.sh`
//! like the one `make up` starts: all its state in a directory of its own, its API on
//! `DIR/docker.sock` (root's only), no iptables, no default bridge, vfs storage, and the busybox
//! test image [`DockerEngine::IMAGE`] imported (no image can be pulled here).
//!
//! Engines of several test processes run side by side on one host: each takes the subnets of
//! its user-defined networks from a 10.X.0.0/16 of its own (`ENGINE_ADDRESS_POOL=auto`: dockerd
//! itself holds the lock on X while it runs). It runs under the kit's watchdog, so it stops
//! with the test process however that ends. At a stop its running containers are killed first
//! (dockerd would give each 10 s), then dockerd exits and `engine.sh clean` unmounts what it
//! left and deletes its networks' bridges (which dockerd keeps for its next start), then the
//! directory is removed.

use std::{
    fs,
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
    time::Duration,
};

use super::{
    TestkitError, Watched, deploy_script, free_port,
    script::{ScriptWrapper, shell_quote},
};

/// A running engine. Stopped (its containers with it) when dropped or when the test process
/// exits.
pub struct DockerEngine {
    server: Watched,
    /// The 10.X.0.0/16 its networks' subnets come from.
    address_pool: String,
}

impl DockerEngine {
    /// The busybox image every kit engine has (`engine.sh import-busybox`).
    pub const IMAGE: &str = "fleet-test/busybox:latest";

    /// Whether an engine can run here: root, dockerd, a docker client and busybox-static's
    /// `/bin/busybox`. When not, says why on stderr, for the test that then checks nothing.
    pub fn runnable() -> bool {
        let root = super::host::running_as_root();
        let missing: Vec<&str> = [
            ("dockerd", on_path("dockerd")),
            ("docker", on_path("docker")),
            ("/bin/busybox", Path::new("/bin/busybox").exists()),
        ]
        .into_iter()
        .filter(|(_, present)| !present)
        .map(|(tool, _)| tool)
        .collect();
        if !root {
            eprintln!("SKIPPED: the Docker Engine backend needs root (dockerd runs as root)");
        } else if !missing.is_empty() {
            eprintln!(
                "SKIPPED: the Docker Engine backend needs {} (deploy/install-deps.sh installs \
                 docker.io and busybox-static)",
                missing.join(", ")
            );
        }
        root && missing.is_empty()
    }

    /// One engine shared by all tests of this process, started on first use.
    pub fn shared() -> Result<&'static Self, TestkitError> {
        static SHARED: OnceLock<Result<DockerEngine, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| e.0))
            .as_ref()
            .map_err(|e| TestkitError(e.clone()))
    }

    /// Starts a new engine in a directory of its own, waits until it answers and imports
    /// [`Self::IMAGE`].
    pub fn start() -> Result<Self, TestkitError> {
        let engine = deploy_script("docker-proxy/engine.sh");
        let wrapper = wrapper(&engine)?;
        // The kit's watchdog gives a server a port; an engine listens on its socket only.
        let server = Watched::start_in(
            "docker",
            wrapper.script(),
            &[],
            "TERM",
            free_port,
            |dir, _port| pings(&dir.join("docker.sock")),
        )?;
        drop(wrapper);
        let address_pool = fs::read_to_string(server.base.join("address-pool"))
            .map(|pool| pool.trim().to_owned())
            .map_err(|e| TestkitError::new(format!("the engine recorded no address pool: {e}")))?;
        let engine_started = Self {
            server,
            address_pool,
        };
        let mut import = Command::new(&engine);
        import
            .arg("import-busybox")
            .arg(engine_started.dir())
            .arg(Self::IMAGE)
            .env("ENGINE_CLIENT_CONFIG", engine_started.client_config());
        super::run(import, "engine.sh import-busybox")
            .map_err(|e| TestkitError::new(format!("{}\n{}", e.0, engine_started.log())))?;
        Ok(engine_started)
    }

    /// The engine's API socket (root:root, 0660).
    pub fn socket(&self) -> PathBuf {
        self.server.base.join("docker.sock")
    }

    /// The socket as a `DOCKER_HOST` value: `unix:///.../docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The engine's directory (data root `root/`, exec root `exec/`, `server.log`).
    pub fn dir(&self) -> &Path {
        &self.server.base
    }

    /// The busybox image the engine has ([`Self::IMAGE`]).
    pub fn image(&self) -> &'static str {
        Self::IMAGE
    }

    /// The 10.X.0.0/16 the subnets of its user-defined networks come from.
    pub fn address_pool(&self) -> &str {
        &self.address_pool
    }

    /// A command running `program` (a docker client) against this engine: `DOCKER_HOST` set,
    /// and a client configuration of its own (`DOCKER_CONFIG`), not the user's.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.client_config())
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        command
    }

    /// Runs the `docker` CLI (the first on `PATH`) with `args` against this engine and returns
    /// what it did, whether it succeeded or not.
    pub fn docker(&self, args: &[&str]) -> Result<Output, TestkitError> {
        self.command("docker")
            .args(args)
            .output()
            .map_err(|e| TestkitError::new(format!("cannot run docker: {e}")))
    }

    /// What dockerd logged so far, for a failing test to show.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Stops the engine (killing its containers) and waits until it is gone, with nothing
    /// of it left mounted and its directory removed.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.server.stop()?;
        let dir = self.server.base.clone();
        if dir.exists() {
            // The wrapper cleans up after dockerd; this is for a dockerd that was killed
            // before it could (the watchdog's SIGKILL).
            let mut clean = Command::new(deploy_script("docker-proxy/engine.sh"));
            clean.arg("clean").arg(&dir);
            super::run(clean, "engine.sh clean")?;
            fs::remove_dir_all(&dir)
                .map_err(|e| TestkitError::new(format!("cannot remove {}: {e}", dir.display())))?;
        }
        Ok(())
    }

    fn client_config(&self) -> PathBuf {
        self.server.base.join("client")
    }
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Whether `program` is an executable on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(program)).is_ok_and(|meta| {
                meta.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0
            })
        })
    })
}

/// Whether the engine on `socket` answers its API's `GET /_ping` with `OK`.
fn pings(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    stream.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.")
        && reply.contains(" 200 ")
        && reply.ends_with("OK")
}

/// The script the watchdog runs: `init` has nothing to do (dockerd makes its state on first
/// start); `run DIR PORT` starts `engine.sh run DIR` with an address pool of its own and, when
/// told to stop, kills the running containers (dockerd would give each 10 s, whatever
/// `--shutdown-timeout` says), stops dockerd and cleans up after it before the watchdog
/// removes DIR.
fn wrapper(engine: &str) -> Result<ScriptWrapper, TestkitError> {
    let settings = [("ENGINE_ADDRESS_POOL".to_owned(), "auto".to_owned())];
    let mut wrapper = ScriptWrapper::new("docker", &settings)?;
    let engine = shell_quote(engine);
    wrapper.write(&format!(
        r#"case "$1" in
init) exit 0 ;;
run)
    dir=$2
    export DOCKER_CONFIG="$dir/client"
    {engine} run "$dir" &
    pid=$!
    stop() {{
        docker -H "unix://$dir/docker.sock" ps -q 2>/dev/null \
            | xargs -r docker -H "unix://$dir/docker.sock" kill >/dev/null 2>&1 || true
        kill -TERM "$pid" 2>/dev/null || true
    }}
    trap stop TERM INT
    status=0
    wait "$pid" || status=$?
    # A trapped signal interrupts wait: wait again until dockerd is gone.
    while kill -0 "$pid" 2>/dev/null; do status=0; wait "$pid" || status=$?; done
    {engine} clean "$dir" || status=1
    exit "$status"
    ;;
*) exit 2 ;;
esac
"#
    ))?;
    Ok(wrapper)
}
