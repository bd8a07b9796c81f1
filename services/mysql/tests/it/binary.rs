//! The `fleet-mysql` binary as operators and grpcurl users meet it.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use fleet_shared::testkit::{free_port, harness::TestSecrets};

use crate::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_fleet-mysql");

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_provisions_through_reflection_and_logs_hold_no_secret() {
    let secrets = TestSecrets::new().unwrap();
    let port = free_port().unwrap();
    let mut child = Command::new(BINARY)
        .env_clear()
        .envs(service_env(
            &secrets,
            &mariadb().admin_url(),
            &[("FLEET_LISTEN", &format!("127.0.0.1:{port}"))],
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let up = eventually(Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(up, "the service did not listen");

    let target = format!("127.0.0.1:{port}");
    let grpcurl = |args: &[&str]| {
        let output = Command::new("grpcurl")
            .args(args)
            .output()
            .expect("grpcurl (deploy/install-deps.sh)");
        assert!(
            output.status.success(),
            "grpcurl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(
        grpcurl(&["-plaintext", &target, "list"])
            .lines()
            .any(|l| l == "fleet.addon.v1.Addon")
    );
    let app = app_id("grpcurl");
    let header = format!("authorization: Bearer {}", secrets.token);
    let body = format!(r#"{{"appId": "{app}", "mysql": {{"multipleDatabases": true}}}}"#);
    let reply = grpcurl(&[
        "-plaintext",
        "-H",
        &header,
        "-d",
        &body,
        &target,
        "fleet.addon.v1.Addon/Provision",
    ]);
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let password = reply["env"]["CLOUDRON_MYSQL_PASSWORD"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reply["env"]["CLOUDRON_MYSQL_DATABASE_PREFIX"].is_string(),
        "{reply}"
    );
    assert!(reply["env"].get("CLOUDRON_MYSQL_URL").is_none(), "{reply}");
    let body = format!(r#"{{"appId": "{app}", "addon": "mysql"}}"#);
    grpcurl(&[
        "-plaintext",
        "-H",
        &header,
        "-d",
        &body,
        &target,
        "fleet.addon.v1.Addon/Deprovision",
    ]);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut logs = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut logs).unwrap();
        (status, logs)
    })
    .await
    .unwrap();
    let (status, logs) = output;
    assert!(status.success(), "{status:?}");
    assert!(
        logs.contains("provisioned") && logs.contains("deprovisioned"),
        "{logs}"
    );
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            !line.contains(&password) && !line.contains(&secrets.token),
            "secret in log: {line}"
        );
    }
}

#[test]
fn missing_settings_stop_the_start_with_every_problem() {
    let output = Command::new(BINARY)
        .env_clear()
        .env("FLEET_MYSQL_ADMIN_UR", "x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "FLEET_MYSQL_ADMIN_URL is required",
        "FLEET_MASTER_KEY_FILE is required",
        "FLEET_MYSQL_ADMIN_UR is not a setting",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
}
