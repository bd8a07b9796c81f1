//! The probe built into every binary (`fleet-<service> probe`), against a real server of the
//! kit served in-process: exit 0 while it reports SERVING, 1 once its backend probe fails or
//! when nothing listens, 1 within the timeout when the port accepts but never answers, 2 for an
//! invalid FLEET_LISTEN; and it needs no secret.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    future::Future,
    net::SocketAddr,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use fleet_shared::{
    config::EnvReader,
    server::{GrpcServer, ServeError},
    service::{FleetService, PROBE_TIMEOUT, probe_with},
    testkit::harness::{CommonOnly, Served, TestSecrets, eventually},
};
use tonic::service::Routes;

/// What the fake backend answers the server's own health probe.
static BACKEND_UP: AtomicBool = AtomicBool::new(true);

/// A server whose backend is [`BACKEND_UP`].
struct Probed;

impl FleetService for Probed {
    const BINARY: &'static str = "fleet-probed";
    const ENV_PREFIX: &'static str = "REDIS";
    type Config = CommonOnly;
    type Error = ServeError;

    fn serve(
        _config: CommonOnly,
        mut server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), ServeError>> + Send {
        server.spawn_health_probe(
            &["fleet.addon.v1.Addon"],
            Duration::from_millis(50),
            || async { BACKEND_UP.load(Ordering::SeqCst) },
        );
        server.serve(Routes::default(), &["fleet.addon.v1.Addon"], shutdown)
    }
}

/// Runs the probe as `fleet-<service> probe` does, with only FLEET_LISTEN=`listen` set (no
/// secret file named, none readable), on a thread of its own (it makes its own runtime).
async fn probe(listen: &str) -> (ExitCode, Duration) {
    let env = vec![("FLEET_LISTEN".to_owned(), listen.to_owned())];
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let code = probe_with("fleet-probed", EnvReader::from_vars("REDIS", env), 50054);
        (code, started.elapsed())
    })
    .await
    .unwrap()
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn probe_exit_codes_follow_the_servers_health() {
    BACKEND_UP.store(true, Ordering::SeqCst);
    let served = Served::start::<Probed>(TestSecrets::new().unwrap(), [])
        .await
        .unwrap();
    let addr: SocketAddr = served.addr();
    // The server listens on 127.0.0.1; a wildcard FLEET_LISTEN (as in the images) is
    // probed on loopback.
    let wildcard = format!("0.0.0.0:{}", addr.port());

    assert!(
        eventually(Duration::from_secs(5), || async {
            probe(&wildcard).await.0 == ExitCode::SUCCESS
        })
        .await,
        "a SERVING server must probe 0"
    );
    assert_eq!(probe(&addr.to_string()).await.0, ExitCode::SUCCESS);

    BACKEND_UP.store(false, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(5), || async {
            probe(&wildcard).await.0 == ExitCode::FAILURE
        })
        .await,
        "a NOT_SERVING server (backend down) must probe 1"
    );

    BACKEND_UP.store(true, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(5), || async {
            probe(&wildcard).await.0 == ExitCode::SUCCESS
        })
        .await,
        "back to SERVING: probe 0 again"
    );

    served.stop().await;
    let (code, _) = probe(&addr.to_string()).await;
    assert_eq!(code, ExitCode::FAILURE, "a stopped server must probe 1");
}

#[tokio::test]
async fn nothing_listening_probes_1_quickly() {
    let (code, took) = probe(&format!("127.0.0.1:{}", free_port())).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(took < PROBE_TIMEOUT, "refused at once, took {took:?}");
}

#[tokio::test]
async fn a_port_that_never_answers_probes_1_within_the_timeout() {
    // Accepts connections (the kernel's backlog) but never speaks HTTP/2.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let (code, took) = probe(&addr.to_string()).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(
        took >= PROBE_TIMEOUT && took < PROBE_TIMEOUT + Duration::from_secs(2),
        "gave up after {took:?}"
    );
    drop(silent);
}

#[tokio::test]
async fn an_invalid_listen_address_probes_2() {
    assert_eq!(probe("not an address").await.0, ExitCode::from(2));
}
