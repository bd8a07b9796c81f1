//! The addon contract's conformance suite: what every addon service must do, checked against
//! its real backend through the service's gRPC face and the backend's own client.
//!
//! An addon crate implements [`Fixture`] (how to reach its backend, its options, how an app
//! writes and reads a value with its bundle, how to squat its resource name, how to cut the
//! backend off) and calls [`addon_conformance!`](crate::addon_conformance) in its integration
//! tests; every check below then runs as a test of that crate.

// Assertions fail tests the way tests fail: by panicking.
#![allow(clippy::panic, clippy::expect_used)]

use std::{collections::HashMap, future::Future, time::Duration};

use futures::future::join_all;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use super::harness::{
    Served, TestSecrets, captured_logs, deprovision, eventually, list, provision, unique_app_id,
};
use crate::{
    proto::addon::{ProvisionRequest, provision_request::Options},
    service::FleetService,
};

/// An app's variables, as Provision returns them.
pub type Env = HashMap<String, String>;

/// What the suite needs to know about one addon service and its backend.
pub trait Fixture: Send + Sync + Sized + 'static {
    /// The service under test.
    type Service: FleetService;
    /// The addon's name (`postgresql`), as Deprovision takes it.
    const ADDON: &'static str;
    /// Why two replicas of the service cannot share one backend, if they cannot: the replica
    /// check then says so (on stderr) instead of running.
    const NO_REPLICAS: Option<&'static str> = None;
    /// Whether an app can store data in its resource (not with a read-only bind account):
    /// then "data kept" is checked by value, else only that the credentials get in.
    const STORES_DATA: bool = true;

    /// A fixture whose backend can be cut off without disturbing other tests (for example the
    /// shared backend behind a [`super::CuttableProxy`] of its own).
    fn start() -> impl Future<Output = Self> + Send;
    /// The service's own settings (the suite adds the master key and the token).
    fn service_env(&self) -> Vec<(String, String)>;
    /// This addon's options in a Provision (`None`: the defaults).
    fn options(&self) -> Option<Options>;
    /// Options of another addon, which the service must refuse.
    fn foreign_options(&self) -> Options;
    /// With the backend's own client and the app's variables, stores `value` in the app's
    /// resource (only gets in, when it cannot store: see [`Fixture::STORES_DATA`]).
    fn write(&self, env: &Env, value: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// With the backend's own client and the app's variables, the value stored (`None` when
    /// it cannot store); an error when the variables do not get the app in.
    fn read(&self, env: &Env) -> impl Future<Output = Result<Option<String>, String>> + Send;
    /// Creates, directly in the backend, what holds the name the service would give
    /// `app_id`'s resource, as someone else would have.
    fn squat(&self, app_id: &str) -> impl Future<Output = ()> + Send;
    /// Whether that squatter is as [`Fixture::squat`] left it.
    fn squat_intact(&self, app_id: &str) -> impl Future<Output = bool> + Send;
    /// The backend becomes unreachable for the service.
    fn cut_backend(&self) -> impl Future<Output = ()> + Send;
    /// The backend is reachable again.
    fn restore_backend(&self) -> impl Future<Output = ()> + Send;
    /// Secrets of the service (admin passwords) no message may contain.
    fn secrets(&self) -> Vec<String>;
}

/// The service of `fixture`, served in-process with fresh secrets.
async fn serve<F: Fixture>(fixture: &F) -> Served {
    serve_with(fixture, TestSecrets::new().expect("secret files")).await
}

async fn serve_with<F: Fixture>(fixture: &F, secrets: TestSecrets) -> Served {
    Served::start::<F::Service>(secrets, fixture.service_env())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", F::ADDON))
}

/// Fails unless `env` gets the app in and (where the addon stores data) finds `value`.
async fn assert_finds<F: Fixture>(fixture: &F, env: &Env, value: &str, what: &str) {
    let found = fixture.read(env).await;
    let expected = F::STORES_DATA.then(|| value.to_owned());
    assert_eq!(found, Ok(expected), "{what}");
}

fn request<F: Fixture>(fixture: &F, app_id: &str, generation: u32) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app_id.to_owned(),
        app_domain: "app.example.test".to_owned(),
        credential_generation: generation,
        options: fixture.options(),
    }
}

/// Fails unless `result` is an error with `code`.
#[track_caller]
fn expect_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, what: &str) {
    match result {
        Err(status) if status.code() == code => {}
        other => panic!("{what}: expected {code:?}, got {other:?}"),
    }
}

/// No token or a wrong one: UNAUTHENTICATED for every Addon call, nothing created; health
/// and reflection answer without a token.
pub async fn calls_need_the_token<F: Fixture>() {
    let fixture = F::start().await;
    let served = serve(&fixture).await;
    let app = unique_app_id("noauth");
    for token in [None, Some("wrong-token-0123456789")] {
        let mut client = served.client_with_token(token).await;
        expect_code(
            provision(&mut client, request(&fixture, &app, 0)).await,
            Code::Unauthenticated,
            "Provision",
        );
        expect_code(
            deprovision(&mut client, &app, F::ADDON).await,
            Code::Unauthenticated,
            "Deprovision",
        );
        expect_code(list(&mut client).await, Code::Unauthenticated, "List");
    }
    assert!(served.health().await.is_some(), "health needs no token");
    let listed = list(&mut served.client().await).await.expect("List");
    assert!(
        !listed.contains(&app),
        "created without a token: {listed:?}"
    );
    served.stop().await;
}

/// Another addon's options, an unknown addon on Deprovision, malformed and hostile app ids:
/// INVALID_ARGUMENT, and nothing created.
pub async fn bad_input_is_invalid_and_creates_nothing<F: Fixture>() {
    let fixture = F::start().await;
    let served = serve(&fixture).await;
    let mut client = served.client().await;
    let app = unique_app_id("invalid");
    let mut foreign = request(&fixture, &app, 0);
    foreign.options = Some(fixture.foreign_options());
    expect_code(
        provision(&mut client, foreign).await,
        Code::InvalidArgument,
        "another addon's options",
    );
    for addon in ["no-such-addon", fixture.foreign_options().addon_name()] {
        expect_code(
            deprovision(&mut client, &app, addon).await,
            Code::InvalidArgument,
            &format!("Deprovision of {addon}"),
        );
    }
    let hostile = ["../x", "a;b", &"x".repeat(65), "äpp", "", "a b", "x'; --"];
    for id in hostile {
        expect_code(
            provision(&mut client, request(&fixture, id, 0)).await,
            Code::InvalidArgument,
            &format!("Provision of app id {id:?}"),
        );
        expect_code(
            deprovision(&mut client, id, F::ADDON).await,
            Code::InvalidArgument,
            &format!("Deprovision of app id {id:?}"),
        );
    }
    let listed = list(&mut client).await.expect("List");
    for id in hostile.iter().chain([&app.as_str()]) {
        assert!(
            !listed.iter().any(|l| l == id),
            "{id:?} created: {listed:?}"
        );
    }
    served.stop().await;
}

/// Provision twice: the same bundle, data kept. A new credential generation: the old
/// credentials stop working, the new ones work, data kept.
pub async fn provision_is_idempotent_and_rotation_replaces_the_credentials<F: Fixture>() {
    let fixture = F::start().await;
    let served = serve(&fixture).await;
    let mut client = served.client().await;
    let app = unique_app_id("rotate");
    let first = provision(&mut client, request(&fixture, &app, 0))
        .await
        .expect("Provision");
    fixture.write(&first, "kept").await.expect("the app writes");
    let again = provision(&mut client, request(&fixture, &app, 0))
        .await
        .expect("Provision again");
    assert_eq!(first, again, "a second Provision changed the bundle");
    assert_finds(&fixture, &again, "kept", "after a second Provision").await;

    let rotated = provision(&mut client, request(&fixture, &app, 1))
        .await
        .expect("Provision of generation 1");
    assert_ne!(first, rotated, "rotation left the bundle as it was");
    assert!(
        fixture.read(&first).await.is_err(),
        "the old credentials still work after rotation"
    );
    assert_finds(&fixture, &rotated, "kept", "with the rotated credentials").await;
    assert_not_logged(
        secret_values(&first)
            .into_iter()
            .chain(secret_values(&rotated)),
    );
    deprovision(&mut client, &app, F::ADDON)
        .await
        .expect("Deprovision");
    served.stop().await;
}

/// 50 concurrent Provisions of one app and of 50 apps: all succeed, one resource each.
pub async fn concurrent_provisions_all_succeed<F: Fixture>() {
    let fixture = F::start().await;
    let served = serve(&fixture).await;
    let client = served.client().await;
    let app = unique_app_id("same");
    let same = join_all((0..50).map(|_| {
        let mut client = client.clone();
        let request = request(&fixture, &app, 0);
        async move { provision(&mut client, request).await }
    }))
    .await;
    let envs: Vec<Env> = same
        .into_iter()
        .map(|r| r.expect("a concurrent Provision of one app"))
        .collect();
    assert!(envs.windows(2).all(|w| w[0] == w[1]), "bundles differ");

    let apps: Vec<String> = (0..50).map(|_| unique_app_id("many")).collect();
    let many = join_all(apps.iter().map(|app| {
        let mut client = client.clone();
        let request = request(&fixture, app, 0);
        async move { provision(&mut client, request).await }
    }))
    .await;
    for (app, result) in apps.iter().zip(many) {
        result.unwrap_or_else(|e| panic!("Provision of {app}: {e:?}"));
    }
    let listed = list(&mut client.clone()).await.expect("List");
    for app in apps.iter().chain([&app]) {
        let count = listed.iter().filter(|l| *l == app).count();
        assert_eq!(count, 1, "{app} listed {count} times");
    }
    let removed = join_all(apps.iter().chain([&app]).map(|app| {
        let mut client = client.clone();
        async move { deprovision(&mut client, app, F::ADDON).await }
    }))
    .await;
    assert!(removed.iter().all(Result::is_ok), "{removed:?}");
    served.stop().await;
}

/// Two replicas of the service on one backend provisioning the same app at once: every call
/// succeeds with the same bundle (what keeps them apart must not be in one process).
pub async fn two_replicas_agree<F: Fixture>() {
    if let Some(reason) = F::NO_REPLICAS {
        eprintln!(
            "{}: runs as one replica only ({reason}); not checked",
            F::ADDON
        );
        return;
    }
    let fixture = F::start().await;
    let one = serve(&fixture).await;
    let secrets = TestSecrets::new().expect("secret files");
    for file in ["master.key", "token"] {
        std::fs::copy(one.secrets.path(file), secrets.path(file)).expect("copy a secret");
    }
    let two = serve_with(&fixture, secrets).await;
    let clients = [one.client().await, two.client().await];
    for round in 0..5 {
        let app = unique_app_id("replicas");
        let results = join_all((0..10).map(|i| {
            let mut client = clients[i % 2].clone();
            let request = request(&fixture, &app, 0);
            async move { provision(&mut client, request).await }
        }))
        .await;
        let envs: Vec<Env> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("round {round}: {e:?}")))
            .collect();
        assert!(
            envs.windows(2).all(|w| w[0] == w[1]),
            "round {round}: bundles differ"
        );
        let mut client = clients[0].clone();
        deprovision(&mut client, &app, F::ADDON)
            .await
            .expect("Deprovision");
    }
    one.stop().await;
    two.stop().await;
}

/// A name held by something the service did not create: FAILED_PRECONDITION for Provision
/// and Deprovision, and the squatter untouched.
pub async fn a_squatted_name_is_refused_and_left_alone<F: Fixture>() {
    let fixture = F::start().await;
    let served = serve(&fixture).await;
    let mut client = served.client().await;
    let app = unique_app_id("squat");
    fixture.squat(&app).await;
    expect_code(
        provision(&mut client, request(&fixture, &app, 0)).await,
        Code::FailedPrecondition,
        "Provision onto a squatted name",
    );
    assert!(
        fixture.squat_intact(&app).await,
        "Provision touched the squatter"
    );
    expect_code(
        deprovision(&mut client, &app, F::ADDON).await,
        Code::FailedPrecondition,
        "Deprovision of a squatted name",
    );
    assert!(
        fixture.squat_intact(&app).await,
        "Deprovision touched the squatter"
    );
    let listed = list(&mut client).await.expect("List");
    assert!(
        !listed.contains(&app),
        "the squatter is listed as the app's"
    );
    served.stop().await;
}

/// Deprovision twice succeeds; afterwards the app's credentials fail and List no longer
/// names it.
pub async fn deprovision_is_idempotent_and_final<F: Fixture>() {
    let fixture = F::start().await;
    let served = serve(&fixture).await;
    let mut client = served.client().await;
    let app = unique_app_id("gone");
    let env = provision(&mut client, request(&fixture, &app, 0))
        .await
        .expect("Provision");
    fixture.write(&env, "doomed").await.expect("the app writes");
    assert!(list(&mut client).await.expect("List").contains(&app));
    for round in 0..2 {
        deprovision(&mut client, &app, F::ADDON)
            .await
            .unwrap_or_else(|e| panic!("Deprovision {round}: {e:?}"));
    }
    assert!(
        fixture.read(&env).await.is_err(),
        "the app's credentials still work after Deprovision"
    );
    assert!(!list(&mut client).await.expect("List").contains(&app));
    served.stop().await;
}

/// The values of an app's variables that hold a secret: passwords, secrets, and URLs that
/// carry credentials (`scheme://user:password@host`).
fn secret_values(env: &Env) -> Vec<String> {
    env.iter()
        .filter(|(name, value)| {
            name.contains("PASSWORD")
                || name.contains("SECRET")
                || (name.contains("URL") && value.contains('@'))
        })
        .map(|(_, value)| value.clone())
        .collect()
}

/// Fails if a log line of this process holds one of `secrets` (at least 8 characters long,
/// so a port number or a short word is never taken for one).
#[track_caller]
fn assert_not_logged(secrets: impl IntoIterator<Item = String>) {
    let logs = captured_logs();
    for secret in secrets.into_iter().filter(|s| s.len() >= 8) {
        assert!(!logs.contains(&secret), "a secret was logged");
    }
}

/// The backend cut off: UNAVAILABLE with no secret in the message or the logs, health
/// NOT_SERVING; back: SERVING again and Provision works, without restarting the service.
pub async fn a_backend_outage_is_unavailable_and_recovers<F: Fixture>() {
    let fixture = F::start().await;
    let served = serve(&fixture).await;
    let mut client = served.client().await;
    let before = unique_app_id("outage");
    let env = provision(&mut client, request(&fixture, &before, 0))
        .await
        .expect("Provision before the outage");
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    assert!(
        eventually(Duration::from_secs(20), || async {
            served.health().await == Some(serving)
        })
        .await,
        "not SERVING with the backend up"
    );

    fixture.cut_backend().await;
    let during = unique_app_id("outage");
    let failed = provision(&mut client, request(&fixture, &during, 0)).await;
    match &failed {
        Err(status) if status.code() == Code::Unavailable => {
            let message = status.message();
            let secrets = fixture.secrets().into_iter().chain(secret_values(&env));
            for secret in secrets.filter(|s| s.len() >= 8) {
                assert!(!message.contains(&secret), "a secret in {message:?}");
            }
        }
        other => panic!("Provision during the outage: expected UNAVAILABLE, got {other:?}"),
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            served.health().await == Some(not_serving)
        })
        .await,
        "health is not NOT_SERVING during the outage"
    );

    fixture.restore_backend().await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            served.health().await == Some(serving)
        })
        .await,
        "health is not SERVING again after the outage"
    );
    let after = provision(&mut client, request(&fixture, &during, 0))
        .await
        .expect("Provision after the outage");
    assert_not_logged(
        fixture
            .secrets()
            .into_iter()
            .chain(secret_values(&env))
            .chain(secret_values(&after)),
    );
    for app in [&before, &during] {
        deprovision(&mut client, app, F::ADDON)
            .await
            .expect("Deprovision");
    }
    served.stop().await;
}

/// Runs the whole suite for a [`Fixture`] as tests of the calling crate, in a module
/// `contract`: `fleet_shared::addon_conformance!(MyFixture);`
#[macro_export]
macro_rules! addon_conformance {
    ($fixture:ty) => {
        mod contract {
            use super::*;
            use $crate::testkit::conformance as suite;

            #[tokio::test(flavor = "multi_thread")]
            async fn calls_need_the_token() {
                suite::calls_need_the_token::<$fixture>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn bad_input_is_invalid_and_creates_nothing() {
                suite::bad_input_is_invalid_and_creates_nothing::<$fixture>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn provision_is_idempotent_and_rotation_replaces_the_credentials() {
                suite::provision_is_idempotent_and_rotation_replaces_the_credentials::<$fixture>()
                    .await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn concurrent_provisions_all_succeed() {
                suite::concurrent_provisions_all_succeed::<$fixture>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn two_replicas_agree() {
                suite::two_replicas_agree::<$fixture>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn a_squatted_name_is_refused_and_left_alone() {
                suite::a_squatted_name_is_refused_and_left_alone::<$fixture>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn deprovision_is_idempotent_and_final() {
                suite::deprovision_is_idempotent_and_final::<$fixture>().await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn a_backend_outage_is_unavailable_and_recovers() {
                suite::a_backend_outage_is_unavailable_and_recovers::<$fixture>().await;
            }
        }
    };
}
