//! What the docker-proxy tests share: the test kit's Docker Engine, the service served
//! in-process against it with data directories and endpoint ports of its own, and the real
//! `docker` CLI pointed at an app's `CLOUDRON_DOCKER_HOST` (or at the engine itself, to check
//! what exists there).

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use fleet_shared::{
    proto::addon::{DockerOptions, ProvisionRequest, provision_request::Options},
    testkit::{
        DockerEngine, free_port_block,
        harness::{AddonTestClient, Served, TestSecrets, provision, unique_app_id},
    },
};

pub use fleet_shared::testkit::{
    conformance::Env,
    harness::{deprovision, list},
};

/// The network the tests' apps' containers are put on.
pub const NETWORK: &str = "fleet-test-apps";
/// Endpoint ports each served proxy gets.
const PORTS: u16 = 64;

/// The Docker Engine shared by the tests of this process.
pub fn engine() -> &'static DockerEngine {
    DockerEngine::shared().expect("dockerd (deploy/install-deps.sh installs docker.io)")
}

/// The test image (busybox).
pub fn image() -> &'static str {
    engine().image()
}

/// Where a proxy keeps its state and finds the apps' data directories, and its ports.
pub struct Layout {
    /// Holds the directories (and the secrets, unused).
    pub files: TestSecrets,
    /// The first of its endpoint ports.
    pub first_port: u16,
}

impl Layout {
    pub fn new() -> Self {
        let files = TestSecrets::new().expect("a temporary directory");
        for dir in ["state", "apps"] {
            std::fs::create_dir_all(files.path(dir)).expect("a directory");
        }
        std::os::unix::fs::symlink(engine().socket(), files.path("engine.sock"))
            .expect("the engine's socket link");
        let first_port = free_port_block(PORTS).expect("free ports");
        Self { files, first_port }
    }

    /// The link to the engine's socket the service uses (remove it to cut the engine off).
    pub fn engine_link(&self) -> PathBuf {
        self.files.path("engine.sock")
    }

    /// The apps' data directories' root.
    pub fn apps(&self) -> PathBuf {
        self.files.path("apps")
    }

    /// `app`'s data directory (its `/app/data`), created.
    pub fn data_dir(&self, app: &str) -> PathBuf {
        let dir = self.apps().join(app).join("data");
        std::fs::create_dir_all(&dir).expect("the app's data directory");
        dir
    }

    /// The service's settings, plus `extra`.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let last = self.first_port + PORTS - 1;
        let mut env: Vec<(String, String)> = [
            (
                "FLEET_DOCKER_PROXY_ENGINE_SOCKET",
                self.engine_link().display().to_string(),
            ),
            (
                "FLEET_DOCKER_PROXY_STATE_DIR",
                self.files.path("state").display().to_string(),
            ),
            (
                "FLEET_DOCKER_PROXY_APPS_DATA_DIR",
                self.apps().display().to_string(),
            ),
            ("FLEET_DOCKER_PROXY_NETWORK", NETWORK.to_owned()),
            (
                "FLEET_DOCKER_PROXY_ENDPOINT_PORTS",
                format!("{}-{last}", self.first_port),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }
}

/// The docker-proxy service served in-process against the shared engine.
pub struct DockerProxy {
    pub layout: Layout,
    pub served: Served,
    pub client: AddonTestClient,
}

impl DockerProxy {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With settings `extra` on top of the defaults.
    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        let layout = Layout::new();
        let served = Served::start::<fleet_docker_proxy::Service>(
            TestSecrets::new().expect("secret files"),
            layout.env(extra),
        )
        .await
        .expect("the docker-proxy service");
        let client = served.client().await;
        Self {
            layout,
            served,
            client,
        }
    }

    /// Provisions the docker addon for `app` at `generation`.
    pub async fn provision(&mut self, app: &str, generation: u32) -> Result<Env, tonic::Status> {
        provision(&mut self.client, request(app, generation)).await
    }

    /// A new app: its data directory made, the addon provisioned; its CLI.
    pub async fn app(&mut self, test: &str) -> (String, Cli) {
        let app = unique_app_id(test);
        self.layout.data_dir(&app);
        let env = self.provision(&app, 0).await.expect("Provision");
        (app, Cli::of(&env))
    }
}

/// A Provision request of the docker addon.
pub fn request(app: &str, generation: u32) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app.to_owned(),
        app_domain: "ci.example.test".to_owned(),
        credential_generation: generation,
        options: Some(Options::Docker(DockerOptions {})),
    }
}

/// The `docker` CLI against one Docker API address, with a configuration of its own.
#[derive(Debug, Clone)]
pub struct Cli {
    pub host: String,
}

impl Cli {
    /// The CLI as the app runs it, from its bundle.
    pub fn of(env: &Env) -> Self {
        Self {
            host: env["CLOUDRON_DOCKER_HOST"].clone(),
        }
    }

    /// The CLI on the engine's own socket: what really exists.
    pub fn engine() -> Self {
        Self {
            host: engine().host(),
        }
    }

    /// Runs `docker args` and returns what it did.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Runs `docker args` with `stdin` as its input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        use std::io::Write;
        let config = tempfile::tempdir().expect("a CLI config directory");
        let mut command = Command::new("docker");
        command
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", config.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            });
        let mut child = command.spawn().expect("the docker CLI");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).expect("the CLI's stdin");
        }
        child.wait_with_output().expect("the docker CLI")
    }

    /// Runs `docker args`, which must succeed; its standard output, trimmed.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "docker {args:?} on {} failed: {}",
            self.host,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Runs `docker args`, which must fail; its standard error.
    #[track_caller]
    pub fn refused(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !output.status.success(),
            "docker {args:?} on {} succeeded: {}",
            self.host,
            String::from_utf8_lossy(&output.stdout)
        );
        stderr
    }
}

/// The ids of the containers on the engine labelled as `app`'s.
pub fn engine_containers_of(app: &str) -> Vec<String> {
    let listed = Cli::engine().ok(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=fleet.docker.app={app}"),
    ]);
    listed.lines().map(str::to_owned).collect()
}

/// Whether a container named `name` exists on the engine.
pub fn engine_has_container(name: &str) -> bool {
    Cli::engine()
        .run(&["inspect", "--type", "container", name])
        .status
        .success()
}

/// The file `relative` in `dir`, if it exists.
pub fn read_file(dir: &Path, relative: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(relative)).ok()
}
