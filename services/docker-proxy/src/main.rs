//! The `fleet-docker-proxy` binary.

fn main() -> std::process::ExitCode {
    fleet_shared::service::run::<fleet_docker_proxy::Service>()
}
