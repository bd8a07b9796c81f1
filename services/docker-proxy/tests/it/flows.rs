//! What an app does with its endpoint, with the real `docker` CLI and with bollard: run,
//! list, log, exec and remove its containers, streams included; what Deprovision, a restart of
//! the service and a missing engine do.

use std::{collections::HashMap, time::Duration};

use bollard::{
    Docker,
    models::{ContainerCreateBody, HostConfig},
    query_parameters::{
        CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
        RemoveContainerOptionsBuilder, WaitContainerOptions,
    },
};
use fleet_shared::testkit::harness::{Served, TestSecrets, eventually, expect_status, provision};
use futures::StreamExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_the_apps_own_containers() {
    let mut proxy = DockerProxy::start().await;
    let (app, cli) = proxy.app("cli").await;
    let data = proxy.layout.data_dir(&app);
    std::fs::create_dir_all(data.join("work")).unwrap();

    assert_eq!(cli.ok(&["run", "--rm", image(), "echo", "hello"]), "hello");
    let id = cli.ok(&[
        "run",
        "-d",
        "-v",
        "/app/data/work:/w",
        image(),
        "sh",
        "-c",
        "echo from-the-container > /w/out; echo started; sleep 300",
    ]);
    assert!(cli.ok(&["ps", "-q", "--no-trunc"]).contains(&id));
    assert!(
        eventually(Duration::from_secs(10), || async {
            read_file(&data, "work/out").as_deref() == Some("from-the-container\n")
        })
        .await,
        "the bind under /app/data did not land in the app's data directory"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            cli.ok(&["logs", &id]) == "started"
        })
        .await
    );
    assert_eq!(
        cli.ok(&["exec", &id, "cat", "/w/out"]),
        "from-the-container"
    );
    let piped = cli.run_with_stdin(&["exec", "-i", &id, "cat"], Some(b"through stdin"));
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "through stdin");
    assert!(cli.ok(&["top", &id]).contains("sleep 300"));
    let inspected = cli.ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.NetworkMode}} {{index .Config.Labels \"fleet.docker.app\"}}",
        &id,
    ]);
    assert_eq!(inspected, format!("{NETWORK} {app}"));
    cli.ok(&["stop", "-t", "0", &id]);
    cli.ok(&["start", &id]);
    cli.ok(&["rm", "-f", &id]);
    assert_eq!(engine_containers_of(&app), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_pass_through_the_proxy() {
    let mut proxy = DockerProxy::start().await;
    let (_, cli) = proxy.app("streams").await;
    // attach (docker run without -d) with stdin, through the upgraded connection.
    let echoed = cli.run_with_stdin(&["run", "-i", "--rm", image(), "cat"], Some(b"one\ntwo\n"));
    assert!(echoed.status.success(), "{echoed:?}");
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "one\ntwo\n");
    // logs -f follows until the container ends.
    let id = cli.ok(&[
        "run",
        "-d",
        image(),
        "sh",
        "-c",
        "for i in 1 2 3; do echo line-$i; sleep 0.3; done",
    ]);
    let followed = cli.ok(&["logs", "-f", &id]);
    assert_eq!(followed, "line-1\nline-2\nline-3");
    assert_eq!(cli.ok(&["wait", &id]), "0");
    cli.ok(&["rm", &id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deprovision_removes_the_apps_containers_and_closes_its_endpoint() {
    let mut proxy = DockerProxy::start().await;
    let (app, cli) = proxy.app("leaving").await;
    let (other_app, other) = proxy.app("staying").await;
    let running = cli.ok(&["run", "-d", image(), "sleep", "300"]);
    let created = cli.ok(&["create", image(), "true"]);
    let theirs = other.ok(&["run", "-d", image(), "sleep", "300"]);
    let mut listed = list(&mut proxy.client).await.unwrap();
    listed.retain(|a| *a == app || *a == other_app);
    assert_eq!(listed.len(), 2);

    deprovision(&mut proxy.client, &app, "docker")
        .await
        .unwrap();
    assert_eq!(engine_containers_of(&app), Vec::<String>::new());
    for id in [&running, &created] {
        assert!(!engine_has_container(id), "{id} survived Deprovision");
    }
    let stderr = cli.refused(&["ps"]);
    assert!(
        stderr.contains("Cannot connect") || stderr.contains("connection refused"),
        "{stderr}"
    );
    assert!(!list(&mut proxy.client).await.unwrap().contains(&app));
    assert!(
        engine_has_container(&theirs),
        "another app's container was removed"
    );
    other.ok(&["ps", "-q"]);
    deprovision(&mut proxy.client, &other_app, "docker")
        .await
        .unwrap();
    assert!(!engine_has_container(&theirs));
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_survive_a_restart_of_the_service() {
    let mut proxy = DockerProxy::start().await;
    let (app, cli) = proxy.app("restart").await;
    let id = cli.ok(&["create", image(), "true"]);
    let secrets = TestSecrets::new().unwrap();
    for file in ["master.key", "token"] {
        std::fs::copy(proxy.served.secrets.path(file), secrets.path(file)).unwrap();
    }
    let layout_env = proxy.layout.env(&[]);
    proxy.served.stop().await;
    assert!(
        !cli.run(&["ps"]).status.success(),
        "the endpoint outlived the service"
    );
    let served = Served::start::<fleet_docker_proxy::Service>(secrets, layout_env)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            cli.run(&["ps", "-aq", "--no-trunc"]).status.success()
        })
        .await,
        "the endpoint did not come back"
    );
    assert_eq!(cli.ok(&["ps", "-aq", "--no-trunc"]), id);
    let mut client = served.client().await;
    let again = provision(&mut client, request(&app, 0)).await.unwrap();
    assert_eq!(
        again["CLOUDRON_DOCKER_HOST"], cli.host,
        "the endpoint moved"
    );
    deprovision(&mut client, &app, "docker").await.unwrap();
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_engine_the_service_runs_not_serving() {
    let layout = Layout::new();
    let mut env = layout.env(&[]);
    for (key, value) in &mut env {
        if key == "FLEET_DOCKER_PROXY_ENGINE_SOCKET" {
            *value = layout.files.path("no-engine.sock").display().to_string();
        }
    }
    let served = Served::start::<fleet_docker_proxy::Service>(TestSecrets::new().unwrap(), env)
        .await
        .unwrap();
    let not_serving = ServingStatus::NotServing as i32;
    assert!(
        eventually(Duration::from_secs(20), || async {
            served.health().await == Some(not_serving)
        })
        .await
    );
    let mut client = served.client().await;
    expect_status(
        provision(&mut client, request("no-engine", 0)).await,
        Code::Unavailable,
        "Docker Engine cannot be reached",
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_client_works_through_the_endpoint() {
    let mut proxy = DockerProxy::start().await;
    let (app, cli) = proxy.app("bollard").await;
    let data = proxy.layout.data_dir(&app);
    let (_, other) = proxy.app("bollard-other").await;
    let foreign = other.ok(&["create", image(), "true"]);

    let docker = Docker::connect_with_http(&cli.host, 30, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let body = ContainerCreateBody {
        image: Some(image().to_owned()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo via-bollard > /d/file; echo done".into(),
        ]),
        host_config: Some(HostConfig {
            binds: Some(vec!["/app/data:/d".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("{app}-rust");
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .unwrap();
    docker.start_container(&created.id, None).await.unwrap();
    let waited: Vec<_> = docker
        .wait_container(&created.id, None::<WaitContainerOptions>)
        .collect()
        .await;
    assert!(waited.iter().all(Result::is_ok), "{waited:?}");
    assert_eq!(read_file(&data, "file").as_deref(), Some("via-bollard\n"));
    let logs: Vec<String> = docker
        .logs(
            &created.id,
            Some(LogsOptionsBuilder::new().stdout(true).build()),
        )
        .map(|chunk| chunk.unwrap().to_string())
        .collect()
        .await;
    assert_eq!(logs.concat(), "done\n");

    let listed = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&HashMap::<String, Vec<String>>::new())
                .build(),
        ))
        .await
        .unwrap();
    let ids: Vec<String> = listed.into_iter().filter_map(|c| c.id).collect();
    assert_eq!(ids, vec![created.id.clone()]);
    let refused = docker.inspect_container(&foreign, None).await.unwrap_err();
    assert!(
        refused.to_string().contains("No such container"),
        "{refused}"
    );
    let privileged = ContainerCreateBody {
        image: Some(image().to_owned()),
        host_config: Some(HostConfig {
            privileged: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let refused = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            privileged,
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("Privileged is not allowed"),
        "{refused}"
    );
    docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
    other.ok(&["rm", &foreign]);
}
