//! The `fleet-postgresql` binary as operators and grpcurl users meet it: configuration errors,
//! reflection-only clients, JSON logs without secrets, and draining on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use fleet_shared::{
    AppId,
    testkit::{
        free_port,
        harness::{TestSecrets, addon_client},
    },
};
use sqlx::Connection;

use crate::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_fleet-postgresql");

/// The binary, running, with its stdout collected line by line.
struct Running {
    child: Child,
    port: u16,
    secrets: TestSecrets,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Running {
    async fn start() -> Self {
        let secrets = TestSecrets::new().unwrap();
        let port = free_port().unwrap();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(BINARY)
            .env_clear()
            .envs(service_env(
                &secrets,
                &postgres().admin_url(),
                &[("FLEET_LISTEN", &listen)],
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stdout.take().unwrap());
        let sink = Arc::clone(&stdout);
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let running = Self {
            child,
            port,
            secrets,
            stdout,
        };
        let up = eventually(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        assert!(up, "the service did not listen: {:?}", running.logs());
        running
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn logs(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (deploy/install-deps.sh installs it): {e}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn buf_curl_lists_services_and_provisions_through_reflection_only() {
    let service = Running::start().await;
    let url = service.url();
    let base = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"];

    let services = run("buf", &[&base[..], &["--list-services", &url]].concat());
    for expected in [
        "fleet.addon.v1.Addon",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            services.lines().any(|l| l == expected),
            "{expected} not in {services}"
        );
    }
    let methods = run("buf", &[&base[..], &["--list-methods", &url]].concat());
    assert!(
        methods.contains("fleet.addon.v1.Addon/Provision"),
        "{methods}"
    );

    let app = app_id("bufcurl");
    let body = format!(r#"{{"app_id": "{app}", "postgresql": {{"extensions": ["hstore"]}}}}"#);
    let auth = format!("Authorization: Bearer {}", service.secrets.token);
    let provision_url = format!("{url}/fleet.addon.v1.Addon/Provision");
    let reply = run(
        "buf",
        &[&base[..], &["-H", &auth, "-d", &body, &provision_url]].concat(),
    );
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let db_url = reply["env"]["CLOUDRON_POSTGRESQL_URL"]
        .as_str()
        .unwrap()
        .to_owned();
    connect(&db_url).await.unwrap().close().await.unwrap();

    // grpcurl speaks reflection v1alpha: it sees the same contract.
    let target = format!("127.0.0.1:{}", service.port);
    let listed = run("grpcurl", &["-plaintext", &target, "list"]);
    assert!(
        listed.lines().any(|l| l == "fleet.addon.v1.Addon"),
        "{listed}"
    );
    let described = run(
        "grpcurl",
        &[
            "-plaintext",
            &target,
            "describe",
            "fleet.addon.v1.PostgresqlOptions",
        ],
    );
    assert!(
        described.contains("repeated string extensions"),
        "{described}"
    );
    let header = format!("authorization: Bearer {}", service.secrets.token);
    let body = format!(r#"{{"appId": "{app}", "addon": "postgresql"}}"#);
    run(
        "grpcurl",
        &[
            "-plaintext",
            "-H",
            &header,
            "-d",
            &body,
            &target,
            "fleet.addon.v1.Addon/Deprovision",
        ],
    );
    assert!(connect(&db_url).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_call_finish_then_exits_cleanly() {
    let mut service = Running::start().await;
    let app = app_id("sigterm");
    let name = AppId::parse(&app).unwrap().resource_name().to_string();

    // Hold the app's advisory lock so the provision blocks inside the service.
    let mut blocker = admin("postgres").await;
    sqlx::query("SELECT pg_advisory_lock(x'666c6565'::int, hashtext($1))")
        .bind(&name)
        .execute(&mut blocker)
        .await
        .unwrap();
    let service_for_call = addon_client(service.port, Some(&service.secrets.token))
        .await
        .unwrap();
    let call = tokio::spawn({
        let mut client = service_for_call;
        let app = app.clone();
        async move { provision(&mut client, request(&app, None)).await }
    });
    let waiting = eventually(Duration::from_secs(10), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .fetch_one(&mut admin("postgres").await)
        .await
        .unwrap();
        waiting > 0
    })
    .await;
    assert!(waiting, "the provision never reached the lock");

    service.signal("TERM");
    let draining = eventually(Duration::from_secs(10), || async {
        service
            .logs()
            .iter()
            .any(|l| l.contains("draining in-flight calls"))
    })
    .await;
    assert!(draining, "{:?}", service.logs());
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "exited with a call in flight"
    );

    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut blocker)
        .await
        .unwrap();
    let env = call
        .await
        .unwrap()
        .expect("the in-flight provision completes");
    connect(&env["CLOUDRON_POSTGRESQL_URL"]).await.unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = service.child.wait().unwrap();
        (status, service)
    })
    .await
    .unwrap();
    let (status, service) = status;
    assert!(status.success(), "exit status {status:?}");

    // Logs are JSON lines and never carry the secret.
    let logs = service.logs();
    let password = &env["CLOUDRON_POSTGRESQL_PASSWORD"];
    assert!(logs.iter().any(|l| l.contains("provisioned")), "{logs:?}");
    for line in &logs {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(!line.contains(password.as_str()), "password in log: {line}");
        assert!(
            !line.contains(&service.secrets.token),
            "token in log: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_unknown_settings_stop_the_start_with_every_problem() {
    let output = Command::new(BINARY)
        .env_clear()
        .env("FLEET_POSTGRESQL_ADMNI_URL", "postgres://typo")
        .env("FLEET_LISTEN", "nonsense")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "FLEET_MASTER_KEY_FILE is required",
        "FLEET_API_TOKEN_FILE is required",
        "FLEET_POSTGRESQL_ADMIN_URL is required",
        "FLEET_LISTEN is invalid",
        "FLEET_POSTGRESQL_ADMNI_URL is not a setting",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
}
