//! The addon services of this deployment, as the coordinator calls them: one lazily connected
//! channel each, calls with deadlines, and health probing.

use std::{collections::BTreeMap, sync::RwLock, time::Duration};

use fleet_shared::{
    AppId,
    auth::SendBearer,
    catalog,
    env_bundle::EnvBundle,
    proto::{
        addon::{
            DeprovisionRequest, ProvisionRequest, addon_client::AddonClient,
            provision_request::Options,
        },
        coordinator::ServiceStatus,
    },
};
use tonic::{
    Request, Status,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::config::{Config, service_url_variable};

/// How long a health probe of one service may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The coordinator's own health name; each addon service's is this, `/`, its name.
pub const HEALTH_NAME: &str = "fleet.coordinator.v1.Coordinator";

/// The name under which the coordinator's health reports addon service `service`
/// (`fleet.coordinator.v1.Coordinator/mysql`).
pub fn health_name(service: &str) -> String {
    format!("{HEALTH_NAME}/{service}")
}

/// The configured addon services.
pub struct Fleet {
    services: BTreeMap<&'static str, Service>,
    timeout: Duration,
}

struct Service {
    endpoint: String,
    addon: AddonClient<InterceptedService<Channel, SendBearer>>,
    health: HealthClient<Channel>,
    /// Last probe: serving, or why not.
    status: RwLock<Result<(), String>>,
}

impl Fleet {
    /// Clients for `config`'s services; nothing is connected until first use.
    pub fn new(config: &Config) -> Result<Self, String> {
        let auth =
            SendBearer::new(Some(config.service_token.expose())).map_err(|e| e.to_string())?;
        let mut services = BTreeMap::new();
        for (name, url) in &config.services {
            let channel = Endpoint::from_shared(url.clone())
                .map_err(|e| format!("the {name} service URL {url:?}: {e}"))?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .connect_lazy();
            services.insert(
                *name,
                Service {
                    endpoint: url.clone(),
                    addon: AddonClient::with_interceptor(channel.clone(), auth.clone()),
                    health: HealthClient::new(channel),
                    status: RwLock::new(Err("not probed yet".to_owned())),
                },
            );
        }
        Ok(Self {
            services,
            timeout: config.call_timeout,
        })
    }

    /// The addons among `addons` whose service this deployment lacks.
    pub fn unserved<'a>(&self, addons: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        addons
            .into_iter()
            .filter(|addon| {
                catalog::service_of(addon).is_none_or(|s| !self.services.contains_key(s.name))
            })
            .collect()
    }

    /// Provisions `addon` for `app` with `options`.
    pub async fn provision(
        &self,
        app: &AppId,
        app_domain: &str,
        addon: &str,
        options: Options,
        generation: u32,
    ) -> Result<EnvBundle, Status> {
        let mut client = self.client(addon)?;
        let mut request = Request::new(ProvisionRequest {
            app_id: app.to_string(),
            app_domain: app_domain.to_owned(),
            credential_generation: generation,
            options: Some(options),
        });
        request.set_timeout(self.timeout);
        let call = client.provision(request);
        let reply = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| Status::deadline_exceeded("no answer within the call deadline"))??;
        Ok(reply.into_inner().env.into_iter().collect())
    }

    /// Removes `addon`'s resources of `app`.
    pub async fn deprovision(&self, app: &AppId, addon: &str) -> Result<(), Status> {
        let mut client = self.client(addon)?;
        let mut request = Request::new(DeprovisionRequest {
            app_id: app.to_string(),
            addon: addon.to_owned(),
        });
        request.set_timeout(self.timeout);
        tokio::time::timeout(self.timeout, client.deprovision(request))
            .await
            .map_err(|_| Status::deadline_exceeded("no answer within the call deadline"))??;
        Ok(())
    }

    fn client(
        &self,
        addon: &str,
    ) -> Result<AddonClient<InterceptedService<Channel, SendBearer>>, Status> {
        let service = catalog::service_of(addon)
            .ok_or_else(|| Status::failed_precondition(format!("no service provisions {addon}")))?;
        self.services
            .get(service.name)
            .map(|configured| configured.addon.clone())
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "no service provisions {addon} here: {} is not set",
                    service_url_variable(service)
                ))
            })
    }

    /// Asks every service's health and remembers each answer (see [`Fleet::statuses`]).
    pub async fn probe(&self) {
        let checks = self.services.iter().map(|(name, service)| async move {
            let mut health = service.health.clone();
            let request = HealthCheckRequest {
                service: "fleet.addon.v1.Addon".to_owned(),
            };
            let answer = tokio::time::timeout(PROBE_TIMEOUT, health.check(request)).await;
            let status = match answer {
                Err(_) => Err("no answer to the health check".to_owned()),
                Ok(Err(status)) => Err(format!("unreachable: {}", status.message())),
                Ok(Ok(reply)) if reply.get_ref().status == ServingStatus::Serving as i32 => Ok(()),
                Ok(Ok(_)) => Err("NOT_SERVING (its backend is down)".to_owned()),
            };
            if let Err(reason) = &status {
                tracing::warn!(service = name, reason, "addon service not serving");
            }
            if let Ok(mut slot) = service.status.write() {
                *slot = status;
            }
        });
        futures::future::join_all(checks).await;
    }

    /// Every configured service with its last probe.
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        self.services
            .iter()
            .map(|(name, service)| {
                let status = service
                    .status
                    .read()
                    .map(|s| s.clone())
                    .unwrap_or_else(|_| Err("status unknown".to_owned()));
                ServiceStatus {
                    service: (*name).to_owned(),
                    addons: catalog::service(name)
                        .map(|s| s.addons.iter().map(|a| (*a).to_owned()).collect())
                        .unwrap_or_default(),
                    endpoint: service.endpoint.clone(),
                    serving: status.is_ok(),
                    detail: status.err().unwrap_or_default(),
                    health_name: health_name(name),
                }
            })
            .collect()
    }
}
