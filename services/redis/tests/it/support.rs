//! The harness: the service in-process over a private data directory and port range.

use std::{
    collections::HashMap,
    path::Path,
    sync::atomic::{AtomicU16, Ordering},
};

use fleet_redis::config::Config;
pub use fleet_shared::testkit::harness::{
    AddonTestClient as Client, eventually, expect_status, unique_app_id as app_id,
};
use fleet_shared::{
    config::EnvReader,
    proto::addon::{ProvisionRequest, RedisOptions, provision_request::Options},
    server::GrpcServer,
    testkit::harness::{InProcess, TestSecrets, addon_client},
};
use tonic::Status;

/// A port range of `size` no other test of this process uses, below Linux's ephemeral range
/// (where the test kit's free ports come from).
pub fn port_range(size: u16) -> String {
    static NEXT: AtomicU16 = AtomicU16::new(20000);
    let low = NEXT.fetch_add(size, Ordering::Relaxed);
    format!("{low}-{}", low + size - 1)
}

/// The service, served in-process.
pub struct Service {
    server: InProcess,
    pub secrets: TestSecrets,
}

impl Service {
    /// Serves over `data_dir` with `ports` and `extra` settings.
    pub async fn start(data_dir: &Path, ports: &str, extra: &[(&str, &str)]) -> Self {
        let secrets = TestSecrets::new().unwrap();
        // Every test's secrets share the master key, so passwords survive a service restart.
        let mut env = secrets.common_env();
        let data_dir = data_dir.display().to_string();
        for (key, value) in [
            ("FLEET_REDIS_DATA_DIR", data_dir.as_str()),
            ("FLEET_REDIS_PORTS", ports),
            ("FLEET_REDIS_APPENDFSYNC", "always"),
            ("FLEET_REDIS_SUPERVISE_SECS", "1"),
        ]
        .iter()
        .chain(extra)
        {
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        let config = Config::from_env(EnvReader::from_vars("REDIS", env)).unwrap();
        let server = InProcess::start(|listener, stopped| async move {
            let server = GrpcServer::from_listener(listener, &config.common);
            fleet_redis::serve(config, server, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        })
        .await
        .unwrap();
        Self { server, secrets }
    }

    pub async fn client(&self) -> Client {
        addon_client(self.server.addr.port(), Some(&self.secrets.token))
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

pub fn request(app_id: &str, no_password: bool) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app_id.to_owned(),
        app_domain: String::new(),
        credential_generation: 0,
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

/// The pid of an app's instance, from its pid file.
pub fn instance_pid(data_dir: &Path, env: &HashMap<String, String>) -> Option<u32> {
    let name = env_name(data_dir, env)?;
    std::fs::read_to_string(data_dir.join(name).join("redis.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
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

/// A private data directory whose instances are killed when it is dropped, even if the test
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
        let Ok(entries) = std::fs::read_dir(self.0.path()) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            if let Ok(pid) = std::fs::read_to_string(entry.path().join("redis.pid")) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid.trim()])
                    .status();
            }
        }
    }
}
