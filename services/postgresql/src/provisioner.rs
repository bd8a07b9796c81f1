//! What provisioning means for PostgreSQL.
//!
//! An app gets a login role (no superuser, createdb, createrole, replication or bypassrls) and
//! a UTF8 database it owns, with `CONNECT` revoked from `PUBLIC` so no other role can open it.
//! Role and database share the app's derived [`ResourceName`] and carry a comment
//! `fleet-app:<app id>` recording their owner, so a name collision is refused instead of shared
//! and [`Provisioner::list`] can find every app. All work on one app happens under a PostgreSQL
//! advisory lock, so concurrent calls (from any replica) for the same app are serialized.

use std::collections::BTreeSet;

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
    AssertSqlSafe, Connection, PgConnection, PgPool, Postgres,
    pool::PoolConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{config::Config, error::classify, request::ProvisionSpec, scram};

/// Comment prefix marking a role or database as an app's.
const OWNER_TAG: &str = "fleet-app:";

/// First key of the advisory locks this service takes (ASCII "flee"), so they cannot clash
/// with locks of other software on the same server.
const LOCK_NAMESPACE: i32 = 0x666c_6565;

/// SQLSTATE of "invalid locale name" (wrong_object_type).
const INVALID_LOCALE: &str = "42809";
/// SQLSTATE of "role cannot be dropped because some objects depend on it".
const DEPENDENT_OBJECTS: &str = "2BP01";

/// Creates and removes apps' roles and databases on one PostgreSQL server.
#[derive(Debug)]
pub struct Provisioner {
    pool: PgPool,
    /// One permit per pooled connection: calls beyond the pool's size queue here, without a
    /// timeout (the caller's deadline bounds them), so that the pool's acquire timeout
    /// measures only whether PostgreSQL can be reached, never how busy the service is.
    permits: Semaphore,
    admin: PgConnectOptions,
    connect_timeout: std::time::Duration,
    master_key: MasterKey,
    env_prefix: EnvPrefix,
    app_host: String,
    app_port: u16,
    app_connection_limit: u32,
}

/// What exists on the server under an app's name.
struct Existing {
    /// The role's owner comment, if the role exists.
    role: Option<Option<String>>,
    /// The database, if it exists.
    database: Option<ExistingDatabase>,
}

struct ExistingDatabase {
    comment: Option<String>,
    owner: String,
    collate: String,
}

impl Provisioner {
    /// A provisioner for `config`'s server. Connects lazily: the service starts (and reports
    /// NOT_SERVING) while PostgreSQL is down.
    pub fn new(config: &Config) -> Self {
        let admin = config.admin.expose().clone();
        let pool = PgPoolOptions::new()
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
            admin,
            connect_timeout: config.connect_timeout,
            master_key: config.common.master_key.clone(),
            env_prefix: config.common.env_prefix.clone(),
            app_host: config.app_host.clone(),
            app_port: config.app_port,
            app_connection_limit: config.app_connection_limit,
        }
    }
}

impl AddonBackend for Provisioner {
    const SERVICE: catalog::Service = catalog::POSTGRESQL;
    const BACKEND: Option<&'static str> = Some("PostgreSQL");
    type Spec = ProvisionSpec;

    /// Whether the server accepts a new admin connection (on its own connection, so a busy
    /// pool does not read as an unreachable server).
    async fn ping(&self) -> bool {
        let connect = PgConnection::connect_with(&self.admin);
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(conn)) => conn.close().await.is_ok(),
            _ => false,
        }
    }

    /// Creates the app's role and database, or brings them up to date, and returns the app's
    /// variables. On failure, removes whatever this call created.
    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, AddonError> {
        self.check_extensions_installed(&spec.extensions).await?;
        let name = spec.app.resource_name();
        let password =
            self.master_key
                .derive_password(catalog::POSTGRESQL.name, &spec.app, spec.generation);
        let verifier = scram::verifier(name.as_str(), password.expose());

        self.with_app_lock(&name, async |conn| {
            let existing = existing(conn, &name).await?;
            check_ownership(&existing, &spec.app, &name)?;
            if let (Some(database), Some(locale)) = (&existing.database, &spec.locale)
                && database.collate != locale.as_str()
            {
                return Err(AddonError::FailedPrecondition(format!(
                    "the app's database was created with locale {:?}; a database's locale \
                     cannot change after creation (requested {:?})",
                    database.collate,
                    locale.as_str()
                )));
            }

            let role_created = existing.role.is_none();
            self.upsert_role(conn, &name, &spec.app, &verifier, role_created)
                .await?;
            let database_created = existing.database.is_none();
            let rest = async {
                if database_created {
                    create_database(conn, &name, &spec).await?;
                }
                secure_database(conn, &name, &spec.app).await?;
                self.create_extensions(&name, &spec.extensions).await
            };
            if let Err(error) = rest.await {
                undo(conn, &name, database_created, role_created).await;
                return Err(error);
            }
            Ok(())
        })
        .await?;

        tracing::info!(app_id = %spec.app, name = %name, "provisioned");
        Ok(self.env(&name, password.expose()))
    }

    /// Terminates the app's sessions and drops its database and role. Succeeds when they are
    /// already gone.
    async fn deprovision(&self, app: AppId, _addon: &'static str) -> Result<(), AddonError> {
        let name = app.resource_name();
        self.with_app_lock(&name, async |conn| {
            let existing = existing(conn, &name).await?;
            check_ownership(&existing, &app, &name)?;
            if existing.database.is_some() {
                execute(
                    conn,
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&name)),
                )
                .await
                .map_err(classify)?;
            }
            if existing.role.is_some() {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                )
                .bind(name.as_str())
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
                execute(conn, &format!("DROP ROLE IF EXISTS {}", ident(&name)))
                    .await
                    .map_err(|error| match &error {
                        sqlx::Error::Database(db)
                            if db.code().as_deref() == Some(DEPENDENT_OBJECTS) =>
                        {
                            AddonError::FailedPrecondition(format!(
                                "the app's role {name} still owns objects outside its database \
                                 and was kept; drop them (DROP OWNED BY {name} in each \
                                 database) and retry"
                            ))
                        }
                        _ => classify(error),
                    })?;
            }
            Ok(())
        })
        .await?;
        tracing::info!(app_id = %app, name = %name, "deprovisioned");
        Ok(())
    }

    /// The ids of the apps that have a role or a database here, sorted.
    async fn list(&self) -> Result<Vec<String>, AddonError> {
        let (_turn, mut conn) = self.connection().await?;
        let tags: Vec<(String,)> = sqlx::query_as(
            "SELECT description FROM pg_shdescription \
             WHERE classoid IN ('pg_authid'::regclass, 'pg_database'::regclass) \
               AND starts_with(description, $1)",
        )
        .bind(OWNER_TAG)
        .fetch_all(&mut *conn)
        .await
        .map_err(classify)?;
        let ids: BTreeSet<String> = tags
            .into_iter()
            .filter_map(|(tag,)| tag.strip_prefix(OWNER_TAG).map(str::to_owned))
            .collect();
        Ok(ids.into_iter().collect())
    }
}

impl Provisioner {
    /// A pooled admin connection, after waiting for a turn.
    async fn connection(
        &self,
    ) -> Result<(SemaphorePermit<'_>, PoolConnection<Postgres>), AddonError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AddonError::Unavailable("the service is shutting down".to_owned()))?;
        Ok((permit, self.acquire().await?))
    }

    /// A pooled connection. The pool's timeout alone cannot tell a busy server from a dead
    /// one, so on a timeout the server is asked directly: if it takes a new connection, the
    /// call keeps waiting (its deadline bounds it); if not, it is UNAVAILABLE.
    async fn acquire(&self) -> Result<PoolConnection<Postgres>, AddonError> {
        loop {
            match self.pool.acquire().await {
                Err(sqlx::Error::PoolTimedOut) if self.ping().await => {
                    tracing::warn!("admin connections are slow to come; still waiting");
                }
                result => return result.map_err(classify),
            }
        }
    }

    fn env(&self, name: &ResourceName, password: &str) -> EnvBundle {
        let var = |suffix: &str| self.env_prefix.var(suffix);
        let url = format!(
            "postgres://{name}:{password}@{}:{}/{name}",
            url_host(&self.app_host),
            self.app_port
        );
        EnvBundle::from([
            (var("POSTGRESQL_URL"), url),
            (var("POSTGRESQL_HOST"), self.app_host.clone()),
            (var("POSTGRESQL_PORT"), self.app_port.to_string()),
            (var("POSTGRESQL_USERNAME"), name.to_string()),
            (var("POSTGRESQL_PASSWORD"), password.to_owned()),
            (var("POSTGRESQL_DATABASE"), name.to_string()),
        ])
    }

    /// Runs `work` on one admin connection while holding the app's advisory lock.
    async fn with_app_lock<T>(
        &self,
        name: &ResourceName,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, AddonError>,
    ) -> Result<T, AddonError> {
        let (_turn, mut conn) = self.connection().await?;
        sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
            .bind(LOCK_NAMESPACE)
            .bind(name.as_str())
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
        let result = work(&mut conn).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
            .bind(LOCK_NAMESPACE)
            .bind(name.as_str())
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // Never hand a connection that may still hold the lock back to the pool.
            drop(conn.detach());
        }
        result
    }

    async fn upsert_role(
        &self,
        conn: &mut PgConnection,
        name: &ResourceName,
        app: &AppId,
        verifier: &str,
        create: bool,
    ) -> Result<(), AddonError> {
        let attributes = format!(
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT \
             CONNECTION LIMIT {} PASSWORD {}",
            self.app_connection_limit,
            literal(verifier)
        );
        let mut tx = conn.begin().await.map_err(classify)?;
        if create {
            execute(
                &mut tx,
                &format!("CREATE ROLE {} WITH {attributes}", ident(name)),
            )
            .await
            .map_err(classify)?;
            execute(
                &mut tx,
                &format!(
                    "COMMENT ON ROLE {} IS {}",
                    ident(name),
                    literal(&owner_tag(app))
                ),
            )
            .await
            .map_err(classify)?;
        } else {
            execute(
                &mut tx,
                &format!("ALTER ROLE {} WITH {attributes}", ident(name)),
            )
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(())
    }

    /// Fails with FAILED_PRECONDITION naming every requested extension the server lacks.
    async fn check_extensions_installed(&self, extensions: &[String]) -> Result<(), AddonError> {
        if extensions.is_empty() {
            return Ok(());
        }
        let (_turn, mut conn) = self.connection().await?;
        let available: Vec<(String,)> =
            sqlx::query_as("SELECT name::text FROM pg_available_extensions WHERE name = ANY($1)")
                .bind(extensions)
                .fetch_all(&mut *conn)
                .await
                .map_err(classify)?;
        let missing: Vec<&str> = extensions
            .iter()
            .filter(|wanted| !available.iter().any(|(name,)| name == *wanted))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(AddonError::FailedPrecondition(format!(
                "extension {} is whitelisted but not installed on the PostgreSQL server; \
                 install its package on the server (e.g. postgresql-<version>-pgvector for \
                 vector) or drop it from the app's options",
                missing.join(", ")
            )))
        }
    }

    /// Creates `extensions` in the app's database in one transaction, as the app: through
    /// pgextwlist and its guard scripts (`deploy/postgresql/extension-guard/`), exactly as
    /// when the app creates one itself, so the checks that keep an extension's script from
    /// being steered by the app (its stored search_path, code of its own) hold here too.
    async fn create_extensions(
        &self,
        name: &ResourceName,
        extensions: &[String],
    ) -> Result<(), AddonError> {
        if extensions.is_empty() {
            return Ok(());
        }
        let options = self.admin.clone().database(name.as_str());
        let mut conn =
            tokio::time::timeout(self.connect_timeout, PgConnection::connect_with(&options))
                .await
                .map_err(|_| {
                    AddonError::Unavailable("timed out connecting to the app's database".to_owned())
                })?
                .map_err(classify)?;
        let mut tx = conn.begin().await.map_err(classify)?;
        execute(&mut tx, &format!("SET LOCAL ROLE {}", ident(name)))
            .await
            .map_err(classify)?;
        for extension in extensions {
            let sql = format!(
                "CREATE EXTENSION IF NOT EXISTS {} CASCADE",
                quote_ident(extension)
            );
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(|error| match error {
                    sqlx::Error::Database(db) => AddonError::FailedPrecondition(format!(
                        "cannot create extension {extension}: {}",
                        db.message()
                    )),
                    other => classify(other),
                })?;
        }
        tx.commit().await.map_err(classify)?;
        conn.close().await.map_err(classify)?;
        Ok(())
    }
}

fn owner_tag(app: &AppId) -> String {
    format!("{OWNER_TAG}{app}")
}

async fn existing(conn: &mut PgConnection, name: &ResourceName) -> Result<Existing, AddonError> {
    let role: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
    )
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(classify)?;
    let database: Option<(Option<String>, String, String)> = sqlx::query_as(
        "SELECT shobj_description(d.oid, 'pg_database'), r.rolname::text, d.datcollate::text \
         FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
    )
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(classify)?;
    Ok(Existing {
        role: role.map(|(comment,)| comment),
        database: database.map(|(comment, owner, collate)| ExistingDatabase {
            comment,
            owner,
            collate,
        }),
    })
}

/// Refuses to touch a role or database under the app's name that is not the app's: another
/// app's (a hash collision) or something made outside the fleet.
fn check_ownership(
    existing: &Existing,
    app: &AppId,
    name: &ResourceName,
) -> Result<(), AddonError> {
    let tag = owner_tag(app);
    let refuse = |what: &str| {
        AddonError::FailedPrecondition(format!(
            "a {what} named {name} already exists and does not belong to this app; \
             refusing to share it (an operator must rename or remove it)"
        ))
    };
    if let Some(comment) = &existing.role
        && comment.as_deref() != Some(tag.as_str())
    {
        return Err(refuse("role"));
    }
    if let Some(database) = &existing.database {
        let ours = match &database.comment {
            Some(comment) => *comment == tag,
            // A crash between CREATE DATABASE and COMMENT leaves no comment; the database is
            // still ours if our (tagged) role owns it.
            None => database.owner == name.as_str() && existing.role.is_some(),
        };
        if !ours || database.owner != name.as_str() {
            return Err(refuse("database"));
        }
    }
    Ok(())
}

async fn create_database(
    conn: &mut PgConnection,
    name: &ResourceName,
    spec: &ProvisionSpec,
) -> Result<(), AddonError> {
    let mut sql = format!(
        "CREATE DATABASE {0} OWNER {0} TEMPLATE template0 ENCODING 'UTF8'",
        ident(name)
    );
    if let Some(locale) = &spec.locale {
        let locale = literal(locale.as_str());
        sql.push_str(&format!(" LC_COLLATE {locale} LC_CTYPE {locale}"));
    }
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(|error| match (&error, &spec.locale) {
            (sqlx::Error::Database(db), Some(locale))
                if db.code().as_deref() == Some(INVALID_LOCALE) =>
            {
                AddonError::invalid(
                    "options.postgresql.locale",
                    format!(
                        "locale {:?} is not available on the PostgreSQL server (generate it \
                         there with locale-gen, or use one it has)",
                        locale.as_str()
                    ),
                )
            }
            _ => classify(error),
        })?;
    Ok(())
}

/// Records the owner and shuts every other role out (idempotent, run on every provision).
async fn secure_database(
    conn: &mut PgConnection,
    name: &ResourceName,
    app: &AppId,
) -> Result<(), AddonError> {
    let mut tx = conn.begin().await.map_err(classify)?;
    execute(
        &mut tx,
        &format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(name),
            literal(&owner_tag(app))
        ),
    )
    .await
    .map_err(classify)?;
    execute(
        &mut tx,
        &format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", ident(name)),
    )
    .await
    .map_err(classify)?;
    tx.commit().await.map_err(classify)?;
    Ok(())
}

/// Best-effort removal of what a failed provision created; the original error is what the
/// caller sees, so failures here are only logged.
async fn undo(conn: &mut PgConnection, name: &ResourceName, database: bool, role: bool) {
    if database
        && let Err(error) = execute(
            conn,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(name)),
        )
        .await
    {
        tracing::error!(name = %name, %error, "could not remove the database of a failed provision");
    }
    if role && let Err(error) = execute(conn, &format!("DROP ROLE IF EXISTS {}", ident(name))).await
    {
        tracing::error!(name = %name, %error, "could not remove the role of a failed provision");
    }
}

/// Runs one statement built from derived names and validated values.
async fn execute(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await?;
    Ok(())
}

/// A derived name as an SQL identifier.
fn ident(name: &ResourceName) -> String {
    quote_ident(name.as_str())
}

/// `value` as a quoted SQL identifier.
fn quote_ident(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// `value` as an SQL string literal (`standard_conforming_strings` is on since PostgreSQL 9.1).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident("uuid-ossp"), "\"uuid-ossp\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
