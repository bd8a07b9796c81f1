//! What the mail tests share: the mail server (Postfix + Dovecot, with slapd for directory
//! users), the service served in-process against it, and the apps' clients: lettre for SMTP
//! submission, async-imap for IMAP.

#![allow(dead_code)]

use std::{collections::HashMap, time::Duration};

use fleet_shared::{
    proto::addon::{
        EmailOptions, ProvisionRequest, RecvmailOptions, SendmailOptions,
        provision_request::Options,
    },
    testkit::{
        MailServer,
        harness::{AddonTestClient, Served, TestSecrets, provision, unique_app_id},
    },
};
use futures::TryStreamExt;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::Mailbox,
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{Certificate, Tls, TlsParameters},
    },
};
use tokio::net::TcpStream;

pub use fleet_shared::testkit::{
    conformance::Env,
    harness::{deprovision, eventually, list},
};

/// How long delivery through Postfix to the mailbox may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the mail backend can run here; prints why not.
pub fn runnable() -> bool {
    MailServer::runnable()
}

/// The mail server shared by the tests of this process.
pub fn server() -> &'static MailServer {
    MailServer::shared()
        .expect("the mail server (deploy/install-deps.sh installs Postfix, Dovecot)")
}

/// The service's settings for `server`, its accounts store reached at `dir`, reading the
/// directory the server serves users of (if any).
pub fn service_env(server: &MailServer, dir: &std::path::Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("FLEET_MAIL_DIR", dir.display().to_string()),
        ("FLEET_MAIL_PORT", server.submission_port().to_string()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec();
    env.extend(server.directory_env("FLEET_MAIL"));
    env
}

/// The mail service served in-process against the shared server.
pub struct Mail {
    pub served: Served,
    pub client: AddonTestClient,
}

impl Mail {
    pub async fn start() -> Self {
        let server = server();
        let served = Served::start::<fleet_mail::Service>(
            TestSecrets::new().expect("secret files"),
            service_env(server, server.dir()),
        )
        .await
        .expect("the mail service");
        let client = served.client().await;
        Self { served, client }
    }

    /// Provisions `options` for `app`.
    pub async fn provision(&mut self, app: &str, options: Options) -> Result<Env, tonic::Status> {
        provision(&mut self.client, request(app, 0, options)).await
    }
}

/// A Provision request for `app`.
pub fn request(app: &str, generation: u32, options: Options) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app.to_owned(),
        app_domain: "app.example.test".to_owned(),
        credential_generation: generation,
        options: Some(options),
    }
}

pub fn sendmail() -> Options {
    Options::Sendmail(SendmailOptions::default())
}

pub fn recvmail() -> Options {
    Options::Recvmail(RecvmailOptions::default())
}

pub fn email() -> Options {
    Options::Email(EmailOptions {})
}

/// A fresh app id for `test`.
pub fn app(test: &str) -> String {
    unique_app_id(test)
}

/// A subject no other test sends.
pub fn token(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{what}-{}-{nanos}", std::process::id())
}

/// How a message reaches submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// `CLOUDRON_MAIL_SMTP_PORT`: no TLS.
    Plain,
    /// `CLOUDRON_MAIL_SMTPS_PORT`: implicit TLS, the server's certificate trusted.
    Tls,
}

/// What lettre sends: envelope sender and From are `from` unless `header_from` differs.
pub struct Outgoing<'a> {
    pub from: &'a str,
    pub header_from: Option<&'a str>,
    pub to: &'a str,
    pub subject: &'a str,
}

/// Sends `mail` with lettre as an app does, logged in with `user`/`password` on the server
/// `env` names (the shared one); the SMTP error text if refused.
pub async fn send(
    env: &Env,
    port: Port,
    user: &str,
    password: &str,
    mail: Outgoing<'_>,
) -> Result<(), String> {
    send_to(server(), env, port, user, password, mail).await
}

/// [`send`] to `server`, whose certificate the TLS port presents.
pub async fn send_to(
    server: &MailServer,
    env: &Env,
    port: Port,
    user: &str,
    password: &str,
    mail: Outgoing<'_>,
) -> Result<(), String> {
    let host = env["CLOUDRON_MAIL_SMTP_SERVER"].clone();
    let (port_var, tls) = match port {
        Port::Plain => ("CLOUDRON_MAIL_SMTP_PORT", Tls::None),
        Port::Tls => {
            let pem = std::fs::read(server.cert_file()).map_err(|e| e.to_string())?;
            let certificate = Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
            let parameters = TlsParameters::builder(host.clone())
                .add_root_certificate(certificate)
                .build_rustls()
                .map_err(|e| e.to_string())?;
            ("CLOUDRON_MAIL_SMTPS_PORT", Tls::Wrapper(parameters))
        }
    };
    let port: u16 = env[port_var]
        .parse()
        .map_err(|e| format!("{port_var}: {e}"))?;
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .credentials(Credentials::new(user.to_owned(), password.to_owned()))
            .authentication(vec![Mechanism::Plain, Mechanism::Login])
            .timeout(Some(Duration::from_secs(20)))
            .build();
    let header_from: Mailbox = mail
        .header_from
        .unwrap_or(mail.from)
        .parse()
        .map_err(|e| format!("From: {e}"))?;
    let envelope = lettre::address::Envelope::new(
        Some(mail.from.parse().map_err(|e| format!("sender: {e}"))?),
        vec![mail.to.parse().map_err(|e| format!("recipient: {e}"))?],
    )
    .map_err(|e| e.to_string())?;
    let message = Message::builder()
        .from(header_from)
        .to(mail.to.parse().map_err(|e| format!("To: {e}"))?)
        .subject(mail.subject)
        .envelope(envelope)
        .body(format!("{}\n", mail.subject))
        .map_err(|e| e.to_string())?;
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Sends with the app's own sendmail variables, from its own address.
pub async fn send_as_app(env: &Env, port: Port, to: &str, subject: &str) -> Result<(), String> {
    let from = env["CLOUDRON_MAIL_FROM"].clone();
    send(
        env,
        port,
        &env["CLOUDRON_MAIL_SMTP_USERNAME"],
        &env["CLOUDRON_MAIL_SMTP_PASSWORD"],
        Outgoing {
            from: &from,
            header_from: None,
            to,
            subject,
        },
    )
    .await
}

type ImapSession = async_imap::Session<TcpStream>;

/// Logs in to IMAP on `host:port` as `user`; the server's answer if refused.
pub async fn imap_login(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> Result<ImapSession, String> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let mut client = async_imap::Client::new(stream);
    client
        .read_response()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no IMAP greeting")?;
    client
        .login(user, password)
        .await
        .map_err(|(e, _)| e.to_string())
}

/// What `query` (a FETCH item such as `BODY.PEEK[]`) gives for every message in `user`'s
/// INBOX, read over IMAP.
pub async fn fetch_inbox(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    query: &str,
) -> Result<Vec<Vec<u8>>, String> {
    let mut session = imap_login(host, port, user, password).await?;
    let mailbox = session.select("INBOX").await.map_err(|e| e.to_string())?;
    let mut messages = Vec::new();
    if mailbox.exists > 0 {
        let fetches: Vec<_> = session
            .fetch("1:*", query)
            .await
            .map_err(|e| e.to_string())?
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        for fetch in &fetches {
            let part = fetch.header().or_else(|| fetch.body()).unwrap_or_default();
            messages.push(part.to_vec());
        }
    }
    let _ = session.logout().await;
    Ok(messages)
}

/// The subjects in `user`'s INBOX, read over IMAP.
pub async fn inbox_subjects(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> Result<Vec<String>, String> {
    let headers = fetch_inbox(
        host,
        port,
        user,
        password,
        "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
    )
    .await?;
    Ok(headers
        .iter()
        .filter_map(|header| {
            let text = String::from_utf8_lossy(header);
            let subject = text.trim().strip_prefix("Subject:")?.trim().to_owned();
            Some(subject)
        })
        .collect())
}

/// Waits until `subject` is in `user`'s INBOX.
pub async fn delivered(host: &str, port: u16, user: &str, password: &str, subject: &str) -> bool {
    eventually(DELIVERY_TIMEOUT, || async {
        inbox_subjects(host, port, user, password)
            .await
            .is_ok_and(|subjects| subjects.iter().any(|s| s == subject))
    })
    .await
}

/// Waits until `subject` is in the INBOX the recvmail variables `env` name.
pub async fn delivered_to_app(env: &Env, subject: &str) -> bool {
    let port: u16 = env["CLOUDRON_MAIL_IMAP_PORT"].parse().unwrap_or_default();
    delivered(
        &env["CLOUDRON_MAIL_IMAP_SERVER"],
        port,
        &env["CLOUDRON_MAIL_IMAP_USERNAME"],
        &env["CLOUDRON_MAIL_IMAP_PASSWORD"],
        subject,
    )
    .await
}

/// Stores a message with `subject` in the app's INBOX over IMAP (APPEND).
pub async fn append(env: &Env, subject: &str) -> Result<(), String> {
    let port: u16 = env["CLOUDRON_MAIL_IMAP_PORT"]
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut session = imap_login(
        &env["CLOUDRON_MAIL_IMAP_SERVER"],
        port,
        &env["CLOUDRON_MAIL_IMAP_USERNAME"],
        &env["CLOUDRON_MAIL_IMAP_PASSWORD"],
    )
    .await?;
    let message = format!(
        "From: {to}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nstored\r\n",
        to = env["CLOUDRON_MAIL_TO"]
    );
    session
        .append("INBOX", None, None, message.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let _ = session.logout().await;
    Ok(())
}

/// Every variable of `env` mapped by name, for comparisons.
pub fn names(env: &Env) -> Vec<&str> {
    let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

/// The value of `env` as a map, for `Env` built by hand.
pub fn env_of(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<HashMap<_, _>>()
}

/// Logs in to SMTP submission with the sendmail variables `env` holds (lettre connects,
/// authenticates and says NOOP); the server's answer if refused.
pub async fn smtp_login(env: &Env) -> Result<(), String> {
    let port: u16 = env["CLOUDRON_MAIL_SMTP_PORT"]
        .parse()
        .map_err(|e| format!("{e}"))?;
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            env["CLOUDRON_MAIL_SMTP_SERVER"].clone(),
        )
        .port(port)
        .credentials(Credentials::new(
            env["CLOUDRON_MAIL_SMTP_USERNAME"].clone(),
            env["CLOUDRON_MAIL_SMTP_PASSWORD"].clone(),
        ))
        .authentication(vec![Mechanism::Plain])
        .timeout(Some(Duration::from_secs(20)))
        .build();
    match transport.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => Err("the connection did not answer NOOP".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}
