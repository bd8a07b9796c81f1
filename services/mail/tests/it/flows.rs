//! What apps do with their bundles: send through submission (plain and implicit TLS) with
//! lettre, receive into their mailbox and read it over IMAP, and what the bundles hold.

use fleet_shared::proto::addon::{RecvmailOptions, SendmailOptions, provision_request::Options};

use crate::support::*;

#[tokio::test]
async fn bundles_hold_the_reference_variables() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let app = app("vars");
    let sendmail = mail
        .provision(
            &app,
            Options::Sendmail(SendmailOptions {
                supports_display_name: true,
                ..SendmailOptions::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        names(&sendmail),
        [
            "CLOUDRON_MAIL_DOMAIN",
            "CLOUDRON_MAIL_FROM",
            "CLOUDRON_MAIL_FROM_DISPLAY_NAME",
            "CLOUDRON_MAIL_SMTPS_PORT",
            "CLOUDRON_MAIL_SMTP_PASSWORD",
            "CLOUDRON_MAIL_SMTP_PORT",
            "CLOUDRON_MAIL_SMTP_SERVER",
            "CLOUDRON_MAIL_SMTP_USERNAME",
        ]
    );
    let server = server();
    let address = sendmail["CLOUDRON_MAIL_FROM"].clone();
    assert_eq!(sendmail["CLOUDRON_MAIL_SMTP_USERNAME"], address);
    assert!(
        address.ends_with(&format!("@{}", server.domain())),
        "{address}"
    );
    assert_eq!(sendmail["CLOUDRON_MAIL_DOMAIN"], server.domain());
    assert_eq!(sendmail["CLOUDRON_MAIL_SMTP_SERVER"], "127.0.0.1");
    assert_eq!(
        sendmail["CLOUDRON_MAIL_SMTP_PORT"],
        server.submission_port().to_string()
    );
    assert_eq!(
        sendmail["CLOUDRON_MAIL_SMTPS_PORT"],
        server.smtps_port().to_string()
    );
    assert_eq!(
        sendmail["CLOUDRON_MAIL_FROM_DISPLAY_NAME"],
        "app.example.test"
    );
    assert_eq!(sendmail["CLOUDRON_MAIL_SMTP_PASSWORD"].len(), 64);

    let recvmail = mail.provision(&app, recvmail()).await.unwrap();
    assert_eq!(
        names(&recvmail),
        [
            "CLOUDRON_MAIL_IMAPS_PORT",
            "CLOUDRON_MAIL_IMAP_PASSWORD",
            "CLOUDRON_MAIL_IMAP_PORT",
            "CLOUDRON_MAIL_IMAP_SERVER",
            "CLOUDRON_MAIL_IMAP_USERNAME",
            "CLOUDRON_MAIL_POP3S_PORT",
            "CLOUDRON_MAIL_POP3_PORT",
            "CLOUDRON_MAIL_TO",
            "CLOUDRON_MAIL_TO_DOMAIN",
        ]
    );
    // One address per app; a password per addon.
    assert_eq!(recvmail["CLOUDRON_MAIL_TO"], address);
    assert_eq!(recvmail["CLOUDRON_MAIL_IMAP_USERNAME"], address);
    assert_ne!(
        recvmail["CLOUDRON_MAIL_IMAP_PASSWORD"],
        sendmail["CLOUDRON_MAIL_SMTP_PASSWORD"]
    );
    assert_eq!(
        recvmail["CLOUDRON_MAIL_IMAP_PORT"],
        server.imap_port().to_string()
    );
    assert_eq!(
        recvmail["CLOUDRON_MAIL_IMAPS_PORT"],
        server.imaps_port().to_string()
    );
    assert_eq!(
        recvmail["CLOUDRON_MAIL_POP3_PORT"],
        server.pop3_port().to_string()
    );
    assert_eq!(
        recvmail["CLOUDRON_MAIL_POP3S_PORT"],
        server.pop3s_port().to_string()
    );

    // The FQDN (the certificate's name) for apps that check it; no display name unasked.
    let checked = mail
        .provision(
            &app,
            Options::Sendmail(SendmailOptions {
                requires_valid_certificate: true,
                ..SendmailOptions::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        checked["CLOUDRON_MAIL_SMTP_SERVER"],
        format!("mail.{}", server.domain())
    );
    assert!(!checked.contains_key("CLOUDRON_MAIL_FROM_DISPLAY_NAME"));
    // Same generation, same password: idempotent.
    assert_eq!(
        checked["CLOUDRON_MAIL_SMTP_PASSWORD"],
        sendmail["CLOUDRON_MAIL_SMTP_PASSWORD"]
    );
}

#[tokio::test]
async fn an_app_sends_on_both_ports_and_reads_its_mailbox_over_imap() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let app = app("roundtrip");
    let sendmail = mail.provision(&app, sendmail()).await.unwrap();
    let recvmail = mail.provision(&app, recvmail()).await.unwrap();
    let to = recvmail["CLOUDRON_MAIL_TO"].clone();

    let plain = token("plain");
    send_as_app(&sendmail, Port::Plain, &to, &plain)
        .await
        .unwrap();
    let tls = token("smtps");
    send_as_app(&sendmail, Port::Tls, &to, &tls).await.unwrap();
    assert!(
        delivered_to_app(&recvmail, &plain).await,
        "{plain} not delivered"
    );
    assert!(
        delivered_to_app(&recvmail, &tls).await,
        "{tls} not delivered"
    );
}

#[tokio::test]
async fn one_app_mails_another_which_alone_reads_it() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let (sender, receiver) = (app("sender"), app("receiver"));
    let sender_send = mail.provision(&sender, sendmail()).await.unwrap();
    let sender_recv = mail.provision(&sender, recvmail()).await.unwrap();
    let receiver_recv = mail.provision(&receiver, recvmail()).await.unwrap();
    let subject = token("cross");
    send_as_app(
        &sender_send,
        Port::Plain,
        &receiver_recv["CLOUDRON_MAIL_TO"],
        &subject,
    )
    .await
    .unwrap();
    assert!(delivered_to_app(&receiver_recv, &subject).await);
    // The sender's own mailbox password does not open the receiver's mailbox.
    let port: u16 = receiver_recv["CLOUDRON_MAIL_IMAP_PORT"].parse().unwrap();
    let refused = imap_login(
        "127.0.0.1",
        port,
        &receiver_recv["CLOUDRON_MAIL_IMAP_USERNAME"],
        &sender_recv["CLOUDRON_MAIL_IMAP_PASSWORD"],
    )
    .await;
    assert!(
        refused.is_err(),
        "another app's password opened the mailbox"
    );
    let own = inbox_subjects(
        "127.0.0.1",
        port,
        &sender_recv["CLOUDRON_MAIL_IMAP_USERNAME"],
        &sender_recv["CLOUDRON_MAIL_IMAP_PASSWORD"],
    )
    .await
    .unwrap();
    assert!(!own.contains(&subject), "delivered to the sender too");
}

#[tokio::test]
async fn a_named_mailbox_is_the_apps_and_keeps_its_mail_when_renamed() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let app = app("named");
    let first_name = format!("support-{}", std::process::id());
    let named = |name: &str| {
        Options::Recvmail(RecvmailOptions {
            mailbox_name: name.to_owned(),
            mailbox_domain: String::new(),
        })
    };
    let env = mail.provision(&app, named(&first_name)).await.unwrap();
    assert_eq!(
        env["CLOUDRON_MAIL_TO"],
        format!("{first_name}@{}", server().domain())
    );
    let kept = token("kept");
    append(&env, &kept).await.unwrap();

    // Another app cannot take the name.
    let other = app_id_other(&app);
    let taken = mail
        .provision(&other, named(&first_name))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), tonic::Code::FailedPrecondition, "{taken:?}");

    // Renamed: the old address is gone, the mail moved along.
    let second_name = format!("help-{}", std::process::id());
    let renamed = mail.provision(&app, named(&second_name)).await.unwrap();
    assert!(
        delivered_to_app(&renamed, &kept).await,
        "mail lost in the rename"
    );
    let port: u16 = env["CLOUDRON_MAIL_IMAP_PORT"].parse().unwrap();
    assert!(
        imap_login(
            "127.0.0.1",
            port,
            &env["CLOUDRON_MAIL_IMAP_USERNAME"],
            &env["CLOUDRON_MAIL_IMAP_PASSWORD"]
        )
        .await
        .is_err(),
        "the old address still logs in"
    );
    // The freed name can be taken now.
    mail.provision(&other, named(&first_name)).await.unwrap();
}

fn app_id_other(app: &str) -> String {
    format!("{app}-other")
}

#[tokio::test]
async fn optional_sendmail_returns_nothing_and_removes_the_account() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let app = app("optional");
    let env = mail.provision(&app, sendmail()).await.unwrap();
    let optional = mail
        .provision(
            &app,
            Options::Sendmail(SendmailOptions {
                optional: true,
                ..SendmailOptions::default()
            }),
        )
        .await
        .unwrap();
    assert!(optional.is_empty(), "{optional:?}");
    let refused = send_as_app(&env, Port::Plain, &server().postmaster(), "x").await;
    assert!(
        refused.is_err_and(|e| e.contains("535")),
        "the account still sends"
    );
}

/// Adds `domain` to the shared server's mail domains (the service reads them at every call).
fn add_domain(domain: &str) {
    let file = server().dir().join("domains");
    let text = std::fs::read_to_string(&file).unwrap();
    if text.lines().any(|line| line.trim() == domain) {
        return;
    }
    // Replaced whole, so that a concurrent reader sees the old list or the new one.
    let temp = server()
        .dir()
        .join(format!("domains.{}.tmp", std::process::id()));
    std::fs::write(&temp, format!("{}{domain}\n", text)).unwrap();
    std::fs::rename(&temp, &file).unwrap();
}

#[tokio::test]
async fn a_mailbox_moved_to_another_domain_keeps_its_mail_and_the_domain_stays_dovecots() {
    if !runnable() {
        return;
    }
    add_domain("second.test");
    let mut mail = Mail::start().await;
    let app = app("domainmove");
    let first = mail.provision(&app, recvmail()).await.unwrap();
    let kept = token("moved");
    append(&first, &kept).await.unwrap();
    let on_second = |name: &str| {
        Options::Recvmail(RecvmailOptions {
            mailbox_name: name.to_owned(),
            mailbox_domain: "Second.Test".to_owned(),
        })
    };
    let moved_name = format!("moved-{}", std::process::id());
    let moved = mail.provision(&app, on_second(&moved_name)).await.unwrap();
    assert_eq!(
        moved["CLOUDRON_MAIL_TO"],
        format!("{moved_name}@second.test")
    );
    assert_eq!(moved["CLOUDRON_MAIL_TO_DOMAIN"], "second.test");
    assert!(
        delivered_to_app(&moved, &kept).await,
        "mail lost in the move"
    );
    // Another app's mailbox on that domain is made by Dovecot, as the mail user, beside it.
    let other_name = format!("other-{}", std::process::id());
    let other = mail
        .provision(&app_id_other(&app), on_second(&other_name))
        .await
        .unwrap();
    let fresh = token("fresh");
    append(&other, &fresh).await.unwrap();
    assert!(delivered_to_app(&other, &fresh).await);
}
