//! What provisioning means for MongoDB: per app a SCRAM-SHA-256 user in the app's own database
//! with `readWrite` on it (and `read` on `local`, the oplog, when asked). The database itself
//! appears with the app's first write. `fleet_meta.apps` records which app owns each name, so a
//! collision is refused and [`AddonBackend::list`] works.

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
use mongodb::{
    Client,
    bson::{Document, doc},
    options::{ClientOptions, ServerAddress},
};

use crate::{
    config::Config,
    error::{classify, code, has_code},
    request::ProvisionSpec,
};

/// Database holding the service's own records; no app name can equal it.
const META_DATABASE: &str = "fleet_meta";

/// Creates and removes apps' users and databases on one MongoDB server.
pub struct Provisioner {
    client: Client,
    master_key: MasterKey,
    env_prefix: EnvPrefix,
    app_host: String,
    app_port: u16,
    /// Serializes calls on one app within this process. Replicas are not kept apart by it:
    /// that needs a lock held in MongoDB itself.
    locks: KeyedLocks,
}

impl Provisioner {
    /// A provisioner for `config`'s server; connects lazily.
    pub async fn new(config: &Config) -> Result<Self, AddonError> {
        let mut options = ClientOptions::parse(config.admin.url.expose())
            .await
            .map_err(|_| {
                AddonError::Unavailable("FLEET_MONGODB_ADMIN_URL cannot be parsed".to_owned())
            })?;
        options.server_selection_timeout = Some(config.admin.connect_timeout);
        options.connect_timeout = Some(config.admin.connect_timeout);
        options.max_pool_size = Some(config.admin.pool_size);
        options.app_name = Some("fleet-mongodb".to_owned());
        if let (Some(password), Some(credential)) =
            (&config.admin.password, options.credential.as_mut())
        {
            credential.password = Some(password.expose().clone());
        }
        let (host, port) = match options.hosts.first() {
            Some(ServerAddress::Tcp { host, port }) => (host.clone(), port.unwrap_or(27017)),
            _ => ("127.0.0.1".to_owned(), 27017),
        };
        Ok(Self {
            client: Client::with_options(options).map_err(classify)?,
            master_key: config.common.master_key.clone(),
            env_prefix: config.common.env_prefix.clone(),
            app_host: config.admin.app_host.clone().unwrap_or(host),
            app_port: config.admin.app_port.unwrap_or(port),
            locks: KeyedLocks::new(),
        })
    }

    fn apps(&self) -> mongodb::Collection<Document> {
        self.client.database(META_DATABASE).collection("apps")
    }

    async fn owner(&self, name: &ResourceName) -> Result<Option<String>, AddonError> {
        let record = self
            .apps()
            .find_one(doc! {"_id": name.as_str()})
            .await
            .map_err(classify)?;
        Ok(record.and_then(|r| r.get_str("app_id").ok().map(str::to_owned)))
    }

    async fn user_exists(&self, name: &ResourceName) -> Result<bool, AddonError> {
        let reply = self
            .client
            .database(name.as_str())
            .run_command(doc! {"usersInfo": name.as_str()})
            .await
            .map_err(classify)?;
        Ok(reply
            .get_array("users")
            .is_ok_and(|users| !users.is_empty()))
    }

    fn env(&self, name: &ResourceName, password: &str, oplog: bool) -> EnvBundle {
        let var = |suffix: &str| self.env_prefix.var(suffix);
        let address = format!("{}:{}", url_host(&self.app_host), self.app_port);
        let mut env = EnvBundle::from([
            (
                var("MONGODB_URL"),
                format!("mongodb://{name}:{password}@{address}/{name}"),
            ),
            (var("MONGODB_HOST"), self.app_host.clone()),
            (var("MONGODB_PORT"), self.app_port.to_string()),
            (var("MONGODB_DATABASE"), name.to_string()),
            (var("MONGODB_USERNAME"), name.to_string()),
            (var("MONGODB_PASSWORD"), password.to_owned()),
        ]);
        if oplog {
            env.insert(
                var("MONGODB_OPLOG_URL"),
                format!("mongodb://{name}:{password}@{address}/local?authSource={name}"),
            );
        }
        env
    }
}

impl AddonBackend for Provisioner {
    const SERVICE: catalog::Service = catalog::MONGODB;
    const BACKEND: Option<&'static str> = Some("MongoDB");
    type Spec = ProvisionSpec;

    /// Creates the app's user (or resets its password and roles) and records the app. Safe
    /// against other replicas provisioning the same app at once: a replica records the owner
    /// before it creates the user, and reads the user before the owner, so a user without a
    /// record is a squatter's; the record's unique `_id` decides who claims a new name, and a
    /// user another replica just created is updated to the same derived password.
    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, AddonError> {
        let name = spec.app.resource_name();
        let _guard = self.locks.lock(name.as_str()).await;
        let password =
            self.master_key
                .derive_password(catalog::MONGODB.name, &spec.app, spec.generation);
        let record = doc! {"_id": name.as_str(), "app_id": spec.app.as_str()};
        let user_existed = self.user_exists(&name).await?;
        let mut claimed = false;
        match self.owner(&name).await?.as_deref() {
            Some(owner) if owner == spec.app.as_str() => {}
            Some(_) => return Err(taken(&name)),
            None if user_existed => return Err(taken(&name)),
            None => match self.apps().insert_one(record.clone()).await {
                Ok(_) => claimed = true,
                // Another replica recorded it meanwhile: ours if it names this app.
                Err(error) if has_code(&error, code::DUPLICATE_KEY) => {
                    if self.owner(&name).await?.as_deref() != Some(spec.app.as_str()) {
                        return Err(taken(&name));
                    }
                }
                Err(error) => return Err(classify(error)),
            },
        }
        let mut roles = vec![doc! {"role": "readWrite", "db": name.as_str()}];
        if spec.oplog {
            roles.push(doc! {"role": "read", "db": "local"});
        }
        let database = self.client.database(name.as_str());
        let user = |verb: &str| {
            doc! {verb: name.as_str(), "pwd": password.expose(), "roles": roles.clone(),
            "mechanisms": ["SCRAM-SHA-256"]}
        };
        let created = match database.run_command(user("createUser")).await {
            Err(error) if has_code(&error, code::USER_ALREADY_EXISTS) => {
                database.run_command(user("updateUser")).await
            }
            other => other,
        };
        if let Err(error) = created {
            if claimed {
                let _ = self.apps().delete_one(record).await;
            }
            return Err(classify(error));
        }
        tracing::info!(app_id = %spec.app, name = %name, oplog = spec.oplog, "provisioned");
        Ok(self.env(&name, password.expose(), spec.oplog))
    }

    /// Drops the app's user and database. Succeeds when they are gone.
    async fn deprovision(&self, app: AppId, _addon: &'static str) -> Result<(), AddonError> {
        let name = app.resource_name();
        let _guard = self.locks.lock(name.as_str()).await;
        match self.owner(&name).await?.as_deref() {
            Some(owner) if owner != app.as_str() => return Err(taken(&name)),
            None if self.user_exists(&name).await? => return Err(taken(&name)),
            None => return Ok(()),
            Some(_) => {}
        }
        let database = self.client.database(name.as_str());
        if let Err(error) = database.run_command(doc! {"dropUser": name.as_str()}).await {
            let gone = matches!(error.kind.as_ref(),
                mongodb::error::ErrorKind::Command(c) if c.code == code::USER_NOT_FOUND);
            if !gone {
                return Err(classify(error));
            }
        }
        database.drop().await.map_err(classify)?;
        self.apps()
            .delete_one(doc! {"_id": name.as_str()})
            .await
            .map_err(classify)?;
        tracing::info!(app_id = %app, name = %name, "deprovisioned");
        Ok(())
    }

    /// The apps recorded here, sorted.
    async fn list(&self) -> Result<Vec<String>, AddonError> {
        let mut cursor = self.apps().find(doc! {}).await.map_err(classify)?;
        let mut ids = Vec::new();
        while cursor.advance().await.map_err(classify)? {
            if let Ok(id) = cursor
                .deserialize_current()
                .map_err(classify)?
                .get_str("app_id")
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Whether the server answers a ping.
    async fn ping(&self) -> bool {
        self.client
            .database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .is_ok()
    }
}

fn taken(name: &ResourceName) -> AddonError {
    AddonError::FailedPrecondition(format!(
        "a MongoDB user named {name} already exists and does not belong to this app; refusing \
         to share it (an operator must rename or remove it)"
    ))
}
