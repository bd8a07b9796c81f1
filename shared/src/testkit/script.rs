//! Running a backend's `cluster.sh` the way the kit's watchdog cannot by itself: with
//! settings in its environment (the watchdog passes none), from a small wrapper script in a
//! private temp dir; and feeding a command its stdin.

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Output, Stdio},
};

use super::TestkitError;

/// A wrapper script: `export`s of its settings, then the lines that run the backend's script.
/// Needed only until the server runs; removed when dropped.
pub(crate) struct ScriptWrapper {
    dir: tempfile::TempDir,
    exports: String,
    script: String,
}

impl ScriptWrapper {
    /// A wrapper for `backend` (in its temp dir's name) that exports `settings`.
    pub(crate) fn new(backend: &str, settings: &[(String, String)]) -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("fleet-{backend}-wrapper-"))
            .tempdir()
            .map_err(write_error)?;
        let mut exports = String::from("#!/bin/sh\nset -eu\n");
        for (name, value) in settings {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(TestkitError::new(format!("not a variable name: {name:?}")));
            }
            exports.push_str(&format!("export {name}={}\n", shell_quote(value)));
        }
        Ok(Self {
            dir,
            exports,
            script: String::new(),
        })
    }

    /// The wrapper's private directory, for files its lines use.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the script: the exports, then `lines` (which end by `exec`ing the backend's
    /// script with the kit's arguments `"$@"`).
    pub(crate) fn write(&mut self, lines: &str) -> Result<(), TestkitError> {
        let script = self.dir.path().join("cluster.sh");
        fs::write(&script, format!("{}{lines}", self.exports)).map_err(write_error)?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).map_err(write_error)?;
        self.script = script.display().to_string();
        Ok(())
    }

    /// The script's path.
    pub(crate) fn script(&self) -> &str {
        &self.script
    }
}

fn write_error(error: std::io::Error) -> TestkitError {
    TestkitError::new(format!("cannot write a wrapper: {error}"))
}

/// `value` single-quoted for sh.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Runs `command` with `input` on its stdin.
pub(crate) fn with_stdin(
    mut command: Command,
    input: &str,
    what: &str,
) -> Result<Output, TestkitError> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TestkitError::new(format!("cannot run {what}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| TestkitError::new(format!("cannot write to {what}: {e}")))?;
    }
    child
        .wait_with_output()
        .map_err(|e| TestkitError::new(format!("cannot wait for {what}: {e}")))
}
