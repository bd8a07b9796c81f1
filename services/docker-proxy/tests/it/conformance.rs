//! The addon contract's conformance suite (`fleet_shared::testkit::conformance`) for the
//! docker addon, against the shared Docker Engine. The fixture reaches the engine through a
//! symlink to its socket, which it removes to cut the service off. An app stores a value as the
//! label of a container it creates through its endpoint with the real `docker` CLI, and reads
//! it back by listing its containers; a squatter is a container labelled with the app's id on
//! the engine directly, without the proxy's seal.

use fleet_shared::{
    proto::addon::{DockerOptions, RedisOptions, provision_request::Options},
    testkit::conformance::Env,
};

use crate::support::*;

/// The label an app's stored value is kept in.
const VALUE_LABEL: &str = "conformance.value";

pub struct DockerFixture {
    layout: Layout,
}

/// Runs the CLI off the runtime.
async fn cli(host: Cli, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        host.run(&args)
    })
    .await
    .expect("the CLI task")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

impl fleet_shared::testkit::conformance::Fixture for DockerFixture {
    type Service = fleet_docker_proxy::Service;
    const ADDON: &'static str = "docker";

    async fn start() -> Self {
        Self {
            layout: Layout::new(),
        }
    }
    fn service_env(&self) -> Vec<(String, String)> {
        self.layout.env(&[])
    }
    fn options(&self) -> Option<Options> {
        Some(Options::Docker(DockerOptions {}))
    }
    fn foreign_options(&self) -> Options {
        Options::Redis(RedisOptions::default())
    }
    async fn write(&self, env: &Env, value: &str) -> Result<(), String> {
        let label = format!("{VALUE_LABEL}={value}");
        let output = cli(
            Cli::of(env),
            strings(&["create", "--label", &label, image(), "true"]),
        )
        .await;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
    async fn read(&self, env: &Env) -> Result<Option<String>, String> {
        let format = format!("{{{{.Label \"{VALUE_LABEL}\"}}}}");
        let output = cli(
            Cli::of(env),
            strings(&[
                "ps",
                "-a",
                "--filter",
                &format!("label={VALUE_LABEL}"),
                "--format",
                &format,
            ]),
        )
        .await;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .map(str::to_owned))
    }
    async fn squat(&self, app_id: &str) {
        let label = format!("fleet.docker.app={app_id}");
        let name = format!("squat-{app_id}");
        let output = cli(
            Cli::engine(),
            strings(&[
                "create",
                "--name",
                &name,
                "--label",
                &label,
                image(),
                "true",
            ]),
        )
        .await;
        assert!(output.status.success(), "{output:?}");
    }
    async fn squat_intact(&self, app_id: &str) -> bool {
        let output = cli(
            Cli::engine(),
            strings(&[
                "inspect",
                "--format",
                "{{index .Config.Labels \"fleet.docker.app\"}}",
                &format!("squat-{app_id}"),
            ]),
        )
        .await;
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == app_id
    }
    async fn cut_backend(&self) {
        std::fs::remove_file(self.layout.engine_link()).expect("remove the link");
    }
    async fn restore_backend(&self) {
        std::os::unix::fs::symlink(engine().socket(), self.layout.engine_link())
            .expect("restore the link");
    }
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

fleet_shared::addon_conformance!(DockerFixture);
