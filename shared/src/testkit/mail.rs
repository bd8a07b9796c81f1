//! A private Postfix + Dovecot, set up by `deploy/mail/cluster.sh` like the one `make up`
//! starts: SMTP submission (plain and implicit TLS) with Dovecot's SASL, IMAP(S), POP3(S) and
//! ManageSieve for the accounts of the SQLite store `DIR/accounts/accounts.db`
//! (`deploy/mail/accounts.sql`), and delivery of the mail domain's mail to Dovecot over LMTP.
//! An account may only send as its own address.
//!
//! Ports are a block from the base port on (the script's offsets): tests reach each through
//! its accessor. Accounts are added the way the mail service adds them: a `{SHA512-CRYPT}` hash
//! made by `doveadm pw` (the password on its stdin, never on a command line) written in one
//! transaction (the sqlite3 CLI, as root). Dovecot and Postfix read the database at every login
//! and RCPT, so a change counts at once: no reload, no wait.
//!
//! [`MailServer::shared`] also serves the directory's users (`MAIL_LDAP_URL`), against
//! [`LdapServer::shared`], bound as its administrator.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use super::{
    LdapServer, TestkitError, Watched, accepts_tcp, deploy_script, free_port_block,
    script::{ScriptWrapper, shell_quote, with_stdin},
};

/// How many ports the server takes from its base port on (submission ... LMTP).
const PORTS: u16 = 8;

/// The `app_id` of the rows this kit writes.
const APP_ID: &str = "testkit";

/// A running Postfix + Dovecot on 127.0.0.1. Stopped when dropped or when the test process
/// exits.
pub struct MailServer {
    server: Watched,
    domain: String,
    /// The directory it serves users of, if any.
    directory: Option<Directory>,
}

/// The directory (slapd) a server serves users of, and the account it binds as.
struct Directory {
    url: String,
    bind_dn: String,
    /// The bind password, in a 0600 file of the server's directory.
    password_file: PathBuf,
}

impl MailServer {
    /// Whether a mail server can run here: Postfix's master process starts only as root.
    /// When not, says so on stderr, for the test that then checks nothing to say why.
    pub fn runnable() -> bool {
        let root = super::host::running_as_root();
        if !root {
            eprintln!(
                "SKIPPED: the mail backend needs root (Postfix's master process starts only as root)"
            );
        }
        root
    }

    /// One server shared by all tests of this process, started on first use, with the users of
    /// [`LdapServer::shared`] (bound as its administrator).
    pub fn shared() -> Result<&'static Self, TestkitError> {
        static SHARED: OnceLock<Result<MailServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                LdapServer::shared()
                    .and_then(|ldap| Self::start_with(Some(ldap), &[]))
                    .map_err(|e| e.0)
            })
            .as_ref()
            .map_err(|e| TestkitError(e.clone()))
    }

    /// Starts a new server (as root: both masters start as root and drop privileges), without
    /// directory users.
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_with(None, &[])
    }

    /// Starts a new server with the users of `ldap` (bound as its administrator, whose
    /// password goes into a 0600 file of the server's directory) if given, and the script's
    /// settings `env` (`MAIL_MILTER`, `MAIL_DOMAIN`...) for both its init and its run.
    pub fn start_with(
        ldap: Option<&LdapServer>,
        env: &[(&str, &str)],
    ) -> Result<Self, TestkitError> {
        let mut settings: Vec<(String, String)> = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        if let Some(ldap) = ldap {
            settings.push(("MAIL_LDAP_URL".to_owned(), ldap.url()));
            settings.push((
                "MAIL_LDAP_BIND_DN".to_owned(),
                LdapServer::ADMIN_DN.to_owned(),
            ));
        }
        // The script runs under the kit's watchdog, which passes no environment of its own: a
        // wrapper sets it (and puts the bind password into DIR at init). Needed only until the
        // server runs, so it is removed when this returns.
        let wrapper = wrapper(
            &deploy_script("mail/cluster.sh"),
            &settings,
            ldap.map(LdapServer::admin_password),
        )?;
        let server = Watched::start_on(
            "mail",
            wrapper.script(),
            &[],
            "TERM",
            || free_port_block(PORTS),
            |port| (0..PORTS).all(|offset| accepts_tcp(port + offset)),
        )?;
        drop(wrapper);
        let domains = fs::read_to_string(server.base.join("domains"))
            .map_err(|e| TestkitError::new(format!("cannot read the mail domains: {e}")))?;
        let domain = domains
            .split_whitespace()
            .next()
            .ok_or_else(|| TestkitError::new("no mail domain in DIR/domains"))?
            .to_owned();
        let directory = ldap.map(|ldap| Directory {
            url: ldap.url(),
            bind_dn: LdapServer::ADMIN_DN.to_owned(),
            password_file: server.base.join(BIND_PASSWORD_FILE),
        });
        Ok(Self {
            server,
            domain,
            directory,
        })
    }

    /// The settings that make a service read the directory this server serves users of, as
    /// the server does (`<prefix>_LDAP_URL`, `_LDAP_BIND_DN`, `_LDAP_BIND_PASSWORD_FILE`);
    /// none if it serves none.
    pub fn directory_env(&self, prefix: &str) -> Vec<(String, String)> {
        self.directory
            .iter()
            .flat_map(|directory| {
                [
                    (format!("{prefix}_LDAP_URL"), directory.url.clone()),
                    (format!("{prefix}_LDAP_BIND_DN"), directory.bind_dn.clone()),
                    (
                        format!("{prefix}_LDAP_BIND_PASSWORD_FILE"),
                        directory.password_file.display().to_string(),
                    ),
                ]
            })
            .collect()
    }

    /// The primary mail domain (`MAIL_DOMAIN` at init, `example.test` by default).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The server's directory (configurations, certificate, accounts store, mailboxes).
    pub fn dir(&self) -> &Path {
        &self.server.base
    }

    /// The accounts store (`deploy/mail/accounts.sql`), which Dovecot and Postfix read.
    pub fn accounts_db(&self) -> PathBuf {
        self.dir().join("accounts/accounts.db")
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

    /// Adds the account `address` with `password` for both sending and receiving (a
    /// `sendmail` and a `recvmail` row, app `testkit`), or changes its password, in one
    /// transaction, and checks that Dovecot accepts the login right away.
    pub fn add_account(&self, address: &str, password: &str) -> Result<(), TestkitError> {
        let address = account_address(address)?;
        let hash = hash_password(password)?;
        let rows = ["sendmail", "recvmail"]
            .map(|addon| row_values(&address, addon, &hash))
            .join(", ");
        self.sql(&format!(
            "BEGIN;\nINSERT OR REPLACE INTO accounts (address, addon, app_id, password) \
             VALUES {rows};\nCOMMIT;\n"
        ))?;
        if self.login_accepted(&address, password)? {
            Ok(())
        } else {
            Err(TestkitError::new(format!(
                "Dovecot does not accept the new account {address}"
            )))
        }
    }

    /// Writes the one row (`address`, `addon`) with `password` (INSERT OR REPLACE, app
    /// `testkit`), as the mail service does for a single addon; nothing else is checked.
    pub fn add_account_row(
        &self,
        address: &str,
        addon: &str,
        password: &str,
    ) -> Result<(), TestkitError> {
        let address = account_address(address)?;
        let hash = hash_password(password)?;
        self.sql(&format!(
            "INSERT OR REPLACE INTO accounts (address, addon, app_id, password) VALUES {};\n",
            row_values(&address, addon, &hash)
        ))
    }

    /// Removes every row of `address` (one transaction, effective at the next login).
    pub fn remove_account(&self, address: &str) -> Result<(), TestkitError> {
        let address = account_address(address)?;
        self.sql(&format!(
            "DELETE FROM accounts WHERE address = {};\n",
            sql_quote(&address)
        ))
    }

    /// Runs `script` against the accounts store with the sqlite3 CLI (as root, waiting up to
    /// 10 s for a concurrent writer).
    fn sql(&self, script: &str) -> Result<(), TestkitError> {
        let mut command = Command::new("sqlite3");
        command
            .args(["-init", "/dev/null", "-batch", "-bail"])
            .arg(self.accounts_db());
        let output = with_stdin(command, &format!(".timeout 10000\n{script}"), "sqlite3")?;
        if output.status.success() && output.stderr.is_empty() {
            Ok(())
        } else {
            Err(TestkitError::new(format!(
                "sqlite3 failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }

    /// Whether Dovecot accepts `address` with `password` now (`doveadm auth test`, the
    /// password on its stdin), as service `doveadm` (which takes recvmail rows).
    pub fn login_accepted(&self, address: &str, password: &str) -> Result<bool, TestkitError> {
        self.login_accepted_by("doveadm", address, password)
    }

    /// Whether Dovecot accepts `address` with `password` now for `service` (`smtp`, as
    /// Postfix's SASL asks, `imap`, `pop3`, `sieve`...).
    pub fn login_accepted_by(
        &self,
        service: &str,
        address: &str,
        password: &str,
    ) -> Result<bool, TestkitError> {
        if service.is_empty() || !service.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(TestkitError::new(format!(
                "not a service name: {service:?}"
            )));
        }
        // setsid: no controlling terminal, so that doveadm reads the password from stdin.
        let mut command = Command::new("setsid");
        command
            .arg("--wait")
            .arg("doveadm")
            .arg("-c")
            .arg(self.dovecot_conf())
            .args(["auth", "test", "-x"])
            .arg(format!("service={service}"))
            .arg(address);
        let output = with_stdin(command, &format!("{password}\n"), "doveadm auth test")?;
        Ok(output.status.success())
    }

    /// Adds the directory user `cn=<username>,ou=users,dc=cloudron` with `mail` and
    /// `password` (as the ldap service does: an entry of objectClass `user`, then the password
    /// set by the Password Modify operation), bound as the server's bind account.
    pub fn add_directory_user(
        &self,
        username: &str,
        mail: &str,
        password: &str,
    ) -> Result<(), TestkitError> {
        let directory = self
            .directory
            .as_ref()
            .ok_or_else(|| TestkitError::new("this mail server serves no directory"))?;
        let plain = |value: &str| {
            !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@.-_".contains(c))
        };
        if !plain(username) || !plain(mail) || password.contains(['\n', '\r']) {
            return Err(TestkitError::new(format!(
                "not a plain directory user: {username:?} {mail:?}"
            )));
        }
        let dn = format!("cn={username},ou=users,dc=cloudron");
        let ldif = format!(
            "dn: {dn}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
             objectClass: inetOrgPerson\nobjectClass: user\ncn: {username}\nsn: {username}\n\
             uid: {username}\nusername: {username}\nsAMAccountName: {username}\n\
             objectCategory: person\nmail: {mail}\n"
        );
        let mut add = Command::new("ldapadd");
        add.args(["-x", "-H", &directory.url, "-D", &directory.bind_dn, "-y"])
            .arg(&directory.password_file);
        checked(with_stdin(add, &ldif, "ldapadd")?, "ldapadd")?;
        // The new password from a 0600 file in the server's directory, gone when done.
        let password_file = tempfile::Builder::new()
            .prefix("directory-user-")
            .tempfile_in(self.dir())
            .map_err(|e| TestkitError::new(format!("cannot create a temp file: {e}")))?;
        fs::write(password_file.path(), password)
            .map_err(|e| TestkitError::new(format!("cannot write a temp file: {e}")))?;
        let mut set = Command::new("ldappasswd");
        set.args(["-x", "-H", &directory.url, "-D", &directory.bind_dn, "-y"])
            .arg(&directory.password_file)
            .arg("-T")
            .arg(password_file.path())
            .arg(&dn);
        checked(with_stdin(set, "", "ldappasswd")?, "ldappasswd")
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.server.stop()
    }
}

/// `address` in lower case, if it is one the store takes (`local@domain`, nothing that would
/// need quoting in a path or a configuration).
fn account_address(address: &str) -> Result<String, TestkitError> {
    let address = address.to_ascii_lowercase();
    let valid = address.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !address
        .chars()
        .any(|c| c == '/' || c == '\'' || c.is_whitespace() || c.is_control());
    if valid {
        Ok(address)
    } else {
        Err(TestkitError::new(format!(
            "not an account address: {address:?}"
        )))
    }
}

/// `(address, addon, app_id, password)` as an SQL row of values.
fn row_values(address: &str, addon: &str, hash: &str) -> String {
    format!(
        "({}, {}, {}, {})",
        sql_quote(address),
        sql_quote(addon),
        sql_quote(APP_ID),
        sql_quote(hash)
    )
}

/// `value` as an SQL string literal.
fn sql_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
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

/// `output` if its command succeeded, else an error with what it said.
fn checked(output: Output, what: &str) -> Result<(), TestkitError> {
    if output.status.success() {
        Ok(())
    } else {
        Err(TestkitError::new(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

/// The bind password's file in the server's directory.
const BIND_PASSWORD_FILE: &str = "ldap-bind-password";

/// The wrapper that runs `deploy/mail/cluster.sh` with settings in its environment and, at
/// init, puts the LDAP bind password into DIR (0600).
fn wrapper(
    cluster: &str,
    settings: &[(String, String)],
    bind_password: Option<&str>,
) -> Result<ScriptWrapper, TestkitError> {
    let mut wrapper = ScriptWrapper::new("mail", settings)?;
    let mut lines = String::new();
    if let Some(password) = bind_password {
        let source = wrapper.dir().join(BIND_PASSWORD_FILE);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&source)
            .and_then(|mut file| file.write_all(password.as_bytes()))
            .map_err(|e| TestkitError::new(format!("cannot write a wrapper: {e}")))?;
        let source = shell_quote(&source.display().to_string());
        let name = BIND_PASSWORD_FILE;
        lines.push_str(&format!(
            "if [ \"$1\" = init ]; then install -m 0600 -o root -g root {source} \"$2/{name}\"; fi\n\
             export MAIL_LDAP_BIND_PASSWORD_FILE=\"$2/{name}\"\n"
        ));
    }
    lines.push_str(&format!("exec {} \"$@\"\n", shell_quote(cluster)));
    wrapper.write(&lines)?;
    Ok(wrapper)
}
