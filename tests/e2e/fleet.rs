//! The fleet under test: `deploy/fleet-up.sh`, the script behind `make up`, run in a process
//! group of its own on ports picked here (free a moment before) and a state directory of its own
//! (a tempdir), with the debug binaries `cargo test` built (FLEET_UP_BIN_DIR). Stopped the way a
//! developer stops `make up`: a signal to the whole process group; then nothing may be left.

use std::{
    collections::BTreeSet,
    fs,
    net::{Ipv4Addr, TcpListener, UdpSocket},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::{
    grpcurl::Grpcurl,
    mask::{ensure, fail, remember},
};

/// The services fleet-up.sh starts, in the order of their gRPC ports here.
pub const SERVICES: [&str; 10] = [
    "coordinator",
    "mysql",
    "postgresql",
    "mongodb",
    "redis",
    "ldap",
    "oidc",
    "mail",
    "turn",
    "docker-proxy",
];

/// How long a first start may take (install-deps.sh, initdb, mariadb-install-db, SecantusDB's
/// admin, dockerd and the busybox import: about a minute here).
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the fleet may take to stop after the signal (services drain, dockerd stops).
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `cargo build --bins` may take when the binaries are missing.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

/// Every port the fleet uses.
#[derive(Debug, Clone)]
pub struct Ports {
    /// gRPC ports, in the order of [`SERVICES`].
    pub grpc: u16,
    /// Metrics: gRPC port + `metrics_offset`.
    pub metrics_offset: i32,
    pub pg: u16,
    pub mariadb: u16,
    pub mongo: u16,
    pub slapd: u16,
    pub oidc_http: u16,
    /// Postfix + Dovecot take 8 from here.
    pub mail_server: u16,
    pub mail_milter: u16,
    /// coturn: this one and the next, UDP and TCP.
    pub turn_server: u16,
    pub turn_relays: (u16, u16),
    pub redis_instances: (u16, u16),
    pub docker_endpoints: (u16, u16),
}

impl Ports {
    /// The gRPC port of `service` (one of [`SERVICES`]).
    pub fn of(&self, service: &str) -> u16 {
        let index = SERVICES
            .iter()
            .position(|name| *name == service)
            .unwrap_or_else(|| fail(&format!("no service {service}")));
        self.grpc + u16::try_from(index).unwrap_or_default()
    }

    fn pick() -> Self {
        let mut picker = Picker::default();
        let grpc = picker.block(10, false);
        let metrics = picker.block(10, false);
        let range = |picker: &mut Picker, count: u16, udp: bool| {
            let first = picker.block(count, udp);
            (first, first + count - 1)
        };
        Self {
            grpc,
            metrics_offset: i32::from(metrics) - i32::from(grpc),
            pg: picker.block(1, false),
            mariadb: picker.block(1, false),
            mongo: picker.block(1, false),
            slapd: picker.block(1, false),
            oidc_http: picker.block(1, false),
            mail_server: picker.block(8, false),
            mail_milter: picker.block(1, false),
            turn_server: picker.block(2, true),
            turn_relays: range(&mut picker, 20, true),
            redis_instances: range(&mut picker, 10, false),
            docker_endpoints: range(&mut picker, 10, false),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = SERVICES
            .iter()
            .map(|service| {
                let name = match *service {
                    "docker-proxy" => "DOCKER_PROXY".to_owned(),
                    other => other.to_uppercase(),
                };
                (
                    format!("FLEET_UP_{name}_PORT"),
                    self.of(service).to_string(),
                )
            })
            .collect();
        let range = |(first, last): (u16, u16)| format!("{first}-{last}");
        env.extend(
            [
                ("FLEET_UP_METRICS_OFFSET", self.metrics_offset.to_string()),
                ("FLEET_UP_PG_PORT", self.pg.to_string()),
                ("FLEET_UP_MARIADB_PORT", self.mariadb.to_string()),
                ("FLEET_UP_MONGO_PORT", self.mongo.to_string()),
                ("FLEET_UP_SLAPD_PORT", self.slapd.to_string()),
                ("FLEET_UP_OIDC_HTTP_PORT", self.oidc_http.to_string()),
                ("FLEET_UP_MAIL_SERVER_PORT", self.mail_server.to_string()),
                ("FLEET_UP_MAIL_MILTER_PORT", self.mail_milter.to_string()),
                ("FLEET_UP_TURN_SERVER_PORT", self.turn_server.to_string()),
                ("FLEET_UP_TURN_RELAY_PORTS", range(self.turn_relays)),
                ("FLEET_UP_REDIS_PORTS", range(self.redis_instances)),
                (
                    "FLEET_UP_DOCKER_ENDPOINT_PORTS",
                    range(self.docker_endpoints),
                ),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        env
    }
}

/// Blocks of ports free a moment ago on 127.0.0.1 (TCP, and UDP where asked), none picked twice.
#[derive(Default)]
struct Picker {
    taken: BTreeSet<u16>,
}

impl Picker {
    fn block(&mut self, count: u16, udp: bool) -> u16 {
        for _attempt in 0..200 {
            let Ok(first) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|listener| listener.local_addr())
                .map(|addr| addr.port())
            else {
                continue;
            };
            let Some(last) = first.checked_add(count - 1) else {
                continue;
            };
            let free = (first..=last).all(|port| {
                !self.taken.contains(&port)
                    && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
                    && (!udp || UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
            });
            if free {
                self.taken.extend(first..=last);
                return first;
            }
        }
        fail(&format!("no {count} consecutive free ports on 127.0.0.1"))
    }
}

/// A running fleet.
pub struct Fleet {
    pub ports: Ports,
    /// The state directory (FLEET_UP_STATE_DIR).
    state: Option<TempDir>,
    state_path: PathBuf,
    log: PathBuf,
    child: Child,
    /// fleet-up.sh's pid, which is also its process group's id.
    pgid: u32,
    stopped: bool,
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| fail("tests/ has no parent"))
}

impl Fleet {
    /// Starts fleet-up.sh with the binaries in `bin_dir`, logging to `log`, and waits until the
    /// coordinator's health is SERVING.
    pub fn start(bin_dir: &Path, log: &Path) -> Self {
        let state = tempfile::Builder::new()
            .prefix("fleet-e2e-")
            .tempdir()
            .unwrap_or_else(|e| fail(&format!("no tempdir: {e}")));
        let state_path = state.path().to_path_buf();
        let ports = Ports::pick();
        let log_file = fs::File::create(log)
            .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", log.display())));
        let log_err = log_file
            .try_clone()
            .unwrap_or_else(|e| fail(&format!("cannot clone the log's handle: {e}")));
        let child = Command::new("bash")
            .arg(repo_root().join("deploy/fleet-up.sh"))
            .envs(ports.env())
            .env("FLEET_UP_STATE_DIR", &state_path)
            .env("FLEET_UP_BIN_DIR", bin_dir)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            // Its own group, as `make up` in a terminal: the stop signal goes to all of it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start deploy/fleet-up.sh: {e}")));
        let pgid = child.id();
        let mut fleet = Self {
            ports,
            state: Some(state),
            state_path,
            log: log.to_path_buf(),
            child,
            pgid,
            stopped: false,
        };
        fleet.wait_serving();
        fleet
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_path
    }

    /// The API token fleet-up.sh created (remembered as a secret).
    pub fn token(&self) -> String {
        let token = fs::read_to_string(self.state_path.join("token"))
            .unwrap_or_else(|e| fail(&format!("cannot read the fleet's token: {e}")))
            .trim()
            .to_owned();
        remember(&token);
        token
    }

    /// The last lines of fleet-up.sh's output.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn wait_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let port = self.ports.of("coordinator");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped = true;
                fail(&format!(
                    "deploy/fleet-up.sh exited during start ({status}):\n{}",
                    self.log_tail()
                ));
            }
            // Only once fleet-up.sh started the coordinator: until then the port may be anyone's.
            let started = fs::read_to_string(&self.log)
                .unwrap_or_default()
                .contains("fleet-up: the fleet is up");
            if started && Grpcurl::health(port).as_deref() == Ok("SERVING") {
                return;
            }
            ensure(Instant::now() < deadline, || {
                format!(
                    "the coordinator was not SERVING after {START_TIMEOUT:?}:\n{}",
                    self.log_tail()
                )
            });
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the fleet with SIGTERM to fleet-up.sh's whole process group (what Ctrl-C on `make
    /// up` does, with TERM), checks that fleet-up.sh exits 0 within [`STOP_TIMEOUT`] and that no
    /// process is left (none in the group, none running from the state directory), then cleans
    /// what dockerd leaves by design (`engine.sh clean`) and removes the state directory.
    /// Returns how long the stop took.
    pub fn stop(mut self) -> Duration {
        // The scan below must see the fleet while it runs, or "nothing left" would prove nothing.
        let running = leftovers(self.pgid, &self.state_path);
        ensure(
            running
                .iter()
                .any(|process| process.contains("fleet-coordinator")),
            || format!("the process scan does not see the running fleet: {running:?}"),
        );
        let start = Instant::now();
        signal_group(self.pgid, "TERM");
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            ensure(start.elapsed() < STOP_TIMEOUT, || {
                format!(
                    "fleet-up.sh still runs {STOP_TIMEOUT:?} after SIGTERM:\n{}",
                    self.log_tail()
                )
            });
            std::thread::sleep(Duration::from_millis(100));
        };
        self.stopped = true;
        ensure(status.success(), || {
            format!(
                "fleet-up.sh exited with {status} after SIGTERM:\n{}",
                self.log_tail()
            )
        });
        // Processes that leave the group (daemons, setsid) are found by their state directory.
        let left = loop {
            let left = leftovers(self.pgid, &self.state_path);
            if left.is_empty() || start.elapsed() > STOP_TIMEOUT {
                break left;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        ensure(left.is_empty(), || {
            format!(
                "processes left behind after the fleet stopped:\n{}",
                left.join("\n")
            )
        });
        let took = start.elapsed();
        eprintln!(
            "e2e: {} processes ran in the fleet's group or state directory; none is left",
            running.len()
        );
        self.clean();
        took
    }

    fn clean(&mut self) {
        let docker = self.state_path.join("docker");
        if docker.exists() {
            let status = Command::new(repo_root().join("deploy/docker-proxy/engine.sh"))
                .arg("clean")
                .arg(&docker)
                .status();
            ensure(matches!(status, Ok(s) if s.success()), || {
                format!("engine.sh clean {} failed: {status:?}", docker.display())
            });
        }
        if let Some(state) = self.state.take() {
            let path = state.path().to_path_buf();
            if let Err(e) = state.close() {
                fail(&format!("cannot remove {}: {e}", path.display()));
            }
            ensure(!path.exists(), || {
                format!("{} is still there", path.display())
            });
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // A failed test: stop everything it started, as quickly as possible.
        if !self.stopped {
            signal_group(self.pgid, "TERM");
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(100));
            }
            signal_group(self.pgid, "KILL");
            let _ = self.child.wait();
        }
        if self.state.is_some() && !std::thread::panicking() {
            self.clean();
        } else if self.state.is_some() {
            let docker = self.state_path.join("docker");
            let _ = Command::new(repo_root().join("deploy/docker-proxy/engine.sh"))
                .arg("clean")
                .arg(&docker)
                .status();
        }
    }
}

fn signal_group(pgid: u32, signal: &str) {
    // procps' kill: a negative pid is the process group (no unsafe libc call needed).
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(Stdio::null())
        .status();
}

/// Processes still in group `pgid`, or whose command line or working directory is under
/// `state`: "pid command".
fn leftovers(pgid: u32, state: &Path) -> Vec<String> {
    let state = state.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut left = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        let dir = entry.path();
        let Ok(stat) = fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let group = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|field| field.parse::<u32>().ok());
        let cmdline = fs::read(dir.join("cmdline"))
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
            .unwrap_or_default();
        let cwd = fs::read_link(dir.join("cwd"))
            .map(|path| path.to_string_lossy().into_owned())
            .unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if pid != std::process::id()
            && !zombie
            && (group == Some(pgid) || cmdline.contains(&state) || cwd.starts_with(&state))
        {
            left.push(format!("{pid} {cmdline} (cwd {cwd})"));
        }
    }
    left
}

/// The debug binaries of the services: the directory `cargo test` built them into (found from
/// this test's own path, target/debug/deps/e2e-*), built there with `cargo build --bins` first
/// when one is missing (the test run alone). Cargo releases its build lock before it runs test
/// binaries, so that nested build does not deadlock; it waits while someone else builds.
pub fn service_binaries() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("no current_exe: {e}")));
    let Some(bin_dir) = exe.parent().and_then(Path::parent).map(Path::to_path_buf) else {
        fail(&format!(
            "{} is not under target/<profile>/deps",
            exe.display()
        ))
    };
    let missing = || -> Vec<String> {
        SERVICES
            .iter()
            .map(|service| format!("fleet-{service}"))
            .filter(|binary| !bin_dir.join(binary).is_file())
            .collect()
    };
    if missing().is_empty() {
        return bin_dir;
    }
    let Some(target_dir) = bin_dir.parent() else {
        fail(&format!("{} has no parent", bin_dir.display()))
    };
    eprintln!(
        "e2e: {} missing in {}: running cargo build --bins",
        missing().join(", "),
        bin_dir.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo)
        .args(["build", "--bins", "--manifest-path"])
        .arg(repo_root().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot run cargo build --bins: {e}")));
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = build.try_wait() {
            break status;
        }
        if start.elapsed() > BUILD_TIMEOUT {
            let _ = build.kill();
            let _ = build.wait();
            fail(&format!(
                "cargo build --bins did not finish in {BUILD_TIMEOUT:?} (waiting for cargo's \
                 lock?): run `cargo build --bins` first, then this test"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    ensure(status.success() && missing().is_empty(), || {
        format!(
            "cargo build --bins ({status}) left {} missing in {}: run `cargo build --bins` first",
            missing().join(", "),
            bin_dir.display()
        )
    });
    bin_dir
}
