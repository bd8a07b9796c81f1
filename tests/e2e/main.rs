//! The whole fleet as real processes, driven only by grpcurl, as a platform's integration tests
//! drive it (tests/e2e/README.md).
//!
//! `deploy/fleet-up.sh` (what `make up` runs) starts every backend and service on ports picked
//! here, in a state directory of its own, with the debug binaries of this build. Then, only
//! through grpcurl against the coordinator: bad input gets INVALID_ARGUMENT naming the field;
//! InstallApp with every addon there is (as root; otherwise without mail, turn and docker, whose
//! backends start only as root, and the output says so); each addon group's bundle is checked
//! with its backend's own client; StartApp returns the same bundle and the data is still there;
//! GetApp and ListApps show the app; UpdateApp drops mongodb (whose credentials then fail),
//! changes options, and adds mongodb back (empty); UninstallApp leaves no resource (the old
//! credentials fail with every client, no service lists the app). Finally SIGTERM to the fleet's
//! process group stops it, with nothing left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod clients;
mod databases;
mod directory;
mod fleet;
mod grpcurl;
mod mail;
mod mask;
mod relay;

use std::{collections::BTreeSet, time::Instant};

use serde_json::{Value, json};

use crate::{
    clients::Bundle,
    fleet::Fleet,
    grpcurl::{Grpcurl, INVALID_ARGUMENT, NOT_FOUND},
    mask::ensure,
};

const COORDINATOR: &str = "fleet.coordinator.v1.Coordinator";
const APP_ID: &str = "e2e-full";
const APP_DOMAIN: &str = "full.e2e.localhost";

/// Addons whose backends fleet-up.sh starts only as root, and their service.
const ROOT_ONLY: [(&str, &str); 5] = [
    ("sendmail", "mail"),
    ("recvmail", "mail"),
    ("email", "mail"),
    ("turn", "turn"),
    ("docker", "docker-proxy"),
];

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The manifest's `addons`: every addon of the catalog (shared/src/catalog.rs), with options
/// where they show in the bundle; without the root-only ones when `root` is false.
/// `proxy_auth_path` and `display_name` are what UpdateApp changes; `mongodb` what it drops.
fn manifest(root: bool, mongodb: bool, proxy_auth_path: &str, display_name: bool) -> Value {
    let mut addons = json!({
        "mysql": {},
        "postgresql": {"locale": databases::POSTGRESQL_LOCALE},
        "redis": {},
        "ldap": {},
        "oidc": {"loginRedirectUri": directory::LOGIN_REDIRECT},
        "proxyAuth": {"path": proxy_auth_path},
        "localstorage": {},
        "scheduler": {"feeds": {"schedule": "*/5 * * * *", "command": "/app/code/feeds.sh"}},
        "tls": {},
    });
    if mongodb {
        addons["mongodb"] = json!({});
    }
    if root {
        addons["sendmail"] = json!({"supportsDisplayName": display_name});
        addons["recvmail"] = json!({});
        addons["email"] = json!({});
        addons["turn"] = json!({});
        addons["docker"] = json!({});
    }
    addons
}

/// Addons a service provisions (`provisioned_addons`), sorted.
fn provisioned(addons: &Value) -> Vec<String> {
    let local = ["localstorage", "scheduler", "tls"];
    let mut names: Vec<String> = addons
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    names.retain(|name| !local.contains(&name.as_str()));
    names.sort();
    names
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The test's steps, each timed in the output.
struct Steps {
    start: Instant,
    last: Instant,
}

impl Steps {
    fn done(&mut self, what: &str) {
        eprintln!(
            "e2e: {what} ({:.1} s; {:.1} s in all)",
            self.last.elapsed().as_secs_f64(),
            self.start.elapsed().as_secs_f64()
        );
        self.last = Instant::now();
    }
}

#[test]
fn the_whole_fleet_through_grpcurl() {
    let mut steps = Steps {
        start: Instant::now(),
        last: Instant::now(),
    };
    let root = is_root();
    let services: Vec<&str> = fleet::SERVICES
        .iter()
        .copied()
        .filter(|service| root || !ROOT_ONLY.iter().any(|(_, s)| s == service))
        .collect();
    if !root {
        eprintln!(
            "e2e: not root: left out the addons {} (fleet-up.sh starts Postfix + Dovecot, coturn \
             and dockerd only as root)",
            ROOT_ONLY.map(|(addon, _)| addon).join(", ")
        );
    }
    let work = tempfile::tempdir().unwrap();
    let bin_dir = fleet::service_binaries();
    steps.done(&format!(
        "the services' binaries are in {}",
        bin_dir.display()
    ));

    let fleet = Fleet::start(&bin_dir, &work.path().join("fleet-up.log"));
    let ports = fleet.ports.clone();
    let coordinator = ports.of("coordinator");
    let grpc = Grpcurl::new(fleet.token());
    let call = |method: &str, request: Value| {
        grpc.call(coordinator, &format!("{COORDINATOR}/{method}"), &request)
    };
    let provider = format!("http://127.0.0.1:{}", ports.oidc_http);
    let engine = format!("unix://{}/docker/docker.sock", fleet.state_dir().display());
    // Which apps every addon service holds resources for (fleet.addon.v1.Addon/List).
    let listed_by = |service: &str| -> Vec<String> {
        let reply = grpc
            .call(ports.of(service), "fleet.addon.v1.Addon/List", &json!({}))
            .ok(&format!("List of the {service} service"));
        strings(&reply["appIds"])
    };
    steps.done("fleet-up.sh started the fleet; the coordinator is SERVING");

    // --- Bad input: INVALID_ARGUMENT naming each field, and nothing installed.
    let message = call(
        "InstallApp",
        json!({"app_id": "bad id!", "app_domain": "bad.localhost",
               "addons": {"mysql": {"multipleDatabases": "yes"}}}),
    )
    .error("InstallApp with a bad app id and option", INVALID_ARGUMENT);
    ensure(
        message.contains("app_id") && message.contains("addons.mysql.multipleDatabases"),
        || format!("the error must name app_id and addons.mysql.multipleDatabases: {message}"),
    );
    let message = call("ListApps", json!({"page_size": -1}))
        .error("ListApps with a negative page size", INVALID_ARGUMENT);
    ensure(message.contains("page_size"), || {
        format!("the error must name page_size: {message}")
    });
    let apps = call("ListApps", json!({})).ok("ListApps");
    ensure(apps["apps"].as_array().is_none_or(Vec::is_empty), || {
        format!("a refused install must leave no app: {apps}")
    });
    steps.done("bad input gets INVALID_ARGUMENT naming the field");

    // --- InstallApp with every addon.
    let addons = manifest(root, true, directory::PROXY_AUTH_PATH, false);
    let reply = call(
        "InstallApp",
        json!({"app_id": APP_ID, "app_domain": APP_DOMAIN, "addons": addons}),
    )
    .ok("InstallApp");
    let installed = Bundle::from_reply(&reply);
    let app = &reply["app"];
    ensure(
        strings(&app["provisionedAddons"]) == provisioned(&addons),
        || format!("provisioned addons: {}", app["provisionedAddons"]),
    );
    ensure(
        app["localStorage"]["enabled"] == json!(true)
            && app["tls"]["enabled"] == json!(true)
            && app["scheduledTasks"][0]["name"] == json!("feeds")
            && app["proxyAuth"]["path"] == json!(directory::PROXY_AUTH_PATH),
        || format!("localstorage, tls, scheduler and proxyAuth as the manifest says: {app}"),
    );
    ensure(installed.var("APP_DOMAIN") == APP_DOMAIN, || {
        "CLOUDRON_APP_DOMAIN".to_owned()
    });
    // Everything where fleet-up.sh was told, none of it on `make up`'s default ports.
    let port_of = |name: &str| installed.var(name).parse::<u16>().unwrap_or_default();
    let within = |port: u16, (first, last): (u16, u16)| (first..=last).contains(&port);
    ensure(within(port_of("REDIS_PORT"), ports.redis_instances), || {
        format!(
            "CLOUDRON_REDIS_PORT outside FLEET_UP_REDIS_PORTS {:?}",
            ports.redis_instances
        )
    });
    ensure(
        port_of("POSTGRESQL_PORT") == ports.pg && port_of("MYSQL_PORT") == ports.mariadb,
        || {
            "CLOUDRON_POSTGRESQL_PORT and _MYSQL_PORT are FLEET_UP_PG_PORT and _MARIADB_PORT"
                .to_owned()
        },
    );
    if root {
        let endpoint = installed
            .var("DOCKER_HOST")
            .rsplit(':')
            .next()
            .unwrap_or_default();
        ensure(
            within(endpoint.parse().unwrap_or_default(), ports.docker_endpoints),
            || {
                format!(
                    "CLOUDRON_DOCKER_HOST outside FLEET_UP_DOCKER_ENDPOINT_PORTS {:?}",
                    ports.docker_endpoints
                )
            },
        );
        ensure(
            port_of("MAIL_SMTP_PORT") == ports.mail_server
                && port_of("TURN_PORT") == ports.turn_server,
            || {
                "CLOUDRON_MAIL_SMTP_PORT and _TURN_PORT are FLEET_UP_MAIL_SERVER_PORT and _TURN_SERVER_PORT".to_owned()
            },
        );
    }
    let metrics_port = i32::from(coordinator) + ports.metrics_offset;
    let metrics = clients::curl_get(&format!("http://127.0.0.1:{metrics_port}/metrics"));
    ensure(metrics.ok && metrics.out.contains("InstallApp"), || {
        format!("the coordinator's metrics at its port + FLEET_UP_METRICS_OFFSET: {metrics:?}")
    });
    steps.done("InstallApp with every addon");
    for service in &services[1..] {
        let listed = listed_by(service);
        ensure(listed.iter().any(|id| id == APP_ID), || {
            format!("the {service} service must list {APP_ID}: {listed:?}")
        });
    }

    databases::works(&installed, work.path());
    steps.done("mysql, postgresql, mongodb, redis: each bundle works with its own client");
    directory::works(&installed, work.path(), &provider, APP_DOMAIN);
    steps.done("ldap, oidc, proxyAuth work");
    let subject = format!("e2e mail {}", std::process::id());
    if root {
        mail::works(&installed, &subject);
        steps.done("sendmail, recvmail, email work");
        relay::turn_works(&installed, ports.turn_relays);
        relay::docker_works(&installed, work.path());
        steps.done("turn and docker work");
    }

    // --- StartApp: the same bundle, and the data is still there.
    let started = Bundle::from_reply(&call("StartApp", json!({"app_id": APP_ID})).ok("StartApp"));
    ensure(started == installed, || {
        "StartApp must return the install's bundle (same credentials)".to_owned()
    });
    databases::kept(&started, work.path());
    if root {
        mail::kept(&started, &subject);
        relay::docker_kept(&started, work.path());
    }
    steps.done("StartApp: the same bundle, the data kept");

    // --- GetApp and ListApps.
    let got = call("GetApp", json!({"app_id": APP_ID})).ok("GetApp");
    ensure(
        got["app"]["appDomain"] == json!(APP_DOMAIN)
            && strings(&got["app"]["provisionedAddons"]) == provisioned(&addons),
        || format!("GetApp: {got}"),
    );
    let apps = call("ListApps", json!({})).ok("ListApps");
    let ids: Vec<&Value> = apps["apps"]
        .as_array()
        .map(|apps| apps.iter().map(|app| &app["appId"]).collect())
        .unwrap_or_default();
    ensure(ids == [&json!(APP_ID)], || format!("ListApps: {apps}"));
    steps.done("GetApp and ListApps show the app");

    // --- UpdateApp: drop mongodb, change proxyAuth's path and sendmail's display name.
    let updated_addons = manifest(root, false, "/private", true);
    let reply = call(
        "UpdateApp",
        json!({"app_id": APP_ID, "addons": updated_addons}),
    )
    .ok("UpdateApp dropping mongodb");
    let updated = Bundle::from_reply(&reply);
    ensure(
        strings(&reply["app"]["provisionedAddons"]) == provisioned(&updated_addons),
        || {
            format!(
                "provisioned addons after the update: {}",
                reply["app"]["provisionedAddons"]
            )
        },
    );
    let mut expected_keys: BTreeSet<&String> = installed
        .0
        .keys()
        .filter(|key| !key.starts_with("CLOUDRON_MONGODB_"))
        .collect();
    let display_name = "CLOUDRON_MAIL_FROM_DISPLAY_NAME".to_owned();
    if root {
        expected_keys.insert(&display_name);
    }
    ensure(
        updated.0.keys().collect::<BTreeSet<_>>() == expected_keys,
        || {
            format!(
                "variables after the update: {:?}",
                updated.0.keys().collect::<Vec<_>>()
            )
        },
    );
    ensure(
        installed
            .0
            .iter()
            .filter(|(key, _)| !key.starts_with("CLOUDRON_MONGODB_"))
            .all(|(key, value)| updated.0.get(key) == Some(value)),
        || "the addons kept must keep their credentials across the update".to_owned(),
    );
    if root {
        ensure(updated.var("MAIL_FROM_DISPLAY_NAME") == APP_DOMAIN, || {
            "CLOUDRON_MAIL_FROM_DISPLAY_NAME (supportsDisplayName)".to_owned()
        });
    }
    databases::mongodb_gone(&installed);
    ensure(!listed_by("mongodb").iter().any(|id| id == APP_ID), || {
        "the mongodb service must no longer list the app".to_owned()
    });
    let (admin, private) = (
        clients::proxy_auth_status(&provider, APP_DOMAIN, "/admin"),
        clients::proxy_auth_status(&provider, APP_DOMAIN, "/private"),
    );
    ensure((admin, private) == (204, 401), || {
        format!("proxyAuth moved to /private: /admin {admin}, /private {private}")
    });
    steps.done("UpdateApp: mongodb dropped (its credentials refused), options changed");

    // --- UpdateApp: mongodb added again, empty (its data went with it).
    let reply = call(
        "UpdateApp",
        json!({"app_id": APP_ID, "addons": manifest(root, true, "/private", true)}),
    )
    .ok("UpdateApp adding mongodb");
    let current = Bundle::from_reply(&reply);
    databases::mongodb_works(&current, 0);
    steps.done("UpdateApp: mongodb added, a new empty database");

    // --- UninstallApp: every resource gone.
    call("UninstallApp", json!({"app_id": APP_ID})).ok("UninstallApp");
    databases::gone(&current, work.path());
    directory::gone(&current, work.path(), &provider, APP_DOMAIN);
    if root {
        mail::gone(&current);
        relay::turn_gone(&current);
        relay::docker_gone(&current, work.path(), &engine, APP_ID);
    }
    for service in &services[1..] {
        let listed = listed_by(service);
        ensure(!listed.iter().any(|id| id == APP_ID), || {
            format!("the {service} service still lists {APP_ID}: {listed:?}")
        });
    }
    let apps = call("ListApps", json!({})).ok("ListApps");
    ensure(apps["apps"].as_array().is_none_or(Vec::is_empty), || {
        format!("ListApps after UninstallApp: {apps}")
    });
    call("GetApp", json!({"app_id": APP_ID})).error("GetApp after UninstallApp", NOT_FOUND);
    call("UninstallApp", json!({"app_id": APP_ID})).ok("UninstallApp again (idempotent)");
    steps.done("UninstallApp: every old credential refused, no service lists the app");

    let took = fleet.stop();
    steps.done(&format!(
        "SIGTERM to the fleet's process group: stopped in {:.1} s, nothing left, state removed",
        took.as_secs_f64()
    ));
}
