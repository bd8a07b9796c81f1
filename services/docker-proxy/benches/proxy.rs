//! The proxy's overhead against the engine's own socket, on a private dockerd (as root).
//!
//!     cargo bench -p fleet-docker-proxy --bench proxy [-- ROUNDS]
//!
//! The same calls are made ROUNDS times in a row on one kept-alive HTTP/1.1 connection, once
//! to the engine's socket and once to an app's endpoint: `GET /containers/json` (what
//! `docker ps` sends: the proxy checks the endpoint in its table and narrows the filters to the
//! app's labels) and `GET /containers/{id}/json` (what `docker inspect` sends: the proxy also
//! asks the engine whether the container is the app's first). Then `logs -f` throughput: a
//! container writes 8 MiB to stdout (under the engine's log rotation of 10 MB) and exits; its
//! log is read to the end (`follow=1`) once on each path to warm up, then five times each,
//! alternating.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use fleet_shared::{
    proto::addon::{DockerOptions, ProvisionRequest, provision_request::Options},
    testkit::{
        DockerEngine,
        bench::Samples,
        free_port_block,
        harness::{InProcess, TestSecrets, addon_client},
        host::running_as_root,
    },
};
use http_body_util::{BodyExt, Empty};
use hyper::{Request, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

/// Bytes the logging container writes.
const LOG_BYTES: usize = 8 << 20;

fn main() {
    if !running_as_root() {
        eprintln!("SKIPPED: the Docker Engine runs as root");
        return;
    }
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500)
        .max(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = DockerEngine::start().expect("dockerd (deploy/install-deps.sh installs it)");
    runtime.block_on(run(&engine, rounds));
}

type Sender = SendRequest<Empty<Bytes>>;

async fn handshake<T>(io: T) -> Sender
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn direct(engine: &DockerEngine) -> Sender {
    handshake(UnixStream::connect(engine.socket()).await.unwrap()).await
}

async fn proxied(address: &str) -> Sender {
    handshake(TcpStream::connect(address).await.unwrap()).await
}

/// `GET path`, its body read to the end; its length.
async fn get(sender: &mut Sender, path: &str) -> usize {
    let request = Request::get(path)
        .header("host", "docker")
        .body(Empty::new())
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let mut body = response.into_body();
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            length += data.len();
        }
    }
    length
}

async fn timed(sender: &mut Sender, path: &str, rounds: usize) -> Samples {
    let mut samples = Samples::default();
    for _ in 0..rounds {
        samples.time(get(sender, path)).await;
    }
    samples
}

async fn run(engine: &DockerEngine, rounds: usize) {
    let secrets = TestSecrets::new().unwrap();
    let state = tempfile::tempdir().unwrap();
    let first = free_port_block(4).unwrap();
    let mut env = secrets.common_env();
    env.extend(
        [
            (
                "FLEET_DOCKER_PROXY_ENGINE_SOCKET",
                engine.socket().display().to_string(),
            ),
            (
                "FLEET_DOCKER_PROXY_STATE_DIR",
                state.path().display().to_string(),
            ),
            (
                "FLEET_DOCKER_PROXY_ENDPOINT_PORTS",
                format!("{first}-{}", first + 3),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let service = InProcess::serve::<fleet_docker_proxy::Service>(env)
        .await
        .unwrap();
    let mut client = addon_client(service.addr.port(), Some(&secrets.token))
        .await
        .unwrap();
    let env = client
        .provision(ProvisionRequest {
            app_id: "bench".to_owned(),
            app_domain: "bench.example.test".to_owned(),
            credential_generation: 0,
            options: Some(Options::Docker(DockerOptions {})),
        })
        .await
        .unwrap()
        .into_inner()
        .env;
    let address = env["CLOUDRON_DOCKER_HOST"]
        .trim_start_matches("tcp://")
        .to_owned();
    let cli = |args: &[&str]| {
        let output = std::process::Command::new("docker")
            .env("DOCKER_HOST", format!("tcp://{address}"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let id = cli(&["run", "-d", engine.image(), "sleep", "600"]);
    // Other containers on the engine, not the app's, as on a shared engine.
    for _ in 0..10 {
        engine
            .docker(&["create", engine.image(), "true"])
            .expect("a container of someone else");
    }

    println!("Calls ({rounds} each, one kept-alive connection):");
    for (what, path) in [
        (
            "ps (GET /containers/json)",
            "/v1.41/containers/json".to_owned(),
        ),
        (
            "inspect (GET /containers/{id}/json)",
            format!("/v1.41/containers/{id}/json"),
        ),
    ] {
        let mut engine_side = direct(engine).await;
        let mut proxy_side = proxied(&address).await;
        // Warm both paths up.
        timed(&mut engine_side, &path, 10).await;
        timed(&mut proxy_side, &path, 10).await;
        let on_engine = timed(&mut engine_side, &path, rounds).await;
        let through_proxy = timed(&mut proxy_side, &path, rounds).await;
        println!("{}", on_engine.report(&format!("{what}, engine socket")));
        println!("{}", through_proxy.report(&format!("{what}, proxy")));
        println!(
            "  ratio                                {:.2}x",
            through_proxy.ratio_to(&on_engine)
        );
    }

    let script = format!(
        "yes 0123456789abcdef0123456789abcdef0123456789abcdef012345678 | head -c {LOG_BYTES}"
    );
    let writer = cli(&["run", "-d", engine.image(), "sh", "-c", &script]);
    assert_eq!(cli(&["wait", &writer]), "0");
    let path = format!("/v1.41/containers/{writer}/logs?stdout=1&follow=1");
    println!(
        "logs -f of {} MiB (framed stdout), 5 reads each:",
        LOG_BYTES >> 20
    );
    let mut engine_side = direct(engine).await;
    let mut proxy_side = proxied(&address).await;
    get(&mut engine_side, &path).await;
    get(&mut proxy_side, &path).await;
    let (mut on_engine, mut through_proxy) = (Samples::default(), Samples::default());
    let mut length = 0;
    for _ in 0..5 {
        length = on_engine.time(get(&mut engine_side, &path)).await;
        through_proxy.time(get(&mut proxy_side, &path)).await;
    }
    for (what, samples) in [("engine socket", &on_engine), ("proxy", &through_proxy)] {
        let seconds = samples.mean().max(Duration::from_micros(1)).as_secs_f64();
        println!(
            "  {what:<36} {:>8.1} MiB/s ({length} bytes in {:.3} s)",
            length as f64 / f64::from(1 << 20) / seconds,
            seconds
        );
    }
    cli(&["rm", "-f", &id, &writer]);
    service.stop().await;
}
