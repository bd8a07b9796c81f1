//! SecantusDB as `make up` and the test kit run it (`deploy/mongodb/cluster.sh`): never as root,
//! and its directory (data files, password file, logs) closed to every other user.

use std::fs;

use fleet_shared::testkit::host;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_stand_in_runs_unprivileged_and_its_files_are_private() {
    let server = mongo();
    let Some(dir) = server.dir() else {
        eprintln!("a real mongod is under test: its user and files are its operator's");
        return;
    };
    // Data files exist only once something was written.
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("files");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    insert(
        &env["CLOUDRON_MONGODB_URL"],
        &env["CLOUDRON_MONGODB_DATABASE"],
        mongodb::bson::doc! {"x": 1},
    )
    .await
    .unwrap();

    assert!(
        fs::read_dir(dir.join("data")).unwrap().count() > 0,
        "no data files in {}",
        dir.display()
    );
    let port = server.port().expect("a local server has a port");
    let exposed = host::exposure(port, dir, Some("fleet-mongodb"));
    assert!(exposed.is_empty(), "{exposed:?}");
    if !host::running_as_root() {
        eprintln!("not root: SecantusDB runs as this user; only the permissions were checked");
    }
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}
