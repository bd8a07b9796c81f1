//! What installing an app means: validate the whole manifest, provision its addons through
//! their services concurrently, combine the bundles, and record the app, undoing everything
//! on failure. Every call on one app holds that app's lock; a record left mid-call (by a
//! failure to undo, or a crash) is settled (finished or undone) at start and before the next
//! call on the app.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use fleet_shared::{
    AppId,
    catalog::{self, INSTALL_ONLY},
    domain::is_domain_name,
    env_bundle::{EnvBundle, EnvPrefix},
    proto::addon::provision_request::Options,
};
use futures::future::join_all;
use prost_types::Struct;

use crate::{
    app_lock::AppLocks,
    config::{self, Runtime},
    error::Error,
    fleet::Fleet,
    limits::{MAX_DOMAIN_BYTES, quote},
    manifest::{Manifest, json},
    store::{AppRecord, AppState, Store, StoredApp},
};

/// ListApps' page size when the caller names none.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// ListApps' largest page; larger requests get this many.
pub const MAX_PAGE_SIZE: usize = 1000;

/// An installed app: its record and its parsed manifest.
#[derive(Debug, Clone)]
pub struct InstalledApp {
    pub record: AppRecord,
    pub manifest: Manifest,
}

/// A stored manifest, parsed once: the `addons` object and what it declares.
#[derive(Debug)]
pub struct ParsedManifest {
    pub addons: Struct,
    pub manifest: Manifest,
}

/// One app as ListApps shows it.
#[derive(Debug)]
pub struct ListedApp {
    pub app_id: String,
    pub app_domain: String,
    /// Its manifest, or why its stored record cannot be read.
    pub manifest: Result<Arc<ParsedManifest>, String>,
}

/// A stored manifest parsed, or why it cannot be.
type Parsed = Result<Arc<ParsedManifest>, String>;

/// One page of ListApps.
#[derive(Debug)]
pub struct AppPage {
    pub apps: Vec<ListedApp>,
    /// The token of the next page; empty on the last.
    pub next_page_token: String,
}

/// The addons provisioned by a service that going from `old` to `new` adds, and those it
/// drops.
pub fn changes(old: &Manifest, new: &Manifest) -> (Vec<&'static str>, Vec<&'static str>) {
    let only_in = |a: &Manifest, b: &Manifest| -> Vec<&'static str> {
        a.provisioned
            .keys()
            .filter(|addon| !b.provisioned.contains_key(*addon))
            .copied()
            .collect()
    };
    (only_in(new, old), only_in(old, new))
}

/// The coordinator's domain.
pub struct Coordinator {
    fleet: Fleet,
    store: Store,
    runtime: Runtime,
    prefix: EnvPrefix,
    /// Serializes calls on one app (across coordinator replicas on PostgreSQL); different
    /// apps proceed in parallel.
    locks: AppLocks,
    /// Stored manifests already parsed, by app id, with the JSON they were parsed from.
    parsed: Mutex<HashMap<String, (serde_json::Value, Parsed)>>,
}

impl Coordinator {
    pub fn new(
        fleet: Fleet,
        store: Store,
        locks: AppLocks,
        runtime: Runtime,
        prefix: EnvPrefix,
    ) -> Self {
        Self {
            fleet,
            store,
            runtime,
            prefix,
            locks,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// The addon services.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Whether the coordinator itself can serve, which is whether its state store answers.
    /// One addon service down only fails the calls that need it.
    pub async fn probe(&self) -> bool {
        self.store.ping().await
    }

    /// Probes the addon services (their states show in GetFleetStatus too); each one's
    /// health name and whether it serves.
    pub async fn probe_services(&self) -> Vec<(String, bool)> {
        self.fleet.probe().await;
        self.fleet
            .statuses()
            .into_iter()
            .map(|status| (status.health_name, status.serving))
            .collect()
    }

    /// Settles every record a previous run left mid-call. Failures are logged and retried
    /// before the next call on that app. A record whose app's lock another coordinator
    /// replica holds is that replica's call under way: it is left alone.
    pub async fn recover(&self) -> Result<(), Error> {
        for app_id in self.store.unsettled().await? {
            let _guard = match self.locks.try_lock(&app_id).await {
                Ok(Some(guard)) => guard,
                Ok(None) => {
                    tracing::info!(
                        app_id,
                        "a call on this app is under way elsewhere; not settling it"
                    );
                    continue;
                }
                Err(error) => {
                    tracing::warn!(app_id, %error, "could not lock an interrupted call's app");
                    continue;
                }
            };
            // Re-read under the lock: the call that was under way may have finished.
            // One unreadable record must not keep the coordinator from starting.
            let record = match self.store.get(&app_id).await {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(error) => {
                    tracing::error!(app_id, %error, "cannot read an interrupted call's record");
                    continue;
                }
            };
            match self.settle(record).await {
                Ok(_) => tracing::info!(app_id, "settled an interrupted call"),
                Err(error) => {
                    tracing::warn!(app_id, %error, "could not settle an interrupted call yet")
                }
            }
        }
        Ok(())
    }

    /// Installs a new app; returns it with its environment. Installing an installed app again
    /// with the same domain and addons (a retry) returns it as installed.
    pub async fn install(
        &self,
        app_id: &str,
        app_domain: &str,
        addons: &Struct,
    ) -> Result<(InstalledApp, EnvBundle), Error> {
        let (app, manifest) = self.validate(app_id, Some(app_domain), addons)?;
        self.check_served(&manifest)?;
        let _guard = self.locks.lock(app.as_str()).await?;
        // A record left by an install that could not be undone is settled first.
        if let Some(leftover) = self.store.get(app.as_str()).await?
            && let Some(installed) = self.settle(leftover).await?
        {
            return self
                .install_again(&app, app_domain, manifest, installed)
                .await;
        }
        let addons_json = json::from_struct(addons);
        if !self
            .store
            .begin_install(app.as_str(), app_domain, &addons_json)
            .await?
        {
            return Err(Error::AlreadyExists(format!(
                "app {app} is already installed"
            )));
        }
        let names: Vec<&str> = manifest.provisioned.keys().copied().collect();
        match self
            .provision_all(&app, app_domain, &manifest.provisioned)
            .await
        {
            Ok(env) => {
                self.store
                    .set(app.as_str(), AppState::Installed, &addons_json, None)
                    .await?;
                tracing::info!(app_id = %app, addons = ?names, "installed");
                let record = self.installed(app.as_str()).await?;
                Ok((record, env))
            }
            Err(error) => {
                if self.deprovision_all(&app, names.iter().copied()).await {
                    self.store.delete(app.as_str()).await?;
                }
                tracing::warn!(app_id = %app, %error, "install failed and was undone");
                Err(error)
            }
        }
    }

    /// A retried install: the installed app and its bundle if `app_domain` and `manifest` are
    /// what it was installed with, ALREADY_EXISTS if not.
    async fn install_again(
        &self,
        app: &AppId,
        app_domain: &str,
        manifest: Manifest,
        record: AppRecord,
    ) -> Result<(InstalledApp, EnvBundle), Error> {
        let same_manifest = self
            .stored_manifest(&record)
            .is_ok_and(|stored| stored == manifest);
        if record.app_domain != app_domain || !same_manifest {
            return Err(Error::AlreadyExists(format!(
                "app {app} is already installed with another domain or other addons; use \
                 UpdateApp to change its addons"
            )));
        }
        let env = self
            .provision_all(app, app_domain, &manifest.provisioned)
            .await?;
        tracing::info!(app_id = %app, "install retried: already installed");
        Ok((InstalledApp { record, manifest }, env))
    }

    /// Applies a new manifest to an installed app: adds, re-provisions, then removes.
    pub async fn update(
        &self,
        app_id: &str,
        addons: &Struct,
    ) -> Result<(InstalledApp, EnvBundle), Error> {
        let (app, new) = self.validate(app_id, None, addons)?;
        let _guard = self.locks.lock(app.as_str()).await?;
        let record = self.settled(&app).await?;
        let old = self.stored_manifest(&record)?;
        let old_names: BTreeSet<&str> = old.names().into_iter().collect();
        let refused: Vec<&str> = new
            .names()
            .into_iter()
            .filter(|name| INSTALL_ONLY.contains(name) && !old_names.contains(name))
            .collect();
        if !refused.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "{} cannot be added to an installed app (the platform decides user management \
                 at install time); reinstall the app to use it",
                refused.join(" and ")
            )));
        }
        self.check_served(&new)?;
        let new_json = json::from_struct(addons);
        self.store
            .set(
                app.as_str(),
                AppState::Updating,
                &record.addons,
                Some(&new_json),
            )
            .await?;
        let (added, removed) = changes(&old, &new);
        let env = match self
            .provision_all(&app, &record.app_domain, &new.provisioned)
            .await
        {
            Ok(env) => env,
            Err(error) => {
                if self.deprovision_all(&app, added.iter().copied()).await {
                    self.store
                        .set(app.as_str(), AppState::Installed, &record.addons, None)
                        .await?;
                }
                return Err(error);
            }
        };
        self.store
            .set(
                app.as_str(),
                AppState::Committing,
                &new_json,
                Some(&record.addons),
            )
            .await?;
        if !self.deprovision_all(&app, removed.into_iter()).await {
            return Err(Error::Incomplete(
                "the new addons are in place but removing a dropped addon failed; it is \
                 retried on the next call for this app"
                    .to_owned(),
            ));
        }
        self.store
            .set(app.as_str(), AppState::Installed, &new_json, None)
            .await?;
        tracing::info!(app_id = %app, added = ?added, "updated");
        Ok((self.installed(app.as_str()).await?, env))
    }

    /// Re-runs every addon's setup; returns the environment to start the app with.
    pub async fn start(&self, app_id: &str) -> Result<(InstalledApp, EnvBundle), Error> {
        let app = parse_app_id(app_id)?;
        let _guard = self.locks.lock(app.as_str()).await?;
        let record = self.settled(&app).await?;
        let manifest = self.stored_manifest(&record)?;
        let env = self
            .provision_all(&app, &record.app_domain, &manifest.provisioned)
            .await?;
        Ok((InstalledApp { record, manifest }, env))
    }

    /// The installed app.
    pub async fn get(&self, app_id: &str) -> Result<InstalledApp, Error> {
        let app = parse_app_id(app_id)?;
        self.installed(app.as_str()).await
    }

    /// One page of installed apps, by app id: at most `page_size` (0: the default), after the
    /// app `page_token` names (empty: from the start). A record that cannot be read is listed
    /// with its problem.
    pub async fn list(&self, page_size: i32, page_token: &str) -> Result<AppPage, Error> {
        let size = match usize::try_from(page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
            Err(_) => return Err(Error::invalid("page_size: must not be negative".to_owned())),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let app_id = decode_token(page_token).ok_or_else(|| {
                Error::invalid(
                    "page_token: not a token from ListApps; pass next_page_token as returned"
                        .to_owned(),
                )
            })?;
            Some(app_id)
        };
        let mut rows = self.store.page(after.as_deref(), size + 1).await?;
        let next_page_token = if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|row| encode_token(&row.app_id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let apps = rows
            .into_iter()
            .map(|row| {
                let manifest = self.parse_cached(&row);
                ListedApp {
                    app_id: row.app_id,
                    app_domain: row.app_domain,
                    manifest,
                }
            })
            .collect();
        Ok(AppPage {
            apps,
            next_page_token,
        })
    }

    /// `row`'s manifest (its stored text), parsed once per stored manifest.
    fn parse_cached(&self, row: &StoredApp) -> Parsed {
        let addons = serde_json::from_str(&row.addons)
            .map_err(|e| format!("the stored manifest is not JSON: {e}"))?;
        self.manifest_of(&row.app_id, &addons)
    }

    /// The manifest `addons` of `app_id` as stored, parsed once: GetApp, StartApp, UpdateApp,
    /// a retried InstallApp and ListApps of an unchanged app reuse it.
    fn manifest_of(&self, app_id: &str, addons: &serde_json::Value) -> Parsed {
        let cached = self.parsed.lock().ok().and_then(|parsed| {
            parsed
                .get(app_id)
                .filter(|(stored, _)| stored == addons)
                .map(|(_, manifest)| manifest.clone())
        });
        cached.unwrap_or_else(|| {
            let parsed = parse_json(addons).map(Arc::new);
            if let Ok(mut cache) = self.parsed.lock() {
                cache.insert(app_id.to_owned(), (addons.clone(), parsed.clone()));
            }
            parsed
        })
    }

    /// Like [`Coordinator::manifest_of`], for a record the coordinator itself validated
    /// when it was installed (an error there is the coordinator's).
    fn stored_manifest(&self, record: &AppRecord) -> Result<Manifest, Error> {
        self.manifest_of(&record.app_id, &record.addons)
            .map(|parsed| parsed.manifest.clone())
            .map_err(Error::Internal)
    }

    /// Removes every addon's resources, then the record. Idempotent.
    pub async fn uninstall(&self, app_id: &str) -> Result<(), Error> {
        let app = parse_app_id(app_id)?;
        let _guard = self.locks.lock(app.as_str()).await?;
        let Some(record) = self.store.get(app.as_str()).await? else {
            return Ok(());
        };
        self.store
            .set(
                app.as_str(),
                AppState::Uninstalling,
                &record.addons,
                record.pending.as_ref(),
            )
            .await?;
        let uninstalling = AppRecord {
            state: AppState::Uninstalling,
            ..record
        };
        match self.settle(uninstalling).await? {
            None => {
                if let Ok(mut cache) = self.parsed.lock() {
                    cache.remove(app.as_str());
                }
                tracing::info!(app_id = %app, "uninstalled");
                Ok(())
            }
            Some(_) => Err(Error::Incomplete(
                "an addon service could not remove the app's resources; retry UninstallApp"
                    .to_owned(),
            )),
        }
    }

    /// Validates the whole request, every problem at once.
    fn validate(
        &self,
        app_id: &str,
        app_domain: Option<&str>,
        addons: &Struct,
    ) -> Result<(AppId, Manifest), Error> {
        let mut problems = Vec::new();
        let mut unlisted = 0;
        let app = AppId::parse(app_id)
            .map_err(|e| problems.push(format!("app_id: {e}")))
            .ok();
        if let Some(domain) = app_domain
            && let Err(reason) = validate_domain(domain)
        {
            problems.push(format!("app_domain: {reason}"));
        }
        let manifest = Manifest::parse(addons)
            .map_err(|found| {
                problems.extend(found.listed.iter().map(ToString::to_string));
                unlisted = found.unlisted;
            })
            .ok();
        match (app, manifest, problems.is_empty()) {
            (Some(app), Some(manifest), true) => Ok((app, manifest)),
            _ => Err(Error::Invalid(problems, unlisted)),
        }
    }

    /// Fails, naming them and the settings that would serve them, if some of `manifest`'s
    /// addons have no service in this deployment.
    fn check_served(&self, manifest: &Manifest) -> Result<(), Error> {
        let unserved = self.fleet.unserved(manifest.provisioned.keys().copied());
        if unserved.is_empty() {
            return Ok(());
        }
        let mut variables: Vec<String> = Vec::new();
        for service in unserved
            .iter()
            .filter_map(|addon| catalog::service_of(addon))
        {
            let variable = config::service_url_variable(service);
            if !variables.contains(&variable) {
                variables.push(variable);
            }
        }
        Err(Error::FailedPrecondition(format!(
            "this deployment has no service for {}: configure {} or drop the addon",
            unserved.join(", "),
            variables.join(", ")
        )))
    }

    /// Provisions every addon concurrently and combines the bundles with the runtime
    /// variables. Fails with the first failing addon (by name) or a variable set twice.
    async fn provision_all(
        &self,
        app: &AppId,
        app_domain: &str,
        addons: &BTreeMap<&'static str, Options>,
    ) -> Result<EnvBundle, Error> {
        let calls = addons.iter().map(|(addon, options)| async move {
            let result = self
                .fleet
                .provision(app, app_domain, addon, options.clone(), 0)
                .await;
            (*addon, result)
        });
        let mut env = self.runtime_env(app_domain);
        let mut origin: BTreeMap<String, &str> =
            env.keys().map(|k| (k.clone(), "runtime")).collect();
        for (addon, result) in join_all(calls).await {
            let bundle = result.map_err(|status| Error::Addon {
                addon: addon.to_owned(),
                status,
            })?;
            for (name, value) in bundle {
                if let Some(other) = origin.insert(name.clone(), addon) {
                    return Err(Error::FailedPrecondition(format!(
                        "{other} and {addon} both set {name}; a deployment's addon services \
                         must not overlap"
                    )));
                }
                env.insert(name, value);
            }
        }
        Ok(env)
    }

    /// Deprovisions `addons` concurrently; whether all succeeded (failures are logged).
    async fn deprovision_all<'a>(
        &self,
        app: &AppId,
        addons: impl Iterator<Item = &'a str>,
    ) -> bool {
        let calls =
            addons.map(|addon| async move { (addon, self.fleet.deprovision(app, addon).await) });
        let mut all = true;
        for (addon, result) in join_all(calls).await {
            if let Err(status) = result {
                tracing::error!(app_id = %app, addon, status = %status.message(), "could not remove an addon");
                all = false;
            }
        }
        all
    }

    /// Finishes or undoes whatever call `record` was left in; the resulting record, `None` if
    /// the app is gone. Fails if a service needed for that is unavailable.
    async fn settle(&self, record: AppRecord) -> Result<Option<AppRecord>, Error> {
        let app = parse_app_id(&record.app_id)?;
        let unfinished = || {
            Error::Incomplete(format!(
                "a previous call on app {app} did not finish and cannot be settled yet (an \
                 addon service is unavailable); retry"
            ))
        };
        match record.state {
            AppState::Installed => Ok(Some(record)),
            AppState::Installing | AppState::Uninstalling => {
                let manifest = parse_stored(&record.addons)?;
                if !self
                    .deprovision_all(&app, manifest.provisioned.keys().copied())
                    .await
                {
                    return Err(unfinished());
                }
                self.store.delete(app.as_str()).await?;
                Ok(None)
            }
            AppState::Updating => {
                let old = parse_stored(&record.addons)?;
                let new = record
                    .pending
                    .as_ref()
                    .map(parse_stored)
                    .transpose()?
                    .unwrap_or_default();
                let (added, _) = changes(&old, &new);
                if !self.deprovision_all(&app, added.into_iter()).await {
                    return Err(unfinished());
                }
                self.store
                    .set(app.as_str(), AppState::Installed, &record.addons, None)
                    .await?;
                Ok(self.store.get(app.as_str()).await?)
            }
            AppState::Committing => {
                let new = parse_stored(&record.addons)?;
                let old = record
                    .pending
                    .as_ref()
                    .map(parse_stored)
                    .transpose()?
                    .unwrap_or_default();
                let (_, removed) = changes(&old, &new);
                if !self.deprovision_all(&app, removed.into_iter()).await {
                    return Err(unfinished());
                }
                self.store
                    .set(app.as_str(), AppState::Installed, &record.addons, None)
                    .await?;
                Ok(self.store.get(app.as_str()).await?)
            }
        }
    }

    /// The app's record, settled; NOT_FOUND if it is not installed.
    async fn settled(&self, app: &AppId) -> Result<AppRecord, Error> {
        let record = self.store.get(app.as_str()).await?;
        let record = match record {
            Some(record) => self.settle(record).await?,
            None => None,
        };
        record.ok_or_else(|| Error::NotFound(format!("app {app} is not installed")))
    }

    async fn installed(&self, app_id: &str) -> Result<InstalledApp, Error> {
        match self.store.get(app_id).await? {
            Some(record) if record.state != AppState::Installing => {
                let manifest = self.stored_manifest(&record)?;
                Ok(InstalledApp { record, manifest })
            }
            _ => Err(Error::NotFound(format!("app {app_id} is not installed"))),
        }
    }

    fn runtime_env(&self, app_domain: &str) -> EnvBundle {
        let var = |suffix: &str| self.prefix.var(suffix);
        EnvBundle::from([
            (self.prefix.as_str().to_owned(), "1".to_owned()),
            (var("APP_DOMAIN"), app_domain.to_owned()),
            (
                var("APP_ORIGIN"),
                format!("{}://{app_domain}", self.runtime.app_scheme),
            ),
            (var("API_ORIGIN"), self.runtime.api_origin.clone()),
            (var("PROXY_IP"), self.runtime.proxy_ip.clone()),
            (var("WEBADMIN_ORIGIN"), self.runtime.webadmin_origin.clone()),
        ])
    }
}

fn parse_app_id(app_id: &str) -> Result<AppId, Error> {
    AppId::parse(app_id).map_err(|e| Error::invalid(format!("app_id: {e}")))
}

/// A manifest of a record mid-call (its installed or pending one), validated when it was
/// stored; settling is rare, so these are not kept (see [`Coordinator::manifest_of`]).
fn parse_stored(addons: &serde_json::Value) -> Result<Manifest, Error> {
    parse_json(addons)
        .map(|parsed| parsed.manifest)
        .map_err(Error::Internal)
}

fn parse_json(addons: &serde_json::Value) -> Result<ParsedManifest, String> {
    let addons = json::to_struct(addons)
        .ok_or_else(|| "the stored manifest is not a JSON object".to_owned())?;
    let manifest = Manifest::parse(&addons).map_err(|problems| {
        let first = problems
            .listed
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        format!(
            "the stored manifest no longer validates ({} problem(s)): {first}",
            problems.total()
        )
    })?;
    Ok(ParsedManifest { addons, manifest })
}

/// The opaque page token after `app_id`: its bytes in hex.
fn encode_token(app_id: &str) -> String {
    app_id.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The app id a page token names, if it is one.
fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) || token.len() > 2 * fleet_shared::app_id::MAX_APP_ID_LEN {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let app_id = String::from_utf8(bytes).ok()?;
    AppId::parse(&app_id).ok().map(|_| app_id)
}

/// A DNS name: labels of letters, digits and '-', dot-separated, at most 253 characters.
fn validate_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        Err("is required: the app's primary domain, e.g. chat.example.com".to_owned())
    } else if domain.len() > MAX_DOMAIN_BYTES {
        Err(format!(
            "is {} bytes; a domain name has at most {MAX_DOMAIN_BYTES}",
            domain.len()
        ))
    } else if !is_domain_name(domain) {
        Err(format!(
            "{} is not a domain name (dot-separated labels of letters, digits and '-', each \
             at most 63 characters)",
            quote(domain)
        ))
    } else {
        Ok(())
    }
}
