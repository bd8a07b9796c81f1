//! The docker addon through the real docker-proxy service (in-process) on the kit's private
//! Docker Engine: InstallApp hands out `CLOUDRON_DOCKER_HOST`, through which the real `docker`
//! CLI runs the app's containers, and UninstallApp removes them from the engine and closes the
//! endpoint: the service no longer lists the app, while another app's container and endpoint
//! stay. Refused options reach no service.

use std::process::Output;

use serde_json::json;
use tonic::Code;

use fleet_shared::testkit::{
    DockerEngine, free_port_block,
    harness::{InProcess, TestSecrets, addon_client, list},
};

use crate::support::*;

/// Endpoint ports the service gets.
const PORTS: u16 = 16;

/// The docker-proxy service on the shared engine and a coordinator routing the docker addon to
/// it, with one master key and token.
struct Fleet {
    coordinator: Coordinator,
    proxy: InProcess,
    engine: &'static DockerEngine,
    /// The first and last of the service's endpoint ports.
    ports: (u16, u16),
    secrets: TestSecrets,
}

impl Fleet {
    async fn start() -> Self {
        let engine = DockerEngine::shared().expect("dockerd (deploy/install-deps.sh installs it)");
        let secrets = TestSecrets::new().unwrap();
        let state = secrets.path("docker-proxy-state");
        std::fs::create_dir_all(&state).unwrap();
        let first = free_port_block(PORTS).unwrap();
        let ports = (first, first + PORTS - 1);
        let mut env = secrets.common_env();
        // As services/docker-proxy/tests/it/support.rs `Layout::env`, without bind mounts.
        env.extend(
            [
                (
                    "FLEET_DOCKER_PROXY_ENGINE_SOCKET",
                    engine.socket().display().to_string(),
                ),
                ("FLEET_DOCKER_PROXY_STATE_DIR", state.display().to_string()),
                (
                    "FLEET_DOCKER_PROXY_ENDPOINT_PORTS",
                    format!("{}-{}", ports.0, ports.1),
                ),
                (
                    "FLEET_DOCKER_PROXY_NETWORK",
                    "fleet-coordinator-apps".to_owned(),
                ),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        let proxy = InProcess::serve::<fleet_docker_proxy::Service>(env)
            .await
            .unwrap();
        let proxy_url = format!("http://{}", proxy.addr);
        let coordinator = Coordinator::start_for(
            &secrets,
            &[("FLEET_COORDINATOR_DOCKER_PROXY_URL", &proxy_url)],
        )
        .await;
        Self {
            coordinator,
            proxy,
            engine,
            ports,
            secrets,
        }
    }

    /// The app ids the docker-proxy service holds endpoints or containers for, asked over its
    /// own gRPC port.
    async fn listed(&self) -> Vec<String> {
        let mut client = addon_client(self.proxy.addr.port(), Some(&self.secrets.token))
            .await
            .unwrap();
        list(&mut client).await.unwrap()
    }

    /// The ids of the containers on the engine itself labelled as `app`'s.
    fn engine_containers_of(&self, app: &str) -> Vec<String> {
        let output = self
            .engine
            .docker(&[
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &format!("label=fleet.docker.app={app}"),
            ])
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
        stdout_of(&output).lines().map(str::to_owned).collect()
    }

    async fn stop(self) {
        self.coordinator.stop().await;
        self.proxy.stop().await;
    }
}

/// Runs the real `docker` CLI with `args` on `host` (an app's `CLOUDRON_DOCKER_HOST`), with a
/// configuration directory of its own. The CLI blocks while the proxy serves it on this
/// runtime: run off it.
async fn docker(host: &str, args: &[&str]) -> Output {
    let host = host.to_owned();
    let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let config = tempfile::tempdir().unwrap();
        std::process::Command::new("docker")
            .env("DOCKER_HOST", &host)
            .env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the docker CLI (deploy/install-deps.sh installs docker.io)")
    })
    .await
    .expect("the docker CLI's task")
}

/// Runs `docker args` on `host`, which must succeed; its standard output, trimmed.
async fn docker_ok(host: &str, args: &[&str]) -> String {
    let output = docker(host, args).await;
    assert!(
        output.status.success(),
        "docker {args:?} on {host} failed: {}",
        stderr_of(&output)
    );
    stdout_of(&output)
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_docker_proxy_runs_the_apps_containers_and_uninstall_removes_them() {
    if !DockerEngine::runnable() {
        return;
    }
    let fleet = Fleet::start().await;
    let image = fleet.engine.image();
    let mut client = fleet.coordinator.client().await;
    let app = app_id("dockerreal");
    let bystander = app_id("dockerother");

    let reply = install(&mut client, &app, json!({"docker": {}}))
        .await
        .unwrap();
    let env = env_of(&reply).clone();
    let names: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|name| name.starts_with("CLOUDRON_DOCKER"))
        .collect();
    assert_eq!(names, ["CLOUDRON_DOCKER_HOST"]);
    let host = env["CLOUDRON_DOCKER_HOST"].clone();
    let port: u16 = host
        .strip_prefix("tcp://127.0.0.1:")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("not tcp://127.0.0.1:PORT: {host}"));
    assert!(
        (fleet.ports.0..=fleet.ports.1).contains(&port),
        "{port} outside {:?}",
        fleet.ports
    );
    assert_eq!(
        reply.app.as_ref().map(|app| app.provisioned_addons.clone()),
        Some(vec!["docker".to_owned()])
    );

    let other = install(&mut client, &bystander, json!({"docker": {}}))
        .await
        .unwrap();
    let other_host = env_of(&other)["CLOUDRON_DOCKER_HOST"].clone();
    assert_ne!(other_host, host);
    let listed = fleet.listed().await;
    assert!(
        listed.contains(&app) && listed.contains(&bystander),
        "{listed:?}"
    );

    // The app runs containers of its own with the plain CLI.
    assert_eq!(
        docker_ok(&host, &["run", "--rm", image, "echo", "hi"]).await,
        "hi"
    );
    let container = docker_ok(&host, &["run", "-d", image, "sleep", "300"]).await;
    let kept = docker_ok(&other_host, &["run", "-d", image, "sleep", "300"]).await;
    let seen = docker_ok(&host, &["ps", "-q", "--no-trunc"]).await;
    assert_eq!(seen.lines().collect::<Vec<_>>(), [container.as_str()]);
    assert_eq!(fleet.engine_containers_of(&app), [container.as_str()]);
    assert_eq!(fleet.engine_containers_of(&bystander), [kept.as_str()]);

    uninstall(&mut client, &app).await.unwrap();

    // Its containers are gone from the engine and its endpoint answers no more.
    assert_eq!(fleet.engine_containers_of(&app), Vec::<String>::new());
    let refused = docker(&host, &["ps", "-q"]).await;
    assert!(
        !refused.status.success(),
        "docker ps on {host} after UninstallApp: {}",
        stdout_of(&refused)
    );
    let listed = fleet.listed().await;
    assert!(!listed.contains(&app), "{listed:?}");
    assert!(listed.contains(&bystander), "{listed:?}");
    expect_status(get(&mut client, &app).await, Code::NotFound, "");
    // Another app keeps its container and its endpoint.
    assert_eq!(fleet.engine_containers_of(&bystander), [kept.as_str()]);
    assert_eq!(
        docker_ok(&other_host, &["ps", "-q", "--no-trunc"]).await,
        kept
    );

    uninstall(&mut client, &bystander).await.unwrap();
    assert_eq!(fleet.engine_containers_of(&bystander), Vec::<String>::new());
    assert!(!fleet.listed().await.contains(&bystander));
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_docker_options_reach_no_service() {
    if !DockerEngine::runnable() {
        return;
    }
    let fleet = Fleet::start().await;
    let mut client = fleet.coordinator.client().await;
    // A valid app beside it shows the service's List names what it holds.
    let valid = app_id("dockervalid");
    install(&mut client, &valid, json!({"docker": {}}))
        .await
        .unwrap();
    let unknown = app_id("dockerunknown");
    let scalar = app_id("dockerscalar");

    // The addon has no options.
    expect_status(
        install(&mut client, &unknown, json!({"docker": {"unknown": 1}})).await,
        Code::InvalidArgument,
        "addons.docker.unknown",
    );
    expect_status(
        install(&mut client, &scalar, json!({"docker": 5})).await,
        Code::InvalidArgument,
        "addons.docker",
    );

    let listed = fleet.listed().await;
    assert!(listed.contains(&valid), "{listed:?}");
    for app in [&unknown, &scalar] {
        assert!(!listed.contains(app), "{listed:?}");
        expect_status(get(&mut client, app).await, Code::NotFound, "");
        assert_eq!(fleet.engine_containers_of(app), Vec::<String>::new());
    }

    uninstall(&mut client, &valid).await.unwrap();
    assert!(!fleet.listed().await.contains(&valid));
    fleet.stop().await;
}
