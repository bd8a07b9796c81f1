//! The harness: the service in-process over a private data directory and port range.

use std::{
    collections::HashMap,
    path::Path,
    sync::atomic::{AtomicU16, Ordering},
};

pub use fleet_shared::testkit::harness::{
    AddonTestClient as Client, eventually, expect_status, unique_app_id as app_id,
};
use fleet_shared::{
    proto::addon::{ProvisionRequest, RedisOptions, provision_request::Options},
    testkit::harness::TestSecrets,
};
use tonic::Status;

/// A port range of `size` no other test of this process uses, below Linux's ephemeral range
/// (where the test kit's free ports come from).
pub fn port_range(size: u16) -> String {
    static NEXT: AtomicU16 = AtomicU16::new(20000);
    let low = NEXT.fetch_add(size, Ordering::Relaxed);
    format!("{low}-{}", low + size - 1)
}

/// The service, served in-process on a free port.
pub use fleet_shared::testkit::harness::Served as Service;

/// Serves over `data_dir` with `ports` and `extra` settings. Every test's secrets share the
/// master key, so passwords survive a service restart.
pub async fn start_service(data_dir: &Path, ports: &str, extra: &[(&str, &str)]) -> Service {
    let data_dir = data_dir.display().to_string();
    let env: Vec<(String, String)> = [
        ("FLEET_REDIS_DATA_DIR", data_dir.as_str()),
        ("FLEET_REDIS_PORTS", ports),
        ("FLEET_REDIS_APPENDFSYNC", "always"),
        ("FLEET_REDIS_SUPERVISE_SECS", "1"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    Service::start::<fleet_redis::Service>(TestSecrets::new().unwrap(), env)
        .await
        .unwrap()
}

pub fn request(app_id: &str, no_password: bool) -> ProvisionRequest {
    rotated(app_id, no_password, 0)
}

/// A Provision at credential generation `generation`.
pub fn rotated(app_id: &str, no_password: bool, generation: u32) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app_id.to_owned(),
        app_domain: String::new(),
        credential_generation: generation,
        options: Some(Options::Redis(RedisOptions { no_password })),
    }
}

pub use fleet_shared::testkit::harness::provision;

pub async fn deprovision(client: &mut Client, app_id: &str) -> Result<(), Status> {
    fleet_shared::testkit::harness::deprovision(client, app_id, "redis").await
}

pub async fn list(client: &mut Client) -> Vec<String> {
    fleet_shared::testkit::harness::list(client).await.unwrap()
}

/// A connection the way an app makes it, from its URL.
pub fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(url)?.get_connection()
}

/// Runs a command on `url`.
pub fn cmd<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> redis::RedisResult<T> {
    let mut conn = connect(url)?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(&mut conn)
}

/// The pid of an app's instance: the one redis-server working in its directory.
pub fn instance_pid(data_dir: &Path, env: &HashMap<String, String>) -> Option<u32> {
    match instance_pids(data_dir, env).as_slice() {
        [pid] => Some(*pid),
        [] => None,
        more => panic!("more than one redis-server on one instance directory: {more:?}"),
    }
}

/// Every redis-server process working in the directory of `env`'s instance.
pub fn instance_pids(data_dir: &Path, env: &HashMap<String, String>) -> Vec<u32> {
    env_name(data_dir, env)
        .map(|name| servers_on(&data_dir.join(name)))
        .unwrap_or_default()
}

/// Every redis-server process (found by scanning /proc, not by any file the service keeps)
/// whose working directory is at or under `dir`, or whose command line names a path there.
pub fn servers_on(dir: &Path) -> Vec<u32> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if comm.trim_end() != "redis-server" {
            continue;
        }
        // A zombie has no working directory nor command line: it is not running.
        // The working directory of a process whose directory was deleted reads "<dir> (deleted)".
        let in_dir = std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| {
            let cwd = cwd.to_string_lossy().into_owned();
            Path::new(cwd.trim_end_matches(" (deleted)")).starts_with(&dir)
        });
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let names_dir = String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|arg| arg.starts_with(&*dir.to_string_lossy()));
        if in_dir || names_dir {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// A redis-server the service did not start, with no password, killed when dropped: the
/// attacker's server squatting a port.
pub struct ForeignServer {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl ForeignServer {
    /// Starts one on `port` and waits until it answers.
    pub async fn start(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args([
                "--appendonly",
                "no",
                "--dir",
                &dir.path().display().to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            _dir: dir,
            port,
        };
        let url = server.url();
        assert!(
            eventually(std::time::Duration::from_secs(10), || async {
                cmd::<String>(&url, &["PING"]).is_ok()
            })
            .await,
            "the foreign server did not start"
        );
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for ForeignServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The instance directory serving `env`'s port.
pub fn env_name(data_dir: &Path, env: &HashMap<String, String>) -> Option<String> {
    let port = &env["CLOUDRON_REDIS_PORT"];
    std::fs::read_dir(data_dir)
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| {
            let record = std::fs::read_to_string(entry.path().join("instance.json")).ok()?;
            record
                .contains(&format!("\"port\":{port}"))
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
}

pub fn kill(pid: u32, signal: &str) {
    std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap();
}

/// A private data directory whose instances (found in /proc) are killed when it is dropped, even if the test
/// fails half-way (instances outlive the service on purpose, so they would outlive the test).
pub struct DataDir(pub tempfile::TempDir);

impl DataDir {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        for pid in servers_on(self.0.path()) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}
