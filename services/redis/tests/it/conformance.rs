//! The addon contract's conformance suite (`fleet_shared::testkit::conformance`) for the redis
//! service: its backend is a private data directory whose instances it supervises (cut off by
//! moving the directory away), the app's client is the `redis` crate with the returned URL.

use std::path::PathBuf;

use fleet_shared::{
    AppId,
    proto::addon::{PostgresqlOptions, RedisOptions, provision_request::Options},
    testkit::conformance::{Env, Fixture},
};

use crate::support::*;

/// A data directory and port range of the test's own.
pub struct RedisFixture {
    data: DataDir,
    ports: String,
}

impl RedisFixture {
    fn record_of(&self, app_id: &str) -> PathBuf {
        let name = AppId::parse(app_id).unwrap().resource_name();
        self.data.path().join(name.as_str()).join("instance.json")
    }

    fn moved_away(&self) -> PathBuf {
        self.data.path().with_extension("cut")
    }
}

const SQUATTER_RECORD: &str = r#"{"app_id":"someone-else","port":1}"#;

impl Fixture for RedisFixture {
    type Service = fleet_redis::Service;
    const ADDON: &'static str = "redis";
    const NO_REPLICAS: Option<&'static str> =
        Some("each service supervises the instances it started; compose runs one replica");

    async fn start() -> Self {
        Self {
            data: DataDir::new(),
            // 50 apps at once, and the suite's others.
            ports: port_range(60),
        }
    }

    fn service_env(&self) -> Vec<(String, String)> {
        [
            (
                "FLEET_REDIS_DATA_DIR",
                self.data.path().display().to_string(),
            ),
            ("FLEET_REDIS_PORTS", self.ports.clone()),
            ("FLEET_REDIS_SUPERVISE_SECS", "1".to_owned()),
            ("FLEET_REDIS_STOP_INSTANCES_ON_EXIT", "true".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec()
    }

    fn options(&self) -> Option<Options> {
        Some(Options::Redis(RedisOptions { no_password: false }))
    }

    fn foreign_options(&self) -> Options {
        Options::Postgresql(PostgresqlOptions::default())
    }

    async fn write(&self, env: &Env, value: &str) -> Result<(), String> {
        cmd::<()>(&env["CLOUDRON_REDIS_URL"], &["SET", "conformance", value])
            .map_err(|e| e.to_string())
    }

    async fn read(&self, env: &Env) -> Result<Option<String>, String> {
        cmd(&env["CLOUDRON_REDIS_URL"], &["GET", "conformance"]).map_err(|e| e.to_string())
    }

    async fn squat(&self, app_id: &str) {
        let record = self.record_of(app_id);
        std::fs::create_dir_all(record.parent().unwrap()).unwrap();
        std::fs::write(&record, SQUATTER_RECORD).unwrap();
    }

    async fn squat_intact(&self, app_id: &str) -> bool {
        std::fs::read_to_string(self.record_of(app_id)).is_ok_and(|text| text == SQUATTER_RECORD)
    }

    async fn cut_backend(&self) {
        std::fs::rename(self.data.path(), self.moved_away()).unwrap();
    }

    async fn restore_backend(&self) {
        std::fs::rename(self.moved_away(), self.data.path()).unwrap();
    }

    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

fleet_shared::addon_conformance!(RedisFixture);
