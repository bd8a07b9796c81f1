//! The app as an attacker: every way out of its own containers that the Docker API offers,
//! tried with the real `docker` CLI through its endpoint, refused with a message, and checked
//! on the engine itself: nothing was created.

use std::{
    io::{Read, Write},
    net::TcpStream,
    os::unix::fs::symlink,
    time::Duration,
};

use crate::support::*;

/// Runs `docker run --name <unique> args... IMAGE true` as `app`: it must be refused with a
/// message containing `expected`, and the engine must have no such container.
#[track_caller]
fn refused_run(app: &Cli, args: &[&str], expected: &str) {
    let name = format!(
        "attack-{}",
        fleet_shared::testkit::harness::unique_app_id("c")
    );
    let mut full = vec!["run", "--rm", "--name", &name];
    full.extend_from_slice(args);
    full.extend_from_slice(&[image(), "true"]);
    let stderr = app.refused(&full);
    assert!(
        stderr.contains(expected),
        "docker run {args:?}: expected {expected:?} in {stderr:?}"
    );
    assert!(!engine_has_container(&name), "{args:?} created {name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn container_escapes_are_refused_and_create_nothing() {
    let mut proxy = DockerProxy::start().await;
    let (app, cli) = proxy.app("escape").await;
    let (_, other) = proxy.app("victim").await;
    let victim = other.ok(&["run", "-d", image(), "sleep", "300"]);
    let attacks: Vec<(Vec<String>, &str)> = vec![
        (vec!["-v", "/:/host"], "only paths under /app/data"),
        (vec!["-v", "/etc:/etc2:ro"], "only paths under /app/data"),
        (vec!["-v", "/app/data/../../..:/x"], "'..' are not allowed"),
        (vec!["-v", "shared-volume:/x"], "named volume"),
        (
            vec!["--mount", "type=bind,src=/etc,dst=/x"],
            "only paths under /app/data",
        ),
        (
            vec![
                "--mount",
                "type=volume,dst=/x,volume-opt=type=none,volume-opt=device=/,volume-opt=o=bind",
            ],
            "volume driver options are not allowed",
        ),
        (vec!["--privileged"], "Privileged is not allowed"),
        (vec!["--cap-add", "SYS_ADMIN"], "CapAdd is not allowed"),
        (vec!["--cap-add", "ALL"], "CapAdd is not allowed"),
        (vec!["--device", "/dev/null"], "Devices is not allowed"),
        (
            vec!["--device-cgroup-rule", "a *:* rwm"],
            "DeviceCgroupRules is not allowed",
        ),
        (vec!["--pid", "host"], "PidMode is not allowed"),
        (vec!["--ipc", "host"], "IpcMode \"host\" is not allowed"),
        (vec!["--uts", "host"], "UTSMode is not allowed"),
        (vec!["--userns", "host"], "UsernsMode is not allowed"),
        (
            vec!["--cgroupns", "host"],
            "CgroupnsMode \"host\" is not allowed",
        ),
        (
            vec!["--network", "host"],
            "network mode \"host\" is not allowed",
        ),
        (vec!["--network", "bridge"], "is not allowed"),
        (
            vec!["--security-opt", "seccomp=unconfined"],
            "security option",
        ),
        (
            vec!["--security-opt", "apparmor=unconfined"],
            "security option",
        ),
        (
            vec!["--security-opt", "systempaths=unconfined"],
            "MaskedPaths is not allowed",
        ),
        (vec!["--cgroup-parent", "/"], "CgroupParent is not allowed"),
        (vec!["--runtime", "runc"], "Runtime is not allowed"),
        (
            vec!["--sysctl", "net.ipv4.ip_forward=1"],
            "Sysctls is not allowed",
        ),
        (vec!["-p", "8080:80"], "publishing ports"),
        (vec!["-P", "--expose", "80"], "publishing ports"),
        (vec!["--oom-kill-disable"], "OomKillDisable is not allowed"),
        (vec!["--oom-score-adj", "-1000"], "OomScoreAdj"),
        (vec!["--log-driver", "syslog"], "log driver"),
        (
            vec!["--ulimit", "nofile=1048576:1048576"],
            "Ulimits is not allowed",
        ),
        (
            vec!["--label", "fleet.docker.app=someone"],
            "set by the fleet",
        ),
        (
            vec!["--label", "fleet.docker.seal=forged"],
            "set by the fleet",
        ),
        (
            vec!["--network", NETWORK, "--network-alias", "db"],
            "network setting \"Aliases\" is not allowed",
        ),
        (
            vec!["--network", NETWORK, "--ip", "10.99.0.9"],
            "network setting \"IPAMConfig\" is not allowed",
        ),
        (
            vec!["--volumes-from", victim.as_str()],
            "VolumesFrom is not allowed",
        ),
        (
            vec!["--network", &format!("container:{victim}")],
            "is not allowed",
        ),
        (
            vec!["--pid", &format!("container:{victim}")],
            "PidMode is not allowed",
        ),
    ]
    .into_iter()
    .map(|(args, expected)| (args.into_iter().map(str::to_owned).collect(), expected))
    .collect();
    for (args, expected) in &attacks {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused_run(&cli, &args, expected);
    }
    assert_eq!(engine_containers_of(&app), Vec::<String>::new());
    other.ok(&["rm", "-f", &victim]);
}

#[tokio::test(flavor = "multi_thread")]
async fn binds_stay_inside_the_apps_data_directory() {
    let mut proxy = DockerProxy::start().await;
    let (app, cli) = proxy.app("symlink").await;
    let data = proxy.layout.data_dir(&app);
    std::fs::create_dir_all(data.join("work")).unwrap();
    symlink("/", data.join("root")).unwrap();
    symlink("../../..", data.join("up")).unwrap();
    symlink("/etc/passwd", data.join("passwd")).unwrap();
    // Another app's data directory, next to this one.
    let (neighbour, _) = proxy.app("neighbour").await;
    let neighbours = proxy.layout.data_dir(&neighbour);
    symlink(&neighbours, data.join("next-door")).unwrap();
    for source in [
        "/app/data/root",
        "/app/data/root/etc",
        "/app/data/up",
        "/app/data/passwd",
        "/app/data/next-door",
    ] {
        refused_run(&cli, &["-v", &format!("{source}:/x")], "leads out");
        refused_run(
            &cli,
            &["--mount", &format!("type=bind,src={source},dst=/x")],
            "leads out",
        );
    }
    refused_run(&cli, &["-v", "/app/data/missing:/x"], "does not exist");
    // Inside, it works, and lands in the app's directory on the host.
    cli.ok(&[
        "run",
        "--rm",
        "-v",
        "/app/data/work:/w",
        image(),
        "sh",
        "-c",
        "echo inside > /w/proof",
    ]);
    assert_eq!(read_file(&data, "work/proof").as_deref(), Some("inside\n"));
    assert_eq!(engine_containers_of(&app), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn another_apps_containers_do_not_exist() {
    let mut proxy = DockerProxy::start().await;
    let (victim_app, victim) = proxy.app("victim").await;
    let (_, attacker) = proxy.app("attacker").await;
    let id = victim.ok(&[
        "run",
        "-d",
        "--name",
        &format!("{victim_app}-box"),
        image(),
        "sleep",
        "300",
    ]);
    let name = format!("{victim_app}-box");
    assert!(
        !attacker.ok(&["ps", "-a", "--no-trunc"]).contains(&id),
        "the attacker lists the victim's container"
    );
    for target in [id.as_str(), &id[..12], name.as_str()] {
        for args in [
            vec!["inspect", "--type", "container", target],
            vec!["exec", target, "id"],
            vec!["logs", target],
            vec!["top", target],
            vec!["stop", "-t", "0", target],
            vec!["kill", target],
            vec!["restart", target],
            vec!["start", target],
            vec!["wait", target],
            // Not `rm -f`: the CLI takes "no such container" as done when forcing.
            vec!["rm", target],
            vec!["attach", "--no-stdin", target],
            vec!["stats", "--no-stream", target],
        ] {
            let stderr = attacker.refused(&args);
            assert!(stderr.contains("No such container"), "{args:?}: {stderr}");
        }
    }
    // An exec instance of the victim's, by id.
    let exec = victim.ok(&["exec", "-d", &id, "sleep", "1"]);
    assert_eq!(exec, "", "exec -d prints nothing");
    let exec_id = raw_post_json(
        &victim.host,
        &format!("/containers/{id}/exec"),
        r#"{"Cmd":["id"],"AttachStdout":true}"#,
    );
    let exec_id = serde_json::from_str::<serde_json::Value>(&exec_id).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in [
        ("POST", format!("/exec/{exec_id}/start")),
        ("GET", format!("/exec/{exec_id}/json")),
        ("POST", format!("/exec/{exec_id}/resize?h=10&w=10")),
    ] {
        let answer = raw(&attacker.host, method, &path, Some("{}"));
        assert!(
            answer.starts_with("HTTP/1.0 404"),
            "{method} {path}: {answer}"
        );
        assert!(answer.contains("No such exec instance"), "{answer}");
    }
    // Paths the engine would clean into another call.
    for path in [
        format!("/images/../containers/{id}/json"),
        format!("/images/%2e%2e/containers/{id}/json"),
    ] {
        let answer = raw(&attacker.host, "GET", &path, None);
        assert!(answer.starts_with("HTTP/1.0 403"), "{path}: {answer}");
        assert!(
            !answer.contains("\"Id\""),
            "{path} reached the victim: {answer}"
        );
    }
    // The victim's container is untouched.
    assert_eq!(
        Cli::engine().ok(&["inspect", "--format", "{{.State.Running}}", &id]),
        "true"
    );
    victim.ok(&["rm", "-f", &id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_show_only_the_apps_own_containers() {
    let mut proxy = DockerProxy::start().await;
    let (_, mine) = proxy.app("events-mine").await;
    let (_, other) = proxy.app("events-other").await;
    let start = unix_now();
    let own = mine.ok(&["create", image(), "true"]);
    let foreign = other.ok(&["create", image(), "true"]);
    let until = unix_now() + 2;
    let events = mine.ok(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}}",
    ]);
    assert!(
        events.contains(&own),
        "own container's events missing: {events}"
    );
    assert!(!events.contains(&foreign), "another app's events: {events}");
    assert!(
        events.lines().all(|l| l.starts_with("container ")),
        "{events}"
    );
    mine.ok(&["rm", &own]);
    other.ok(&["rm", &foreign]);
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_wide_calls_are_refused() {
    let mut proxy = DockerProxy::start().await;
    let (app, cli) = proxy.app("wide").await;
    let own = cli.ok(&["create", image(), "true"]);
    let networks_before = Cli::engine().ok(&["network", "ls", "-q"]);
    let volumes_before = Cli::engine().ok(&["volume", "ls", "-q"]);
    for (args, expected) in [
        (vec!["pull", "busybox"], "pulling"),
        (
            vec!["image", "rm", image()],
            "changing, pulling or pushing images",
        ),
        (vec!["tag", image(), "mine:latest"], "changing"),
        (vec!["network", "create", "mine"], "networks is not allowed"),
        (
            vec!["network", "connect", "bridge", &own],
            "networks is not allowed",
        ),
        (vec!["network", "ls"], "networks is not allowed"),
        (vec!["volume", "create", "mine"], "volumes is not allowed"),
        (vec!["swarm", "init"], "swarm"),
        (vec!["service", "ls"], "swarm"),
        (vec!["secret", "ls"], "swarm"),
        (vec!["config", "ls"], "swarm"),
        (vec!["plugin", "ls"], "plugins"),
        (vec!["commit", &own, "mine:latest"], "committing"),
        (vec!["export", &own], "this call is not allowed"),
        (
            vec!["cp", &format!("{own}:/bin/sh"), "/tmp/stolen"],
            "this call is not allowed",
        ),
        (vec!["container", "prune", "-f"], "this call is not allowed"),
        (vec!["system", "df"], "engine-wide"),
        (
            vec!["update", "--memory", "1g", &own],
            "this call is not allowed",
        ),
        (vec!["rename", &own, "renamed"], "this call is not allowed"),
    ] {
        let stderr = cli.refused(&args);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let build = cli.run_with_stdin(
        &["build", "-"],
        Some(format!("FROM {}\n", image()).as_bytes()),
    );
    assert!(!build.status.success());
    assert!(
        String::from_utf8_lossy(&build.stderr).contains("building images is not allowed"),
        "{build:?}"
    );
    assert_eq!(Cli::engine().ok(&["network", "ls", "-q"]), networks_before);
    assert_eq!(Cli::engine().ok(&["volume", "ls", "-q"]), volumes_before);
    assert!(
        !Cli::engine()
            .run(&["image", "inspect", "mine:latest"])
            .status
            .success()
    );
    assert_eq!(engine_containers_of(&app), vec![own.clone()]);
    cli.ok(&["rm", &own]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_apps_containers_cannot_reach_the_proxy() {
    let mut proxy = DockerProxy::start_with(&[
        ("FLEET_DOCKER_PROXY_ENDPOINT_LISTEN", "0.0.0.0"),
        ("FLEET_DOCKER_PROXY_ENDPOINT_HOST", "127.0.0.1"),
    ])
    .await;
    let (_, cli) = proxy.app("reach").await;
    let port = cli.host.rsplit(':').next().unwrap().to_owned();
    let gateway = Cli::engine().ok(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        NETWORK,
    ]);
    assert!(!gateway.is_empty(), "the apps' network has no gateway");
    // The host's own listener on the gateway answers containers (so the check below means
    // something): a plain HTTP responder.
    let control = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let control_port = control.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in control.incoming().flatten() {
            let mut stream = stream;
            let mut buffer = [0_u8; 1024];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\ncontrol");
        }
    });
    // busybox's nc, not its wget: the static wget crashes looking the address up.
    let fetch = |port: &str| {
        let script = format!("printf 'GET /_ping HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {gateway} {port}");
        let output = cli.run(&["run", "--rm", image(), "sh", "-c", &script]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let reached = fetch(&control_port.to_string());
    assert!(
        reached.ends_with("control"),
        "containers do not reach the host's gateway address: {reached:?}"
    );
    let refused = fetch(&port);
    assert!(
        !refused.contains("HTTP/"),
        "a container reached the proxy: {refused}"
    );
    // From the host, the same endpoint answers.
    assert_eq!(cli.ok(&["version", "--format", "{{.Server.Os}}"]), "linux");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_allowed_sources_are_served() {
    let mut proxy =
        DockerProxy::start_with(&[("FLEET_DOCKER_PROXY_ALLOW_FROM", "192.0.2.0/24")]).await;
    let (_, cli) = proxy.app("source").await;
    let stderr = cli.refused(&["ps"]);
    assert!(!stderr.is_empty());
    let answer = std::panic::catch_unwind(|| raw(&cli.host, "GET", "/_ping", None));
    assert!(
        answer.map_or(true, |a| !a.contains("200 OK")),
        "a source outside FLEET_DOCKER_PROXY_ALLOW_FROM was served"
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One HTTP/1.0 call to the Docker API at `host` (`tcp://ip:port`); the whole answer.
pub fn raw(host: &str, method: &str, path: &str, body: Option<&str>) -> String {
    let address = host.trim_start_matches("tcp://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// `POST path` with a JSON body; the answer's body.
fn raw_post_json(host: &str, path: &str, body: &str) -> String {
    let answer = raw(host, "POST", path, Some(body));
    assert!(answer.starts_with("HTTP/1.0 201"), "{answer}");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
