//! The addon services of this deployment, as the coordinator calls them. A service is a list of
//! URLs (`FLEET_COORDINATOR_<SERVICE>_URL`); each http URL's host is resolved to all its
//! addresses (compose's DNS answers a scaled service's name with every replica), re-resolved
//! every few seconds and at once when every known replica failed, with one lazily connected
//! channel per address. Calls go round-robin over the replicas, those that failed lately
//! last; Provision and Deprovision are idempotent, so one that fails as UNAVAILABLE (or whose
//! connection breaks mid-call) is retried on the next replica within the call's deadline.

use std::{
    collections::{BTreeMap, HashSet},
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

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
    Code, Request, Status,
    codegen::http::Uri,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    config::{Config, ServiceUrl, ServiceUrls, service_url_variable},
    limits::truncate,
};

/// How long a health probe of one replica may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a service's host names are resolved again (replicas added or removed).
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a replica whose call failed is tried after the others.
const FAILED_PENALTY: Duration = Duration::from_secs(5);
/// How much of a relayed status message a retry's log line keeps.
const LOGGED_MESSAGE_BYTES: usize = 200;

/// The coordinator's own health name; each addon service's is this, `/`, its name.
pub const HEALTH_NAME: &str = "fleet.coordinator.v1.Coordinator";

/// The name under which the coordinator's health reports addon service `service`
/// (`fleet.coordinator.v1.Coordinator/mysql`).
pub fn health_name(service: &str) -> String {
    format!("{HEALTH_NAME}/{service}")
}

type Addon = AddonClient<InterceptedService<Channel, SendBearer>>;

/// The configured addon services.
pub struct Fleet {
    services: BTreeMap<&'static str, Service>,
    timeout: Duration,
}

/// One addon service: its URLs and the replicas they resolved to.
struct Service {
    name: &'static str,
    urls: ServiceUrls,
    auth: SendBearer,
    replicas: RwLock<Vec<Arc<Replica>>>,
    /// When the URLs were last resolved, and why some could not be.
    resolved: Mutex<Option<Resolved>>,
    /// One resolution at a time; the others use its result.
    resolving: tokio::sync::Mutex<()>,
    /// Where the next call starts in the replica list.
    next: AtomicUsize,
}

struct Resolved {
    at: Instant,
    problem: Option<String>,
}

/// One replica: an address (or, for https and `localhost`, the URL itself) and its channel.
struct Replica {
    /// The address as logged and shown: `10.0.0.7:50052`, or `localhost:50052`.
    address: String,
    addon: Addon,
    health: HealthClient<Channel>,
    /// When a call to it last failed as unavailable.
    failed_at: Mutex<Option<Instant>>,
    /// Last probe: serving, or why not.
    status: RwLock<Result<(), String>>,
}

impl Replica {
    fn failed_lately(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < FAILED_PENALTY)
            || self
                .status
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_err()
    }

    fn mark(&self, failed: bool) {
        *self
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failed.then(Instant::now);
    }
}

/// Where a URL leads: addresses to connect to, or the URL itself for the connector to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Address(SocketAddr),
    Url,
}

impl Fleet {
    /// Clients for `config`'s services; nothing is resolved or connected until first use.
    pub fn new(config: &Config) -> Result<Self, String> {
        let auth =
            SendBearer::new(Some(config.service_token.expose())).map_err(|e| e.to_string())?;
        let services = config
            .services
            .iter()
            .map(|(name, urls)| {
                (
                    *name,
                    Service {
                        name,
                        urls: urls.clone(),
                        auth: auth.clone(),
                        replicas: RwLock::new(Vec::new()),
                        resolved: Mutex::new(None),
                        resolving: tokio::sync::Mutex::new(()),
                        next: AtomicUsize::new(0),
                    },
                )
            })
            .collect();
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

    /// Provisions `addon` for `app` with `options`, on the first replica that answers.
    pub async fn provision(
        &self,
        app: &AppId,
        app_domain: &str,
        addon: &str,
        options: Options,
        generation: u32,
    ) -> Result<EnvBundle, Status> {
        let request = ProvisionRequest {
            app_id: app.to_string(),
            app_domain: app_domain.to_owned(),
            credential_generation: generation,
            options: Some(options),
        };
        let reply = self
            .service(addon)?
            .call(self.timeout, |mut client, remaining| {
                let mut request = Request::new(request.clone());
                request.set_timeout(remaining);
                async move { client.provision(request).await }
            })
            .await?;
        Ok(reply.into_inner().env.into_iter().collect())
    }

    /// Removes `addon`'s resources of `app`, on the first replica that answers.
    pub async fn deprovision(&self, app: &AppId, addon: &str) -> Result<(), Status> {
        let request = DeprovisionRequest {
            app_id: app.to_string(),
            addon: addon.to_owned(),
        };
        self.service(addon)?
            .call(self.timeout, |mut client, remaining| {
                let mut request = Request::new(request.clone());
                request.set_timeout(remaining);
                async move { client.deprovision(request).await }
            })
            .await?;
        Ok(())
    }

    fn service(&self, addon: &str) -> Result<&Service, Status> {
        let service = catalog::service_of(addon)
            .ok_or_else(|| Status::failed_precondition(format!("no service provisions {addon}")))?;
        self.services.get(service.name).ok_or_else(|| {
            Status::failed_precondition(format!(
                "no service provisions {addon} here: {} is not set",
                service_url_variable(service)
            ))
        })
    }

    /// Resolves every service's URLs again if that is due, then asks every replica's health
    /// and remembers each answer (see [`Fleet::statuses`]).
    pub async fn probe(&self) {
        let checks = self.services.values().map(|service| async move {
            service.resolve(false).await;
            service.probe().await;
        });
        futures::future::join_all(checks).await;
    }

    /// Every configured service with its last probe: serving when at least one replica is.
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        self.services
            .iter()
            .map(|(name, service)| {
                let (serving, detail) = service.summary();
                ServiceStatus {
                    service: (*name).to_owned(),
                    addons: catalog::service(name)
                        .map(|s| s.addons.iter().map(|a| (*a).to_owned()).collect())
                        .unwrap_or_default(),
                    endpoint: service.urls.configured.clone(),
                    serving,
                    detail,
                    health_name: health_name(name),
                }
            })
            .collect()
    }
}

impl Service {
    /// Runs `call` on one replica after another (round-robin, replicas that failed lately
    /// last) until one answers with anything but UNAVAILABLE, each replica at most once plus
    /// those a fresh resolution finds, all within `timeout`.
    async fn call<T, F, Fut>(&self, timeout: Duration, mut call: F) -> Result<T, Status>
    where
        F: FnMut(Addon, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + timeout;
        self.resolve(false).await;
        let mut tried: HashSet<String> = HashSet::new();
        let mut resolved_again = false;
        let mut last: Option<Status> = None;
        loop {
            let next = self
                .candidates()
                .into_iter()
                .find(|replica| !tried.contains(&replica.address));
            let Some(replica) = next else {
                if !resolved_again {
                    // Every known replica failed: the service may have moved (`--scale`, a
                    // restarted container with a new address).
                    resolved_again = true;
                    self.resolve(true).await;
                    continue;
                }
                return Err(self.all_failed(tried.len(), last));
            };
            tried.insert(replica.address.clone());
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Status::deadline_exceeded(
                    "no answer within the call deadline",
                ));
            }
            let answer = tokio::time::timeout(remaining, call(replica.addon.clone(), remaining))
                .await
                .unwrap_or_else(|_| {
                    Err(Status::deadline_exceeded(
                        "no answer within the call deadline",
                    ))
                });
            match answer {
                Err(status) if retryable(&status) => {
                    replica.mark(true);
                    tracing::warn!(
                        service = self.name,
                        address = %replica.address,
                        code = ?status.code(),
                        message = truncate(status.message(), LOGGED_MESSAGE_BYTES),
                        "addon service replica unavailable; trying the next one"
                    );
                    last = Some(status);
                }
                answer => {
                    replica.mark(false);
                    return answer;
                }
            }
        }
    }

    /// The error when no replica answered: UNAVAILABLE naming the service.
    fn all_failed(&self, tried: usize, last: Option<Status>) -> Status {
        match last {
            Some(status) => Status::unavailable(format!(
                "the {} service did not answer ({tried} replica(s) of {} tried): {}",
                self.name,
                self.urls.configured,
                status.message()
            )),
            None => {
                let problem = self
                    .resolved
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .and_then(|resolved| resolved.problem.clone())
                    .unwrap_or_else(|| "no addresses".to_owned());
                Status::unavailable(format!(
                    "the {} service has no replica at {}: {problem}",
                    self.name, self.urls.configured
                ))
            }
        }
    }

    /// The replicas in the order a call tries them: round-robin from the next one, those that
    /// failed lately (or whose last probe failed) last.
    fn candidates(&self) -> Vec<Arc<Replica>> {
        let mut replicas = self
            .replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if !replicas.is_empty() {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % replicas.len();
            replicas.rotate_left(start);
        }
        // Stable: the round-robin order holds within each group.
        replicas.sort_by_key(|replica| replica.failed_lately());
        replicas
    }

    /// Resolves the URLs to addresses, keeping the channels of addresses still present, if
    /// that has not been done within [`RESOLVE_INTERVAL`] (or at all), or when `now`.
    async fn resolve(&self, now: bool) {
        let due = |resolved: &Option<Resolved>| {
            resolved
                .as_ref()
                .is_none_or(|r| r.at.elapsed() >= RESOLVE_INTERVAL)
        };
        let started = Instant::now();
        if !now && !due(&self.resolved.lock().unwrap_or_else(PoisonError::into_inner)) {
            return;
        }
        let _one = self.resolving.lock().await;
        // Someone else may have resolved while this call waited.
        let fresh = self
            .resolved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|r| r.at >= started);
        if fresh || (!now && !due(&self.resolved.lock().unwrap_or_else(PoisonError::into_inner))) {
            return;
        }
        let lookups = self.urls.urls.iter().map(|url| async move {
            (url, tokio::time::timeout(PROBE_TIMEOUT, targets(url)).await)
        });
        let old = self
            .replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut replicas: Vec<Arc<Replica>> = Vec::new();
        let mut problems = Vec::new();
        for (url, found) in futures::future::join_all(lookups).await {
            let found = found
                .map_err(|_| "name lookup timed out".to_owned())
                .and_then(|found| found);
            let targets = match found {
                Ok(targets) => targets,
                Err(problem) => {
                    tracing::warn!(service = self.name, url = %url.origin(), %problem, "cannot resolve an addon service's URL");
                    problems.push(format!("{}: {problem}", url.origin()));
                    // Keep what this URL resolved to before: a DNS hiccup is not a scale-down.
                    old.iter()
                        .filter(|replica| replica_of(url, &replica.address))
                        .for_each(|replica| push_new(&mut replicas, Arc::clone(replica)));
                    continue;
                }
            };
            for target in targets {
                let address = address_of(url, &target);
                let replica = match old.iter().find(|replica| replica.address == address) {
                    Some(replica) => Arc::clone(replica),
                    None => match self.replica(url, &target, address) {
                        Ok(replica) => Arc::new(replica),
                        Err(problem) => {
                            problems.push(problem);
                            continue;
                        }
                    },
                };
                push_new(&mut replicas, replica);
            }
        }
        let before: Vec<&str> = old.iter().map(|r| r.address.as_str()).collect();
        let after: Vec<&str> = replicas.iter().map(|r| r.address.as_str()).collect();
        if before != after {
            tracing::info!(service = self.name, replicas = ?after, "addon service replicas");
        }
        *self
            .replicas
            .write()
            .unwrap_or_else(PoisonError::into_inner) = replicas;
        *self.resolved.lock().unwrap_or_else(PoisonError::into_inner) = Some(Resolved {
            at: Instant::now(),
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        });
    }

    /// A replica of `url` at `target`, with its (lazily connected) channel.
    fn replica(
        &self,
        url: &ServiceUrl,
        target: &Target,
        address: String,
    ) -> Result<Replica, String> {
        let origin = url.origin();
        let endpoint = match target {
            Target::Url => Endpoint::from_shared(origin.clone()),
            Target::Address(addr) => Endpoint::from_shared(format!("http://{addr}")).map(|e| {
                // Requests keep naming the host as configured (`:authority`), whatever
                // address they go to.
                match origin.parse::<Uri>() {
                    Ok(uri) => e.origin(uri),
                    Err(_) => e,
                }
            }),
        }
        .map_err(|e| format!("the {} service URL {origin}: {e}", self.name))?;
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // A replica that vanished without closing its connections is noticed.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Replica {
            address,
            addon: AddonClient::with_interceptor(channel.clone(), self.auth.clone()),
            health: HealthClient::new(channel),
            failed_at: Mutex::new(None),
            status: RwLock::new(Err("not probed yet".to_owned())),
        })
    }

    /// Asks every replica's health.
    async fn probe(&self) {
        let replicas = self
            .replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let checks = replicas.into_iter().map(|replica| async move {
            let mut health = replica.health.clone();
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
                tracing::warn!(service = self.name, address = %replica.address, reason, "addon service replica not serving");
            }
            *replica
                .status
                .write()
                .unwrap_or_else(PoisonError::into_inner) = status;
        });
        futures::future::join_all(checks).await;
    }

    /// Whether the service serves (one replica is enough) and how many replicas do.
    fn summary(&self) -> (bool, String) {
        let replicas = self
            .replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let statuses: Vec<Result<(), String>> = replicas
            .iter()
            .map(|replica| {
                replica
                    .status
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            })
            .collect();
        let serving = statuses.iter().filter(|status| status.is_ok()).count();
        let mut detail = format!("{serving} of {} replicas serving", statuses.len());
        if serving == 0 {
            let reason = statuses
                .iter()
                .find_map(|status| status.as_ref().err().cloned())
                .or_else(|| {
                    self.resolved
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .as_ref()
                        .map(|resolved| {
                            resolved
                                .problem
                                .clone()
                                .unwrap_or_else(|| "no addresses".to_owned())
                        })
                })
                .unwrap_or_else(|| "not probed yet".to_owned());
            detail.push_str(&format!(": {reason}"));
        }
        (serving > 0, detail)
    }
}

/// Whether a failed call may be retried on another replica: the service said UNAVAILABLE, or
/// the call never got a status from it (connection refused or reset, the replica gone mid-call:
/// tonic keeps the transport error as the status' source, a status sent by a server has none).
fn retryable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Cancelled | Code::Internal => {
            std::error::Error::source(status).is_some()
        }
        _ => false,
    }
}

/// What `url` leads to: its host's every address for http (an IP literal is one), the URL
/// itself for https (the TLS name stays the host) and `localhost` (whose IPv6 and IPv4
/// addresses are one server, not two replicas).
async fn targets(url: &ServiceUrl) -> Result<Vec<Target>, String> {
    if url.https || url.host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![Target::Url]);
    }
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return Ok(vec![Target::Address(SocketAddr::new(ip, url.port))]);
    }
    let mut addresses: Vec<SocketAddr> = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(format!("{} resolves to no address", url.host));
    }
    Ok(addresses.into_iter().map(Target::Address).collect())
}

/// How a replica of `url` at `target` is named in logs, statuses and the replica list.
fn address_of(url: &ServiceUrl, target: &Target) -> String {
    match target {
        Target::Address(addr) => format!("{}={addr}", url.origin()),
        Target::Url => url.origin(),
    }
}

/// Whether the replica named `address` came from `url`.
fn replica_of(url: &ServiceUrl, address: &str) -> bool {
    let origin = url.origin();
    address == origin
        || address
            .strip_prefix(&origin)
            .is_some_and(|rest| rest.starts_with('='))
}

fn push_new(replicas: &mut Vec<Arc<Replica>>, replica: Arc<Replica>) {
    if !replicas.iter().any(|r| r.address == replica.address) {
        replicas.push(replica);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn url(https: bool, host: &str, port: u16) -> ServiceUrl {
        ServiceUrl {
            https,
            host: host.to_owned(),
            port,
        }
    }

    #[tokio::test]
    async fn urls_resolve_to_their_replicas() {
        let ip = url(false, "127.0.0.1", 7);
        assert_eq!(
            targets(&ip).await.unwrap(),
            [Target::Address("127.0.0.1:7".parse().unwrap())]
        );
        let v6 = url(false, "::1", 7);
        assert_eq!(
            targets(&v6).await.unwrap(),
            [Target::Address("[::1]:7".parse().unwrap())]
        );
        assert_eq!(
            targets(&url(false, "localhost", 7)).await.unwrap(),
            [Target::Url]
        );
        assert_eq!(
            targets(&url(true, "127.0.0.1", 7)).await.unwrap(),
            [Target::Url]
        );
        let error = targets(&url(false, "no-such-host.invalid", 7))
            .await
            .unwrap_err();
        assert!(
            error.contains("cannot resolve no-such-host.invalid"),
            "{error}"
        );
        let address = address_of(&ip, &targets(&ip).await.unwrap()[0]);
        assert_eq!(address, "http://127.0.0.1:7=127.0.0.1:7");
        assert!(replica_of(&ip, &address));
        assert!(!replica_of(&url(false, "127.0.0.1", 70), &address));
    }

    fn service(ports: &[u16]) -> Service {
        let configured = ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        Service {
            name: "postgresql",
            urls: crate::config::parse_service_urls("X", &configured).unwrap(),
            auth: SendBearer::new(Some("token")).unwrap(),
            replicas: RwLock::new(Vec::new()),
            resolved: Mutex::new(None),
            resolving: tokio::sync::Mutex::new(()),
            next: AtomicUsize::new(0),
        }
    }

    fn order(service: &Service) -> Vec<String> {
        service
            .candidates()
            .iter()
            .map(|replica| replica.address.rsplit(':').next().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn calls_go_round_robin_and_a_failed_replica_goes_last() {
        let service = service(&[1, 2, 3]);
        service.resolve(false).await;
        for replica in service.replicas.read().unwrap().iter() {
            *replica.status.write().unwrap() = Ok(());
        }
        assert_eq!(order(&service), ["1", "2", "3"]);
        assert_eq!(order(&service), ["2", "3", "1"]);
        assert_eq!(order(&service), ["3", "1", "2"]);
        service.replicas.read().unwrap()[1].mark(true);
        assert_eq!(order(&service), ["1", "3", "2"]);
        assert_eq!(order(&service), ["3", "1", "2"]);
        service.replicas.read().unwrap()[1].mark(false);
        assert_eq!(order(&service), ["3", "1", "2"]);
        // A replica whose health probe failed goes last too.
        *service.replicas.read().unwrap()[0].status.write().unwrap() = Err("down".to_owned());
        assert_eq!(order(&service), ["2", "3", "1"]);
    }

    #[tokio::test]
    async fn resolving_again_keeps_the_channels_of_addresses_still_there() {
        let service = service(&[1, 2]);
        service.resolve(false).await;
        let before = service.replicas.read().unwrap().clone();
        service.resolve(true).await;
        let after = service.replicas.read().unwrap().clone();
        assert_eq!(after.len(), 2);
        assert!(before.iter().zip(&after).all(|(a, b)| Arc::ptr_eq(a, b)));
        // Not due yet: nothing is resolved.
        let at = service.resolved.lock().unwrap().as_ref().unwrap().at;
        service.resolve(false).await;
        assert_eq!(service.resolved.lock().unwrap().as_ref().unwrap().at, at);
        let (serving, detail) = service.summary();
        assert!(!serving);
        assert_eq!(detail, "0 of 2 replicas serving: not probed yet");
    }

    #[test]
    fn only_unavailable_and_transport_failures_are_retried() {
        assert!(retryable(&Status::unavailable("backend down")));
        assert!(!retryable(&Status::unknown("the service's own unknown")));
        assert!(!retryable(&Status::invalid_argument("bad")));
        assert!(!retryable(&Status::deadline_exceeded("late")));
        let reset = Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )));
        assert!(retryable(&reset), "{reset:?}");
    }
}
