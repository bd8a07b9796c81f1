//! The Docker Engine backend (deploy/docker-proxy/engine.sh: dockerd 20.10) as the docker addon
//! will use it, proven with the docker CLI only: both clients of this host answer, the busybox
//! test image runs, containers of a user-defined network reach each other by name (and the
//! host, through their gateway: there is no iptables), bind mounts land on the host, two
//! engines run side by side and a stopped one leaves nothing behind, and only root reaches the
//! socket. Every test runs as root only (dockerd runs as root); otherwise it says SKIPPED and
//! checks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::TcpListener,
    os::unix::fs::MetadataExt,
    path::Path,
    process::Output,
    sync::atomic::{AtomicU32, Ordering},
};

use fleet_shared::testkit::DockerEngine;

fn engine() -> &'static DockerEngine {
    DockerEngine::shared().expect("Docker Engine (deploy/install-deps.sh installs docker.io)")
}

/// A name no other test (or test process) uses.
fn unique(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs docker `args` on `engine`, which must succeed; returns its stdout, trimmed.
fn docker(engine: &DockerEngine, args: &[&str]) -> String {
    let output = engine.docker(args).unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}\n{}",
        text(&output),
        engine.log()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The mount points of this host under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| *point == dir || point.starts_with(&format!("{dir}/")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn both_docker_clients_of_this_host_answer_by_api_negotiation() {
    if !DockerEngine::runnable() {
        return;
    }
    let engine = engine();
    let clients: Vec<&str> = ["/usr/local/bin/docker", "/usr/bin/docker"]
        .into_iter()
        .filter(|client| Path::new(client).exists())
        .collect();
    assert!(!clients.is_empty(), "no docker client");
    for client in clients {
        let output = engine
            .command(client)
            .args([
                "version",
                "--format",
                "{{.Server.Version}} {{.Client.Version}}",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{client}: {}", text(&output));
        let versions = String::from_utf8_lossy(&output.stdout);
        assert!(versions.starts_with("20.10."), "{client}: {versions}");
    }
}

#[test]
fn the_busybox_image_runs_and_a_container_without_network_has_loopback_only() {
    if !DockerEngine::runnable() {
        return;
    }
    let engine = engine();
    assert_eq!(
        docker(engine, &["run", "--rm", engine.image(), "echo", "hi"]),
        "hi"
    );
    // --bridge=none: no default bridge, `docker run` puts the container on no network.
    let links = docker(
        engine,
        &[
            "run",
            "--rm",
            engine.image(),
            "sh",
            "-c",
            "ls /sys/class/net",
        ],
    );
    assert_eq!(links, "lo");
}

#[test]
fn containers_of_a_user_defined_network_reach_each_other_by_name() {
    if !DockerEngine::runnable() {
        return;
    }
    let engine = engine();
    let network = unique("net");
    let web = unique("web");
    docker(engine, &["network", "create", &network]);
    let subnet = docker(
        engine,
        &[
            "network",
            "inspect",
            "--format",
            "{{(index .IPAM.Config 0).Subnet}}",
            &network,
        ],
    );
    let pool_prefix = engine
        .address_pool()
        .rsplitn(3, '.')
        .last()
        .unwrap()
        .to_owned();
    assert!(
        subnet.starts_with(&format!("{pool_prefix}.")) && subnet.ends_with("/24"),
        "{subnet} is not from {}",
        engine.address_pool()
    );
    docker(
        engine,
        &[
            "run",
            "-d",
            "--name",
            &web,
            "--network",
            &network,
            engine.image(),
            "sh",
            "-c",
            "mkdir /www && echo hello-from-web >/www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    // Polls inside the client container until httpd listens (busybox wget -T segfaults here:
    // no -T).
    let fetch = format!(
        "for i in $(seq 1 100); do wget -q -O - http://{web}:8080/index.html && exit 0; \
         sleep 0.1; done; exit 1"
    );
    let page = docker(
        engine,
        &[
            "run",
            "--rm",
            "--network",
            &network,
            engine.image(),
            "sh",
            "-c",
            &fetch,
        ],
    );
    assert_eq!(page, "hello-from-web");
    // And with nc, as a raw TCP client.
    let request = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {web} 8080");
    let reply = docker(
        engine,
        &[
            "run",
            "--rm",
            "--network",
            &network,
            engine.image(),
            "sh",
            "-c",
            &request,
        ],
    );
    assert!(
        reply.starts_with("HTTP/1.") && reply.ends_with("hello-from-web"),
        "{reply}"
    );
    docker(engine, &["rm", "-f", &web]);
    docker(engine, &["network", "rm", &network]);
}

#[test]
fn a_container_reaches_a_host_service_on_all_addresses_through_its_gateway() {
    if !DockerEngine::runnable() {
        return;
    }
    let engine = engine();
    // With --iptables=false nothing filters between a network's containers and the host: the
    // gateway is the host's address on the network's bridge.
    let listener = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let network = unique("gw");
    docker(engine, &["network", "create", &network]);
    let gateway = docker(
        engine,
        &[
            "network",
            "inspect",
            "--format",
            "{{(index .IPAM.Config 0).Gateway}}",
            &network,
        ],
    );
    let accepted = std::thread::spawn(move || listener.accept().is_ok());
    let reached = engine
        .docker(&[
            "run",
            "--rm",
            "--network",
            &network,
            engine.image(),
            "sh",
            "-c",
            &format!("echo x | nc -w 5 {gateway} {port}"),
        ])
        .unwrap();
    assert!(reached.status.success(), "{}", text(&reached));
    assert!(accepted.join().unwrap());
    docker(engine, &["network", "rm", &network]);
}

#[test]
fn a_bind_mount_lands_files_on_the_host() {
    if !DockerEngine::runnable() {
        return;
    }
    let engine = engine();
    let host_dir = tempfile::tempdir().unwrap();
    let volume = format!("{}:/out", host_dir.path().display());
    docker(
        engine,
        &[
            "run",
            "--rm",
            "-v",
            &volume,
            engine.image(),
            "sh",
            "-c",
            "echo written-inside >/out/file && id -u >/out/uid",
        ],
    );
    let file = std::fs::read_to_string(host_dir.path().join("file")).unwrap();
    assert_eq!(file, "written-inside\n");
    let meta = std::fs::metadata(host_dir.path().join("file")).unwrap();
    assert_eq!(
        meta.uid(),
        0,
        "written as the container's root, the host's root"
    );
}

#[test]
fn two_engines_run_side_by_side_and_a_stopped_one_leaves_nothing_behind() {
    if !DockerEngine::runnable() {
        return;
    }
    let shared = engine();
    let mut second = DockerEngine::start().unwrap();
    assert_ne!(shared.socket(), second.socket());
    assert_ne!(shared.address_pool(), second.address_pool());
    let network = unique("second");
    docker(&second, &["network", "create", &network]);
    let name = unique("sleeper");
    // A container still running at the stop, as a test that fails half-way leaves one.
    docker(
        &second,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &network,
            second.image(),
            "sleep",
            "600",
        ],
    );
    assert_eq!(
        docker(shared, &["run", "--rm", shared.image(), "echo", "first"]),
        "first"
    );
    assert_eq!(
        docker(&second, &["run", "--rm", second.image(), "echo", "second"]),
        "second"
    );
    assert!(
        docker(shared, &["ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .all(|line| line != name),
        "the first engine sees the second's container"
    );
    let dir = second.dir().to_path_buf();
    assert!(!mounts_under(&dir).is_empty(), "a running engine mounts");
    let pool = second.address_pool().to_owned();
    let started = std::time::Instant::now();
    second.stop().unwrap();
    eprintln!(
        "stopped with a running container in {:?}",
        started.elapsed()
    );
    assert_eq!(mounts_under(&dir), Vec::<String>::new());
    assert!(!dir.exists(), "{} is left", dir.display());
    let routes = std::process::Command::new("ip")
        .args(["-4", "route", "show", "root", &pool])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&routes.stdout).trim(),
        "",
        "a bridge of the stopped engine is left"
    );
    // The shared one is untouched.
    assert_eq!(
        docker(shared, &["run", "--rm", shared.image(), "echo", "still"]),
        "still"
    );
}

#[test]
fn the_socket_is_roots_only() {
    if !DockerEngine::runnable() {
        return;
    }
    let engine = engine();
    let meta = std::fs::metadata(engine.socket()).unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.uid(), meta.gid()),
        (0o660, 0, 0),
        "the socket must be root:root 0660 (not group docker)"
    );
    let output = std::process::Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            "docker",
            "-H",
            &engine.host(),
            "version",
        ])
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(!output.status.success(), "nobody reached the engine");
    assert!(
        text(&output).contains("permission denied"),
        "{}",
        text(&output)
    );
}
