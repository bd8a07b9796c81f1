//! Provision, use, re-provision, noPassword, deprovision, bad input.

use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn each_app_gets_its_own_instance_and_password() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(10), &[]).await;
    let mut client = service.client().await;
    let a = provision(&mut client, request(&app_id("a"), false))
        .await
        .unwrap();
    let b = provision(&mut client, request(&app_id("b"), false))
        .await
        .unwrap();
    let mut keys: Vec<&str> = a.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "CLOUDRON_REDIS_HOST",
            "CLOUDRON_REDIS_PASSWORD",
            "CLOUDRON_REDIS_PORT",
            "CLOUDRON_REDIS_URL"
        ]
    );
    assert_ne!(a["CLOUDRON_REDIS_PORT"], b["CLOUDRON_REDIS_PORT"]);
    assert_eq!(
        a["CLOUDRON_REDIS_URL"],
        format!(
            "redis://default:{}@127.0.0.1:{}",
            a["CLOUDRON_REDIS_PASSWORD"], a["CLOUDRON_REDIS_PORT"]
        )
    );

    // A's data, and the whole keyspace, are A's alone.
    let _: () = cmd(&a["CLOUDRON_REDIS_URL"], &["SET", "secret", "a-only"]).unwrap();
    let b_keys: Vec<String> = cmd(&b["CLOUDRON_REDIS_URL"], &["KEYS", "*"]).unwrap();
    assert!(b_keys.is_empty(), "{b_keys:?}");
    let _: () = cmd(&b["CLOUDRON_REDIS_URL"], &["FLUSHALL"]).unwrap();
    let _: () = cmd(&b["CLOUDRON_REDIS_URL"], &["SELECT", "3"]).unwrap();
    let kept: String = cmd(&a["CLOUDRON_REDIS_URL"], &["GET", "secret"]).unwrap();
    assert_eq!(kept, "a-only");

    // A's password does not open B's instance; no password does not either.
    let a_on_b = format!(
        "redis://default:{}@127.0.0.1:{}",
        a["CLOUDRON_REDIS_PASSWORD"], b["CLOUDRON_REDIS_PORT"]
    );
    let error = connect(&a_on_b)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("AuthenticationFailed"), "{error}");
    let anonymous = format!("redis://127.0.0.1:{}", b["CLOUDRON_REDIS_PORT"]);
    let error = cmd::<Vec<String>>(&anonymous, &["KEYS", "*"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("NOAUTH"), "{error}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_twice_returns_the_same_env_and_keeps_the_data() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(10), &[]).await;
    let mut client = service.client().await;
    let app = app_id("twice");
    let first = provision(&mut client, request(&app, false)).await.unwrap();
    let _: () = cmd(&first["CLOUDRON_REDIS_URL"], &["SET", "k", "v"]).unwrap();
    let pid = instance_pid(data.path(), &first);
    let second = provision(&mut client, request(&app, false)).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        instance_pid(data.path(), &second),
        pid,
        "an unchanged app is not restarted"
    );
    let v: String = cmd(&second["CLOUDRON_REDIS_URL"], &["GET", "k"]).unwrap();
    assert_eq!(v, "v");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_password_gives_an_open_instance_and_no_password_variable() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(10), &[]).await;
    let mut client = service.client().await;
    let app = app_id("open");
    let env = provision(&mut client, request(&app, true)).await.unwrap();
    assert!(!env.contains_key("CLOUDRON_REDIS_PASSWORD"));
    assert_eq!(
        env["CLOUDRON_REDIS_URL"],
        format!("redis://127.0.0.1:{}", env["CLOUDRON_REDIS_PORT"])
    );
    let _: () = cmd(&env["CLOUDRON_REDIS_URL"], &["SET", "k", "v"]).unwrap();
    // Switching to a password restarts the instance with it; the data stays.
    let closed = provision(&mut client, request(&app, false)).await.unwrap();
    assert_eq!(closed["CLOUDRON_REDIS_PORT"], env["CLOUDRON_REDIS_PORT"]);
    assert!(cmd::<String>(&env["CLOUDRON_REDIS_URL"], &["GET", "k"]).is_err());
    let v: String = cmd(&closed["CLOUDRON_REDIS_URL"], &["GET", "k"]).unwrap();
    assert_eq!(v, "v");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deprovision_stops_the_instance_and_deletes_its_data() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(10), &[]).await;
    let mut client = service.client().await;
    let app = app_id("gone");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    let name = env_name(data.path(), &env).unwrap();
    assert!(list(&mut client).await.contains(&app));
    deprovision(&mut client, &app).await.unwrap();
    assert!(
        !data.path().join(&name).exists(),
        "the data directory is gone"
    );
    assert!(
        connect(&env["CLOUDRON_REDIS_URL"]).is_err(),
        "the instance is stopped"
    );
    assert!(!list(&mut client).await.contains(&app));
    deprovision(&mut client, &app).await.unwrap();
    // A new instance for the same app starts empty.
    let again = provision(&mut client, request(&app, false)).await.unwrap();
    let keys: Vec<String> = cmd(&again["CLOUDRON_REDIS_URL"], &["KEYS", "*"]).unwrap();
    assert!(keys.is_empty());
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_app_ids_are_refused_and_create_nothing() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(10), &[]).await;
    let mut client = service.client().await;
    let long = "a".repeat(200);
    for odd in ["", long.as_str(), "x'; FLUSHALL", "ünïcödé", "../a"] {
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
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn running_out_of_ports_is_resource_exhausted_not_a_crash() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(2), &[]).await;
    let mut client = service.client().await;
    let apps: Vec<String> = (0..3).map(|i| app_id(&format!("port{i}"))).collect();
    provision(&mut client, request(&apps[0], false))
        .await
        .unwrap();
    provision(&mut client, request(&apps[1], false))
        .await
        .unwrap();
    expect_status(
        provision(&mut client, request(&apps[2], false)).await,
        Code::ResourceExhausted,
        "no free port",
    );
    // The service goes on; freeing a port makes room.
    assert_eq!(list(&mut client).await.len(), 2);
    deprovision(&mut client, &apps[0]).await.unwrap();
    provision(&mut client, request(&apps[2], false))
        .await
        .unwrap();
    service.stop().await;
}
