//! The `fleet.addon.v1.Addon` gRPC service, once for every addon: a service implements
//! [`AddonBackend`] (what provisioning means for its backend) and calls [`serve_addon`], which
//! adds validation of the common fields, the bearer-token check, health tracking of the backend
//! and the rule that backend work runs to completion even if the caller hangs up.

use std::{future::Future, sync::Arc, time::Duration};

use tonic::{Request, Response, Status, server::NamedService, service::Routes};

use crate::{
    AppId, catalog,
    env_bundle::EnvBundle,
    error::{AddonError, Origin},
    proto::addon::{
        DeprovisionRequest, DeprovisionResponse, ListRequest, ListResponse, ProvisionRequest,
        ProvisionResponse,
        addon_server::{Addon, AddonServer},
        provision_request::Options,
    },
    server::{GrpcServer, ServeError, to_completion},
};

/// How often health re-checks that the backend answers.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What one addon service does with its backend.
pub trait AddonBackend: Send + Sync + 'static {
    /// The service's catalog entry: its name is how statuses name the service (see
    /// [`Origin::service`]), its addons are those Deprovision calls may name.
    const SERVICE: catalog::Service;
    /// The backend as UNAVAILABLE messages name it ("PostgreSQL"); see [`Origin::backend`].
    const BACKEND: Option<&'static str>;
    /// A validated Provision request.
    type Spec: TryFrom<ProvisionRequest, Error = AddonError> + Send + 'static;

    /// Creates or updates the app's resources; returns its variables.
    fn provision(
        &self,
        spec: Self::Spec,
    ) -> impl Future<Output = Result<EnvBundle, AddonError>> + Send;
    /// Removes the app's resources and data of `addon`, one of [`AddonBackend::SERVICE`]'s
    /// addons (the catalog's own name, so a service of several can match it); succeeds if they
    /// are gone.
    fn deprovision(
        &self,
        app: AppId,
        addon: &'static str,
    ) -> impl Future<Output = Result<(), AddonError>> + Send;
    /// The apps that have resources here, sorted.
    fn list(&self) -> impl Future<Output = Result<Vec<String>, AddonError>> + Send;
    /// Whether the backend can be reached now.
    fn ping(&self) -> impl Future<Output = bool> + Send;
}

/// A request field that is malformed; services turn it into INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    /// Path of the field in the request, e.g. `options.postgresql.locale`.
    pub field: String,
    /// What is wrong and what would be right.
    pub reason: String,
}

impl InvalidField {
    /// A malformed `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Validates an app id field.
pub fn parse_app_id(app_id: &str) -> Result<AppId, InvalidField> {
    AppId::parse(app_id).map_err(|reason| InvalidField::new("app_id", reason.to_string()))
}

/// Options of an addon `service` does not serve: INVALID_ARGUMENT on `options`, naming what it
/// takes ("this is the oidc service; it takes oidc or proxyAuth options, not mysql").
pub fn foreign_options(service: catalog::Service, options: &Options) -> InvalidField {
    let takes = match service.addons {
        [] => String::from("no"),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    InvalidField::new(
        "options",
        format!(
            "this is the {} service; it takes {takes} options, not {}",
            service.name,
            options.addon_name()
        ),
    )
}

/// An addon whose manifest entry takes no options (`"turn": {}`, `"docker": {}`): what
/// [`OptionlessSpec`] needs to know of it.
pub trait Optionless: Send + 'static {
    /// The service that serves it.
    const SERVICE: catalog::Service;
    /// Whether `options` are this addon's (empty) options.
    fn own(options: &Options) -> bool;
}

/// A validated Provision call of an [`Optionless`] addon `A`: the app and its credential
/// generation; any other addon's options are INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct OptionlessSpec<A> {
    pub app: AppId,
    pub generation: u32,
    addon: std::marker::PhantomData<fn() -> A>,
}

impl<A: Optionless> TryFrom<ProvisionRequest> for OptionlessSpec<A> {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain: _,
            credential_generation,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        if let Some(other) = options.as_ref().filter(|o| !A::own(o)) {
            return Err(foreign_options(A::SERVICE, other).into());
        }
        Ok(Self {
            app,
            generation: credential_generation,
            addon: std::marker::PhantomData,
        })
    }
}

/// Serves `backend` as `fleet.addon.v1.Addon` on `server` until `shutdown`, then drains.
pub async fn serve_addon<B: AddonBackend>(
    backend: B,
    server: GrpcServer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_addon_with(Arc::new(backend), server, Routes::default(), &[], shutdown).await
}

/// Like [`serve_addon`], for a service that serves more than the Addon on its port: `extra`
/// holds its other gRPC services (each wrapped in [`GrpcServer::auth`]), `extra_names` their
/// names. Health reports them all by the one backend's [`AddonBackend::ping`].
pub async fn serve_addon_with<B: AddonBackend>(
    backend: Arc<B>,
    mut server: GrpcServer,
    extra: Routes,
    extra_names: &[&'static str],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let name = <AddonServer<AddonService<B>> as NamedService>::NAME;
    let names: Vec<&'static str> = [name].iter().chain(extra_names).copied().collect();
    let probed = Arc::clone(&backend);
    let metrics = server.metrics();
    server.spawn_health_probe(&names, HEALTH_PROBE_INTERVAL, move || {
        let (probed, metrics) = (Arc::clone(&probed), Arc::clone(&metrics));
        async move {
            let up = probed.ping().await;
            metrics.set_backend_up(up);
            if up && let Ok(apps) = probed.list().await {
                metrics.set_apps(apps.len());
            }
            up
        }
    });
    let service = AddonServer::with_interceptor(AddonService { backend }, server.auth());
    server
        .serve(extra.add_service(service), &names, shutdown)
        .await
}

/// The gRPC face of an [`AddonBackend`]: validate, convert, call, map the error.
struct AddonService<B> {
    backend: Arc<B>,
}

#[tonic::async_trait]
impl<B: AddonBackend> Addon for AddonService<B> {
    async fn provision(
        &self,
        request: Request<ProvisionRequest>,
    ) -> Result<Response<ProvisionResponse>, Status> {
        let spec = B::Spec::try_from(request.into_inner()).map_err(status::<B>)?;
        let backend = Arc::clone(&self.backend);
        let env = to_completion(async move { backend.provision(spec).await })
            .await
            .map_err(|e| status::<B>(e.into()))?
            .map_err(status::<B>)?;
        Ok(Response::new(ProvisionResponse {
            env: env.into_iter().collect(),
        }))
    }

    async fn deprovision(
        &self,
        request: Request<DeprovisionRequest>,
    ) -> Result<Response<DeprovisionResponse>, Status> {
        let DeprovisionRequest { app_id, addon } = request.into_inner();
        let app = parse_app_id(&app_id).map_err(|e| status::<B>(e.into()))?;
        let addon = served_addon(B::SERVICE, &addon).map_err(|e| status::<B>(e.into()))?;
        let backend = Arc::clone(&self.backend);
        to_completion(async move { backend.deprovision(app, addon).await })
            .await
            .map_err(|e| status::<B>(e.into()))?
            .map_err(status::<B>)?;
        Ok(Response::new(DeprovisionResponse {}))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let ListRequest {} = request.into_inner();
        let app_ids = self.backend.list().await.map_err(status::<B>)?;
        Ok(Response::new(ListResponse { app_ids }))
    }
}

/// The catalog's name of `addon` if `service` serves it; else an error listing what it serves.
fn served_addon(service: catalog::Service, addon: &str) -> Result<&'static str, InvalidField> {
    let served = service.addons;
    served.iter().copied().find(|a| *a == addon).ok_or_else(|| {
        let names: Vec<String> = served.iter().map(|a| format!("{a:?}")).collect();
        let reason = format!(
            "this service removes resources of {}, not {addon:?}",
            names.join(", ")
        );
        InvalidField::new("addon", reason)
    })
}

/// `error` as the status `B`'s service answers with.
fn status<B: AddonBackend>(error: AddonError) -> Status {
    error.into_status(Origin {
        service: B::SERVICE.name,
        backend: B::BACKEND,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprovision_names_one_of_the_services_addons() {
        assert_eq!(served_addon(catalog::OIDC, "proxyAuth"), Ok("proxyAuth"));
        assert_eq!(served_addon(catalog::OIDC, "oidc"), Ok("oidc"));
        assert_eq!(served_addon(catalog::MYSQL, "mysql"), Ok("mysql"));
        let refused = served_addon(catalog::OIDC, "mysql").err();
        assert_eq!(
            refused.map(|e| e.to_string()),
            Some(
                "addon: this service removes resources of \"oidc\", \"proxyAuth\", not \"mysql\""
                    .to_owned()
            )
        );
        assert!(
            served_addon(catalog::MYSQL, "MySQL").is_err(),
            "names are exact"
        );
    }

    struct Turn;
    impl Optionless for Turn {
        const SERVICE: catalog::Service = catalog::TURN;
        fn own(options: &Options) -> bool {
            matches!(options, Options::Turn(_))
        }
    }

    #[test]
    fn an_optionless_addon_takes_its_own_empty_options_or_none() {
        let request = |options| ProvisionRequest {
            app_id: "meet".to_owned(),
            app_domain: String::new(),
            credential_generation: 3,
            options,
        };
        let spec = OptionlessSpec::<Turn>::try_from(request(None)).map_err(|e| e.to_string());
        assert_eq!(
            spec.map(|s| (s.app.as_str().to_owned(), s.generation)),
            Ok(("meet".to_owned(), 3))
        );
        assert!(
            OptionlessSpec::<Turn>::try_from(request(Some(Options::Turn(Default::default()))))
                .is_ok()
        );
        let refused =
            OptionlessSpec::<Turn>::try_from(request(Some(Options::Mysql(Default::default()))))
                .map(|_| ())
                .map_err(|e| e.to_string());
        assert_eq!(
            refused,
            Err("options: this is the turn service; it takes turn options, not mysql".to_owned())
        );
    }

    #[test]
    fn foreign_options_name_what_the_service_takes() {
        let mysql = Options::Mysql(Default::default());
        let turn = Options::Turn(Default::default());
        for (service, options, expected) in [
            (catalog::TURN, &mysql, "turn options, not mysql"),
            (
                catalog::OIDC,
                &mysql,
                "oidc or proxyAuth options, not mysql",
            ),
            (
                catalog::MAIL,
                &turn,
                "sendmail, recvmail or email options, not turn",
            ),
        ] {
            let refused = foreign_options(service, options);
            assert_eq!(refused.field, "options");
            assert_eq!(
                refused.reason,
                format!("this is the {} service; it takes {expected}", service.name)
            );
        }
    }
}
