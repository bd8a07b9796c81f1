//! What provisioning means here: an endpoint of the app's own (a port of this service, in
//! `CLOUDRON_DOCKER_HOST`) through which it manages its own containers on the engine.
//! Deprovision closes the endpoint and force-removes every container the app made.

use std::{
    ops::RangeInclusive,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use fleet_shared::{
    AppId,
    addon::AddonBackend,
    catalog,
    env_bundle::{EnvBundle, EnvPrefix, url_host},
    error::AddonError,
    keyed_lock::KeyedLocks,
};

use crate::{
    engine::Labelled,
    listeners::Listeners,
    proxy::Proxy,
    request::ProvisionSpec,
    store::{Endpoints, Put},
};

/// Gives apps endpoints and takes them away.
pub struct Provisioner {
    proxy: Arc<Proxy>,
    listeners: Arc<Listeners>,
    endpoints: Endpoints,
    locks: KeyedLocks,
    prefix: EnvPrefix,
    endpoint_host: String,
    ports: RangeInclusive<u16>,
    /// Whether the last health check passed, so a change is logged once.
    healthy: AtomicBool,
}

impl Provisioner {
    /// The provisioner of the endpoints in `endpoints`, served by `listeners`, reached by
    /// apps at `endpoint_host` on a port of `ports`.
    pub fn new(
        proxy: Arc<Proxy>,
        listeners: Arc<Listeners>,
        endpoints: Endpoints,
        prefix: EnvPrefix,
        endpoint_host: String,
        ports: RangeInclusive<u16>,
    ) -> Self {
        Self {
            proxy,
            listeners,
            endpoints,
            locks: KeyedLocks::new(),
            prefix,
            endpoint_host,
            ports,
            healthy: AtomicBool::new(true),
        }
    }

    /// `app`'s containers on the engine, and those labelled with its id that the proxy did not
    /// make (no valid seal): FAILED_PRECONDITION, as a name someone else holds.
    async fn containers_of(&self, app: &AppId) -> Result<Vec<Labelled>, AddonError> {
        let seal = self.proxy.seal(app);
        let labelled = self.proxy.engine().labelled(Some(app.as_str())).await?;
        let foreign: Vec<&str> = labelled
            .iter()
            .filter(|c| c.seal.as_deref() != Some(seal.as_str()))
            .map(|c| short_id(&c.id))
            .collect();
        if !foreign.is_empty() {
            return Err(AddonError::FailedPrecondition(format!(
                "containers labelled as {app}'s that the Docker proxy did not create are on the \
                 engine ({}); remove them or their label, then retry. Nothing was changed",
                foreign.join(", ")
            )));
        }
        Ok(labelled)
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

impl AddonBackend for Provisioner {
    const SERVICE: catalog::Service = catalog::DOCKER_PROXY;
    const BACKEND: Option<&'static str> = Some("the Docker Engine");
    type Spec = ProvisionSpec;

    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, AddonError> {
        let app = spec.app;
        let _held = self.locks.lock(app.as_str()).await;
        self.proxy.refresh_network().await?;
        self.containers_of(&app).await?;
        let put = self
            .endpoints
            .put(&app, spec.generation, self.ports.clone(), |port| {
                self.listeners.bind(port)
            })
            .await?;
        let endpoint = match put {
            Put::Kept(endpoint) => {
                self.listeners.ensure(&endpoint);
                endpoint
            }
            Put::Made(endpoint, listener) => {
                self.listeners.start(endpoint.clone(), listener);
                endpoint
            }
        };
        self.listeners.close_app(app.as_str(), Some(endpoint.port));
        let mut env = EnvBundle::new();
        env.insert(
            self.prefix.var("DOCKER_HOST"),
            format!("tcp://{}:{}", url_host(&self.endpoint_host), endpoint.port),
        );
        Ok(env)
    }

    async fn deprovision(&self, app: AppId, _addon: &'static str) -> Result<(), AddonError> {
        let _held = self.locks.lock(app.as_str()).await;
        let containers = self.containers_of(&app).await?;
        self.endpoints.remove(&app).await?;
        self.listeners.close_app(app.as_str(), None);
        for container in &containers {
            self.proxy.engine().remove_container(&container.id).await?;
        }
        // A create that was already with the engine when the endpoint closed lands now.
        for container in self.containers_of(&app).await? {
            self.proxy.engine().remove_container(&container.id).await?;
        }
        tracing::info!(app = %app, removed = containers.len(), "app's endpoint and containers removed");
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, AddonError> {
        let mut apps: Vec<String> = self
            .endpoints
            .all()
            .await?
            .into_iter()
            .map(|e| e.app)
            .collect();
        for container in self.proxy.engine().labelled(None).await? {
            let sealed = AppId::parse(&container.app)
                .is_ok_and(|app| container.seal.as_deref() == Some(self.proxy.seal(&app).as_str()));
            if sealed {
                apps.push(container.app);
            }
        }
        apps.sort();
        apps.dedup();
        Ok(apps)
    }

    async fn ping(&self) -> bool {
        let reason = match (
            self.proxy.refresh_network().await,
            self.endpoints.ping().await,
        ) {
            (Ok(()), true) => None,
            (Err(error), _) => Some(error.to_string()),
            (Ok(()), false) => Some("the endpoints' table cannot be read".to_owned()),
        };
        let healthy = reason.is_none();
        if self.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            match reason {
                Some(reason) => tracing::warn!(%reason, "NOT_SERVING"),
                None => tracing::info!("SERVING again"),
            }
        }
        healthy
    }
}
