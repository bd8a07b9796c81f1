//! A private Postfix + Dovecot, set up by `deploy/mail/cluster.sh` like the one `make up`
//! starts: SMTP submission (plain and implicit TLS) with Dovecot's SASL, IMAP(S), POP3(S) and
//! ManageSieve for the accounts of the Dovecot passwd-file `DIR/passwd`, and delivery of the
//! mail domain's mail to Dovecot over LMTP. An account may only send as its own address.
//!
//! Ports are a block from the base port on (the script's offsets): tests reach each through
//! its accessor. Accounts are added the way the mail service adds them: a `{SHA512-CRYPT}` hash
//! made by `doveadm pw` (the password on its stdin, never on a command line), the whole file
//! replaced atomically, then a wait until Dovecot accepts the login, since Dovecot re-reads the
//! file on its own (on an mtime or size change, at most once a second).

use std::{
    fs,
    io::Write,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{TestkitError, Watched, accepts_tcp, deploy_script, free_port_block};

/// How many ports the server takes from its base port on (submission ... LMTP).
const PORTS: u16 = 8;

/// How long a new or changed account may take to be accepted by Dovecot.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Postfix + Dovecot on 127.0.0.1. Stopped when dropped or when the test process
/// exits.
pub struct MailServer {
    server: Watched,
    domain: String,
    /// Serialises this process's rewrites of the passwd-file (two writers rewriting one file
    /// would lose an entry).
    passwd_lock: Mutex<()>,
}

impl MailServer {
    /// One server shared by all tests of this process, started on first use.
    pub fn shared() -> Result<&'static Self, TestkitError> {
        static SHARED: OnceLock<Result<MailServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| e.0))
            .as_ref()
            .map_err(|e| TestkitError(e.clone()))
    }

    /// Starts a new server (as root: both masters start as root and drop privileges).
    pub fn start() -> Result<Self, TestkitError> {
        let script = deploy_script("mail/cluster.sh");
        let server = Watched::start_on(
            "mail",
            &script,
            &[],
            "TERM",
            || free_port_block(PORTS),
            |port| (0..PORTS).all(|offset| accepts_tcp(port + offset)),
        )?;
        let domains = fs::read_to_string(server.base.join("domains"))
            .map_err(|e| TestkitError::new(format!("cannot read the mail domains: {e}")))?;
        let domain = domains
            .split_whitespace()
            .next()
            .ok_or_else(|| TestkitError::new("no mail domain in DIR/domains"))?
            .to_owned();
        Ok(Self {
            server,
            domain,
            passwd_lock: Mutex::new(()),
        })
    }

    /// The primary mail domain (`MAIL_DOMAIN` at init, `example.test` by default).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The server's directory (configurations, certificate, passwd-files, mailboxes).
    pub fn dir(&self) -> &Path {
        &self.server.base
    }

    /// Dovecot's passwd-file of the accounts.
    pub fn passwd_file(&self) -> PathBuf {
        self.dir().join("passwd")
    }

    /// The rendered Dovecot configuration (for `doveadm -c`).
    pub fn dovecot_conf(&self) -> PathBuf {
        self.dir().join("dovecot.conf")
    }

    /// The certificate both servers present on their TLS ports (self-signed, for
    /// `mail.<domain>`, the domain and 127.0.0.1).
    pub fn cert_file(&self) -> PathBuf {
        self.dir().join("tls/cert.pem")
    }

    /// `postmaster@<domain>`, the account made at init.
    pub fn postmaster(&self) -> String {
        format!("postmaster@{}", self.domain)
    }

    /// The postmaster's password.
    pub fn postmaster_password(&self) -> &str {
        &self.server.password
    }

    /// SMTP submission without TLS, AUTH PLAIN/LOGIN allowed.
    pub fn submission_port(&self) -> u16 {
        self.server.port
    }

    /// SMTP submission with implicit TLS.
    pub fn smtps_port(&self) -> u16 {
        self.server.port + 1
    }

    /// IMAP.
    pub fn imap_port(&self) -> u16 {
        self.server.port + 2
    }

    /// IMAP with implicit TLS.
    pub fn imaps_port(&self) -> u16 {
        self.server.port + 3
    }

    /// POP3.
    pub fn pop3_port(&self) -> u16 {
        self.server.port + 4
    }

    /// POP3 with implicit TLS.
    pub fn pop3s_port(&self) -> u16 {
        self.server.port + 5
    }

    /// ManageSieve.
    pub fn sieve_port(&self) -> u16 {
        self.server.port + 6
    }

    /// Dovecot's LMTP, where Postfix delivers (loopback only).
    pub fn lmtp_port(&self) -> u16 {
        self.server.port + 7
    }

    /// Adds the account `address` (or changes its password) and returns once Dovecot accepts
    /// the login.
    pub fn add_account(&self, address: &str, password: &str) -> Result<(), TestkitError> {
        let address = address.to_ascii_lowercase();
        let valid_address = address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        }) && !address
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control());
        if !valid_address {
            return Err(TestkitError::new(format!(
                "not an account address: {address:?}"
            )));
        }
        let hash = hash_password(password)?;
        {
            let _guard = self
                .passwd_lock
                .lock()
                .map_err(|_| TestkitError::new("the passwd-file lock is poisoned"))?;
            replace_line(&self.passwd_file(), &address, &format!("{address}:{hash}"))?;
        }
        self.wait_for_login(&address, password)
    }

    /// Whether Dovecot accepts `address` with `password` now (`doveadm auth test`, the
    /// password on its stdin).
    pub fn login_accepted(&self, address: &str, password: &str) -> Result<bool, TestkitError> {
        let output = self.auth_test(address, password)?;
        Ok(output.status.success())
    }

    fn auth_test(&self, address: &str, password: &str) -> Result<Output, TestkitError> {
        // setsid: no controlling terminal, so that doveadm reads the password from stdin.
        let mut command = Command::new("setsid");
        command
            .arg("--wait")
            .arg("doveadm")
            .arg("-c")
            .arg(self.dovecot_conf())
            .args(["auth", "test", address]);
        with_stdin(command, &format!("{password}\n"), "doveadm auth test")
    }

    fn wait_for_login(&self, address: &str, password: &str) -> Result<(), TestkitError> {
        let deadline = Instant::now() + LOGIN_TIMEOUT;
        loop {
            // A refused login costs Dovecot's failure delay (seconds), a lookup nothing: a
            // login is only tried once Dovecot knows the account (a new one is then accepted
            // at the first try).
            let last_error = if self.known(address)? {
                let output = self.auth_test(address, password)?;
                if output.status.success() {
                    return Ok(());
                }
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            } else {
                std::thread::sleep(Duration::from_millis(100));
                "the passdb lookup does not find it".to_owned()
            };
            if Instant::now() >= deadline {
                return Err(TestkitError::new(format!(
                    "Dovecot does not accept {address} after {LOGIN_TIMEOUT:?}: {last_error}"
                )));
            }
        }
    }

    /// Whether a passdb of Dovecot has `address` now (`doveadm auth lookup`).
    fn known(&self, address: &str) -> Result<bool, TestkitError> {
        let output = Command::new("doveadm")
            .arg("-c")
            .arg(self.dovecot_conf())
            .args(["auth", "lookup", address])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| TestkitError::new(format!("cannot run doveadm auth lookup: {e}")))?;
        Ok(output.status.success())
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.server.stop()
    }
}

/// `password` hashed by `doveadm pw` as `{SHA512-CRYPT}...`. The password goes on stdin twice:
/// without a terminal doveadm reads it and its confirmation from there (given once, it hashes
/// something else and still exits 0, so its complaint on stderr is checked too).
fn hash_password(password: &str) -> Result<String, TestkitError> {
    if password.is_empty() || password.contains(['\n', '\r']) {
        return Err(TestkitError::new("a password must be one non-empty line"));
    }
    let mut command = Command::new("doveadm");
    command.args(["-O", "pw", "-s", "SHA512-CRYPT"]);
    let output = with_stdin(command, &format!("{password}\n{password}\n"), "doveadm pw")?;
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success()
        || !output.stderr.is_empty()
        || !hash.starts_with("{SHA512-CRYPT}$6$")
    {
        return Err(TestkitError::new(format!(
            "doveadm pw failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(hash)
}

/// Runs `command` with `input` on its stdin.
fn with_stdin(mut command: Command, input: &str, what: &str) -> Result<Output, TestkitError> {
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

/// Replaces the line of `address` in the passwd-file `file` (or appends one) by writing a
/// temp file next to it, with the file's owner, group and mode, and renaming it over the file.
/// Its mtime is moved past the old one's second: Dovecot notices a change by mtime and size
/// only, and a new hash of the same length written within the same second would go unseen.
fn replace_line(file: &Path, address: &str, line: &str) -> Result<(), TestkitError> {
    static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);
    let error = |what: &str, e: std::io::Error| {
        TestkitError::new(format!("cannot {what} {}: {e}", file.display()))
    };
    let old = fs::read_to_string(file).map_err(|e| error("read", e))?;
    let meta = fs::metadata(file).map_err(|e| error("stat", e))?;
    let mut text: String = old
        .lines()
        .filter(|existing| {
            existing
                .split_once(':')
                .is_none_or(|(key, _)| !key.eq_ignore_ascii_case(address))
        })
        .flat_map(|existing| [existing, "\n"])
        .collect();
    text.push_str(line);
    text.push('\n');

    let temp = file.with_file_name(format!(
        ".passwd.{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        out.write_all(text.as_bytes())?;
        std::os::unix::fs::fchown(&out, Some(meta.uid()), Some(meta.gid()))?;
        out.set_permissions(meta.permissions())?;
        let old_second = u64::try_from(meta.mtime()).unwrap_or(0);
        let now = SystemTime::now();
        let now_second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now_second <= old_second {
            out.set_modified(UNIX_EPOCH + Duration::from_secs(old_second + 1))?;
        }
        out.sync_all()?;
        fs::rename(&temp, file)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&temp);
        error("replace", e)
    })
}
