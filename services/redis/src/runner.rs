//! Running one redis-server per app. The provisioner and the supervisor see only
//! [`InstanceRunner`], so a runner that starts a container per app (as the platform does) can
//! replace [`ProcessRunner`] without touching them or the gRPC layer.
//!
//! An instance is known by what the runner started, never by a pid file or by whatever answers
//! on its port: [`ProcessRunner`] keeps the [`Child`] it spawned for each app, and calls an
//! instance healthy only when a server on its port accepts the instance's admin password (a
//! secret only its `redis.conf` holds) and reports that child's pid as its `process_id`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Mutex,
    time::{Duration, Instant},
};

use fleet_shared::{Secret, env_bundle::url_host, error::AddonError};
use redis::{AsyncConnectionConfig, aio::MultiplexedConnection};
use tokio::process::{Child, Command};

use crate::error::classify;

/// The ACL user the service itself authenticates as (identity checks and SHUTDOWN).
pub const ADMIN_USER: &str = "fleet-admin";
/// How long an instance may take to answer after a start (it replays its AOF first).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an instance may take to stop after SHUTDOWN or SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one admin exchange (connect, AUTH, INFO) may take.
const CHECK_TIMEOUT: Duration = Duration::from_millis(1000);

/// One app's instance, as a runner needs to know it.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The app's resource name (also the directory's name).
    pub name: String,
    /// Directory with `redis.conf`, the append-only files and `redis.log`.
    pub dir: PathBuf,
    /// Where it listens.
    pub host: String,
    /// Its port, chosen by the service (the app cannot change it).
    pub port: u16,
    /// The password of its [`ADMIN_USER`], which only the service and `redis.conf` know.
    pub admin_password: Secret<String>,
}

impl Instance {
    /// The instance's configuration file.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("redis.conf")
    }
}

/// Starts, stops and checks instances.
pub trait InstanceRunner: Send + Sync + 'static {
    /// Starts the instance from its `redis.conf`, stopping any copy already running first (so
    /// there is never more than one); returns once it is healthy.
    fn start(&self, instance: &Instance) -> impl Future<Output = Result<(), AddonError>> + Send;
    /// Stops it (a final AOF write), and anything else still running on its directory.
    fn stop(&self, instance: &Instance) -> impl Future<Output = Result<(), AddonError>> + Send;
    /// Whether the instance this runner started runs and answers as itself.
    fn healthy(&self, instance: &Instance) -> impl Future<Output = bool> + Send;
    /// Whether the instance this runner started still runs (answering or not).
    fn running(&self, instance: &Instance) -> bool;
}

/// The unprivileged user instances run as when the service runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
}

impl Owner {
    /// `Some(user)` when this process runs as root (instances must not), `None` otherwise
    /// (instances run as the service's own user).
    pub fn resolve(user: &str) -> Result<Option<Self>, AddonError> {
        if effective_uid() != Some(0) {
            return Ok(None);
        }
        let passwd = std::fs::read_to_string("/etc/passwd")
            .map_err(|e| AddonError::Unavailable(format!("cannot read /etc/passwd: {e}")))?;
        let owner = passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                [name, _, uid, gid, ..] if *name == user => Some(Self {
                    uid: uid.parse().ok()?,
                    gid: gid.parse().ok()?,
                }),
                _ => None,
            }
        });
        match owner {
            Some(owner) if owner.uid != 0 => Ok(Some(owner)),
            Some(_) => Err(AddonError::Unavailable(format!(
                "FLEET_REDIS_RUN_AS names {user}, which is root; instances must run as an \
                 unprivileged user"
            ))),
            None => Err(AddonError::Unavailable(format!(
                "the service runs as root and runs redis instances as the user {user}, which \
                 does not exist; install redis-server (it creates the user `redis`) or set \
                 FLEET_REDIS_RUN_AS to an unprivileged user"
            ))),
        }
    }
}

/// The effective uid of this process, from /proc (the workspace forbids `unsafe` FFI).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Runs instances as child processes of the service, as `owner` when it is set. Instances
/// outlive a restart of the service (apps keep their caches); the next run recognises each by
/// its admin password, shuts it down and starts it again as its own child.
#[derive(Debug)]
pub struct ProcessRunner {
    server_bin: PathBuf,
    owner: Option<Owner>,
    /// The instance this process started for each app.
    children: Mutex<HashMap<String, Child>>,
}

impl ProcessRunner {
    /// A runner starting `server_bin`, as `owner` when set.
    pub fn new(server_bin: PathBuf, owner: Option<Owner>) -> Self {
        Self {
            server_bin,
            owner,
            children: Mutex::new(HashMap::new()),
        }
    }

    /// The pid of our child for `name` while it runs.
    fn child_pid(&self, name: &str) -> Option<u32> {
        let mut children = self.children.lock().ok()?;
        let child = children.get_mut(name)?;
        match child.try_wait() {
            Ok(None) => child.id(),
            _ => None,
        }
    }

    fn take_child(&self, name: &str) -> Option<Child> {
        self.children.lock().ok()?.remove(name)
    }

    /// Stops our child: SHUTDOWN as the admin (redis writes its AOF), SIGKILL if it lingers.
    async fn stop_child(&self, instance: &Instance, mut child: Child) {
        if matches!(child.try_wait(), Ok(None)) {
            admin_shutdown(instance).await;
            if tokio::time::timeout(STOP_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                tracing::warn!(name = %instance.name, "instance did not shut down; killing it");
                let _ = child.start_kill();
            }
        }
        let _ = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await;
    }
}

impl InstanceRunner for ProcessRunner {
    async fn start(&self, instance: &Instance) -> Result<(), AddonError> {
        self.stop(instance).await?;
        if let Some(owner) = self.owner {
            hand_over(&instance.dir, owner).await?;
        }
        // redis-server has no umask setting and creates its files (AOF, log) with the one it
        // inherits: a shell sets 077 and execs it, so the child's pid is the server's.
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", "umask 077 && exec \"$0\" \"$@\""])
            .arg(&self.server_bin)
            .arg(instance.conf())
            .current_dir(&instance.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(owner) = self.owner {
            // std clears the supplementary groups too when it drops root.
            command.uid(owner.uid).gid(owner.gid);
        }
        let child = command.spawn().map_err(|e| {
            AddonError::Unavailable(format!(
                "cannot start {}: {e}; is redis-server installed?",
                self.server_bin.display()
            ))
        })?;
        if let Ok(mut children) = self.children.lock() {
            children.insert(instance.name.clone(), child);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.healthy(instance).await {
                tracing::info!(name = %instance.name, port = instance.port, "instance started");
                return Ok(());
            }
            if !self.running(instance) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.stop(instance).await;
        Err(AddonError::Unavailable(format!(
            "the app's redis instance did not start (is another process holding port {}?); \
             see {}",
            instance.port,
            instance.dir.join("redis.log").display()
        )))
    }

    async fn stop(&self, instance: &Instance) -> Result<(), AddonError> {
        if let Some(child) = self.take_child(&instance.name) {
            self.stop_child(instance, child).await;
        }
        // A left-over of an earlier run of the service: only this app's instance knows its
        // admin password, so what answers to it is ours to shut down. Anything else on the
        // port is left alone (and keeps our instance from starting, which is reported).
        if let Some(pid) = identity(instance).await {
            tracing::info!(name = %instance.name, "shutting down the instance an earlier run left");
            admin_shutdown(instance).await;
            if !gone_within(pid, STOP_TIMEOUT).await {
                signal(pid, "KILL").await;
                gone_within(pid, STOP_TIMEOUT).await;
            }
        }
        // Any other redis-server working in this directory (none, unless an older version of
        // the service started it): SIGTERM, then SIGKILL.
        for pid in servers_in(&instance.dir, &self.server_bin).await {
            tracing::warn!(name = %instance.name, pid, "stopping a stray redis-server on the instance's directory");
            signal(pid, "TERM").await;
            if !gone_within(pid, STOP_TIMEOUT).await {
                signal(pid, "KILL").await;
                gone_within(pid, STOP_TIMEOUT).await;
            }
        }
        Ok(())
    }

    async fn healthy(&self, instance: &Instance) -> bool {
        let Some(pid) = self.child_pid(&instance.name) else {
            return false;
        };
        identity(instance).await == Some(pid)
    }

    fn running(&self, instance: &Instance) -> bool {
        self.child_pid(&instance.name).is_some()
    }
}

/// A connection to the instance's port authenticated as its admin; `None` when nothing
/// listens there or the server does not accept the admin password (the redis crate sends
/// `AUTH fleet-admin <password>` on connect).
async fn admin_connection(instance: &Instance) -> Option<MultiplexedConnection> {
    let url = format!(
        "redis://{ADMIN_USER}:{}@{}:{}/",
        instance.admin_password.expose(),
        url_host(&reachable_host(&instance.host)),
        instance.port
    );
    let client = redis::Client::open(url).ok()?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CHECK_TIMEOUT))
        .set_response_timeout(Some(CHECK_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .ok()
}

/// Where the service reaches an instance listening on `bind`: loopback for the unspecified
/// addresses (`0.0.0.0`, `::`), which are for listening, not for connecting to.
fn reachable_host(bind: &str) -> String {
    match bind.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        Ok(std::net::IpAddr::V6(ip)) if ip.is_unspecified() => "::1".to_owned(),
        _ => bind.to_owned(),
    }
}

/// The pid of the server on the instance's port, if it accepts the instance's admin password.
async fn identity(instance: &Instance) -> Option<u32> {
    let attempt = async {
        let mut admin = admin_connection(instance).await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut admin)
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))?
            .trim()
            .parse()
            .ok()
    };
    tokio::time::timeout(CHECK_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
}

/// Asks the instance (as its admin) to shut down; it writes its AOF and exits, closing the
/// connection without a reply, so the answer tells nothing: callers wait for the process.
async fn admin_shutdown(instance: &Instance) {
    let attempt = async {
        if let Some(mut admin) = admin_connection(instance).await {
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query_async(&mut admin).await;
        }
    };
    let _ = tokio::time::timeout(STOP_TIMEOUT, attempt).await;
}

/// The pids of every process of `server_bin` whose working directory is `dir` (redis-server
/// works in its `dir`), read from /proc.
async fn servers_in(dir: &Path, server_bin: &Path) -> Vec<u32> {
    let dir = dir.to_owned();
    // The kernel keeps the first 15 bytes of the executable's file name as the command name.
    let comm: String = server_bin
        .file_name()
        .map(|name| name.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let name = std::fs::read_to_string(format!("/proc/{pid}/comm"));
                name.is_ok_and(|name| name.trim_end_matches('\n') == comm)
                    && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
            })
            .collect();
        pids.sort_unstable();
        pids
    })
    .await
    .unwrap_or_default()
}

/// Whether process `pid` is gone (or a zombie) within `timeout`.
async fn gone_within(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let status = tokio::fs::read_to_string(format!("/proc/{pid}/stat")).await;
        let gone = match status {
            Err(_) => true,
            // The state follows the command name in parentheses; Z is a zombie.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// Hands `dir` and everything in it to `owner`, closed to group and others (files written by
/// the service, and by instances of versions that ran as root or with a looser umask).
async fn hand_over(dir: &Path, owner: Owner) -> Result<(), AddonError> {
    fn walk(path: &Path, owner: Owner) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::symlink_metadata(path)?;
        std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))?;
        if !metadata.file_type().is_symlink() {
            let mode = metadata.permissions().mode() & 0o7700;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(path)? {
                walk(&entry?.path(), owner)?;
            }
        }
        Ok(())
    }
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || walk(&dir, owner))
        .await?
        .map_err(classify)?;
    Ok(())
}

/// Makes the data directory reachable by `owner` and by no one else: mode 0711 (others may
/// pass through to their own directory, not list the apps) when instances run as another
/// user, 0700 otherwise; and checks that every parent lets `owner` through.
pub fn prepare_data_dir(data_dir: &Path, owner: Option<Owner>) -> Result<(), AddonError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let unusable = |e: std::io::Error| {
        AddonError::Unavailable(format!("FLEET_REDIS_DATA_DIR {}: {e}", data_dir.display()))
    };
    let mode = if owner.is_some() { 0o711 } else { 0o700 };
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode)).map_err(unusable)?;
    let Some(owner) = owner else {
        return Ok(());
    };
    let canonical = std::fs::canonicalize(data_dir).map_err(unusable)?;
    for ancestor in canonical.ancestors().skip(1) {
        let metadata = std::fs::metadata(ancestor).map_err(unusable)?;
        let mode = metadata.mode();
        let passable = mode & 0o001 != 0
            || (metadata.uid() == owner.uid && mode & 0o100 != 0)
            || (metadata.gid() == owner.gid && mode & 0o010 != 0);
        if !passable {
            return Err(AddonError::Unavailable(format!(
                "redis instances run as uid {} and cannot reach FLEET_REDIS_DATA_DIR through {} \
                 (mode {:o}); allow them through with `chmod o+x {}` or move the data directory",
                owner.uid,
                ancestor.display(),
                mode & 0o7777,
                ancestor.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_bound_to_every_address_is_reached_on_loopback() {
        assert_eq!(reachable_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(reachable_host("::"), "::1");
        assert_eq!(reachable_host("10.1.2.3"), "10.1.2.3");
        assert_eq!(reachable_host("127.0.0.1"), "127.0.0.1");
    }
}
