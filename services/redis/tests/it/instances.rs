//! Supervision: instances survive the service's restart (and are then taken over), are
//! restarted after `kill -9`, and a hundred of them run side by side.

use std::time::Duration;

use futures::future::join_all;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn instances_outlive_a_service_restart_and_are_taken_over() {
    let data = DataDir::new();
    let ports = port_range(10);
    let service = start_service(data.path(), &ports, &[]).await;
    let mut client = service.client().await;
    let app = app_id("adopt");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    let _: () = cmd(&env["CLOUDRON_REDIS_URL"], &["SET", "k", "before restart"]).unwrap();
    let pid = instance_pid(data.path(), &env);
    service.stop().await;

    // The instance kept serving while the service was down...
    let v: String = cmd(&env["CLOUDRON_REDIS_URL"], &["GET", "k"]).unwrap();
    assert_eq!(v, "before restart");
    // ...and the new service recognises it by its admin password, shuts it down and starts
    // it again as its own child: one process, with the data.
    let service = start_service(data.path(), &ports, &[]).await;
    let mut client = service.client().await;
    assert_eq!(
        provision(&mut client, request(&app, false)).await.unwrap(),
        env
    );
    let new_pid = instance_pid(data.path(), &env);
    assert!(new_pid.is_some() && new_pid != pid, "taken over as a child");
    let v: String = cmd(&env["CLOUDRON_REDIS_URL"], &["GET", "k"]).unwrap();
    assert_eq!(v, "before restart");
    assert_eq!(list(&mut client).await, [app]);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_instance_is_restarted_with_its_data() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(10), &[]).await;
    let mut client = service.client().await;
    let env = provision(&mut client, request(&app_id("kill9"), false))
        .await
        .unwrap();
    let _: () = cmd(&env["CLOUDRON_REDIS_URL"], &["SET", "k", "durable"]).unwrap();
    let pid = instance_pid(data.path(), &env).unwrap();
    kill(pid, "KILL");

    let back = eventually(Duration::from_secs(20), || async {
        instance_pid(data.path(), &env).is_some_and(|p| p != pid)
            && cmd::<String>(&env["CLOUDRON_REDIS_URL"], &["GET", "k"]).is_ok()
    })
    .await;
    assert!(back, "the supervisor did not restart the instance");
    let v: String = cmd(&env["CLOUDRON_REDIS_URL"], &["GET", "k"]).unwrap();
    assert_eq!(v, "durable", "the append-only file kept the data");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_died_while_the_service_was_down_is_restarted_at_start() {
    let data = DataDir::new();
    let ports = port_range(10);
    let service = start_service(data.path(), &ports, &[]).await;
    let mut client = service.client().await;
    let env = provision(&mut client, request(&app_id("down"), false))
        .await
        .unwrap();
    let _: () = cmd(&env["CLOUDRON_REDIS_URL"], &["SET", "k", "kept"]).unwrap();
    service.stop().await;
    kill(instance_pid(data.path(), &env).unwrap(), "KILL");
    assert!(
        eventually(Duration::from_secs(10), || async {
            connect(&env["CLOUDRON_REDIS_URL"]).is_err()
        })
        .await
    );

    let service = start_service(data.path(), &ports, &[]).await;
    let back = eventually(Duration::from_secs(20), || async {
        cmd::<String>(&env["CLOUDRON_REDIS_URL"], &["GET", "k"]).is_ok_and(|v| v == "kept")
    })
    .await;
    assert!(back, "the instance was not restarted with its data");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_apps_each_get_a_working_instance() {
    let data = DataDir::new();
    let service = start_service(
        data.path(),
        &port_range(110),
        &[("FLEET_REDIS_STOP_INSTANCES_ON_EXIT", "true")],
    )
    .await;
    let client = service.client().await;
    let apps: Vec<String> = (0..100).map(|i| app_id(&format!("many{i}"))).collect();
    let envs = join_all(apps.iter().map(|app| {
        let mut client = client.clone();
        async move { provision(&mut client, request(app, false)).await }
    }))
    .await;
    let envs: Vec<_> = envs.into_iter().map(Result::unwrap).collect();
    let mut ports: Vec<&String> = envs.iter().map(|e| &e["CLOUDRON_REDIS_PORT"]).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 100, "every app has its own port");
    for (app, env) in apps.iter().zip(&envs) {
        let _: () = cmd(&env["CLOUDRON_REDIS_URL"], &["SET", "owner", app]).unwrap();
    }
    for (app, env) in apps.iter().zip(&envs) {
        let owner: String = cmd(&env["CLOUDRON_REDIS_URL"], &["GET", "owner"]).unwrap();
        assert_eq!(&owner, app);
    }
    service.stop().await;
    // Stopping the service with FLEET_REDIS_STOP_INSTANCES_ON_EXIT stopped every instance.
    assert!(
        envs.iter()
            .all(|env| connect(&env["CLOUDRON_REDIS_URL"]).is_err())
    );
}
