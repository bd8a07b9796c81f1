//! The debug commands the reference gives app packagers (run inside an app with
//! `cloudron exec`), run verbatim through `sh -c` with a real bundle's variables in the
//! environment: swaks sends through submission on both ports, openssl s_client logs in to IMAP.

use std::{
    io::{Read, Write},
    os::unix::process::CommandExt,
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::support::*;

/// The reference's swaks command on the plain submission port, verbatim.
const SWAKS_PLAIN: &str = r#"swaks --server "${CLOUDRON_MAIL_SMTP_SERVER}" -p "${CLOUDRON_MAIL_SMTP_PORT}" --from "${CLOUDRON_MAIL_FROM}" --body "Test mail from cloudron app at $(hostname -f)" --auth-user "${CLOUDRON_MAIL_SMTP_USERNAME}" --auth-password "${CLOUDRON_MAIL_SMTP_PASSWORD}""#;

/// The reference's swaks command on the implicit-TLS port (`-tlsc`: --tls-on-connect),
/// verbatim.
const SWAKS_TLS: &str = r#"swaks --server "${CLOUDRON_MAIL_SMTP_SERVER}" -p "${CLOUDRON_MAIL_SMTPS_PORT}" --from "${CLOUDRON_MAIL_FROM}" --body "Test mail from cloudron app at $(hostname -f)" --auth-user "${CLOUDRON_MAIL_SMTP_USERNAME}" --auth-password "${CLOUDRON_MAIL_SMTP_PASSWORD}" -tlsc"#;

/// The reference's openssl command, verbatim: TLS from the first byte on `IMAP_PORT`.
const OPENSSL_IMAP: &str =
    r#"openssl s_client -connect "${CLOUDRON_MAIL_IMAP_SERVER}:${CLOUDRON_MAIL_IMAP_PORT}" -crlf"#;

/// How long one command may run before its process group is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The reference's openssl command aimed at the implicit-TLS port.
fn openssl_imaps() -> String {
    let command = OPENSSL_IMAP.replace("CLOUDRON_MAIL_IMAP_PORT", "CLOUDRON_MAIL_IMAPS_PORT");
    assert_ne!(command, OPENSSL_IMAP);
    command
}

/// The reference's openssl command upgrading the plain port with STARTTLS.
fn openssl_starttls() -> String {
    let command = OPENSSL_IMAP.replace("s_client -connect", "s_client -starttls imap -connect");
    assert_ne!(command, OPENSSL_IMAP);
    command
}

/// What a command did.
#[derive(Debug)]
struct Ran {
    /// `None`: still running at the deadline, killed.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// The lines the IMAP server answered the tagged (`?`) commands with.
    fn tagged(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(str::trim_end)
            .filter(|line| line.starts_with("? "))
            .collect()
    }
}

/// Runs `command` with `sh -c` and `env` added to the environment, `input` on its stdin, which
/// stays open until the command exits (s_client quits at the end of its input, before the
/// server answers). Killed with its process group after [`COMMAND_TIMEOUT`].
async fn run(command: &str, env: &Env, input: &str) -> Ran {
    let (command, env, input) = (command.to_owned(), env.clone(), input.to_owned());
    tokio::task::spawn_blocking(move || run_blocking(&command, &env, &input))
        .await
        .unwrap()
}

fn run_blocking(command: &str, env: &Env, input: &str) -> Ran {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("sh");
    let mut stdin = child.stdin.take().unwrap();
    // A command that already failed may have closed its stdin: its output says why.
    let _ = stdin.write_all(input.as_bytes());
    let _ = stdin.flush();
    let collect = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // The group is the one this child leads: sh and what it started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    Ran {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A fresh app with both sendmail and recvmail, and the two bundles merged as the app sees them.
async fn app_with_mail(test: &str) -> Env {
    let mut mail = Mail::start().await;
    let app = app(test);
    let mut env = mail.provision(&app, sendmail()).await.unwrap();
    env.extend(mail.provision(&app, recvmail()).await.unwrap());
    env
}

/// Every message in the app's INBOX, whole, read over IMAP with its recvmail variables.
async fn inbox(env: &Env) -> Result<Vec<String>, String> {
    let port: u16 = env["CLOUDRON_MAIL_IMAP_PORT"]
        .parse()
        .map_err(|e| format!("{e}"))?;
    let messages = fetch_inbox(
        &env["CLOUDRON_MAIL_IMAP_SERVER"],
        port,
        &env["CLOUDRON_MAIL_IMAP_USERNAME"],
        &env["CLOUDRON_MAIL_IMAP_PASSWORD"],
        "BODY.PEEK[]",
    )
    .await?;
    Ok(messages
        .iter()
        .map(|message| String::from_utf8_lossy(message).into_owned())
        .collect())
}

/// Waits until the app's INBOX holds `count` messages; what it holds then.
async fn inbox_with(env: &Env, count: usize) -> Vec<String> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let messages = inbox(env).await.unwrap();
        if messages.len() >= count || Instant::now() >= deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of the header `name` in `message` (first occurrence, unfolded).
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// `hostname -f` here, as the command's `$(hostname -f)` renders it.
fn fqdn() -> String {
    let output = Command::new("hostname").arg("-f").output().unwrap();
    assert!(output.status.success(), "hostname -f: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Checks that `message` is what the reference's swaks command sends for the app `env` holds.
fn assert_sent_by_swaks(message: &str, env: &Env) {
    let from = &env["CLOUDRON_MAIL_FROM"];
    assert_eq!(header(message, "From"), Some(from.as_str()), "{message}");
    assert_eq!(
        header(message, "To"),
        Some(env["CLOUDRON_MAIL_TO"].as_str()),
        "{message}"
    );
    // swaks's default subject: "test" and the date.
    assert!(
        header(message, "Subject").is_some_and(|subject| subject.starts_with("test ")),
        "{message}"
    );
    assert!(
        header(message, "X-Mailer").is_some_and(|mailer| mailer.starts_with("swaks")),
        "{message}"
    );
    let body = format!("Test mail from cloudron app at {}", fqdn());
    assert!(message.contains(&body), "no {body:?} in {message}");
}

/// Runs a swaks command of the reference, the app's own address typed at its `To:` prompt,
/// and checks that the server accepted the login and the message.
async fn swaks(command: &str, env: &Env) -> Ran {
    let ran = run(command, env, &format!("{}\n", env["CLOUDRON_MAIL_TO"])).await;
    assert!(ran.succeeded(), "{command}: {ran:#?}");
    // The transcript: logged in, and the message queued.
    assert!(
        ran.stdout.contains("235 2.7.0 Authentication successful"),
        "{ran:#?}"
    );
    assert!(ran.stdout.contains("250 2.0.0 Ok: queued"), "{ran:#?}");
    ran
}

#[tokio::test]
async fn the_reference_swaks_commands_deliver_on_both_ports() {
    if !runnable() {
        return;
    }
    let env = app_with_mail("swaks").await;
    assert!(inbox(&env).await.unwrap().is_empty());

    swaks(SWAKS_PLAIN, &env).await;
    let messages = inbox_with(&env, 1).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_sent_by_swaks(&messages[0], &env);

    let ran = swaks(SWAKS_TLS, &env).await;
    // TLS from the first byte, before the greeting.
    assert!(ran.stdout.contains("=== TLS started"), "{ran:#?}");
    let messages = inbox_with(&env, 2).await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_sent_by_swaks(&messages[1], &env);
}

#[tokio::test]
async fn the_reference_swaks_command_with_a_wrong_password_is_refused() {
    if !runnable() {
        return;
    }
    let mut env = app_with_mail("swakswrong").await;
    env.insert("CLOUDRON_MAIL_SMTP_PASSWORD".to_owned(), "0".repeat(64));
    for command in [SWAKS_PLAIN, SWAKS_TLS] {
        let ran = run(command, &env, &format!("{}\n", env["CLOUDRON_MAIL_TO"])).await;
        // swaks's exit code for a failed AUTH.
        assert_eq!(ran.status.and_then(|s| s.code()), Some(28), "{ran:#?}");
        assert!(ran.stdout.contains("535 5.7.8"), "{ran:#?}");
        assert!(!ran.stdout.contains(" 235 "), "{ran:#?}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(inbox(&env).await.unwrap().is_empty());
}

/// What an IMAP user types into s_client to log in as `user` with `password`, then leave.
fn login_lines(user: &str, password: &str) -> String {
    format!("? LOGIN {user} {password}\n? LOGOUT\n")
}

/// Logs in through the s_client `command` with the app's recvmail credentials and with a wrong
/// password; checks "? OK" and "? NO".
async fn openssl_logs_in(command: &str, env: &Env) {
    let user = &env["CLOUDRON_MAIL_IMAP_USERNAME"];
    let ran = run(
        command,
        env,
        &login_lines(user, &env["CLOUDRON_MAIL_IMAP_PASSWORD"]),
    )
    .await;
    assert!(ran.succeeded(), "{command}: {ran:#?}");
    let tagged = ran.tagged();
    assert_eq!(tagged.len(), 2, "{command}: {ran:#?}");
    assert!(
        tagged[0].starts_with("? OK") && tagged[0].contains("Logged in"),
        "{command}: {ran:#?}"
    );
    assert!(tagged[1].starts_with("? OK"), "{command}: {ran:#?}");

    let ran = run(command, env, &login_lines(user, &"0".repeat(64))).await;
    assert!(ran.succeeded(), "{command}: {ran:#?}");
    let tagged = ran.tagged();
    assert_eq!(tagged.len(), 2, "{command}: {ran:#?}");
    assert!(tagged[0].starts_with("? NO"), "{command}: {ran:#?}");
    assert!(tagged[1].starts_with("? OK"), "{command}: {ran:#?}");
}

#[tokio::test]
async fn the_reference_openssl_command_logs_in_on_the_imaps_port() {
    if !runnable() {
        return;
    }
    let env = app_with_mail("opensslimaps").await;
    openssl_logs_in(&openssl_imaps(), &env).await;
}

#[tokio::test]
async fn openssl_with_starttls_logs_in_on_the_imap_port() {
    if !runnable() {
        return;
    }
    let env = app_with_mail("opensslstarttls").await;
    openssl_logs_in(&openssl_starttls(), &env).await;
}

/// The reference's command as written, on `IMAP_PORT`, which speaks plain IMAP (STARTTLS
/// offered): what happens is recorded (a FINDING line with the transcript), not asserted. Today
/// s_client reads the plain greeting as a TLS record and gives up ("wrong version number", exit
/// 1) before sending anything; if `IMAP_PORT` ever speaks implicit TLS, it logs in instead.
#[tokio::test]
async fn the_reference_openssl_command_on_the_plain_imap_port_is_recorded() {
    if !runnable() {
        return;
    }
    let env = app_with_mail("opensslplain").await;
    let user = &env["CLOUDRON_MAIL_IMAP_USERNAME"];
    let ran = run(
        OPENSSL_IMAP,
        &env,
        &login_lines(user, &env["CLOUDRON_MAIL_IMAP_PASSWORD"]),
    )
    .await;
    eprintln!(
        "FINDING: `{OPENSSL_IMAP}` on the plain IMAP port: exit {:?}, tagged replies {:?}\n\
         stdout:\n{}\nstderr:\n{}",
        ran.status.map(|s| s.code()),
        ran.tagged(),
        ran.stdout,
        ran.stderr
    );
}
