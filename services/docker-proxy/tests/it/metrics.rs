//! The kit's Prometheus metrics as an operator scrapes them from the docker-proxy service:
//! calls by method and status code with their durations, whether the backend answers, and how
//! many apps the service holds.

use std::time::Duration;

use fleet_shared::testkit::{free_port, harness::eventually};
use tonic::Code;

use crate::{escapes::raw, support::*};

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_scrapes_calls_backend_and_apps() {
    let port = free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut proxy = DockerProxy::start_with(&[("FLEET_METRICS_LISTEN", &listen)]).await;
    let (app, _) = proxy.app("metrics").await;
    let refused = proxy.provision("-not an app id", 0).await;
    assert_eq!(
        refused.map_err(|s| s.code()).err(),
        Some(Code::InvalidArgument)
    );
    let host = format!("tcp://{listen}");
    let scrape = || raw(&host, "GET", "/metrics", None);
    let method = "/fleet.addon.v1.Addon/Provision";
    let expected = [
        format!(
            "fleet_grpc_calls_total{{service=\"docker-proxy\",method=\"{method}\",code=\"OK\"}} 1"
        ),
        format!(
            "fleet_grpc_calls_total{{service=\"docker-proxy\",method=\"{method}\",\
             code=\"INVALID_ARGUMENT\"}} 1"
        ),
        format!(
            "fleet_grpc_call_duration_seconds_count{{service=\"docker-proxy\",method=\"{method}\"}} 2"
        ),
        "fleet_backend_up{service=\"docker-proxy\"} 1".to_owned(),
        "fleet_apps{service=\"docker-proxy\"} 1".to_owned(),
    ];
    // Backend and apps are refreshed by the health probe, every 5 s.
    let found = eventually(Duration::from_secs(15), || async {
        let text = scrape();
        expected.iter().all(|line| text.contains(line.as_str()))
    })
    .await;
    let text = scrape();
    assert!(found, "missing from the metrics: {expected:?} in\n{text}");
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(text.contains("application/openmetrics-text"), "{text}");
    assert!(raw(&host, "GET", "/other", None).starts_with("HTTP/1.0 404"));

    deprovision(&mut proxy.client, &app, "docker")
        .await
        .unwrap();
    let gone = eventually(Duration::from_secs(15), || async {
        scrape().contains("fleet_apps{service=\"docker-proxy\"} 0")
    })
    .await;
    assert!(gone, "the app count did not drop: {}", scrape());
}
