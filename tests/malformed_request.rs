//! What a request the server cannot decode gets: tonic's decoder refuses it with INTERNAL
//! (its mapping of every protobuf decode error) before any handler or validation runs, and
//! the coordinator records nothing and keeps serving. Pinned here so that a change of that
//! status (say, to INVALID_ARGUMENT) is a deliberate one, with the README changed along.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeMap, fs};

use fleet_shared::{
    proto::coordinator::{
        InstallAppRequest, ListAppsRequest, coordinator_client::CoordinatorClient,
    },
    testkit::harness::InProcess,
};
use prost::bytes::{Buf, BufMut};
use prost_types::{Struct, Value, value::Kind};
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    transport::Channel,
};

const TOKEN: &str = "malformed-request-test-token-0123456789";
const INSTALL_APP: &str = "/fleet.coordinator.v1.Coordinator/InstallApp";

/// A coordinator served in-process on a free port, with no addon service configured (a
/// request that cannot be decoded never gets as far as one).
struct Coordinator {
    server: InProcess,
    _dir: tempfile::TempDir,
}

impl Coordinator {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("master.key"), "m".repeat(48)).unwrap();
        fs::write(dir.path().join("token"), TOKEN).unwrap();
        let path = |file: &str| dir.path().join(file).display().to_string();
        let env = [
            ("FLEET_MASTER_KEY_FILE", path("master.key")),
            ("FLEET_API_TOKEN_FILE", path("token")),
            (
                "FLEET_COORDINATOR_STATE_URL",
                format!("sqlite://{}", path("state.db")),
            ),
            (
                "FLEET_COORDINATOR_API_ORIGIN",
                "https://my.example.test".to_owned(),
            ),
        ]
        .map(|(key, value)| (key.to_owned(), value));
        let server = InProcess::serve::<fleet_coordinator::Service>(env)
            .await
            .unwrap();
        Self { server, _dir: dir }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// `message` with the bearer token callers send.
fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
}

/// A manifest `addons` object whose every level holds the next: `{"a": {"a": ... {}}}`.
fn nested(depth: usize) -> Struct {
    let mut inner = Struct::default();
    for _ in 0..depth {
        inner = Struct {
            fields: BTreeMap::from([(
                "a".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(inner)),
                },
            )]),
        };
    }
    inner
}

/// Sends its bytes as they are and ignores what comes back: what no generated client sends.
#[derive(Clone, Copy)]
struct RawBytes;

impl Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

/// The decoder's refusal: INTERNAL, saying the message could not be decoded.
#[track_caller]
fn expect_undecodable<T: std::fmt::Debug>(result: Result<T, Status>) {
    match result {
        Ok(value) => panic!("an undecodable request succeeded: {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), Code::Internal, "{status:?}");
            assert!(
                status
                    .message()
                    .contains("failed to decode Protobuf message"),
                "{status:?}"
            );
        }
    }
}

/// Nothing was recorded, and the coordinator still answers.
async fn still_serving_and_empty(channel: Channel) {
    let mut client = CoordinatorClient::new(channel);
    let apps = client
        .list_apps(authorized(ListAppsRequest::default()))
        .await
        .expect("ListApps after the malformed request")
        .into_inner();
    assert!(apps.apps.is_empty(), "{apps:?}");
}

#[tokio::test]
async fn a_manifest_nested_200_levels_deep_is_internal() {
    let coordinator = Coordinator::start().await;
    let mut client = CoordinatorClient::new(coordinator.channel().await);
    let result = client
        .install_app(authorized(InstallAppRequest {
            app_id: "deep".to_owned(),
            app_domain: "deep.example.test".to_owned(),
            addons: Some(nested(200)),
        }))
        .await;
    expect_undecodable(result);
    // The control: a shallow manifest gets past the decoder to the coordinator's validation.
    let shallow = client
        .install_app(authorized(InstallAppRequest {
            app_id: "shallow".to_owned(),
            app_domain: "shallow.example.test".to_owned(),
            addons: Some(nested(10)),
        }))
        .await;
    match shallow {
        Err(status) if status.code() == Code::InvalidArgument => {}
        other => panic!("a manifest 10 levels deep: expected INVALID_ARGUMENT, got {other:?}"),
    }
    still_serving_and_empty(coordinator.channel().await).await;
    coordinator.stop().await;
}

#[tokio::test]
async fn bytes_that_are_no_message_are_internal() {
    let coordinator = Coordinator::start().await;
    let mut grpc = tonic::client::Grpc::new(coordinator.channel().await);
    grpc.ready().await.unwrap();
    // Field 1 (app_id) announced as 16 bytes long, followed by one.
    let result = grpc
        .unary(
            authorized(vec![0x0a, 0x10, b'a']),
            PathAndQuery::from_static(INSTALL_APP),
            RawBytes,
        )
        .await;
    expect_undecodable(result);
    still_serving_and_empty(coordinator.channel().await).await;
    coordinator.stop().await;
}
