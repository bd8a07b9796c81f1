//! Issue #11, attacks 3 and 5, played by the attacking app with a real client: moving its
//! instance onto another app's port, lifting its limits, rewriting its users, replicating,
//! shutting down, loading modules; a foreign server squatting a victim's port; instances that
//! survive Deprovision; instances running as root with readable files.

use std::{os::unix::fs::MetadataExt, path::Path, time::Duration};

use fleet_shared::testkit::host;
use tonic::Code;

use crate::support::*;

/// Runs `args` on `conn` and checks that the server refused it as not permitted.
fn refused(conn: &mut redis::Connection, args: &[&str]) {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    let result: redis::RedisResult<redis::Value> = command.query(conn);
    let error = match result {
        Ok(value) => panic!("{args:?} was accepted: {value:?}"),
        Err(error) => format!("{error:?} {error}"),
    };
    // NOPERM from the ACLs (in a script: "can't run this command"); DEBUG and MODULE are
    // switched off for every user before the ACLs are consulted.
    assert!(
        error.to_uppercase().contains("NOPERM")
            || error.contains("can't run this command")
            || error.contains("command not allowed"),
        "{args:?}: {error}"
    );
}

fn config_get(conn: &mut redis::Connection, name: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(conn)
        .unwrap();
    assert_eq!(pair.len(), 2, "{name}: {pair:?}");
    pair[1].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_cannot_change_what_the_service_decides_but_runs_its_own_commands() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(10), &[]).await;
    let mut client = service.client().await;
    let attacker = provision(&mut client, request(&app_id("attacker"), false))
        .await
        .unwrap();
    let victim = provision(&mut client, request(&app_id("victim"), false))
        .await
        .unwrap();
    let open = provision(&mut client, request(&app_id("nopass"), true))
        .await
        .unwrap();
    let _: () = cmd(&victim["CLOUDRON_REDIS_URL"], &["SET", "mine", "victim"]).unwrap();
    let victim_port = victim["CLOUDRON_REDIS_PORT"].as_str();
    let free_port = port_range(1);
    let free_port = free_port.split('-').next().unwrap();

    for env in [&attacker, &open] {
        let url = &env["CLOUDRON_REDIS_URL"];
        let pid = instance_pid(data.path(), env).unwrap();
        let mut conn = connect(url).unwrap();
        let attacks: &[&[&str]] = &[
            &["CONFIG", "SET", "port", victim_port],
            &["CONFIG", "SET", "port", free_port],
            &["CONFIG", "SET", "maxmemory", "0"],
            &["CONFIG", "SET", "appendonly", "no"],
            &["CONFIG", "SET", "appendfsync", "no"],
            &["CONFIG", "SET", "bind", "0.0.0.0"],
            &["CONFIG", "SET", "protected-mode", "no"],
            &["CONFIG", "SET", "dir", "/tmp"],
            &["CONFIG", "SET", "save", "1 1"],
            &["CONFIG", "SET", "requirepass", ""],
            &["CONFIG", "REWRITE"],
            &["CONFIG", "RESETSTAT"],
            &["ACL", "SETUSER", "default", "nopass"],
            &["ACL", "SETUSER", "x", "on", ">p", "~*", "+@all"],
            &["ACL", "SETUSER", "fleet-admin", "off"],
            &["ACL", "DELUSER", "fleet-admin"],
            &["ACL", "LIST"],
            &["ACL", "GETUSER", "fleet-admin"],
            &["ACL", "SAVE"],
            &["ACL", "LOAD"],
            &["ACL", "LOG"],
            &["REPLICAOF", "127.0.0.1", victim_port],
            &["SLAVEOF", "127.0.0.1", victim_port],
            &["FAILOVER"],
            &["SHUTDOWN"],
            &["SHUTDOWN", "NOSAVE"],
            &["DEBUG", "SLEEP", "0"],
            &["DEBUG", "SET-ACTIVE-EXPIRE", "0"],
            &["MODULE", "LOAD", "/tmp/evil.so"],
            &["MODULE", "LIST"],
            &["MIGRATE", "127.0.0.1", victim_port, "k", "0", "1000"],
            &["SAVE"],
            &["BGSAVE"],
            &["BGREWRITEAOF"],
            &["CLIENT", "KILL", "TYPE", "normal"],
            &["CLIENT", "PAUSE", "10000"],
            &["CLIENT", "NO-EVICT", "on"],
            &["MONITOR"],
            &["SYNC"],
            &["PSYNC", "?", "-1"],
            &["CLUSTER", "RESET"],
            // Scripts run with the caller's permissions.
            &[
                "EVAL",
                "return redis.call('MIGRATE', '127.0.0.1', ARGV[1], 'k', 0, 1000)",
                "0",
                victim_port,
            ],
        ];
        for attack in attacks {
            refused(&mut conn, attack);
        }
        // Nor inside a transaction.
        let queued: redis::RedisResult<redis::Value> = redis::pipe()
            .atomic()
            .cmd("CONFIG")
            .arg("SET")
            .arg("port")
            .arg(victim_port)
            .query(&mut conn);
        assert!(queued.is_err(), "{queued:?}");

        // Everything the service decided is as it decided.
        assert_eq!(config_get(&mut conn, "port"), env["CLOUDRON_REDIS_PORT"]);
        assert_eq!(config_get(&mut conn, "bind"), "127.0.0.1");
        assert_eq!(
            config_get(&mut conn, "maxmemory"),
            (150 * 1024 * 1024).to_string()
        );
        assert_eq!(config_get(&mut conn, "maxmemory-policy"), "noeviction");
        assert_eq!(config_get(&mut conn, "appendonly"), "yes");
        assert_eq!(config_get(&mut conn, "appendfsync"), "always");
        assert_eq!(config_get(&mut conn, "replicaof"), "");
        assert_eq!(
            instance_pids(data.path(), env),
            [pid],
            "still one process, the same"
        );
        let who: String = redis::cmd("ACL").arg("WHOAMI").query(&mut conn).unwrap();
        assert_eq!(who, "default");

        // What apps ordinarily do keeps working.
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query(&mut conn)
            .unwrap();
        let v: String = redis::cmd("GET").arg("k").query(&mut conn).unwrap();
        assert_eq!(v, "v");
        let set: bool = redis::cmd("EXPIRE")
            .arg("k")
            .arg(100)
            .query(&mut conn)
            .unwrap();
        assert!(set);
        let ttl: i64 = redis::cmd("TTL").arg("k").query(&mut conn).unwrap();
        assert!(ttl > 0 && ttl <= 100, "{ttl}");
        let (a, b): (i64, i64) = redis::pipe()
            .cmd("INCR")
            .arg("n")
            .cmd("INCR")
            .arg("n")
            .query(&mut conn)
            .unwrap();
        assert_eq!((a, b), (1, 2));
        let (c,): (i64,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg("n")
            .query(&mut conn)
            .unwrap();
        assert_eq!(c, 3);
        let script: String = redis::cmd("EVAL")
            .arg("return redis.call('GET', KEYS[1])")
            .arg(1)
            .arg("k")
            .query(&mut conn)
            .unwrap();
        assert_eq!(script, "v");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
        assert_eq!(keys.len(), 2, "{keys:?}");
        let _: () = redis::cmd("RPUSH")
            .arg("l")
            .arg(3)
            .arg(1)
            .arg(2)
            .query(&mut conn)
            .unwrap();
        let sorted: Vec<i64> = redis::cmd("SORT").arg("l").query(&mut conn).unwrap();
        assert_eq!(sorted, [1, 2, 3]);
        let info: String = redis::cmd("INFO").query(&mut conn).unwrap();
        assert!(info.contains("redis_version"));
        let _: () = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg("worker")
            .query(&mut conn)
            .unwrap();
        let name: String = redis::cmd("CLIENT")
            .arg("GETNAME")
            .query(&mut conn)
            .unwrap();
        assert_eq!(name, "worker");
        let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
        assert!(clients.contains("name=worker"));
        let _: () = redis::cmd("SELECT").arg(2).query(&mut conn).unwrap();
        let _: () = redis::cmd("SET")
            .arg("in2")
            .arg("x")
            .query(&mut conn)
            .unwrap();
        let _: () = redis::cmd("FLUSHDB").query(&mut conn).unwrap();
        let size: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
        assert_eq!(size, 0);
        let _: () = redis::cmd("SWAPDB").arg(0).arg(2).query(&mut conn).unwrap();
        let _: () = redis::cmd("SWAPDB").arg(0).arg(2).query(&mut conn).unwrap();
        let _: () = redis::cmd("SELECT").arg(0).query(&mut conn).unwrap();
        let v: String = redis::cmd("GET").arg("k").query(&mut conn).unwrap();
        assert_eq!(v, "v");

        // Pub/sub between two connections.
        let mut subscriber = connect(url).unwrap();
        let mut pubsub = subscriber.as_pubsub();
        pubsub.subscribe("news").unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let delivered: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg("hello")
            .query(&mut conn)
            .unwrap();
        assert_eq!(delivered, 1);
        let message = pubsub.get_message().unwrap();
        assert_eq!(message.get_payload::<String>().unwrap(), "hello");
        drop(pubsub);

        let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
        let size: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
        assert_eq!(size, 0);
    }

    // The victim's instance is untouched: its port, its data, its password.
    let mine: String = cmd(&victim["CLOUDRON_REDIS_URL"], &["GET", "mine"]).unwrap();
    assert_eq!(mine, "victim");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_server_on_an_apps_port_is_never_taken_for_its_instance() {
    let data = DataDir::new();
    // No supervisor pass after the first: the test decides when the instance restarts.
    let service = start_service(
        data.path(),
        &port_range(10),
        &[("FLEET_REDIS_SUPERVISE_SECS", "3600")],
    )
    .await;
    let mut client = service.client().await;
    let app = app_id("squatted");
    let env = provision(&mut client, request(&app, false)).await.unwrap();
    let _: () = cmd(&env["CLOUDRON_REDIS_URL"], &["SET", "k", "kept"]).unwrap();
    let port: u16 = env["CLOUDRON_REDIS_PORT"].parse().unwrap();

    // The instance goes down and the attacker's server (no password at all) takes its port.
    kill(instance_pid(data.path(), &env).unwrap(), "KILL");
    assert!(
        eventually(Duration::from_secs(10), || async {
            instance_pids(data.path(), &env).is_empty()
                && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        })
        .await
    );
    let foreign = ForeignServer::start(port).await;

    // A credential rotation restarts the instance; the new server cannot bind, and Provision
    // must say so instead of handing out a URL that leads to the attacker.
    expect_status(
        provision(&mut client, rotated(&app, false, 1)).await,
        Code::Unavailable,
        "did not start",
    );
    // Re-provisioning without a change must not call the foreign server healthy either.
    expect_status(
        provision(&mut client, request(&app, false)).await,
        Code::Unavailable,
        "did not start",
    );
    assert!(instance_pids(data.path(), &env).is_empty());
    // The service leaves alone what it did not start.
    let pong: String = cmd(&foreign.url(), &["PING"]).unwrap();
    assert_eq!(pong, "PONG");

    // Once the port is free again, the instance comes back with its data.
    drop(foreign);
    let back = provision(&mut client, rotated(&app, false, 1))
        .await
        .unwrap();
    assert_eq!(back["CLOUDRON_REDIS_PORT"], env["CLOUDRON_REDIS_PORT"]);
    let v: String = cmd(&back["CLOUDRON_REDIS_URL"], &["GET", "k"]).unwrap();
    assert_eq!(v, "kept");
    assert_eq!(instance_pids(data.path(), &back).len(), 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deprovision_leaves_no_process_and_rotation_leaves_exactly_one() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(10), &[]).await;
    let mut client = service.client().await;
    let app = app_id("leftover");
    let mut env = provision(&mut client, request(&app, false)).await.unwrap();
    let dir = data.path().join(env_name(data.path(), &env).unwrap());
    assert_eq!(servers_on(&dir).len(), 1);

    // Rotations: each time exactly one process, with the new password only.
    for generation in 1..=3 {
        let old = env.clone();
        env = provision(&mut client, rotated(&app, false, generation))
            .await
            .unwrap();
        assert_eq!(env["CLOUDRON_REDIS_PORT"], old["CLOUDRON_REDIS_PORT"]);
        assert_eq!(servers_on(&dir).len(), 1, "after rotation {generation}");
        assert!(connect(&old["CLOUDRON_REDIS_URL"]).is_err());
        let _: () = cmd(&env["CLOUDRON_REDIS_URL"], &["SET", "g", "x"]).unwrap();
    }

    // The attacker tries to get a second copy started: it moves its instance away and waits
    // for the supervisor to start another on its port (refused now, so nothing moves).
    let moved = port_range(1);
    let moved = moved.split('-').next().unwrap();
    let _ = cmd::<()>(
        &env["CLOUDRON_REDIS_URL"],
        &["CONFIG", "SET", "port", moved],
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // three supervisor passes
    assert_eq!(servers_on(&dir).len(), 1);
    // A stray copy on the same directory, as an older version of the service could leave.
    let stray_port = port_range(1);
    let stray_port = stray_port.split('-').next().unwrap();
    let mut stray = std::process::Command::new("redis-server")
        .arg(dir.join("redis.conf"))
        .args(["--port", stray_port])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stray_url = format!(
        "redis://default:{}@127.0.0.1:{stray_port}",
        env["CLOUDRON_REDIS_PASSWORD"]
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            cmd::<String>(&stray_url, &["PING"]).is_ok()
        })
        .await
    );

    deprovision(&mut client, &app).await.unwrap();
    let _ = stray.wait(); // reaps the stray once the service stopped it
    assert!(
        eventually(Duration::from_secs(5), || async {
            servers_on(&dir).is_empty()
        })
        .await,
        "redis-server processes left for a removed app: {:?}",
        servers_on(&dir)
    );
    let password = &env["CLOUDRON_REDIS_PASSWORD"];
    for port in [env["CLOUDRON_REDIS_PORT"].as_str(), moved, stray_port] {
        let url = format!("redis://default:{password}@127.0.0.1:{port}");
        assert!(
            connect(&url).is_err(),
            "the app's password opens port {port}"
        );
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_run_unprivileged_and_their_files_are_private() {
    let data = DataDir::new();
    let service = start_service(data.path(), &port_range(10), &[]).await;
    let mut client = service.client().await;
    let env = provision(&mut client, request(&app_id("private"), false))
        .await
        .unwrap();
    let pid = instance_pid(data.path(), &env).unwrap();
    let uids = host::uids(pid).unwrap();
    if host::running_as_root() {
        let redis = host::uid_of("redis").expect("the redis user");
        assert_eq!(
            uids, [redis; 4],
            "the instance runs as redis, never as root"
        );
    } else {
        assert_eq!(Some(uids.clone()), host::uids(std::process::id()));
    }
    let uid = uids[0];
    let dir = data.path().join(env_name(data.path(), &env).unwrap());
    let mode = |path: &Path| std::fs::metadata(path).unwrap().mode() & 0o7777;
    let owner = |path: &Path| std::fs::metadata(path).unwrap().uid();
    assert_eq!(mode(&dir), 0o700, "the instance directory");
    assert_eq!(owner(&dir), uid);
    let conf = dir.join("redis.conf");
    assert_eq!(mode(&conf), 0o600, "redis.conf holds the passwords");
    assert_eq!(owner(&conf), uid);
    let open = host::open_to_others(&dir);
    assert!(open.is_empty(), "open to others: {open:?}");
    // Others may at most pass through the data directory, not list the apps in it.
    assert_eq!(mode(data.path()) & 0o066, 0);
    // The instance writes its data (the append-only file) as that user.
    let _: () = cmd(&env["CLOUDRON_REDIS_URL"], &["SET", "k", "v"]).unwrap();
    assert_eq!(owner(&dir.join("appendonlydir")), uid);
    service.stop().await;
}
