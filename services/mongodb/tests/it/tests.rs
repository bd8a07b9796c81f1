//! The app's view: its database works, nobody else's does, and removal is final.

use fleet_shared::AppId;
use mongodb::bson::doc;
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_app_writes_and_reads_its_database() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("rw");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "CLOUDRON_MONGODB_DATABASE",
            "CLOUDRON_MONGODB_HOST",
            "CLOUDRON_MONGODB_PASSWORD",
            "CLOUDRON_MONGODB_PORT",
            "CLOUDRON_MONGODB_URL",
            "CLOUDRON_MONGODB_USERNAME"
        ]
    );
    let database = &env["CLOUDRON_MONGODB_DATABASE"];
    insert(&env["CLOUDRON_MONGODB_URL"], database, doc! {"x": 1})
        .await
        .unwrap();
    assert_eq!(
        count(&env["CLOUDRON_MONGODB_URL"], database).await.unwrap(),
        1
    );
    assert!(list(&mut client).await.contains(&app));
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_app_and_a_wrong_password_cannot_read_it() {
    let service = start_service().await;
    let mut client = service.client().await;
    let a = provision(&mut client, request(&app_id("a"), false))
        .await
        .unwrap();
    let b = provision(&mut client, request(&app_id("b"), false))
        .await
        .unwrap();
    let a_db = &a["CLOUDRON_MONGODB_DATABASE"];
    insert(&a["CLOUDRON_MONGODB_URL"], a_db, doc! {"secret": "a"})
        .await
        .unwrap();

    let error = count(&b["CLOUDRON_MONGODB_URL"], a_db)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("not authorized") || error.contains("Unauthorized"),
        "{error}"
    );
    let error = insert(&b["CLOUDRON_MONGODB_URL"], a_db, doc! {"planted": 1})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("not authorized") || error.contains("Unauthorized"),
        "{error}"
    );
    let wrong = a["CLOUDRON_MONGODB_URL"].replace(
        &a["CLOUDRON_MONGODB_PASSWORD"],
        &b["CLOUDRON_MONGODB_PASSWORD"],
    );
    let error = count(&wrong, a_db).await.unwrap_err().to_string();
    assert!(error.contains("uthentication failed"), "{error}");
    assert_eq!(count(&a["CLOUDRON_MONGODB_URL"], a_db).await.unwrap(), 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_twice_keeps_env_and_data_and_deprovision_is_final() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("twice");
    let first = provision(&mut client, request(&app, false)).await.unwrap();
    let database = first["CLOUDRON_MONGODB_DATABASE"].clone();
    insert(
        &first["CLOUDRON_MONGODB_URL"],
        &database,
        doc! {"kept": true},
    )
    .await
    .unwrap();
    let second = provision(&mut client, request(&app, false)).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        count(&second["CLOUDRON_MONGODB_URL"], &database)
            .await
            .unwrap(),
        1
    );

    deprovision(&mut client, &app).await.unwrap();
    let error = count(&first["CLOUDRON_MONGODB_URL"], &database)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("uthentication failed"), "{error}");
    assert!(!list(&mut client).await.contains(&app));
    deprovision(&mut client, &app).await.unwrap();
    // Re-provisioned, the app starts from an empty database.
    let again = provision(&mut client, request(&app, false)).await.unwrap();
    assert_eq!(
        count(&again["CLOUDRON_MONGODB_URL"], &database)
            .await
            .unwrap(),
        0
    );
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oplog_gives_an_oplog_url_with_the_apps_auth_source() {
    let service = start_service().await;
    let mut client = service.client().await;
    let app = app_id("oplog");
    let env = provision(&mut client, request(&app, true)).await.unwrap();
    let name = AppId::parse(&app).unwrap().resource_name().to_string();
    assert_eq!(
        env["CLOUDRON_MONGODB_OPLOG_URL"],
        format!(
            "mongodb://{name}:{}@{}:{}/local?authSource={name}",
            env["CLOUDRON_MONGODB_PASSWORD"],
            env["CLOUDRON_MONGODB_HOST"],
            env["CLOUDRON_MONGODB_PORT"]
        )
    );
    // The user holds read on `local`, as the server reports it.
    let admin = driver(&mongo().admin_url()).await;
    let info = admin
        .database(&name)
        .run_command(doc! {"usersInfo": &name})
        .await
        .unwrap();
    let roles = format!("{:?}", info.get_array("users").unwrap());
    assert!(roles.contains("\"local\""), "{roles}");
    if !mongo().is_secantus() {
        // A real mongod with a replica set serves the oplog to that role.
        count(&env["CLOUDRON_MONGODB_OPLOG_URL"], "local")
            .await
            .unwrap();
    }
    deprovision(&mut client, &app).await.unwrap();
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_app_ids_are_refused_and_create_nothing() {
    let service = start_service().await;
    let mut client = service.client().await;
    let before = list(&mut client).await;
    let long = "a".repeat(200);
    for odd in [
        "",
        long.as_str(),
        "x'; db.dropDatabase()",
        "ünï",
        "../a",
        "$where",
    ] {
        expect_status(
            provision(&mut client, request(odd, false)).await,
            Code::InvalidArgument,
            "app_id",
        );
        expect_status(
            deprovision(&mut client, odd).await,
            Code::InvalidArgument,
            "app_id",
        );
    }
    let after = list(&mut client).await;
    assert!(
        after
            .iter()
            .all(|id| before.contains(id) || AppId::parse(id).is_ok())
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_down_is_unavailable() {
    let mut own = match tokio::task::spawn_blocking(fleet_shared::testkit::MongoServer::start)
        .await
        .unwrap()
    {
        Ok(server) => server,
        Err(error) => panic!("cannot start a second server: {error}"),
    };
    let service = start_service_with(&own.admin_url()).await;
    let mut client = service.client().await;
    provision(&mut client, request(&app_id("up"), false))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || own.stop().map(|()| own))
        .await
        .unwrap()
        .unwrap();
    let status = expect_status(
        provision(&mut client, request(&app_id("down"), false)).await,
        Code::Unavailable,
        "MongoDB is unavailable",
    );
    assert!(!status.message().contains("mongodb://"), "{status:?}");
    service.stop().await;
}
