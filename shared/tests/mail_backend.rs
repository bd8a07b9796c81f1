//! The mail backend (deploy/mail/cluster.sh: Postfix + Dovecot) as the mail addons will use it,
//! proven with real clients only: swaks submits over SMTP (plain and implicit TLS), curl reads
//! over IMAP, IMAPS, POP3 and POP3S, openssl s_client looks at the certificate. Passwords go
//! to the clients through stdin or the environment, never on a command line.
//!
//! Accounts are rows of the SQLite store (sendmail: submission only; recvmail: IMAP, POP3,
//! Sieve and a mailbox), written as the mail service writes them; the shared server also serves
//! the users of the test kit's slapd (their own LDAP password, a mailbox tree of their own).
//!
//! Delivery (Postfix's queue, then LMTP into Dovecot) is asynchronous: reads poll until a
//! deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use fleet_shared::testkit::MailServer;

/// How long delivery into a mailbox may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

fn server() -> &'static MailServer {
    MailServer::shared().expect("mail backend (deploy/install-deps.sh installs Postfix + Dovecot)")
}

/// A fresh account `<name>-<unique>@<domain>` and its password, accepted by Dovecot.
fn account(name: &str) -> (String, String) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let unique = format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let address = format!("{name}-{unique}@{}", server().domain());
    let password = format!("pw-{unique}-{}", nanos());
    server().add_account(&address, &password).unwrap();
    (address, password)
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A token to find one message by.
fn token(what: &str) -> String {
    format!("{what}-{}-{}", std::process::id(), nanos())
}

/// swaks with `args`, authenticating as `user` (the password in swaks's environment) if given.
/// Returns the exit status's success and what the server said (swaks's `<` lines and its own
/// verdicts), without the client's lines, which carry the credentials.
fn swaks(port: u16, auth: Option<(&str, &str)>, args: &[&str]) -> (bool, String) {
    let mut command = Command::new("swaks");
    command
        .arg("--server")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::null());
    if let Some((user, password)) = auth {
        command
            .env("SWAKS_OPT_auth_user", user)
            .env("SWAKS_OPT_auth_password", password);
    }
    let output = command
        .output()
        .expect("swaks (deploy/install-deps.sh installs it)");
    let transcript = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let said = transcript
        .lines()
        .filter(|line| line.starts_with('<') || line.starts_with("***") || line.starts_with("==="))
        .collect::<Vec<_>>()
        .join("\n");
    (output.status.success(), said)
}

/// Submits a message with `body` from `from` to `to` as `user`.
fn submit(
    port: u16,
    user: (&str, &str),
    from: &str,
    to: &str,
    body: &str,
    extra: &[&str],
) -> (bool, String) {
    let mut args = vec![
        "--from",
        from,
        "--to",
        to,
        "--header",
        "Subject: fleet test",
        "--body",
        body,
    ];
    args.extend_from_slice(extra);
    swaks(port, Some(user), &args)
}

/// curl GET of `url` as `user` (credentials through curl's config on stdin), trusting only the
/// server's own certificate for TLS URLs.
fn curl(url: &str, user: &str, password: &str) -> Output {
    let mut child = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--config",
            "-",
        ])
        .arg("--cacert")
        .arg(server().cert_file())
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    writeln!(child.stdin.take().unwrap(), "user = \"{user}:{password}\"").unwrap();
    child.wait_with_output().unwrap()
}

/// Polls `url` until its body contains `needle`; the body, or None at the deadline.
fn fetch_until(url: &str, user: &str, password: &str, needle: &str) -> Option<String> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let output = curl(url, user, password);
        let body = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && body.contains(needle) {
            return Some(body);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "{url}: {} {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn submission_delivers_into_the_mailbox_read_over_imap_imaps_pop3_and_pop3s() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let (sender, sender_password) = account("sender");
    let (recipient, password) = account("recipient");
    let body = token("plain-submission");
    let (sent, said) = submit(
        mail.submission_port(),
        (&sender, &sender_password),
        &sender,
        &recipient,
        &body,
        &[],
    );
    assert!(sent && said.contains("250 2.0.0 Ok: queued"), "{said}");

    let imap = format!("imap://127.0.0.1:{}/INBOX;UID=1", mail.imap_port());
    let message = fetch_until(&imap, &recipient, &password, &body)
        .unwrap_or_else(|| panic!("not delivered to {recipient}'s INBOX over IMAP"));
    assert!(
        message.contains(&format!("Return-Path: <{sender}>")),
        "{message}"
    );
    assert!(
        message.contains("with LMTP"),
        "not delivered by LMTP: {message}"
    );
    for url in [
        format!("imaps://127.0.0.1:{}/INBOX;UID=1", mail.imaps_port()),
        format!("pop3://127.0.0.1:{}/1", mail.pop3_port()),
        format!("pop3s://127.0.0.1:{}/1", mail.pop3s_port()),
    ] {
        assert!(
            fetch_until(&url, &recipient, &password, &body).is_some(),
            "{url} does not show the message"
        );
    }
    // The mailbox lives where the service will look for it, owned by the mail user alone.
    let (local, domain) = recipient.split_once('@').unwrap();
    let maildir = mail
        .dir()
        .join("mail/apps")
        .join(domain)
        .join(local)
        .join("Maildir");
    assert!(maildir.is_dir(), "no {}", maildir.display());
}

#[test]
fn smtps_submission_with_implicit_tls_delivers() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let (app, password) = account("smtps");
    let body = token("smtps-submission");
    let cert = mail.cert_file();
    let (sent, said) = submit(
        mail.smtps_port(),
        (&app, &password),
        &app,
        &app,
        &body,
        &[
            "--tls-on-connect",
            "--tls-verify",
            "--tls-ca-path",
            cert.to_str().unwrap(),
        ],
    );
    assert!(sent && said.contains("250 2.0.0 Ok: queued"), "{said}");
    assert!(said.contains("TLS started"), "{said}");
    let imap = format!("imap://127.0.0.1:{}/INBOX;UID=1", mail.imap_port());
    assert!(
        fetch_until(&imap, &app, &password, &body).is_some(),
        "mail submitted over SMTPS was not delivered"
    );
}

#[test]
fn a_wrong_password_or_unknown_account_is_refused_with_535() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let (app, _password) = account("wrongpw");
    let unknown = format!("nobody-{}@{}", nanos(), mail.domain());
    // Each refusal takes Dovecot's failure delay: the cases run side by side, one mechanism
    // each (PLAIN on the plain port, LOGIN on SMTPS).
    std::thread::scope(|scope| {
        for (user, password) in [
            (app.as_str(), "not-the-password"),
            (unknown.as_str(), "whatever"),
        ] {
            for (port, extra) in [
                (mail.submission_port(), &["--auth", "PLAIN"][..]),
                (
                    mail.smtps_port(),
                    &["--auth", "LOGIN", "--tls-on-connect"][..],
                ),
            ] {
                scope.spawn(move || {
                    let (sent, said) = submit(port, (user, password), user, user, "refused", extra);
                    assert!(!sent, "{said}");
                    assert!(said.contains("535 5.7.8"), "{said}");
                    assert!(!said.contains("queued"), "{said}");
                });
            }
        }
    });
    let imap = format!("imap://127.0.0.1:{}/INBOX", mail.imap_port());
    assert!(!curl(&imap, &app, "not-the-password").status.success());
}

#[test]
fn an_account_sends_only_as_its_own_address() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let (app, password) = account("sendas");
    let (other, _) = account("victim");
    for from in [other.as_str(), "someone@elsewhere.test", "<>"] {
        let (sent, said) = submit(
            mail.submission_port(),
            (&app, &password),
            from,
            &app,
            "spoofed",
            &[],
        );
        assert!(!sent, "sending as {from} was accepted: {said}");
        assert!(said.contains("Sender address rejected"), "{said}");
        assert!(!said.contains("queued"), "{said}");
    }
    // Upper case is the same address.
    let (sent, said) = submit(
        mail.submission_port(),
        (&app, &password),
        &app.to_uppercase(),
        &app,
        "own address",
        &[],
    );
    assert!(sent && said.contains("queued"), "{said}");
}

#[test]
fn submission_refuses_anonymous_clients_and_offers_no_starttls() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let (app, _) = account("anon");
    let (sent, said) = swaks(
        mail.submission_port(),
        None,
        &["--from", &app, "--to", &app],
    );
    assert!(!sent && said.contains("Access denied"), "{said}");
    let (_, ehlo) = swaks(mail.submission_port(), None, &["--quit-after", "EHLO"]);
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
}

#[test]
fn the_tls_ports_present_the_servers_certificate() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let cert = std::fs::read_to_string(mail.cert_file()).unwrap();
    let hostname = format!("mail.{}", mail.domain());
    for (port, greeting, logout) in [
        (mail.imaps_port(), "* OK", "a LOGOUT\r\n"),
        (mail.pop3s_port(), "+OK", "QUIT\r\n"),
        (mail.smtps_port(), "220 ", "QUIT\r\n"),
    ] {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-CAfile")
            .arg(mail.cert_file())
            .args(["-verify_return_error", "-verify_hostname", &hostname])
            .args(["-verify_ip", "127.0.0.1", "-showcerts", "-ign_eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl");
        // The server ends the session when told to (s_client ignores the end of its stdin).
        child
            .stdin
            .take()
            .unwrap()
            .write_all(logout.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let shown = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "port {port}: {shown}");
        assert!(shown.contains(&format!("CN = {hostname}")), "{shown}");
        assert!(shown.contains("Verify return code: 0 (ok)"), "{shown}");
        assert!(shown.contains(greeting), "port {port}: {shown}");
        let presented = shown
            .split_once("-----BEGIN CERTIFICATE-----")
            .and_then(|(_, rest)| rest.split_once("-----END CERTIFICATE-----"))
            .map(|(pem, _)| pem.trim())
            .unwrap();
        assert!(
            cert.contains(presented),
            "port {port} presents another certificate"
        );
    }
}

#[test]
fn a_changed_password_takes_effect_and_the_old_one_is_refused() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let (app, old) = account("rotate");
    let new = format!("{old}-rotated");
    mail.add_account(&app, &new).unwrap();
    assert!(mail.login_accepted(&app, &new).unwrap());
    assert!(!mail.login_accepted(&app, &old).unwrap());
    // Other accounts' rows stay; each address has one row per addon, none with a clear
    // password.
    let (second, second_password) = account("rotate-other");
    mail.add_account(&app, &old).unwrap();
    assert!(mail.login_accepted(&second, &second_password).unwrap());
    assert!(mail.login_accepted(&app, &old).unwrap());
    assert_eq!(
        query(&format!(
            "SELECT addon FROM accounts WHERE address = '{app}' ORDER BY addon"
        )),
        "recvmail\nsendmail"
    );
    let store = std::fs::read(mail.accounts_db()).unwrap();
    let store = String::from_utf8_lossy(&store);
    assert!(
        store.contains(&app),
        "the store is not where the kit writes"
    );
    assert!(
        !store.contains(&old) && !store.contains(&new),
        "a clear password on disk"
    );
}

#[test]
fn postmaster_made_at_init_reads_mail_and_managesieve_accepts_logins() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let postmaster = mail.postmaster();
    let imap = format!("imap://127.0.0.1:{}/", mail.imap_port());
    let listing = curl(&imap, &postmaster, mail.postmaster_password());
    assert!(listing.status.success(), "{listing:?}");
    assert!(String::from_utf8_lossy(&listing.stdout).contains("INBOX"));

    let (app, password) = account("sieve");
    assert!(sieve_login(mail.sieve_port(), &app, &password).starts_with("OK"));
    assert!(sieve_login(mail.sieve_port(), &app, "not-the-password").starts_with("NO"));
}

/// AUTHENTICATE PLAIN over ManageSieve (RFC 5804); the server's answer line.
fn sieve_login(port: u16, user: &str, password: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    // The capabilities, ended by OK.
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "ManageSieve closed"
        );
        if line.starts_with("OK") {
            break;
        }
    }
    let credentials = STANDARD.encode(format!("\0{user}\0{password}"));
    write!(&stream, "AUTHENTICATE \"PLAIN\" \"{credentials}\"\r\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    let _ = write!(&stream, "LOGOUT\r\n");
    line
}

/// What the sqlite3 CLI prints for `sql` on the shared server's accounts store (read-only).
fn query(sql: &str) -> String {
    let output = Command::new("sqlite3")
        .args([
            "-init",
            "/dev/null",
            "-batch",
            "-readonly",
            "-cmd",
            ".timeout 10000",
        ])
        .arg(server().accounts_db())
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .expect("sqlite3");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A fresh address `<name>-<unique>@<domain>` and a password, stored nowhere yet.
fn fresh(name: &str) -> (String, String) {
    let unique = format!("{}-{}", std::process::id(), nanos());
    (
        format!("{name}-{unique}@{}", server().domain()),
        format!("pw-{unique}"),
    )
}

/// What Dovecot's LMTP answers to `RCPT TO:<address>` (after LHLO and MAIL FROM:<>).
fn lmtp_rcpt(port: u16, address: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    // One reply, possibly multi-line (`250-...` up to `250 ...`): its last line.
    let mut reply = || {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(reader.read_line(&mut line).unwrap() > 0, "LMTP closed");
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    };
    assert!(reply().starts_with("220"));
    write!(&stream, "LHLO fleet.test\r\n").unwrap();
    assert!(reply().starts_with("250"));
    write!(&stream, "MAIL FROM:<>\r\n").unwrap();
    assert!(reply().starts_with("250"));
    write!(&stream, "RCPT TO:<{address}>\r\n").unwrap();
    let answer = reply();
    let _ = write!(&stream, "QUIT\r\n");
    answer
}

#[test]
fn an_unknown_recipient_is_refused_at_rcpt_with_550() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let (app, password) = account("rcpt");
    let (unknown, _) = fresh("unknown");
    let (sent, said) = submit(
        mail.submission_port(),
        (&app, &password),
        &app,
        &unknown,
        "to nobody",
        &[],
    );
    assert!(!sent, "{said}");
    assert!(
        said.contains(&format!(
            "550 5.1.1 <{unknown}>: Recipient address rejected: User unknown"
        )),
        "{said}"
    );
    assert!(!said.contains("queued"), "{said}");
    // Case does not matter for a known one.
    let (sent, said) = submit(
        mail.submission_port(),
        (&app, &password),
        &app,
        &app.to_uppercase(),
        "to self",
        &[],
    );
    assert!(sent && said.contains("queued"), "{said}");
}

#[test]
fn sendmail_rows_only_submit_and_recvmail_rows_only_read_and_receive() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let (sender, sender_password) = fresh("sendonly");
    let (reader, reader_password) = fresh("recvonly");
    mail.add_account_row(&sender, "sendmail", &sender_password)
        .unwrap();
    mail.add_account_row(&reader, "recvmail", &reader_password)
        .unwrap();

    // The sendmail row: SMTP yes, IMAP/POP3/Sieve no, and the address is no mailbox.
    assert!(
        mail.login_accepted_by("smtp", &sender, &sender_password)
            .unwrap()
    );
    for service in ["imap", "pop3", "sieve", "doveadm"] {
        assert!(
            !mail
                .login_accepted_by(service, &sender, &sender_password)
                .unwrap(),
            "{service} accepts a sendmail row"
        );
    }
    let body = token("send-only");
    let (sent, said) = submit(
        mail.submission_port(),
        (&sender, &sender_password),
        &sender,
        &reader,
        &body,
        &[],
    );
    assert!(sent && said.contains("250 2.0.0 Ok: queued"), "{said}");
    let imap = format!("imap://127.0.0.1:{}/INBOX", mail.imap_port());
    assert!(!curl(&imap, &sender, &sender_password).status.success());
    let (sent, said) = submit(
        mail.submission_port(),
        (&mail.postmaster(), mail.postmaster_password()),
        &mail.postmaster(),
        &sender,
        "to a send-only address",
        &[],
    );
    assert!(!sent && said.contains("550 5.1.1"), "{said}");
    let refused = lmtp_rcpt(mail.lmtp_port(), &sender);
    assert!(refused.starts_with("550"), "LMTP: {refused}");

    // The recvmail row: reads (and got the mail), but cannot submit.
    assert!(
        mail.login_accepted_by("imap", &reader, &reader_password)
            .unwrap()
    );
    assert!(
        !mail
            .login_accepted_by("smtp", &reader, &reader_password)
            .unwrap()
    );
    let message = fetch_until(
        &format!("imap://127.0.0.1:{}/INBOX;UID=1", mail.imap_port()),
        &reader,
        &reader_password,
        &body,
    );
    assert!(message.is_some(), "not delivered to the recvmail address");
    let accepted = lmtp_rcpt(mail.lmtp_port(), &reader);
    assert!(accepted.starts_with("250"), "LMTP: {accepted}");
    let (sent, said) = submit(
        mail.submission_port(),
        (&reader, &reader_password),
        &reader,
        &reader,
        "from a receive-only account",
        &[],
    );
    assert!(!sent && said.contains("535 5.7.8"), "{said}");
}

#[test]
fn a_removed_account_is_refused_at_the_very_next_login_and_rcpt() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let (app, password) = account("removed");
    let imap = format!("imap://127.0.0.1:{}/INBOX", mail.imap_port());
    assert!(curl(&imap, &app, &password).status.success());
    mail.remove_account(&app).unwrap();
    assert_eq!(
        query(&format!(
            "SELECT count(*) FROM accounts WHERE address = '{app}'"
        )),
        "0"
    );
    // No wait in between: nothing caches the store.
    assert!(!mail.login_accepted_by("imap", &app, &password).unwrap());
    assert!(!mail.login_accepted_by("smtp", &app, &password).unwrap());
    assert!(!curl(&imap, &app, &password).status.success());
    let (sent, said) = submit(
        mail.submission_port(),
        (&mail.postmaster(), mail.postmaster_password()),
        &mail.postmaster(),
        &app,
        "to a removed account",
        &[],
    );
    assert!(!sent && said.contains("550 5.1.1"), "{said}");
}

#[test]
fn a_directory_user_receives_reads_and_sends_as_themselves_with_their_own_password() {
    if !MailServer::runnable() {
        return;
    }
    let mail = server();
    let unique = format!("{}x{}", std::process::id(), nanos());
    let username = format!("dir{unique}");
    let address = format!("{username}@{}", mail.domain());
    let password = format!("ldap-pw-{unique}");
    // The directory keeps the case it is given; mail addresses compare in lower case.
    mail.add_directory_user(
        &username,
        &format!("Dir{unique}@{}", mail.domain()),
        &password,
    )
    .unwrap();

    let (app, app_password) = account("todir");
    let body = token("to-directory-user");
    let (sent, said) = submit(
        mail.submission_port(),
        (&app, &app_password),
        &app,
        &address.to_uppercase(),
        &body,
        &[],
    );
    assert!(sent && said.contains("250 2.0.0 Ok: queued"), "{said}");
    let inbox = format!("imap://127.0.0.1:{}/INBOX;UID=1", mail.imap_port());
    assert!(
        fetch_until(&inbox, &address, &password, &body).is_some(),
        "not delivered to the directory user"
    );
    let maildir = mail
        .dir()
        .join("mail/users")
        .join(mail.domain())
        .join(&username)
        .join("Maildir");
    assert!(maildir.is_dir(), "no {}", maildir.display());
    assert!(mail.login_accepted_by("pop3", &address, &password).unwrap());
    assert!(sieve_login(mail.sieve_port(), &address, &password).starts_with("OK"));
    assert!(
        !mail
            .login_accepted_by("imap", &address, "not-the-password")
            .unwrap()
    );

    // Sends as themselves, in any case, and as nobody else.
    let (sent, said) = submit(
        mail.smtps_port(),
        (&address, &password),
        &address.to_uppercase(),
        &app,
        "from the directory",
        &["--tls-on-connect"],
    );
    assert!(sent && said.contains("queued"), "{said}");
    let (sent, said) = submit(
        mail.submission_port(),
        (&address, &password),
        &app,
        &app,
        "spoofed",
        &[],
    );
    assert!(!sent && said.contains("Sender address rejected"), "{said}");

    // An app's account with the same address is another mailbox: its password opens the app's
    // (empty) one, the directory password still the user's.
    mail.add_account(&address, &app_password).unwrap();
    let listing = curl(
        &format!("imap://127.0.0.1:{}/INBOX?ALL", mail.imap_port()),
        &address,
        &app_password,
    );
    assert!(listing.status.success(), "{listing:?}");
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout).trim(),
        "* SEARCH",
        "the app's password opens a mailbox with mail in it"
    );
    assert!(fetch_until(&inbox, &address, &password, &body).is_some());
    mail.remove_account(&address).unwrap();
}

#[test]
fn the_store_and_the_directory_settings_are_closed_to_other_users() {
    if !MailServer::runnable() {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mail = server();
    let db = mail.accounts_db();
    let read_as = |user: &str| {
        Command::new("setpriv")
            .arg(format!("--reuid={user}"))
            .arg(format!("--regid={user}"))
            .args([
                "--clear-groups",
                "--",
                "sqlite3",
                "-init",
                "/dev/null",
                "-readonly",
            ])
            .arg(&db)
            .arg("SELECT count(*) FROM accounts WHERE addon = 'postmaster'")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Postfix's and Dovecot's users read it, without any supplementary group.
    for user in ["postfix", "dovecot"] {
        let output = read_as(user);
        assert!(output.status.success(), "{user}: {output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1");
    }
    let output = read_as("nobody");
    assert!(
        !output.status.success(),
        "nobody reads the accounts: {output:?}"
    );

    let meta = std::fs::metadata(&db).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o440);
    let dir = std::fs::metadata(db.parent().unwrap()).unwrap();
    assert_eq!(dir.uid(), 0);
    assert_eq!(
        dir.permissions().mode() & 0o022,
        0,
        "others may create files"
    );
    for file in [
        mail.dir().join("dovecot-ldap.conf.ext"),
        mail.dir().join("postfix/etc/recipients-ldap.cf"),
        mail.dir().join("ldap-bind-password"),
    ] {
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o007,
            0,
            "{} is open to others",
            file.display()
        );
        assert_eq!(meta.uid(), 0, "{}", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(
                fleet_shared::testkit::LdapServer::shared()
                    .unwrap()
                    .admin_password()
            )
        );
    }
}

#[test]
fn an_unreachable_milter_tempfails_submission() {
    if !MailServer::runnable() {
        return;
    }
    // Nothing listens there.
    let milter = format!(
        "inet:127.0.0.1:{}",
        fleet_shared::testkit::free_port().unwrap()
    );
    let mail = MailServer::start_with(None, &[("MAIL_MILTER", &milter)]).unwrap();
    let (app, password) = (format!("milter@{}", mail.domain()), "milter-pw".to_owned());
    mail.add_account(&app, &password).unwrap();
    let (sent, said) = submit(
        mail.submission_port(),
        (&app, &password),
        &app,
        &app,
        "unchecked",
        &[],
    );
    // Postfix tempfails the session from the connection on (the milter's 451 4.7.1 at
    // CONNECT, in its log), so AUTH already gets 454 4.3.0: a 4xx, never a 5xx or a queue id.
    assert!(!sent, "{said}");
    assert!(
        said.lines().any(|line| line.starts_with("<** 4")),
        "no temporary failure: {said}"
    );
    assert!(
        !said.contains("<** 5") && !said.contains("queued"),
        "{said}"
    );
    let master_cf = std::fs::read_to_string(mail.dir().join("postfix/etc/master.cf")).unwrap();
    assert_eq!(
        master_cf
            .matches(&format!("smtpd_milters={milter}"))
            .count(),
        2
    );
    // The shared server has none.
    let shared = std::fs::read_to_string(server().dir().join("postfix/etc/master.cf")).unwrap();
    assert!(!shared.contains("smtpd_milters"), "{shared}");
}
