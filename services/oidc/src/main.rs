//! The `fleet-oidc` binary.

fn main() -> std::process::ExitCode {
    fleet_shared::service::run::<fleet_oidc::Service>()
}
