//! The `fleet-turn` binary.

fn main() -> std::process::ExitCode {
    fleet_shared::service::run::<fleet_turn::Service>()
}
