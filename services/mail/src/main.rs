//! The `fleet-mail` binary.

fn main() -> std::process::ExitCode {
    fleet_shared::service::run::<fleet_mail::Service>()
}
