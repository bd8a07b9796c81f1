//! `fleet-coordinator`: configuration from the environment, JSON logs, then serve until
//! SIGTERM.

fn main() -> std::process::ExitCode {
    fleet_shared::service::run::<fleet_coordinator::Service>()
}
