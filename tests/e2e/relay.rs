//! turn and docker (root only: coturn and dockerd start only as root): a TURN allocation with a
//! credential minted from the app's secret, and containers run through the app's own Docker
//! endpoint with the docker CLI.

use std::path::Path;

use crate::{
    clients::{self, Bundle},
    mask::ensure,
};

/// The image `make up` imports into its dockerd (deploy/docker-proxy/engine.sh import-busybox).
pub const BUSYBOX: &str = "fleet-test/busybox:latest";
/// A container the app leaves running, to see it removed with the app.
const SLEEPER: &str = "e2e-sleeper";

/// coturn allocates a relay, from the relay ports fleet-up.sh was given.
pub fn turn_works(env: &Bundle, relays: (u16, u16)) {
    match clients::turn_allocate(env) {
        Ok(port) => ensure((relays.0..=relays.1).contains(&port), || {
            format!("the TURN relay port {port} is outside FLEET_UP_TURN_RELAY_PORTS {relays:?}")
        }),
        Err(out) => ensure(false, || {
            format!("a TURN allocation with a credential minted from CLOUDRON_TURN_SECRET: {out}")
        }),
    }
}

/// coturn refuses credentials minted from the (old) secret.
pub fn turn_gone(env: &Bundle) {
    let allocation = clients::turn_allocate(env);
    ensure(
        matches!(&allocation, Err(out) if out.contains("Cannot complete Allocation")),
        || {
            format!(
                "a TURN allocation with the uninstalled app's secret must be refused: {allocation:?}"
            )
        },
    );
}

/// The app runs a container through its endpoint, and leaves one running.
pub fn docker_works(env: &Bundle, work: &Path) {
    let run = clients::docker(
        env,
        work,
        &["run", "--rm", BUSYBOX, "echo", "hello from e2e"],
    );
    ensure(run.ok && run.out.contains("hello from e2e"), || {
        format!("docker -H $CLOUDRON_DOCKER_HOST run --rm {BUSYBOX}: {run:?}")
    });
    let sleeper = clients::docker(
        env,
        work,
        &["run", "-d", "--name", SLEEPER, BUSYBOX, "sleep", "600"],
    );
    ensure(sleeper.ok, || format!("docker run -d: {sleeper:?}"));
}

/// The container left running is still there, and the endpoint still answers.
pub fn docker_kept(env: &Bundle, work: &Path) {
    let ps = clients::docker(env, work, &["ps", "--format", "{{.Names}}"]);
    ensure(ps.ok && ps.out == format!("{SLEEPER}\n"), || {
        format!("docker ps after StartApp: {ps:?}")
    });
}

/// The endpoint answers no more, and the engine holds none of the app's containers.
pub fn docker_gone(env: &Bundle, work: &Path, engine: &str, app_id: &str) {
    let ps = clients::docker(env, work, &["ps"]);
    ensure(!ps.ok, || {
        format!("the uninstalled app's Docker endpoint must answer no more: {ps:?}")
    });
    let filter = format!("label=fleet.docker.app={app_id}");
    let left = clients::docker_at(engine, work, &["ps", "-a", "-q", "--filter", &filter]);
    ensure(left.ok && left.out.is_empty(), || {
        format!("the engine still holds the app's containers: {left:?}")
    });
}
