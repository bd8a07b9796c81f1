//! What provisioning means for MySQL (and MariaDB, which the tests run).
//!
//! An app gets a user `'<name>'@'%'` with a connection limit and every privilege on exactly its
//! own database `<name>` (utf8mb4, utf8mb4_unicode_ci), or, with multiple databases, on exactly
//! the databases whose names start with `<name>_`, which it creates itself. Grants escape the
//! `_`/`%` wildcards (see [`crate::grants`]). A metadata table, `fleet_meta.apps`, records which
//! app owns each name and in which layout, so collisions and layout switches are refused and
//! [`AddonBackend::list`] works. All work on one app happens under a named lock (`GET_LOCK`),
//! so concurrent calls from any replica are serialized.

use std::time::Duration;

use fleet_shared::{
    AppId,
    addon::AddonBackend,
    app_id::ResourceName,
    catalog,
    credentials::MasterKey,
    env_bundle::{EnvBundle, EnvPrefix, url_host},
    error::AddonError,
};
use sqlx::{
    AssertSqlSafe, Connection, MySql, MySqlConnection, MySqlPool,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
    pool::PoolConnection,
};
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use crate::{
    config::Config,
    error::classify,
    grants::{exactly, ident, like_prefix, literal, starting_with},
    request::{Layout, ProvisionSpec},
};

/// Database holding the service's own records; no app name can equal it (they start `app_`).
const META_DATABASE: &str = "fleet_meta";

/// How long a call waits for another call on the same app to finish.
const APP_LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// Creates and removes apps' users and databases on one MySQL server.
#[derive(Debug)]
pub struct Provisioner {
    pool: MySqlPool,
    /// One permit per pooled connection: calls beyond the pool's size queue here (bounded by
    /// the caller's deadline), so the pool's acquire timeout measures only reachability.
    permits: Semaphore,
    meta_ready: OnceCell<()>,
    admin: MySqlConnectOptions,
    connect_timeout: Duration,
    master_key: MasterKey,
    env_prefix: EnvPrefix,
    app_host: String,
    app_port: u16,
    max_user_connections: u32,
}

/// What the service recorded about a name.
struct Record {
    app_id: String,
    layout: Option<Layout>,
}

impl Provisioner {
    /// A provisioner for `config`'s server. Connects lazily: the service starts (and reports
    /// NOT_SERVING) while MySQL is down.
    pub fn new(config: &Config) -> Self {
        let admin = config.admin.expose().clone();
        let pool = MySqlPoolOptions::new()
            // Room beyond the permits: a released connection goes back to the pool on a
            // task of its own, and the next caller must not wait for that (or time out).
            .max_connections(config.pool_size * 2)
            .min_connections(0)
            // Give idle admin connections back to the server: it is shared with the apps.
            .idle_timeout(std::time::Duration::from_secs(60))
            .acquire_timeout(config.connect_timeout)
            .connect_lazy_with(admin.clone());
        Self {
            pool,
            permits: Semaphore::new(config.pool_size as usize),
            meta_ready: OnceCell::new(),
            admin,
            connect_timeout: config.connect_timeout,
            master_key: config.common.master_key.clone(),
            env_prefix: config.common.env_prefix.clone(),
            app_host: config.app_host.clone(),
            app_port: config.app_port,
            max_user_connections: config.max_user_connections,
        }
    }
}

impl AddonBackend for Provisioner {
    const SERVICE: catalog::Service = catalog::MYSQL;
    const BACKEND: Option<&'static str> = Some("MySQL");
    type Spec = ProvisionSpec;

    /// Creates the app's user and database (or grant on its prefix), or brings them up to
    /// date, and returns the app's variables. On failure, removes whatever this call created.
    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, AddonError> {
        let name = spec.app.resource_name();
        let password =
            self.master_key
                .derive_password(catalog::MYSQL.name, &spec.app, spec.generation);
        let (_turn, mut conn) = self.connection().await?;
        with_app_lock(&mut conn, &name, async |conn| {
            let Existing {
                record,
                user_exists,
                database_exists,
            } = existing(conn, &name).await?;
            match &record {
                Some(record) if record.app_id != spec.app.as_str() => {
                    return Err(taken(&name));
                }
                Some(Record {
                    layout: Some(layout),
                    ..
                }) if *layout != spec.layout => {
                    return Err(AddonError::FailedPrecondition(format!(
                        "the app was installed with {} and cannot switch to {}: its data would \
                         be left behind or lost; uninstall and reinstall it to change",
                        describe(*layout),
                        describe(spec.layout)
                    )));
                }
                None if user_exists || database_exists => return Err(taken(&name)),
                _ => {}
            }

            let record_created = record.is_none();
            if record_created {
                sqlx::query("INSERT INTO fleet_meta.apps (name, app_id, layout) VALUES (?, ?, ?)")
                    .bind(name.as_str())
                    .bind(spec.app.as_str())
                    .bind(spec.layout.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(classify)?;
            }
            let user_created = !user_exists;
            let database_created = spec.layout == Layout::SingleDatabase && !database_exists;
            let result = async {
                let identified = format!(
                    "{} IDENTIFIED BY {} WITH MAX_USER_CONNECTIONS {}",
                    account(&name),
                    literal(password.expose()),
                    self.max_user_connections
                );
                if user_created {
                    execute(conn, format!("CREATE USER {identified}")).await?;
                } else {
                    execute(conn, format!("ALTER USER {identified}")).await?;
                }
                let on = match spec.layout {
                    Layout::SingleDatabase => {
                        execute(
                            conn,
                            format!(
                                "CREATE DATABASE IF NOT EXISTS {} \
                                 CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                                ident(name.as_str())
                            ),
                        )
                        .await?;
                        exactly(name.as_str())
                    }
                    Layout::MultipleDatabases => starting_with(&prefix(&name)),
                };
                execute(
                    conn,
                    format!("GRANT ALL PRIVILEGES ON {on}.* TO {}", account(&name)),
                )
                .await
            };
            if let Err(error) = result.await {
                undo(conn, &name, database_created, user_created, record_created).await;
                return Err(error);
            }
            Ok(())
        })
        .await?;

        tracing::info!(app_id = %spec.app, name = %name, layout = spec.layout.as_str(), "provisioned");
        Ok(self.env(&name, password.expose(), spec.layout))
    }

    /// Drops the user (closing its sessions) and its database or every database under its
    /// prefix. Succeeds when they are already gone.
    async fn deprovision(&self, app: AppId, _addon: &'static str) -> Result<(), AddonError> {
        let name = app.resource_name();
        let (_turn, mut conn) = self.connection().await?;
        with_app_lock(&mut conn, &name, async |conn| {
            let existing = existing(conn, &name).await?;
            match &existing.record {
                Some(record) if record.app_id != app.as_str() => return Err(taken(&name)),
                None if existing.user_exists || existing.database_exists => {
                    return Err(taken(&name));
                }
                None => return Ok(()),
                Some(_) => {}
            }
            // The user first, so nothing reconnects while its sessions are killed.
            execute(conn, format!("DROP USER IF EXISTS {}", account(&name))).await?;
            // ID is BIGINT on MariaDB and BIGINT UNSIGNED on MySQL: cast for one Rust type.
            let sessions: Vec<i64> = sqlx::query_scalar(
                "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE USER = ?",
            )
            .bind(name.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(classify)?;
            for session in sessions {
                // The session may have ended by itself in between.
                let _ = execute(conn, format!("KILL CONNECTION {session}")).await;
            }
            let mut databases: Vec<String> = sqlx::query_scalar(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
            )
            .bind(like_prefix(&prefix(&name)))
            .fetch_all(&mut *conn)
            .await
            .map_err(classify)?;
            databases.push(name.to_string());
            for database in databases {
                execute(
                    conn,
                    format!("DROP DATABASE IF EXISTS {}", ident(&database)),
                )
                .await?;
            }
            sqlx::query("DELETE FROM fleet_meta.apps WHERE name = ?")
                .bind(name.as_str())
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await?;
        tracing::info!(app_id = %app, name = %name, "deprovisioned");
        Ok(())
    }

    /// The ids of the apps recorded here, sorted.
    async fn list(&self) -> Result<Vec<String>, AddonError> {
        let (_turn, mut conn) = self.connection().await?;
        sqlx::query_scalar("SELECT app_id FROM fleet_meta.apps ORDER BY app_id")
            .fetch_all(&mut *conn)
            .await
            .map_err(classify)
    }

    /// Whether the server accepts a new admin connection (on its own connection, so a busy
    /// pool does not read as an unreachable server).
    async fn ping(&self) -> bool {
        let connect = MySqlConnection::connect_with(&self.admin);
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(conn)) => conn.close().await.is_ok(),
            _ => false,
        }
    }
}

impl Provisioner {
    /// A pooled admin connection, after waiting for a turn, with the metadata table in place.
    async fn connection(&self) -> Result<(SemaphorePermit<'_>, PoolConnection<MySql>), AddonError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AddonError::Unavailable("the service is shutting down".to_owned()))?;
        let mut conn = self.acquire().await?;
        self.meta_ready
            .get_or_try_init(|| async {
                execute(
                    &mut conn,
                    format!("CREATE DATABASE IF NOT EXISTS {META_DATABASE}"),
                )
                .await?;
                execute(
                    &mut conn,
                    format!(
                        "CREATE TABLE IF NOT EXISTS {META_DATABASE}.apps (\
                         name VARCHAR(64) NOT NULL PRIMARY KEY, \
                         app_id VARCHAR(64) NOT NULL, \
                         layout VARCHAR(16) NOT NULL, \
                         created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\
                         ) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                    ),
                )
                .await
            })
            .await?;
        Ok((permit, conn))
    }

    /// A pooled connection. The pool's timeout alone cannot tell a busy server from a dead
    /// one, so on a timeout the server is asked directly: if it takes a new connection, the
    /// call keeps waiting (its deadline bounds it); if not, it is UNAVAILABLE.
    async fn acquire(&self) -> Result<PoolConnection<MySql>, AddonError> {
        loop {
            match self.pool.acquire().await {
                Err(sqlx::Error::PoolTimedOut) if self.ping().await => {
                    tracing::warn!("admin connections are slow to come; still waiting");
                }
                result => return result.map_err(classify),
            }
        }
    }

    fn env(&self, name: &ResourceName, password: &str, layout: Layout) -> EnvBundle {
        let var = |suffix: &str| self.env_prefix.var(suffix);
        let mut env = EnvBundle::from([
            (var("MYSQL_HOST"), self.app_host.clone()),
            (var("MYSQL_PORT"), self.app_port.to_string()),
            (var("MYSQL_USERNAME"), name.to_string()),
            (var("MYSQL_PASSWORD"), password.to_owned()),
        ]);
        match layout {
            Layout::SingleDatabase => {
                let url = format!(
                    "mysql://{name}:{password}@{}:{}/{name}",
                    url_host(&self.app_host),
                    self.app_port
                );
                env.insert(var("MYSQL_URL"), url);
                env.insert(var("MYSQL_DATABASE"), name.to_string());
            }
            Layout::MultipleDatabases => {
                env.insert(var("MYSQL_DATABASE_PREFIX"), prefix(name));
            }
        }
        env
    }
}

/// The prefix of an app's databases in the multiple-databases layout.
fn prefix(name: &ResourceName) -> String {
    format!("{name}_")
}

/// The app's account, `'name'@'%'`.
fn account(name: &ResourceName) -> String {
    format!("{}@'%'", literal(name.as_str()))
}

fn describe(layout: Layout) -> &'static str {
    match layout {
        Layout::SingleDatabase => "a single database",
        Layout::MultipleDatabases => "multiple databases",
    }
}

fn taken(name: &ResourceName) -> AddonError {
    AddonError::FailedPrecondition(format!(
        "a MySQL user or database named {name} already exists and does not belong to this app; \
         refusing to share it (an operator must rename or remove it)"
    ))
}

/// Runs `work` on `conn` while holding the app's named lock.
async fn with_app_lock<T>(
    conn: &mut PoolConnection<MySql>,
    name: &ResourceName,
    work: impl AsyncFnOnce(&mut MySqlConnection) -> Result<T, AddonError>,
) -> Result<T, AddonError> {
    let lock = format!("fleet:{name}");
    let locked: Option<i64> = sqlx::query_scalar("SELECT CAST(GET_LOCK(?, ?) AS SIGNED)")
        .bind(&lock)
        .bind(APP_LOCK_TIMEOUT.as_secs())
        .fetch_one(&mut **conn)
        .await
        .map_err(classify)?;
    if locked != Some(1) {
        return Err(AddonError::Unavailable(format!(
            "another call for this app has held its lock for over {APP_LOCK_TIMEOUT:?}; retry later"
        )));
    }
    let result = work(conn).await;
    let released = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(&lock)
        .execute(&mut **conn)
        .await;
    if released.is_err() {
        // Never hand a connection that may still hold the lock back to the pool.
        conn.close_on_drop();
    }
    result
}

/// What exists under an app's name, in one round trip.
struct Existing {
    record: Option<Record>,
    user_exists: bool,
    database_exists: bool,
}

async fn existing(conn: &mut MySqlConnection, name: &ResourceName) -> Result<Existing, AddonError> {
    let (app_id, layout, users, databases): (Option<String>, Option<String>, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT app_id FROM fleet_meta.apps WHERE name = ?), \
                    (SELECT layout FROM fleet_meta.apps WHERE name = ?), \
                    (SELECT COUNT(*) FROM mysql.user WHERE User = ?), \
                    (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?)",
        )
        .bind(name.as_str())
        .bind(name.as_str())
        .bind(name.as_str())
        .bind(name.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(classify)?;
    Ok(Existing {
        record: app_id.map(|app_id| Record {
            app_id,
            layout: layout.as_deref().and_then(Layout::from_recorded),
        }),
        user_exists: users > 0,
        database_exists: databases > 0,
    })
}

/// Best-effort removal of what a failed provision created; the original error is what the
/// caller sees, so failures here are only logged.
async fn undo(
    conn: &mut MySqlConnection,
    name: &ResourceName,
    database: bool,
    user: bool,
    record: bool,
) {
    let mut steps = Vec::new();
    if database {
        steps.push(format!("DROP DATABASE IF EXISTS {}", ident(name.as_str())));
    }
    if user {
        steps.push(format!("DROP USER IF EXISTS {}", account(name)));
    }
    if record {
        steps.push(format!(
            "DELETE FROM {META_DATABASE}.apps WHERE name = {}",
            literal(name.as_str())
        ));
    }
    for step in steps {
        if let Err(error) = execute(conn, step).await {
            tracing::error!(name = %name, %error, "could not undo part of a failed provision");
        }
    }
}

/// Runs one statement built from derived names and validated values.
async fn execute(conn: &mut MySqlConnection, sql: String) -> Result<(), AddonError> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(())
}
