//! sendmail, recvmail and email through the real mail service (in-process) on the private
//! Postfix + Dovecot: InstallApp hands out SMTP credentials that log in, UninstallApp removes
//! the account, and refused options reach no service. The SMTP logins are checked with swaks,
//! the tool the reference gives app packagers for it.

use std::{collections::HashMap, process::Output, time::Duration};

use serde_json::json;
use tonic::Code;

use fleet_shared::testkit::{
    MailServer,
    harness::{InProcess, TestSecrets, addon_client, list},
};

use crate::support::*;

/// The mail service on the shared mail server and a coordinator routing sendmail, recvmail
/// and email to it, with one master key and token.
struct Fleet {
    coordinator: Coordinator,
    mail: InProcess,
    server: &'static MailServer,
    secrets: TestSecrets,
}

impl Fleet {
    async fn start() -> Self {
        let server = MailServer::shared()
            .expect("the mail server (deploy/install-deps.sh installs Postfix, Dovecot)");
        let secrets = TestSecrets::new().unwrap();
        let mut env = secrets.common_env();
        env.extend(
            [
                ("FLEET_MAIL_DIR", server.dir().display().to_string()),
                ("FLEET_MAIL_PORT", server.submission_port().to_string()),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        let mail = InProcess::serve::<fleet_mail::Service>(env).await.unwrap();
        let mail_url = format!("http://{}", mail.addr);
        let coordinator =
            Coordinator::start_for(&secrets, &[("FLEET_COORDINATOR_MAIL_URL", &mail_url)]).await;
        Self {
            coordinator,
            mail,
            server,
            secrets,
        }
    }

    /// The app ids the mail service holds accounts for, asked over its own gRPC port.
    async fn listed(&self) -> Vec<String> {
        let mut client = addon_client(self.mail.addr.port(), Some(&self.secrets.token))
            .await
            .unwrap();
        list(&mut client).await.unwrap()
    }

    async fn stop(self) {
        self.coordinator.stop().await;
        self.mail.stop().await;
    }
}

/// swaks logs in to SMTP submission with the sendmail variables of `env` and quits after AUTH.
async fn smtp_auth(env: &HashMap<String, String>) -> Output {
    let run = tokio::process::Command::new("swaks")
        .args(["--server", &env["CLOUDRON_MAIL_SMTP_SERVER"]])
        .args(["-p", &env["CLOUDRON_MAIL_SMTP_PORT"]])
        .args(["--from", &env["CLOUDRON_MAIL_FROM"]])
        .args(["--to", &env["CLOUDRON_MAIL_FROM"]])
        .args(["--auth-user", &env["CLOUDRON_MAIL_SMTP_USERNAME"]])
        .args(["--auth-password", &env["CLOUDRON_MAIL_SMTP_PASSWORD"]])
        .args(["--quit-after", "AUTH", "--timeout", "20"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("swaks finished")
        .expect("swaks (deploy/install-deps.sh installs it)")
}

/// The variables of `env` whose names start with `prefix`, sorted.
fn named<'a>(env: &'a HashMap<String, String>, prefix: &str) -> Vec<&'a str> {
    let mut names: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_mail_service_gives_working_smtp_credentials_and_uninstall_removes_them() {
    if !MailServer::runnable() {
        return;
    }
    let fleet = Fleet::start().await;
    let server = fleet.server;
    let mut client = fleet.coordinator.client().await;
    let app = app_id("mailreal");

    let reply = install(
        &mut client,
        &app,
        json!({
            "sendmail": {"supportsDisplayName": true},
            "recvmail": {},
            "email": {}
        }),
    )
    .await
    .unwrap();
    let env = env_of(&reply);

    assert_eq!(
        named(env, "CLOUDRON_MAIL_"),
        [
            "CLOUDRON_MAIL_DOMAIN",
            "CLOUDRON_MAIL_FROM",
            "CLOUDRON_MAIL_FROM_DISPLAY_NAME",
            "CLOUDRON_MAIL_IMAPS_PORT",
            "CLOUDRON_MAIL_IMAP_PASSWORD",
            "CLOUDRON_MAIL_IMAP_PORT",
            "CLOUDRON_MAIL_IMAP_SERVER",
            "CLOUDRON_MAIL_IMAP_USERNAME",
            "CLOUDRON_MAIL_POP3S_PORT",
            "CLOUDRON_MAIL_POP3_PORT",
            "CLOUDRON_MAIL_SMTPS_PORT",
            "CLOUDRON_MAIL_SMTP_PASSWORD",
            "CLOUDRON_MAIL_SMTP_PORT",
            "CLOUDRON_MAIL_SMTP_SERVER",
            "CLOUDRON_MAIL_SMTP_USERNAME",
            "CLOUDRON_MAIL_TO",
            "CLOUDRON_MAIL_TO_DOMAIN",
        ]
    );
    assert_eq!(
        named(env, "CLOUDRON_EMAIL_"),
        [
            "CLOUDRON_EMAIL_DOMAIN",
            "CLOUDRON_EMAIL_DOMAINS",
            "CLOUDRON_EMAIL_IMAPS_PORT",
            "CLOUDRON_EMAIL_IMAP_PORT",
            "CLOUDRON_EMAIL_IMAP_SERVER",
            "CLOUDRON_EMAIL_SERVER_HOST",
            "CLOUDRON_EMAIL_SIEVE_PORT",
            "CLOUDRON_EMAIL_SIEVE_SERVER",
            "CLOUDRON_EMAIL_SMTP_PORT",
            "CLOUDRON_EMAIL_SMTP_SERVER",
        ]
    );
    let address = env["CLOUDRON_MAIL_FROM"].clone();
    assert!(
        address.ends_with(&format!("@{}", server.domain())),
        "{address}"
    );
    assert_eq!(env["CLOUDRON_MAIL_SMTP_USERNAME"], address);
    assert_eq!(env["CLOUDRON_MAIL_TO"], address);
    assert_eq!(env["CLOUDRON_MAIL_DOMAIN"], server.domain());
    assert_eq!(env["CLOUDRON_EMAIL_DOMAIN"], server.domain());
    assert_eq!(env["CLOUDRON_MAIL_SMTP_SERVER"], "127.0.0.1");
    assert_eq!(
        env["CLOUDRON_MAIL_SMTP_PORT"],
        server.submission_port().to_string()
    );
    assert_eq!(
        env["CLOUDRON_MAIL_SMTPS_PORT"],
        server.smtps_port().to_string()
    );
    assert_eq!(
        env["CLOUDRON_MAIL_IMAP_PORT"],
        server.imap_port().to_string()
    );
    assert_eq!(
        env["CLOUDRON_MAIL_FROM_DISPLAY_NAME"],
        format!("{app}.example.test")
    );
    assert_ne!(
        env["CLOUDRON_MAIL_SMTP_PASSWORD"],
        env["CLOUDRON_MAIL_IMAP_PASSWORD"]
    );
    assert!(fleet.listed().await.contains(&app));

    // The SMTP credentials log in.
    let login = smtp_auth(env).await;
    let transcript = String::from_utf8_lossy(&login.stdout);
    assert!(login.status.success(), "{login:?}");
    assert!(
        transcript.contains("235 2.7.0 Authentication successful"),
        "{transcript}"
    );

    // Asking for a valid certificate gives the FQDN the certificate names.
    let checked = app_id("mailfqdn");
    let reply = install(
        &mut client,
        &checked,
        json!({"sendmail": {"requiresValidCertificate": true}}),
    )
    .await
    .unwrap();
    let checked_env = env_of(&reply);
    assert_eq!(
        checked_env["CLOUDRON_MAIL_SMTP_SERVER"],
        format!("mail.{}", server.domain())
    );
    assert!(!checked_env.contains_key("CLOUDRON_MAIL_FROM_DISPLAY_NAME"));
    assert!(named(checked_env, "CLOUDRON_EMAIL_").is_empty());
    assert!(!checked_env.contains_key("CLOUDRON_MAIL_TO"));
    uninstall(&mut client, &checked).await.unwrap();

    uninstall(&mut client, &app).await.unwrap();

    let listed = fleet.listed().await;
    assert!(!listed.contains(&app), "{listed:?}");
    assert!(!listed.contains(&checked), "{listed:?}");
    expect_status(get(&mut client, &app).await, Code::NotFound, "");
    // The account is gone: the same credentials are refused.
    let refused = smtp_auth(env).await;
    let transcript = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(transcript.contains("535 5.7.8"), "{transcript}");
    assert!(!transcript.contains(" 235 "), "{transcript}");

    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_mail_options_reach_no_service() {
    if !MailServer::runnable() {
        return;
    }
    let fleet = Fleet::start().await;
    let mut client = fleet.coordinator.client().await;
    // A valid app beside it shows the service's List names what it holds.
    let valid = app_id("mailvalid");
    install(&mut client, &valid, json!({"sendmail": {}}))
        .await
        .unwrap();
    let app = app_id("mailrefused");

    expect_status(
        install(
            &mut client,
            &app,
            json!({
                "sendmail": {"optional": "yes"},
                "recvmail": {},
                "email": {}
            }),
        )
        .await,
        Code::InvalidArgument,
        "addons.sendmail.optional",
    );

    let listed = fleet.listed().await;
    assert!(listed.contains(&valid), "{listed:?}");
    // Not even the valid recvmail and email halves were made.
    assert!(!listed.contains(&app), "{listed:?}");
    expect_status(get(&mut client, &app).await, Code::NotFound, "");

    uninstall(&mut client, &valid).await.unwrap();
    assert!(!fleet.listed().await.contains(&valid));
    fleet.stop().await;
}
