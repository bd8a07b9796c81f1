//! Every gRPC call of the test, made the way a platform's integration test makes it: the real
//! `grpcurl` binary (deploy/install-deps.sh installs it), over server reflection, JSON in and
//! JSON out. The bearer token reaches grpcurl only through its own environment
//! (`-expand-headers`), never its command line; the request goes on its stdin.

use std::process::Command;

use serde_json::Value;

use crate::{
    clients::output_with_stdin,
    mask::{ensure, fail, masked},
};

/// The gRPC status code OK.
pub const OK: i64 = 0;
/// INVALID_ARGUMENT.
pub const INVALID_ARGUMENT: i64 = 3;
/// NOT_FOUND.
pub const NOT_FOUND: i64 = 5;

/// grpcurl aimed at one fleet.
pub struct Grpcurl {
    token: String,
}

/// What one call returned.
#[derive(Debug)]
pub struct Reply {
    /// The gRPC status code (0: OK).
    pub code: i64,
    /// The response message, or for an error `{"code", "message"}` (`-format-error`, which
    /// grpcurl prints on stderr).
    pub json: Value,
}

impl Reply {
    /// The response of a call that must have succeeded.
    #[track_caller]
    pub fn ok(self, what: &str) -> Value {
        ensure(self.code == OK, || {
            format!("{what}: expected OK, got code {}: {}", self.code, self.json)
        });
        self.json
    }

    /// The error message of a call that must have failed with `code`.
    #[track_caller]
    pub fn error(self, what: &str, code: i64) -> String {
        ensure(self.code == code, || {
            format!(
                "{what}: expected code {code}, got {}: {}",
                self.code, self.json
            )
        });
        self.json["message"].as_str().unwrap_or_default().to_owned()
    }
}

impl Grpcurl {
    /// Calls made with `token` (read from the fleet's token file).
    pub fn new(token: String) -> Self {
        Self { token }
    }

    /// Calls `method` (`package.Service/Method`) on 127.0.0.1:`port` with `request`.
    #[track_caller]
    pub fn call(&self, port: u16, method: &str, request: &Value) -> Reply {
        let mut command = Command::new("grpcurl");
        command
            .args([
                "-plaintext",
                "-format-error",
                "-expand-headers",
                "-max-time",
                "120",
            ])
            .args(["-H", "authorization: Bearer ${E2E_GRPC_TOKEN}"])
            .env("E2E_GRPC_TOKEN", &self.token)
            .args(["-d", "@"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(method);
        run(command, &request.to_string(), method)
    }

    /// `grpc.health.v1.Health/Check` of the server on `port` (no token needed), as its
    /// `status` ("SERVING"...), or grpcurl's complaint.
    pub fn health(port: u16) -> Result<String, String> {
        let mut command = Command::new("grpcurl");
        command
            .args(["-plaintext", "-format-error", "-max-time", "5", "-d", "@"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("grpc.health.v1.Health/Check");
        let output = output_with_stdin(command, "{}", "grpcurl (health check)");
        if output.status.success() {
            let reply: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
            Ok(reply["status"].as_str().unwrap_or_default().to_owned())
        } else {
            Err(masked(&format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }
}

#[track_caller]
fn run(command: Command, stdin: &str, method: &str) -> Reply {
    let output = output_with_stdin(command, stdin, &format!("grpcurl ({method})"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // grpcurl exits 0 on OK and 64 + the status code on an RPC error; anything else is
    // grpcurl's own failure.
    let code = match output.status.code() {
        Some(0) => OK,
        Some(status @ 64..=80) => i64::from(status - 64),
        other => fail(&format!(
            "grpcurl {method} failed (exit {other:?}): {stdout}{stderr}"
        )),
    };
    // The response on stdout; an error, as JSON (-format-error), on stderr.
    let text = if code == OK { &stdout } else { &stderr };
    let json = serde_json::from_str(text).unwrap_or_else(|e| {
        fail(&format!(
            "grpcurl {method}: no JSON ({e}): {stdout}{stderr}"
        ))
    });
    Reply { code, json }
}
