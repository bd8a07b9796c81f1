//! What the server and the service refuse, tried the way an attacker holding one app's bundle
//! would: wrong passwords, other senders, logins after Deprovision, one addon's password on
//! the other's protocol, hostile names.

use fleet_shared::proto::addon::{RecvmailOptions, SendmailOptions, provision_request::Options};
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn a_wrong_password_is_refused_with_535() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let env = mail.provision(&app("wrong"), sendmail()).await.unwrap();
    let from = env["CLOUDRON_MAIL_FROM"].clone();
    for port in [Port::Plain, Port::Tls] {
        let refused = send(
            &env,
            port,
            &env["CLOUDRON_MAIL_SMTP_USERNAME"],
            "not-the-password",
            Outgoing {
                from: &from,
                header_from: None,
                to: &server().postmaster(),
                subject: "x",
            },
        )
        .await;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("535")),
            "{port:?}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn an_app_cannot_send_as_another_address() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let env = mail.provision(&app("spoof"), sendmail()).await.unwrap();
    let victim = mail.provision(&app("victim"), sendmail()).await.unwrap();
    let (user, password) = (
        &env["CLOUDRON_MAIL_SMTP_USERNAME"],
        &env["CLOUDRON_MAIL_SMTP_PASSWORD"],
    );
    for from in [
        victim["CLOUDRON_MAIL_FROM"].as_str(),
        "ceo@bank.test",
        &server().postmaster(),
    ] {
        let refused = send(
            &env,
            Port::Plain,
            user,
            password,
            Outgoing {
                from,
                header_from: None,
                to: &server().postmaster(),
                subject: "spoof",
            },
        )
        .await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("553") || e.contains("5.7.1")),
            "sent as {from}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn each_addons_password_opens_only_its_own_protocol() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let app = app("protocols");
    let send_env = mail.provision(&app, sendmail()).await.unwrap();
    let recv_env = mail.provision(&app, recvmail()).await.unwrap();
    let port: u16 = recv_env["CLOUDRON_MAIL_IMAP_PORT"].parse().unwrap();
    let address = recv_env["CLOUDRON_MAIL_TO"].clone();
    assert!(
        imap_login(
            "127.0.0.1",
            port,
            &address,
            &send_env["CLOUDRON_MAIL_SMTP_PASSWORD"]
        )
        .await
        .is_err(),
        "the sendmail password opened the mailbox"
    );
    let refused = send(
        &send_env,
        Port::Plain,
        &address,
        &recv_env["CLOUDRON_MAIL_IMAP_PASSWORD"],
        Outgoing {
            from: &address,
            header_from: None,
            to: &address,
            subject: "x",
        },
    )
    .await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("535")),
        "the recvmail password sends: {refused:?}"
    );
}

#[tokio::test]
async fn a_sendmail_only_address_receives_nothing() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let sender = mail
        .provision(&app("sender-only"), sendmail())
        .await
        .unwrap();
    let other = mail.provision(&app("writer"), sendmail()).await.unwrap();
    let refused = send_as_app(&other, Port::Plain, &sender["CLOUDRON_MAIL_FROM"], "x").await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("550") || e.contains("5.1.1")),
        "accepted for a mailbox that does not exist: {refused:?}"
    );
}

#[tokio::test]
async fn deprovision_refuses_the_very_next_login_and_removes_the_mailbox() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let app = app("gone");
    let send_env = mail.provision(&app, sendmail()).await.unwrap();
    let recv_env = mail.provision(&app, recvmail()).await.unwrap();
    let subject = token("before");
    append(&recv_env, &subject).await.unwrap();
    let address = recv_env["CLOUDRON_MAIL_TO"].clone();
    let (local, domain) = address.split_once('@').unwrap();
    let home = server().dir().join("mail/apps").join(domain).join(local);
    assert!(home.exists(), "no mailbox at {}", home.display());

    deprovision(&mut mail.client, &app, "recvmail")
        .await
        .unwrap();
    let port: u16 = recv_env["CLOUDRON_MAIL_IMAP_PORT"].parse().unwrap();
    let login = imap_login(
        "127.0.0.1",
        port,
        &address,
        &recv_env["CLOUDRON_MAIL_IMAP_PASSWORD"],
    )
    .await;
    assert!(login.is_err(), "IMAP login accepted after Deprovision");
    assert!(!home.exists(), "the mailbox is still on disk");
    // sendmail is another addon: still sends, until it goes too.
    send_as_app(
        &send_env,
        Port::Plain,
        &server().postmaster(),
        &token("still"),
    )
    .await
    .unwrap();
    deprovision(&mut mail.client, &app, "sendmail")
        .await
        .unwrap();
    let refused = send_as_app(&send_env, Port::Plain, &server().postmaster(), "x").await;
    assert!(
        refused.is_err_and(|e| e.contains("535")),
        "SMTP login accepted after Deprovision"
    );
    assert!(!list(&mut mail.client).await.unwrap().contains(&app));
    // Again: nothing left, still fine.
    deprovision(&mut mail.client, &app, "recvmail")
        .await
        .unwrap();
}

#[tokio::test]
async fn hostile_names_and_injections_are_invalid_and_create_nothing() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let app = app("hostile");
    let cases = [
        (
            Options::Sendmail(SendmailOptions {
                supports_display_name: true,
                display_name: "Shop\r\nBcc: everyone@example.test".to_owned(),
                ..SendmailOptions::default()
            }),
            "options.sendmail.display_name",
        ),
        (
            Options::Sendmail(SendmailOptions {
                mailbox_name: "postmaster".to_owned(),
                ..SendmailOptions::default()
            }),
            "options.sendmail.mailbox_name",
        ),
        (
            Options::Sendmail(SendmailOptions {
                mailbox_domain: "not-ours.test".to_owned(),
                ..SendmailOptions::default()
            }),
            "options.sendmail.mailbox_domain",
        ),
        (
            Options::Recvmail(RecvmailOptions {
                mailbox_name: "../../../etc".to_owned(),
                mailbox_domain: String::new(),
            }),
            "options.recvmail.mailbox_name",
        ),
        (
            Options::Recvmail(RecvmailOptions {
                mailbox_name: "x@evil.test".to_owned(),
                mailbox_domain: String::new(),
            }),
            "options.recvmail.mailbox_name",
        ),
    ];
    for (options, field) in cases {
        let status = mail.provision(&app, options).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(field), "{status:?}");
    }
    assert!(!list(&mut mail.client).await.unwrap().contains(&app));
}
