//! The kit's server under abuse, from a client's side on loopback: connections that say
//! nothing are closed, connections beyond the cap are refused and the server recovers, a call
//! whose body never comes is answered when the request timeout expires, a connection's
//! concurrent streams are capped, and reflection lists exactly what the server serves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    future::Future,
    time::{Duration, Instant},
};

use bytes::Bytes;
use fleet_shared::{
    server::{GrpcServer, ServeError},
    service::FleetService,
    testkit::harness::{CommonOnly, Served, TestSecrets, eventually},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::{service::Routes, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// What an HTTP/2 client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The name the bare server claims to serve (reflection must list it and no other).
const SERVED: &str = "fleet.addon.v1.Addon";

/// A server with nothing of its own: health and reflection only.
struct Bare;

impl FleetService for Bare {
    const BINARY: &'static str = "fleet-bare";
    const ENV_PREFIX: &'static str = "MYSQL";
    type Config = CommonOnly;
    type Error = ServeError;

    fn serve(
        _config: CommonOnly,
        server: GrpcServer,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), ServeError>> + Send {
        server.serve(Routes::default(), &[SERVED], shutdown)
    }
}

/// The bare server with `limits` (`FLEET_*` settings).
async fn serve(limits: &[(&str, &str)]) -> Served {
    let limits = limits
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Served::start::<Bare>(TestSecrets::new().unwrap(), limits)
        .await
        .unwrap()
}

/// Reads until the server closes the connection (EOF or an error); false if it stays open
/// for `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = [0_u8; 1024];
    tokio::time::timeout(within, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                return;
            }
        }
    })
    .await
    .is_ok()
}

async fn health_status(server: &Served) -> Result<i32, String> {
    let channel = Channel::from_shared(format!("http://{}", server.addr()))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|response| response.into_inner().status)
        .map_err(|status| status.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_that_say_nothing_are_closed() {
    let server = serve(&[
        ("FLEET_HANDSHAKE_TIMEOUT_SECS", "1"),
        ("FLEET_IDLE_TIMEOUT_SECS", "2"),
    ])
    .await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    // An HTTP/2 preface and then nothing (and never reading what the server sends).
    let mut prefaces = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(PREFACE).await.unwrap();
        prefaces.push(stream);
    }
    for (i, stream) in silent.iter_mut().chain(prefaces.iter_mut()).enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(8)).await,
            "connection {i} is still open after {:?}",
            started.elapsed()
        );
    }
    // Closed by the timeouts (1 s silent, 2 s after the preface), not at once.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The server serves on.
    assert_eq!(health_status(&server).await, Ok(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_are_closed_and_the_server_recovers() {
    let server = serve(&[("FLEET_MAX_CONNECTIONS", "20")]).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(PREFACE).await.unwrap();
        held.push(stream);
    }
    // Give the server the time to take all twenty.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..30 {
        let mut extra = TcpStream::connect(server.addr()).await.unwrap();
        assert!(
            closed_within(&mut extra, Duration::from_secs(2)).await,
            "connection {} beyond the cap was kept",
            21 + i
        );
    }
    assert!(
        health_status(&server).await.is_err(),
        "served beyond the cap"
    );
    drop(held);
    assert!(
        eventually(Duration::from_secs(5), || async {
            health_status(&server).await == Ok(1)
        })
        .await,
        "the server did not take connections again"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_whose_body_never_comes_is_answered_at_the_request_timeout() {
    let server = serve(&[
        ("FLEET_REQUEST_TIMEOUT_SECS", "1"),
        ("FLEET_MAX_CONCURRENT_STREAMS", "7"),
    ])
    .await;
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let first = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    // Headers, and a body that stays open and empty.
    let (response, _body) = client.send_request(health_check(&server), false).unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "answered after {elapsed:?}"
    );
    let (parts, mut body) = response.into_parts();
    let status = match parts.headers.get("grpc-status") {
        Some(status) => status.clone(),
        None => body
            .trailers()
            .await
            .unwrap()
            .and_then(|trailers| trailers.get("grpc-status").cloned())
            .expect("a grpc-status"),
    };
    assert_ne!(status, "0", "the call succeeded without its body");

    // The limit of concurrent streams, as the server advertises it once its settings arrived
    // (after one whole call).
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut client = client.ready().await.unwrap();
    let (response, mut body) = client.send_request(health_check(&server), false).unwrap();
    body.send_data(Bytes::from_static(EMPTY_MESSAGE), true)
        .unwrap();
    tokio::select! {
        _ = &mut connection => panic!("the connection ended"),
        response = response => assert_eq!(response.unwrap().status(), 200),
    }
    assert_eq!(connection.max_concurrent_send_streams(), 7);
    // Hang up both connections, so that the server's drain does not wait for them.
    first.abort();
    drop((client, connection));
    server.stop().await;
}

/// A gRPC frame holding an empty message: no compression, length 0.
const EMPTY_MESSAGE: &[u8] = &[0, 0, 0, 0, 0];

/// The request head of a health check on `server`.
fn health_check(server: &Served) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/grpc.health.v1.Health/Check",
            server.addr()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_lists_exactly_the_served_services() {
    let server = serve(&[]).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream_of(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a list: {response:?}");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(SERVED), "{names:?}");
    for present in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(names.contains(present), "{present} missing: {names:?}");
    }
    for absent in [
        "fleet.coordinator.v1.Coordinator",
        "fleet.directory.v1.Directory",
    ] {
        assert!(!names.contains(absent), "{absent} listed: {names:?}");
    }
    server.stop().await;
}

/// A request stream of one message.
fn tokio_stream_of(
    request: ServerReflectionRequest,
) -> impl futures::Stream<Item = ServerReflectionRequest> {
    futures::stream::iter([request])
}
