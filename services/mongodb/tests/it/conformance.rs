//! The addon contract's conformance suite (`fleet_shared::testkit::conformance`) for the
//! mongodb service: its backend is the test kit's MongoDB-wire server (or the real mongod of
//! `MONGODB_TEST_ADMIN_URL`) behind a proxy of the test's own, the app's client is the
//! `mongodb` driver with the returned URL.

use fleet_shared::{
    AppId,
    proto::addon::{MongodbOptions, PostgresqlOptions, provision_request::Options},
    testkit::{
        CuttableProxy,
        conformance::{Env, Fixture},
    },
};
use mongodb::{
    bson::{Document, doc},
    options::{ClientOptions, ServerAddress},
};

use crate::support::*;

/// The test kit's server, reached by the service through a proxy it can be cut off by.
pub struct MongodbFixture {
    proxy: CuttableProxy,
    admin_url: String,
    admin_password: String,
}

const SQUATTER_PASSWORD: &str = "squatter-password";

impl MongodbFixture {
    fn name(app_id: &str) -> String {
        AppId::parse(app_id).unwrap().resource_name().to_string()
    }
}

impl Fixture for MongodbFixture {
    type Service = fleet_mongodb::Service;
    const ADDON: &'static str = "mongodb";

    async fn start() -> Self {
        let url = mongo().admin_url();
        let options = ClientOptions::parse(&url).await.unwrap();
        let Some(ServerAddress::Tcp { host, port }) = options.hosts.first() else {
            panic!("the admin URL names no TCP server");
        };
        let port = port.unwrap_or(27017);
        let backend = tokio::net::lookup_host((host.as_str(), port))
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = CuttableProxy::start(backend).await.unwrap();
        // directConnection: the server names its own address in its replies, and the
        // driver would otherwise go there, around the proxy.
        let admin_url = url.replacen(
            &format!("{host}:{port}"),
            &format!("127.0.0.1:{}", proxy.port()),
            1,
        );
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let admin_url = format!("{admin_url}{separator}directConnection=true");
        let admin_password = options
            .credential
            .and_then(|credential| credential.password)
            .unwrap_or_default();
        Self {
            proxy,
            admin_url,
            admin_password,
        }
    }

    fn service_env(&self) -> Vec<(String, String)> {
        [
            ("FLEET_MONGODB_ADMIN_URL", self.admin_url.clone()),
            ("FLEET_MONGODB_CONNECT_TIMEOUT_SECS", "2".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec()
    }

    fn options(&self) -> Option<Options> {
        Some(Options::Mongodb(MongodbOptions::default()))
    }

    fn foreign_options(&self) -> Options {
        Options::Postgresql(PostgresqlOptions::default())
    }

    async fn write(&self, env: &Env, value: &str) -> Result<(), String> {
        let collection = driver(&env["CLOUDRON_MONGODB_URL"])
            .await
            .database(&env["CLOUDRON_MONGODB_DATABASE"])
            .collection::<Document>("conformance");
        collection
            .delete_many(doc! {})
            .await
            .map_err(|e| e.to_string())?;
        collection
            .insert_one(doc! {"v": value})
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn read(&self, env: &Env) -> Result<Option<String>, String> {
        let found = driver(&env["CLOUDRON_MONGODB_URL"])
            .await
            .database(&env["CLOUDRON_MONGODB_DATABASE"])
            .collection::<Document>("conformance")
            .find_one(doc! {})
            .await
            .map_err(|e| e.to_string())?;
        Ok(found.and_then(|d| d.get_str("v").ok().map(str::to_owned)))
    }

    async fn squat(&self, app_id: &str) {
        let name = Self::name(app_id);
        driver(&mongo().admin_url())
            .await
            .database(&name)
            .run_command(doc! {"createUser": &name, "pwd": SQUATTER_PASSWORD, "roles": []})
            .await
            .unwrap();
    }

    async fn squat_intact(&self, app_id: &str) -> bool {
        let name = Self::name(app_id);
        let admin = driver(&mongo().admin_url()).await;
        let recorded = admin
            .database("fleet_meta")
            .collection::<Document>("apps")
            .find_one(doc! {"_id": &name})
            .await
            .unwrap();
        let squatter_url = mongo().admin_url().replacen(
            &format!("root:{}", self.admin_password),
            &format!("{name}:{SQUATTER_PASSWORD}"),
            1,
        );
        let squatter_url =
            squatter_url.replacen("authSource=admin", &format!("authSource={name}"), 1);
        let squatter_gets_in = driver(&squatter_url)
            .await
            .database(&name)
            .run_command(doc! {"ping": 1})
            .await
            .is_ok();
        recorded.is_none() && squatter_gets_in
    }

    async fn cut_backend(&self) {
        self.proxy.cut();
    }

    async fn restore_backend(&self) {
        self.proxy.restore();
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.admin_password.clone()]
    }
}

fleet_shared::addon_conformance!(MongodbFixture);
