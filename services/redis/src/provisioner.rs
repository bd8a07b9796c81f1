//! What provisioning means for Redis: one redis-server per app, because a shared server with
//! ACLs cannot isolate apps that use the whole keyspace, `SELECT`, `FLUSHALL` or `KEYS`.
//!
//! Each app has a directory `<data dir>/<name>/` (0700, owned by the user instances run as)
//! holding `instance.json` (owner app id and port), `redis.conf` (0600: it holds the
//! passwords), the append-only files and `redis.log`. The directory is the truth about which
//! apps have an instance; the runner's children are the truth about which instances run. A
//! supervisor restarts instances that exited or stopped answering as themselves.
//!
//! The service decides the port, bind address, memory limit, persistence, users and
//! replication; the app's user (`default`) may run every command but those that change them
//! (see [`APP_COMMANDS`]), and the service checks and stops an instance as a second ACL user,
//! [`ADMIN_USER`], whose password only the service and `redis.conf` know.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use fleet_shared::{
    AppId,
    addon::AddonBackend,
    app_id::ResourceName,
    catalog,
    credentials::MasterKey,
    env_bundle::{EnvBundle, EnvPrefix, url_host},
    error::AddonError,
    keyed_lock::KeyedLocks,
};

use crate::{
    config::Config,
    error::classify,
    request::ProvisionSpec,
    runner::{ADMIN_USER, Instance, InstanceRunner},
};

/// The purpose string the admin user's password derives from (never an app's password).
const ADMIN_PURPOSE: &str = "redis/admin";
/// How many supervisor passes a running instance may fail its identity check before it is
/// restarted (it may be busy in a long script).
const UNHEALTHY_PASSES: u32 = 3;

/// The commands the app's user may run (Redis 7 ACL rules): everything except the `@admin`
/// and `@dangerous` categories (CONFIG SET/REWRITE/RESETSTAT, ACL SETUSER/DELUSER/LOAD/SAVE/
/// LIST/GETUSER/LOG, REPLICAOF/SLAVEOF, FAILOVER, SYNC/PSYNC/REPLCONF, SHUTDOWN, DEBUG,
/// MODULE, MIGRATE, RESTORE, MONITOR, SAVE/BGSAVE/BGREWRITEAOF, CLUSTER changes, CLIENT
/// KILL/PAUSE/UNPAUSE/UNBLOCK/NO-EVICT, LATENCY, SLOWLOG, PFDEBUG/PFSELFTEST), then back the
/// ones in those categories that apps use and that only touch the app's own data or read.
pub const APP_COMMANDS: &str = "+@all -@admin -@dangerous +flushdb +flushall +keys +sort \
     +sort_ro +swapdb +info +lastsave +role +config|get +client|list";

/// What `instance.json` records.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    app_id: String,
    port: u16,
}

/// Provisions, supervises and removes per-app instances through a runner.
pub struct Provisioner<R> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for Provisioner<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<R> {
    runner: R,
    data_dir: PathBuf,
    bind: String,
    app_host: String,
    ports: std::ops::RangeInclusive<u16>,
    maxmemory_mb: u32,
    appendfsync: String,
    master_key: MasterKey,
    env_prefix: EnvPrefix,
    /// Serializes calls on one app; different apps proceed in parallel.
    locks: KeyedLocks,
    /// Held while choosing a port, so two new apps never take the same one.
    allocating: tokio::sync::Mutex<()>,
}

impl<R: InstanceRunner> Provisioner<R> {
    /// A provisioner over `config.data_dir`, starting instances with `runner`.
    pub fn new(config: &Config, runner: R) -> Result<Self, AddonError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            AddonError::Unavailable(format!(
                "cannot create FLEET_REDIS_DATA_DIR {}: {e}",
                config.data_dir.display()
            ))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                runner,
                data_dir: config.data_dir.clone(),
                bind: config.bind.clone(),
                app_host: config.app_host.clone(),
                ports: config.ports.clone(),
                maxmemory_mb: config.maxmemory_mb,
                appendfsync: config.appendfsync.clone(),
                master_key: config.common.master_key.clone(),
                env_prefix: config.common.env_prefix.clone(),
                locks: KeyedLocks::new(),
                allocating: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Starts every recorded instance that is not running as this service's child, and
    /// restarts one that keeps failing its identity check, now and every `every`, until the
    /// returned task is aborted. The first pass shuts down the instances a previous run of the
    /// service left (recognised by their admin password) and starts them again as children.
    pub fn supervise(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut failed = HashMap::new();
            loop {
                this.restart_dead(&mut failed).await;
                tokio::time::sleep(every).await;
            }
        })
    }

    async fn restart_dead(&self, failed: &mut HashMap<String, u32>) {
        let Ok(names) = self.names().await else {
            return;
        };
        failed.retain(|name, _| names.contains(name));
        for name in names {
            let _guard = self.inner.locks.lock(&name).await;
            let Some((recorded, instance)) = self.instance_of(&name).await else {
                continue; // removed meanwhile
            };
            if self.inner.runner.healthy(&instance).await {
                failed.remove(&name);
                continue;
            }
            if self.inner.runner.running(&instance) {
                let count = failed.entry(name.clone()).or_default();
                *count += 1;
                if *count < UNHEALTHY_PASSES {
                    continue;
                }
                tracing::warn!(app_id = %recorded.app_id, name, "instance not answering as itself; restarting it");
            } else {
                tracing::warn!(app_id = %recorded.app_id, name, "instance not running; starting it");
            }
            failed.remove(&name);
            if let Err(error) = self.inner.runner.start(&instance).await {
                tracing::error!(app_id = %recorded.app_id, name, %error, "could not restart instance");
            }
        }
    }

    /// Stops every instance (when the service is told to on exit).
    pub async fn stop_all(&self) {
        let Ok(names) = self.names().await else {
            return;
        };
        for name in names {
            let _guard = self.inner.locks.lock(&name).await;
            if let Some((_, instance)) = self.instance_of(&name).await {
                let _ = self.inner.runner.stop(&instance).await;
            }
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.inner.data_dir.join(name)
    }

    /// The names of every instance directory with a record.
    async fn names(&self) -> Result<Vec<String>, AddonError> {
        let mut names = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.inner.data_dir)
            .await
            .map_err(classify)?;
        while let Some(entry) = entries.next_entry().await.map_err(classify)? {
            if entry.path().join("instance.json").is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    async fn instance_of(&self, name: &str) -> Option<(Recorded, Instance)> {
        let recorded = read_record(&self.dir(name)).await.ok().flatten()?;
        let app = AppId::parse(&recorded.app_id).ok()?;
        let instance = self.instance(&app, name, recorded.port);
        Some((recorded, instance))
    }

    fn instance(&self, app: &AppId, name: &str, port: u16) -> Instance {
        Instance {
            name: name.to_owned(),
            dir: self.dir(name),
            host: self.inner.bind.clone(),
            port,
            // Not tied to the credential generation: a rotation must still be able to stop the
            // instance running with the previous password.
            admin_password: self.inner.master_key.derive_password(ADMIN_PURPOSE, app, 0),
        }
    }

    /// A port in the range that no recorded instance uses and that can be bound now.
    async fn free_port(&self) -> Result<u16, AddonError> {
        let mut taken = BTreeSet::new();
        for name in self.names().await? {
            if let Ok(Some(recorded)) = read_record(&self.dir(&name)).await {
                taken.insert(recorded.port);
            }
        }
        for port in self.inner.ports.clone() {
            if !taken.contains(&port)
                && std::net::TcpListener::bind((self.inner.bind.as_str(), port)).is_ok()
            {
                return Ok(port);
            }
        }
        Err(AddonError::ResourceExhausted(format!(
            "no free port left for a new redis instance in {}-{} (FLEET_REDIS_PORTS); widen \
             the range or remove unused apps",
            self.inner.ports.start(),
            self.inner.ports.end()
        )))
    }

    fn config_file(&self, instance: &Instance, password: Option<&str>) -> String {
        let dir = instance.dir.display();
        // No pid file: the service knows its instances by the processes it started. No
        // process title: the command line keeps naming this instance's redis.conf.
        let mut conf = format!(
            "# Written by fleet-redis; rewritten at every provision.\n\
             bind {bind}\nport {port}\ndir {dir}\n\
             logfile {dir}/redis.log\ndaemonize no\nset-proc-title no\n\
             appendonly yes\nappendfsync {fsync}\nsave \"\"\n\
             maxmemory {memory}mb\nmaxmemory-policy noeviction\n\
             enable-protected-configs no\nenable-debug-command no\nenable-module-command no\n\
             user {admin} reset on >{admin_password} -@all +ping +info +shutdown\n",
            bind = instance.host,
            port = instance.port,
            fsync = self.inner.appendfsync,
            memory = self.inner.maxmemory_mb,
            admin = ADMIN_USER,
            admin_password = instance.admin_password.expose(),
        );
        let authentication = match password {
            Some(password) => format!(">{password}"),
            // Without a password the instance is only reachable on the apps' internal network
            // (the reference's noPassword); protected mode would refuse those clients.
            None => {
                conf.push_str("protected-mode no\n");
                "nopass".to_owned()
            }
        };
        conf.push_str(&format!(
            "user default reset on {authentication} ~* &* {APP_COMMANDS}\n"
        ));
        conf
    }

    fn env(&self, port: u16, password: Option<&str>) -> EnvBundle {
        let var = |suffix: &str| self.inner.env_prefix.var(suffix);
        let host = &self.inner.app_host;
        let credentials = password
            .map(|p| format!("default:{p}@"))
            .unwrap_or_default();
        let mut env = EnvBundle::from([
            (
                var("REDIS_URL"),
                format!("redis://{credentials}{}:{port}", url_host(host)),
            ),
            (var("REDIS_HOST"), host.clone()),
            (var("REDIS_PORT"), port.to_string()),
        ]);
        if let Some(password) = password {
            env.insert(var("REDIS_PASSWORD"), password.to_owned());
        }
        env
    }
}

impl<R: InstanceRunner> AddonBackend for Provisioner<R> {
    const SERVICE: catalog::Service = catalog::REDIS;
    const BACKEND: Option<&'static str> = None;
    type Spec = ProvisionSpec;

    /// Creates the app's instance (or brings its configuration up to date) and makes sure it
    /// runs. A new instance that fails to start leaves nothing behind.
    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, AddonError> {
        let name = spec.app.resource_name();
        let _guard = self.inner.locks.lock(name.as_str()).await;
        let dir = self.dir(name.as_str());
        let password = (!spec.no_password).then(|| {
            self.inner
                .master_key
                .derive_password(catalog::REDIS.name, &spec.app, spec.generation)
        });
        let password = password.as_ref().map(|p| p.expose().as_str());

        let existing = read_record(&dir).await?;
        let (port, created) = match &existing {
            Some(recorded) if recorded.app_id != spec.app.as_str() => return Err(taken(&name)),
            Some(recorded) => (recorded.port, false),
            None => {
                let _allocating = self.inner.allocating.lock().await;
                let port = self.free_port().await?;
                create_private_dir(&dir).await?;
                write_record(
                    &dir,
                    &Recorded {
                        app_id: spec.app.to_string(),
                        port,
                    },
                )
                .await?;
                (port, true)
            }
        };
        let instance = self.instance(&spec.app, name.as_str(), port);
        let conf = self.config_file(&instance, password);
        let result = async {
            let changed = write_if_changed(&instance.conf(), &conf).await?;
            // A new password or limit, or an instance that is not ours and healthy: (re)start
            // it (the runner stops any running copy first; the AOF keeps the data).
            if changed || !self.inner.runner.healthy(&instance).await {
                self.inner.runner.start(&instance).await
            } else {
                Ok(())
            }
        };
        if let Err(error) = result.await {
            if created {
                let _ = self.inner.runner.stop(&instance).await;
                let _ = tokio::fs::remove_dir_all(&dir).await;
            }
            return Err(error);
        }
        tracing::info!(app_id = %spec.app, name = %name, port, "provisioned");
        Ok(self.env(port, password))
    }

    /// Stops the app's instance and deletes its data.
    async fn deprovision(&self, app: AppId, _addon: &'static str) -> Result<(), AddonError> {
        let name = app.resource_name();
        let _guard = self.inner.locks.lock(name.as_str()).await;
        let dir = self.dir(name.as_str());
        match read_record(&dir).await? {
            None => return Ok(()),
            Some(recorded) if recorded.app_id != app.as_str() => return Err(taken(&name)),
            Some(recorded) => {
                let instance = self.instance(&app, name.as_str(), recorded.port);
                self.inner.runner.stop(&instance).await?;
            }
        }
        tokio::fs::remove_dir_all(&dir).await.map_err(classify)?;
        tracing::info!(app_id = %app, name = %name, "deprovisioned");
        Ok(())
    }

    /// The apps with an instance here, sorted.
    async fn list(&self) -> Result<Vec<String>, AddonError> {
        let mut ids = Vec::new();
        for name in self.names().await? {
            if let Some(recorded) = read_record(&self.dir(&name)).await? {
                ids.push(recorded.app_id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Whether the data directory is usable.
    async fn ping(&self) -> bool {
        tokio::fs::metadata(&self.inner.data_dir)
            .await
            .is_ok_and(|m| m.is_dir())
    }
}

fn taken(name: &ResourceName) -> AddonError {
    AddonError::FailedPrecondition(format!(
        "the redis instance directory {name} belongs to another app; refusing to share it"
    ))
}

async fn read_record(dir: &Path) -> Result<Option<Recorded>, AddonError> {
    let text = match tokio::fs::read_to_string(dir.join("instance.json")).await {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(classify(error)),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        AddonError::Internal(format!("{}: {e}", dir.join("instance.json").display()))
    })?;
    let app_id = value["app_id"].as_str().map(str::to_owned);
    let port = value["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    match (app_id, port) {
        (Some(app_id), Some(port)) => Ok(Some(Recorded { app_id, port })),
        _ => Err(AddonError::Internal(format!(
            "{} is incomplete",
            dir.join("instance.json").display()
        ))),
    }
}

async fn write_record(dir: &Path, recorded: &Recorded) -> Result<(), AddonError> {
    let json = serde_json::json!({"app_id": recorded.app_id, "port": recorded.port});
    write_atomically(&dir.join("instance.json"), &json.to_string()).await
}

/// Writes `contents` to `path` (mode 0600) unless it already holds them; whether it changed.
async fn write_if_changed(path: &Path, contents: &str) -> Result<bool, AddonError> {
    if tokio::fs::read_to_string(path)
        .await
        .is_ok_and(|old| old == contents)
    {
        return Ok(false);
    }
    write_atomically(path, contents).await?;
    Ok(true)
}

async fn write_atomically(path: &Path, contents: &str) -> Result<(), AddonError> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o600);
    let path_owned = path.to_owned();
    let contents = contents.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut file = options.open(&temporary)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path_owned)
    })
    .await?
    .map_err(classify)?;
    Ok(())
}

async fn create_private_dir(dir: &Path) -> Result<(), AddonError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)
    })
    .await?
    .map_err(classify)?;
    Ok(())
}
