//! Each backend's own client, run as a process with what an app's bundle says: psql, the
//! MariaDB client, pymongo, redis-cli, ldapwhoami/ldapsearch, curl, Python's smtplib and
//! imaplib, turnutils_uclient and the docker CLI. Passwords reach them through a file (0600, in
//! the test's work directory), their stdin or their own environment, as each client takes them;
//! never a command line, except the short-lived TURN credential minted from the app's secret,
//! which turnutils_uclient takes only there.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use fleet_shared::testkit::TurnServer;
use serde_json::Value;

use crate::mask::{fail, masked, remember};

/// An app's environment as the coordinator returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle(pub BTreeMap<String, String>);

impl Bundle {
    /// The `env` map of an Install/Update/StartApp response; every password and secret in it is
    /// remembered, so that it is masked in the test's output.
    pub fn from_reply(reply: &Value) -> Self {
        let Some(env) = reply["env"].as_object() else {
            fail(&format!("no env in the reply: {reply}"))
        };
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(key, value)| (key.clone(), value.as_str().unwrap_or_default().to_owned()))
            .collect();
        for (key, value) in &env {
            if key.contains("PASSWORD") || key.contains("SECRET") {
                remember(value);
            }
        }
        Self(env)
    }

    /// `CLOUDRON_<name>`, which must be there.
    #[track_caller]
    pub fn var(&self, name: &str) -> &str {
        self.0
            .get(&format!("CLOUDRON_{name}"))
            .map(String::as_str)
            .unwrap_or_else(|| {
                fail(&format!(
                    "CLOUDRON_{name} is not in the bundle; it has {:?}",
                    self.0.keys().collect::<Vec<_>>()
                ))
            })
    }
}

/// What a client run did: whether it exited 0, and its output (stdout then stderr), masked.
#[derive(Debug)]
pub struct Outcome {
    pub ok: bool,
    pub out: String,
}

/// Runs `command` (a client the test needs, `what` in messages) with `stdin` to its end; its
/// output as it is (callers mask it).
#[track_caller]
pub fn output_with_stdin(mut command: Command, stdin: &str, what: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot run {what} (deploy/install-deps.sh installs it): {e}"
            ))
        });
    if let Some(mut input) = child.stdin.take() {
        // A failed write shows as the client's own error.
        let _ = input.write_all(stdin.as_bytes());
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| fail(&format!("{what}: {e}")))
}

/// Runs `command` with `stdin`, secrets masked in what it printed.
pub fn run(command: Command, stdin: &str) -> Outcome {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = output_with_stdin(command, stdin, &program);
    Outcome {
        ok: output.status.success(),
        out: masked(&format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// A file only root can read, holding `secret`, for clients that read passwords from files.
pub fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(name);
    let _ = fs::remove_file(&path);
    fs::File::create(&path)
        .and_then(|mut file| {
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(secret.as_bytes())
        })
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
    path
}

/// Sends one mail (smtp_send): the credentials and addresses in its environment.
const SMTP_SEND: &str = r#"
import os, smtplib, email.message
e = os.environ
m = email.message.EmailMessage()
m['From'] = e['CLOUDRON_MAIL_FROM']
m['To'] = e['E2E_TO']
m['Subject'] = e['E2E_SUBJECT']
m.set_content('sent by tests/e2e')
with smtplib.SMTP(e['CLOUDRON_MAIL_SMTP_SERVER'], int(e['CLOUDRON_MAIL_SMTP_PORT']), timeout=20) as s:
    s.login(e['CLOUDRON_MAIL_SMTP_USERNAME'], e['CLOUDRON_MAIL_SMTP_PASSWORD'])
    s.send_message(m)
print('sent')
"#;

/// Counts the INBOX's mails with a subject (imap_count), polling until there are some or the
/// wait is over.
const IMAP_COUNT: &str = r#"
import os, imaplib, time
e = os.environ
deadline = time.time() + float(e['E2E_WAIT'])
while True:
    i = imaplib.IMAP4(e['CLOUDRON_MAIL_IMAP_SERVER'], int(e['CLOUDRON_MAIL_IMAP_PORT']), timeout=20)
    i.login(e['CLOUDRON_MAIL_IMAP_USERNAME'], e['CLOUDRON_MAIL_IMAP_PASSWORD'])
    i.select('INBOX')
    typ, data = i.search(None, 'SUBJECT', '"' + e['E2E_SUBJECT'] + '"')
    i.logout()
    found = len(data[0].split())
    if found or time.time() > deadline:
        print(found)
        break
    time.sleep(0.2)
"#;

/// Greets the email addon's servers (email_servers).
const EMAIL_SERVERS: &str = r#"
import os, smtplib, imaplib
e = os.environ
with smtplib.SMTP(e['CLOUDRON_EMAIL_SMTP_SERVER'], int(e['CLOUDRON_EMAIL_SMTP_PORT']), timeout=20) as s:
    code = s.ehlo()[0]
i = imaplib.IMAP4(e['CLOUDRON_EMAIL_IMAP_SERVER'], int(e['CLOUDRON_EMAIL_IMAP_PORT']), timeout=20)
print('smtp', code, 'imap', 'IMAP4REV1' if 'IMAP4REV1' in i.capabilities else i.capabilities)
i.logout()
"#;

/// A command with a timeout, so that no client can hang the test.
fn timed(program: &str, seconds: u32) -> Command {
    let mut command = Command::new("timeout");
    command.arg(format!("{seconds}s")).arg(program);
    command
}

/// psql with the bundle's URL (its password removed: psql reads it from PGPASSWORD, its own
/// environment), running `sql` from stdin.
pub fn psql(env: &Bundle, sql: &str) -> Outcome {
    let url = env.var("POSTGRESQL_URL");
    let password = env.var("POSTGRESQL_PASSWORD");
    let without_password = url.replacen(&format!(":{password}@"), "@", 1);
    if without_password == url {
        fail(&format!(
            "CLOUDRON_POSTGRESQL_URL does not carry the password: {url}"
        ));
    }
    let mut command = timed("psql", 30);
    command
        .arg(without_password)
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10");
    run(command, sql)
}

/// The MariaDB client as the bundle's user on its host, port and database, the password in an
/// option file; `sql` from stdin.
pub fn mariadb(env: &Bundle, work: &Path, sql: &str) -> Outcome {
    let options = secret_file(
        work,
        "mysql.cnf",
        &format!("[client]\npassword=\"{}\"\n", env.var("MYSQL_PASSWORD")),
    );
    let mut command = timed("mariadb", 30);
    command
        .arg(format!("--defaults-extra-file={}", options.display()))
        .args(["--protocol=tcp", "--batch", "--skip-column-names"])
        .arg(format!("--host={}", env.var("MYSQL_HOST")))
        .arg(format!("--port={}", env.var("MYSQL_PORT")))
        .arg(format!("--user={}", env.var("MYSQL_USERNAME")))
        .arg(env.var("MYSQL_DATABASE"));
    run(command, sql)
}

/// pymongo (the MongoDB client here; no mongosh) with the bundle's URL in its environment:
/// `script` runs with `db`, the URL's default database, authenticated.
pub fn mongo(env: &Bundle, script: &str) -> Outcome {
    let program = format!(
        "import os, pymongo\n\
         client = pymongo.MongoClient(os.environ['E2E_MONGODB_URL'], serverSelectionTimeoutMS=10000)\n\
         db = client.get_default_database()\n\
         {script}\n"
    );
    let mut command = timed("python3", 60);
    command
        .arg("-")
        .env("E2E_MONGODB_URL", env.var("MONGODB_URL"));
    run(command, &program)
}

/// redis-cli on the bundle's host and port, `AUTH <password>` then `commands`, all on stdin.
pub fn redis(env: &Bundle, commands: &str) -> Outcome {
    let mut command = timed("redis-cli", 30);
    command
        .args(["-h", env.var("REDIS_HOST"), "-p", env.var("REDIS_PORT")])
        .arg("--no-raw");
    run(
        command,
        &format!("AUTH {}\n{commands}", env.var("REDIS_PASSWORD")),
    )
}

/// ldapwhoami with the bundle's bind DN, the password from a file (`-y`).
pub fn ldapwhoami(env: &Bundle, work: &Path) -> Outcome {
    let password = secret_file(work, "ldap.pw", env.var("LDAP_BIND_PASSWORD"));
    let mut command = timed("ldapwhoami", 30);
    command
        .args([
            "-x",
            "-H",
            env.var("LDAP_URL"),
            "-D",
            env.var("LDAP_BIND_DN"),
            "-y",
        ])
        .arg(password);
    run(command, "")
}

/// ldapsearch of the users' base DN (one level) with the bundle's bind DN.
pub fn ldapsearch_users(env: &Bundle, work: &Path) -> Outcome {
    let password = secret_file(work, "ldap.pw", env.var("LDAP_BIND_PASSWORD"));
    let mut command = timed("ldapsearch", 30);
    command
        .args([
            "-x",
            "-LLL",
            "-H",
            env.var("LDAP_URL"),
            "-D",
            env.var("LDAP_BIND_DN"),
            "-y",
        ])
        .arg(password)
        .args(["-b", env.var("LDAP_USERS_BASE_DN"), "-s", "base", "dn"]);
    run(command, "")
}

/// curl of `url` (GET), the body on success.
pub fn curl_get(url: &str) -> Outcome {
    let mut command = timed("curl", 30);
    command.args(["-sS", "--fail", url]);
    run(command, "")
}

/// The token endpoint's answer to an authorization code the provider never issued, from the
/// bundle's client (its id and secret as HTTP Basic, in a curl config on stdin): the OAuth error
/// code, `invalid_grant` for a client the provider knows, `invalid_client` for one it does not.
pub fn oidc_token_error(env: &Bundle, redirect_uri: &str) -> String {
    let mut command = timed("curl", 30);
    command
        .args(["-sS", "-K", "-"])
        .args([
            "-d",
            "grant_type=authorization_code",
            "-d",
            "code=never-issued",
        ])
        .arg("--data-urlencode")
        .arg(format!("redirect_uri={redirect_uri}"))
        .arg(env.var("OIDC_TOKEN_ENDPOINT"));
    let config = format!(
        "user = \"{}:{}\"\n",
        env.var("OIDC_CLIENT_ID"),
        env.var("OIDC_CLIENT_SECRET")
    );
    let outcome = run(command, &config);
    let reply: Value = serde_json::from_str(&outcome.out).unwrap_or_else(|e| {
        fail(&format!(
            "the token endpoint answered no JSON ({e}): {}",
            outcome.out
        ))
    });
    reply["error"].as_str().unwrap_or_default().to_owned()
}

/// The HTTP status of the provider's proxyAuth check (what the reverse proxy asks before each
/// request) for `uri` on the app at `domain`: 204 through, 401 to the login, 403 no wall.
pub fn proxy_auth_status(provider: &str, domain: &str, uri: &str) -> u16 {
    let mut command = timed("curl", 30);
    command
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", &format!("X-Forwarded-Host: {domain}")])
        .args(["-H", &format!("X-Original-URI: {uri}")])
        .arg(format!("{provider}/proxy-auth/check"));
    let outcome = run(command, "");
    outcome
        .out
        .trim()
        .parse()
        .unwrap_or_else(|_| fail(&format!("curl of the proxyAuth check: {}", outcome.out)))
}

/// Python's smtplib: logs in to submission with the sendmail credentials and sends a mail from
/// the app's address to `to` with `subject`.
pub fn smtp_send(env: &Bundle, to: &str, subject: &str) -> Outcome {
    let mut command = timed("python3", 60);
    command
        .arg("-")
        .env("E2E_TO", to)
        .env("E2E_SUBJECT", subject);
    for name in [
        "FROM",
        "SMTP_SERVER",
        "SMTP_PORT",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
    ] {
        command.env(
            format!("CLOUDRON_MAIL_{name}"),
            env.var(&format!("MAIL_{name}")),
        );
    }
    run(command, SMTP_SEND)
}

/// Python's imaplib: logs in with the recvmail credentials and counts the INBOX's messages with
/// `subject`, polling until there are some or `wait` passed (delivery is asynchronous). Prints
/// the count.
pub fn imap_count(env: &Bundle, subject: &str, wait: Duration) -> Outcome {
    let mut command = timed("python3", 60);
    command
        .arg("-")
        .env("E2E_SUBJECT", subject)
        .env("E2E_WAIT", wait.as_secs_f64().to_string());
    for name in ["IMAP_SERVER", "IMAP_PORT", "IMAP_USERNAME", "IMAP_PASSWORD"] {
        command.env(
            format!("CLOUDRON_MAIL_{name}"),
            env.var(&format!("MAIL_{name}")),
        );
    }
    run(command, IMAP_COUNT)
}

/// Python's smtplib and imaplib, without logging in, at the email addon's servers: the SMTP
/// server's EHLO code and whether the IMAP server speaks IMAP4rev1 ("smtp 250 imap IMAP4REV1").
pub fn email_servers(env: &Bundle) -> Outcome {
    let mut command = timed("python3", 60);
    command.arg("-");
    for name in ["SMTP_SERVER", "SMTP_PORT", "IMAP_SERVER", "IMAP_PORT"] {
        command.env(
            format!("CLOUDRON_EMAIL_{name}"),
            env.var(&format!("EMAIL_{name}")),
        );
    }
    run(command, EMAIL_SERVERS)
}

/// A TURN allocation on the bundle's server and port with a credential minted from its secret
/// the TURN REST way (what the app does for its users), by coturn's turnutils_uclient: the relay
/// port coturn allocated, or None with uclient's output. (The channel to the loopback peer
/// afterwards is refused, 403: the fleet's coturn relays to no loopback address.)
pub fn turn_allocate(env: &Bundle) -> Result<u16, String> {
    let (username, password) =
        TurnServer::mint(env.var("TURN_SECRET"), "e2e", Duration::from_secs(600))
            .unwrap_or_else(|e| fail(&format!("cannot mint a TURN credential: {e}")));
    remember(&password);
    let mut command = timed("turnutils_uclient", 30);
    command
        .args(["-v", "-u", &username, "-w", &password])
        .args(["-p", env.var("TURN_PORT")])
        .args(["-e", "127.0.0.1", "-r", "9", "-n", "1", "-m", "1", "-c"])
        .arg(env.var("TURN_SERVER"));
    let outcome = run(command, "");
    let relay = outcome
        .out
        .lines()
        .find_map(|line| line.split("Received relay addr: ").nth(1))
        .and_then(|addr| addr.trim().rsplit(':').next())
        .and_then(|port| port.parse().ok());
    relay.ok_or(outcome.out)
}

/// The docker CLI against the bundle's endpoint (`docker -H $CLOUDRON_DOCKER_HOST ...`), with a
/// client configuration of its own.
pub fn docker(env: &Bundle, work: &Path, args: &[&str]) -> Outcome {
    docker_at(env.var("DOCKER_HOST"), work, args)
}

/// The docker CLI against `host`.
pub fn docker_at(host: &str, work: &Path, args: &[&str]) -> Outcome {
    let mut command = timed("docker", 60);
    command
        .env("DOCKER_CONFIG", work.join("docker-client"))
        .args(["-H", host])
        .args(args);
    run(command, "")
}
