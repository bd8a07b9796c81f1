//! proxyAuth is provisioned by the oidc service: a stand-in oidc service (the shared addon kit
//! over a backend that only records its calls) shows what the coordinator sends it for install,
//! start, update and uninstall, and that Deprovision names which of its two addons to remove.

use std::sync::Mutex;

use serde_json::json;
use tonic::Code;

use fleet_shared::{
    AppId,
    addon::{AddonBackend, parse_app_id, serve_addon},
    catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    env_bundle::EnvBundle,
    error::AddonError,
    proto::{
        addon::{OidcOptions, ProvisionRequest, ProxyAuthOptions, provision_request::Options},
        coordinator::{GetFleetStatusRequest, StartAppRequest, UpdateAppRequest},
    },
    server::{GrpcServer, ServeError},
    service::{FleetService, ServiceConfig},
    testkit::harness::{InProcess, TestSecrets, addon_client, deprovision},
};

use crate::support::*;

/// What the stand-in was asked to do for one app.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Provision(Options),
    Deprovision(&'static str),
}

impl Call {
    /// Calls of one coordinator call run concurrently: compared in this order.
    fn key(&self) -> (u8, &'static str) {
        match self {
            Self::Provision(options) => (0, options.addon_name()),
            Self::Deprovision(addon) => (1, addon),
        }
    }
}

/// Every call the stand-in received, with its app id (tests tell theirs apart by app id).
static CALLS: Mutex<Vec<(String, Call)>> = Mutex::new(Vec::new());

/// Takes the calls recorded for `app` so far.
fn take_calls(app: &str) -> Vec<Call> {
    let mut all = CALLS.lock().unwrap();
    let (mine, others): (Vec<_>, Vec<_>) = all.drain(..).partition(|(id, _)| id == app);
    *all = others;
    let mut calls: Vec<Call> = mine.into_iter().map(|(_, call)| call).collect();
    calls.sort_by_key(Call::key);
    calls
}

/// A validated Provision of the stand-in: oidc or proxyAuth options.
struct Spec {
    app: AppId,
    options: Options,
}

impl TryFrom<ProvisionRequest> for Spec {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain: _,
            credential_generation: _,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        match options {
            Some(options @ (Options::Oidc(_) | Options::ProxyAuth(_))) => Ok(Self { app, options }),
            _ => Err(AddonError::invalid("options", "oidc or proxyAuth options")),
        }
    }
}

/// Records every call; answers as a working oidc service would, without a provider.
struct Recorder;

impl AddonBackend for Recorder {
    const SERVICE: catalog::Service = catalog::OIDC;
    const BACKEND: Option<&'static str> = None;
    type Spec = Spec;

    async fn provision(&self, spec: Spec) -> Result<EnvBundle, AddonError> {
        let mut env = EnvBundle::new();
        if let Options::Oidc(_) = spec.options {
            env.insert(
                "CLOUDRON_OIDC_CLIENT_ID".to_owned(),
                spec.app.as_str().to_owned(),
            );
        }
        let call = (spec.app.as_str().to_owned(), Call::Provision(spec.options));
        CALLS.lock().unwrap().push(call);
        Ok(env)
    }

    async fn deprovision(&self, app: AppId, addon: &'static str) -> Result<(), AddonError> {
        let call = (app.as_str().to_owned(), Call::Deprovision(addon));
        CALLS.lock().unwrap().push(call);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, AddonError> {
        Ok(Vec::new())
    }

    async fn ping(&self) -> bool {
        true
    }
}

struct StandInConfig(CommonConfig);

impl ServiceConfig for StandInConfig {
    fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let common = CommonConfig::read(&mut env, catalog::OIDC.default_port);
        env.finish()?;
        common
            .map(Self)
            .ok_or_else(|| ConfigError(vec!["incomplete configuration".to_owned()]))
    }

    fn common(&self) -> &CommonConfig {
        &self.0
    }
}

/// The stand-in oidc service.
struct StandInOidc;

impl FleetService for StandInOidc {
    const BINARY: &'static str = "stand-in-oidc";
    const ENV_PREFIX: &'static str = catalog::OIDC.env;
    type Config = StandInConfig;
    type Error = ServeError;

    async fn serve(
        _config: StandInConfig,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        serve_addon(Recorder, server, shutdown).await
    }
}

async fn update(
    client: &mut Client,
    app: &str,
    manifest: serde_json::Value,
) -> Result<(), tonic::Status> {
    client
        .update_app(UpdateAppRequest {
            app_id: app.to_owned(),
            addons: Some(addons(manifest)),
        })
        .await
        .map(|_| ())
}

fn proxy_auth(path: &str, basic_auth: bool, supports_bearer_auth: bool) -> Call {
    Call::Provision(Options::ProxyAuth(ProxyAuthOptions {
        path: path.to_owned(),
        basic_auth,
        supports_bearer_auth,
    }))
}

fn oidc(login: &str) -> Call {
    Call::Provision(Options::Oidc(OidcOptions {
        login_redirect_uris: vec![login.to_owned()],
        ..OidcOptions::default()
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_auth_is_provisioned_and_removed_through_the_oidc_service() {
    let secrets = TestSecrets::new().unwrap();
    let oidc_service = InProcess::serve::<StandInOidc>(secrets.common_env())
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut env = secrets.common_env();
    for (key, value) in [
        (
            "FLEET_COORDINATOR_OIDC_URL",
            format!("http://{}", oidc_service.addr),
        ),
        (
            "FLEET_COORDINATOR_STATE_URL",
            format!("sqlite://{}", state.path().join("state.db").display()),
        ),
        (
            "FLEET_COORDINATOR_API_ORIGIN",
            "https://my.example.test".to_owned(),
        ),
    ] {
        env.push((key.to_owned(), value));
    }
    let coordinator = InProcess::serve::<fleet_coordinator::Service>(env)
        .await
        .unwrap();
    let mut client = client(coordinator.addr.port(), &secrets.token).await;
    let app = app_id("proxied");

    // Install: both addons go to the oidc service, proxyAuth with the manifest's options.
    let manifest = json!({
        "oidc": {"loginRedirectUri": "/callback"},
        "proxyAuth": {"path": "!/webhooks", "basicAuth": true},
        "tls": {}
    });
    let installed = install(&mut client, &app, manifest.clone()).await.unwrap();
    assert_eq!(installed.env["CLOUDRON_OIDC_CLIENT_ID"], app);
    assert_eq!(
        take_calls(&app),
        [oidc("/callback"), proxy_auth("!/webhooks", true, false)]
    );
    let recorded = get(&mut client, &app).await.unwrap();
    assert_eq!(recorded.provisioned_addons, ["oidc", "proxyAuth"]);
    let recorded_auth = recorded.proxy_auth.unwrap();
    assert_eq!(
        (recorded_auth.path.as_str(), recorded_auth.basic_auth),
        ("!/webhooks", true)
    );
    // A retried install provisions the same again.
    install(&mut client, &app, manifest).await.unwrap();
    assert_eq!(
        take_calls(&app),
        [oidc("/callback"), proxy_auth("!/webhooks", true, false)]
    );

    // Start re-runs both.
    client
        .start_app(StartAppRequest {
            app_id: app.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        take_calls(&app),
        [oidc("/callback"), proxy_auth("!/webhooks", true, false)]
    );

    // Update: changed options are provisioned again; a dropped proxyAuth is removed by name.
    update(
        &mut client,
        &app,
        json!({
            "oidc": {"loginRedirectUri": "/callback"},
            "proxyAuth": {"path": "/admin", "supportsBearerAuth": true}
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        take_calls(&app),
        [oidc("/callback"), proxy_auth("/admin", false, true)]
    );
    update(
        &mut client,
        &app,
        json!({"oidc": {"loginRedirectUri": "/callback"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        take_calls(&app),
        [oidc("/callback"), Call::Deprovision("proxyAuth")]
    );
    let recorded = get(&mut client, &app).await.unwrap();
    assert_eq!(recorded.provisioned_addons, ["oidc"]);
    assert!(recorded.proxy_auth.is_none());
    // proxyAuth cannot come back without a reinstall; nothing is called.
    let refused = update(
        &mut client,
        &app,
        json!({"oidc": {"loginRedirectUri": "/callback"}, "proxyAuth": {}}),
    )
    .await;
    expect_status(
        refused,
        Code::FailedPrecondition,
        "cannot be added to an installed app",
    );
    assert_eq!(take_calls(&app), []);

    // Uninstall removes what is left, by addon name.
    uninstall(&mut client, &app).await.unwrap();
    assert_eq!(take_calls(&app), [Call::Deprovision("oidc")]);

    // proxyAuth alone needs no oidc addon.
    let alone = app_id("proxyalone");
    let installed = install(&mut client, &alone, json!({"proxyAuth": {}}))
        .await
        .unwrap();
    assert!(!installed.env.contains_key("CLOUDRON_OIDC_CLIENT_ID"));
    assert_eq!(take_calls(&alone), [proxy_auth("", false, false)]);
    uninstall(&mut client, &alone).await.unwrap();
    assert_eq!(take_calls(&alone), [Call::Deprovision("proxyAuth")]);

    // The oidc service reports both addons; it is the only service configured here.
    let status = client
        .get_fleet_status(GetFleetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let services: Vec<(&str, &[String])> = status
        .services
        .iter()
        .map(|s| (s.service.as_str(), s.addons.as_slice()))
        .collect();
    assert_eq!(
        services,
        [(
            "oidc",
            ["oidc".to_owned(), "proxyAuth".to_owned()].as_slice()
        )]
    );

    // The service itself refuses to remove an addon it does not serve, naming those it does.
    let mut direct = addon_client(oidc_service.addr.port(), Some(&secrets.token))
        .await
        .unwrap();
    let refused = expect_status(
        deprovision(&mut direct, &alone, "mysql").await,
        Code::InvalidArgument,
        "this service removes resources of \"oidc\", \"proxyAuth\", not \"mysql\"",
    );
    assert!(refused.message().starts_with("addon: "), "{refused:?}");
    assert_eq!(take_calls(&alone), []);

    coordinator.stop().await;
    oidc_service.stop().await;
}
