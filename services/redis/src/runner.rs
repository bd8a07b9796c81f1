//! Running one redis-server per app. The provisioner and the supervisor see only
//! [`InstanceRunner`], so a runner that starts a container per app (as the platform does) can
//! replace [`ProcessRunner`] without touching them or the gRPC layer.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

use crate::error::Error;

/// How long an instance may take to answer after a start (it replays its AOF first).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an instance may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One app's instance, as a runner needs to know it.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The app's resource name (also the directory's name).
    pub name: String,
    /// Directory with `redis.conf`, the AOF, `redis.pid` and `redis.log`.
    pub dir: PathBuf,
    /// Where it listens.
    pub host: String,
    pub port: u16,
}

/// Starts, stops and checks instances.
pub trait InstanceRunner: Send + Sync + 'static {
    /// Starts the instance from its `redis.conf`; returns once it answers.
    fn start(&self, instance: &Instance) -> impl Future<Output = Result<(), Error>> + Send;
    /// Stops it: SIGTERM (a final AOF write), then SIGKILL after a grace period.
    fn stop(&self, instance: &Instance) -> impl Future<Output = Result<(), Error>> + Send;
    /// Whether it answers on its port.
    fn alive(&self, instance: &Instance) -> impl Future<Output = bool> + Send;
}

/// Runs instances as child processes of the service. Instances outlive a restart of the
/// service; the next one finds them by their port and pid file.
#[derive(Debug)]
pub struct ProcessRunner {
    server_bin: PathBuf,
    /// Instances this process started, kept to reap them when they exit.
    children: Mutex<HashMap<String, Child>>,
}

impl ProcessRunner {
    pub fn new(server_bin: PathBuf) -> Self {
        Self {
            server_bin,
            children: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets (reaps) our child for `name` if it has exited.
    fn reap(&self, name: &str) {
        if let Ok(mut children) = self.children.lock()
            && let Some(child) = children.get_mut(name)
            && matches!(child.try_wait(), Ok(Some(_)))
        {
            children.remove(name);
        }
    }
}

impl InstanceRunner for ProcessRunner {
    async fn start(&self, instance: &Instance) -> Result<(), Error> {
        self.reap(&instance.name);
        let child = Command::new(&self.server_bin)
            .arg(instance.dir.join("redis.conf"))
            .current_dir(&instance.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::Unavailable(format!(
                    "cannot start {}: {e}; is redis-server installed?",
                    self.server_bin.display()
                ))
            })?;
        if let Ok(mut children) = self.children.lock() {
            children.insert(instance.name.clone(), child);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.alive(instance).await {
                tracing::info!(name = %instance.name, port = instance.port, "instance started");
                return Ok(());
            }
            if self.exited(&instance.name) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.stop(instance).await;
        Err(Error::Unavailable(format!(
            "the app's redis instance did not start; see {}",
            instance.dir.join("redis.log").display()
        )))
    }

    async fn stop(&self, instance: &Instance) -> Result<(), Error> {
        if let Some(pid) = read_pid(&instance.dir).await {
            signal(pid, "TERM").await;
            let deadline = Instant::now() + STOP_TIMEOUT;
            while self.alive(instance).await && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if self.alive(instance).await {
                signal(pid, "KILL").await;
            }
        }
        // Wait for our child to exit, so its port and files are free.
        let child = self
            .children
            .lock()
            .ok()
            .and_then(|mut c| c.remove(&instance.name));
        if let Some(mut child) = child {
            let _ = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await;
        }
        Ok(())
    }

    async fn alive(&self, instance: &Instance) -> bool {
        answers(&instance.host, instance.port).await
    }
}

impl ProcessRunner {
    fn exited(&self, name: &str) -> bool {
        self.children
            .lock()
            .ok()
            .and_then(|mut children| {
                children
                    .get_mut(name)
                    .map(|c| matches!(c.try_wait(), Ok(Some(_))))
            })
            .unwrap_or(false)
    }
}

/// Whether a Redis server answers `PING` on `host:port`. Any reply counts (`-NOAUTH` when it
/// has a password, `-LOADING` while it replays its AOF): the process is up.
pub async fn answers(host: &str, port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut first = [0_u8; 1];
        stream.read_exact(&mut first).await.ok()?;
        Some(matches!(first[0], b'+' | b'-'))
    };
    tokio::time::timeout(Duration::from_millis(500), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

async fn read_pid(dir: &Path) -> Option<u32> {
    let text = tokio::fs::read_to_string(dir.join("redis.pid"))
        .await
        .ok()?;
    text.trim().parse().ok()
}

async fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}
