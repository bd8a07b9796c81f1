//! The addon contract's conformance suite (`fleet_shared::testkit::conformance`) for the turn
//! addon, against the shared coturn. The fixture reaches coturn's directory through a symlink
//! of its own, which it removes to cut the service off (the secrets database is a file:
//! nothing else would take it away from one service only). An app's secret stores nothing:
//! the suite checks that an allocation minted from it is accepted.

use std::path::PathBuf;

use fleet_shared::{
    AppId,
    proto::addon::{MysqlOptions, TurnOptions, provision_request::Options},
    testkit::{Transport, conformance::Env, harness::TestSecrets},
};

use crate::support::*;

/// The app the squatting row names as its owner.
const SQUATTER_APP: &str = "someone-else";
const SQUATTER_SECRET: &str = "planted-secret";

pub struct TurnFixture {
    /// Holds the symlink.
    files: TestSecrets,
}

impl TurnFixture {
    fn link(&self) -> PathBuf {
        self.files.path("turn-dir")
    }

    fn sql(statement: &str) -> String {
        // Other tests' services write the database at the same time: wait for their locks.
        let output = std::process::Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(server().db_path())
            .arg(statement)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn name(app_id: &str) -> String {
        AppId::parse(app_id)
            .unwrap()
            .resource_name()
            .as_str()
            .to_owned()
    }
}

impl fleet_shared::testkit::conformance::Fixture for TurnFixture {
    type Service = fleet_turn::Service;
    const ADDON: &'static str = "turn";
    const STORES_DATA: bool = false;

    async fn start() -> Self {
        let files = TestSecrets::new().unwrap();
        std::os::unix::fs::symlink(server().dir(), files.path("turn-dir")).unwrap();
        Self { files }
    }
    fn service_env(&self) -> Vec<(String, String)> {
        service_env(server(), &self.link())
    }
    fn options(&self) -> Option<Options> {
        Some(Options::Turn(TurnOptions {}))
    }
    fn foreign_options(&self) -> Options {
        Options::Mysql(MysqlOptions::default())
    }
    async fn write(&self, env: &Env, _value: &str) -> Result<(), String> {
        self.read(env).await.map(|_| ())
    }
    async fn read(&self, env: &Env) -> Result<Option<String>, String> {
        let allocation = allocate(env, Transport::Udp).await;
        if allocation.allocated() {
            Ok(None)
        } else {
            Err(allocation.output)
        }
    }
    async fn squat(&self, app_id: &str) {
        Self::sql(&format!(
            "INSERT INTO fleet_turn_apps (name, app_id, secret) VALUES ('{}', '{SQUATTER_APP}', \
             '{SQUATTER_SECRET}');",
            Self::name(app_id)
        ));
    }
    async fn squat_intact(&self, app_id: &str) -> bool {
        Self::sql(&format!(
            "SELECT app_id || '|' || secret FROM fleet_turn_apps WHERE name = '{}';",
            Self::name(app_id)
        )) == format!("{SQUATTER_APP}|{SQUATTER_SECRET}")
    }
    async fn cut_backend(&self) {
        std::fs::remove_file(self.link()).unwrap();
    }
    async fn restore_backend(&self) {
        std::os::unix::fs::symlink(server().dir(), self.link()).unwrap();
    }
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

fleet_shared::addon_conformance!(TurnFixture);
