//! The harness: a MongoDB-wire server, the service in-process, the driver as the app.

use std::time::Duration;

pub use fleet_shared::testkit::harness::{
    AddonTestClient as Client, expect_status, unique_app_id as app_id,
};
use fleet_shared::{
    proto::addon::{MongodbOptions, ProvisionRequest, provision_request::Options},
    testkit::{MongoServer, harness::TestSecrets},
};
use mongodb::{
    Client as Driver,
    bson::{Document, doc},
    options::ClientOptions,
};
use tonic::Status;

pub fn mongo() -> &'static MongoServer {
    MongoServer::shared().expect("a MongoDB-wire server")
}

/// The service, served in-process on a free port.
pub use fleet_shared::testkit::harness::Served as Service;

/// Serves against the test kit's server.
pub async fn start_service() -> Service {
    start_service_with(&mongo().admin_url()).await
}

/// Serves against `admin_url`.
pub async fn start_service_with(admin_url: &str) -> Service {
    let env = [
        ("FLEET_MONGODB_ADMIN_URL", admin_url),
        ("FLEET_MONGODB_CONNECT_TIMEOUT_SECS", "3"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    Service::start::<fleet_mongodb::Service>(TestSecrets::new().unwrap(), env)
        .await
        .unwrap()
}

pub fn request(app_id: &str, oplog: bool) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app_id.to_owned(),
        app_domain: String::new(),
        credential_generation: 0,
        options: Some(Options::Mongodb(MongodbOptions { oplog })),
    }
}

pub use fleet_shared::testkit::harness::provision;

pub async fn deprovision(client: &mut Client, app_id: &str) -> Result<(), Status> {
    fleet_shared::testkit::harness::deprovision(client, app_id, "mongodb").await
}

pub async fn list(client: &mut Client) -> Vec<String> {
    fleet_shared::testkit::harness::list(client).await.unwrap()
}

/// The driver, connected the way an app connects with `url`.
pub async fn driver(url: &str) -> Driver {
    let mut options = ClientOptions::parse(url).await.unwrap();
    options.server_selection_timeout = Some(Duration::from_secs(5));
    Driver::with_options(options).unwrap()
}

/// Inserts a document into `database.collection` through `url`.
pub async fn insert(url: &str, database: &str, document: Document) -> mongodb::error::Result<()> {
    driver(url)
        .await
        .database(database)
        .collection::<Document>("t")
        .insert_one(document)
        .await
        .map(|_| ())
}

/// Counts the documents of `database.t` through `url`.
pub async fn count(url: &str, database: &str) -> mongodb::error::Result<u64> {
    driver(url)
        .await
        .database(database)
        .collection::<Document>("t")
        .count_documents(doc! {})
        .await
}
