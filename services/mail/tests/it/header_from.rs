//! The From header through the real Postfix: a server of its own whose submission services
//! call the service's milter, as `make up` runs them. An app's From must be its own address;
//! while the milter is down, submission is tempfailed rather than let through.

use fleet_shared::testkit::{
    MailServer, free_port,
    harness::{Served, TestSecrets},
};

use crate::support::*;

#[tokio::test]
async fn a_from_header_other_than_the_login_is_refused_and_a_missing_milter_fails_closed() {
    if !runnable() {
        return;
    }
    let milter_port = free_port().unwrap();
    let milter = format!("inet:127.0.0.1:{milter_port}");
    let server = MailServer::start_with(None, &[("MAIL_MILTER", &milter)]).unwrap();
    let mut env = service_env(&server, server.dir());
    env.push((
        "FLEET_MAIL_MILTER_LISTEN".to_owned(),
        format!("127.0.0.1:{milter_port}"),
    ));
    let served = Served::start::<fleet_mail::Service>(TestSecrets::new().unwrap(), env)
        .await
        .unwrap();
    let mut client = served.client().await;
    let app = app("from");
    let sendmail_env =
        fleet_shared::testkit::harness::provision(&mut client, request(&app, 0, sendmail()))
            .await
            .unwrap();
    let address = sendmail_env["CLOUDRON_MAIL_FROM"].clone();
    let (user, password) = (
        sendmail_env["CLOUDRON_MAIL_SMTP_USERNAME"].clone(),
        sendmail_env["CLOUDRON_MAIL_SMTP_PASSWORD"].clone(),
    );
    let postmaster = server.postmaster();
    let server = &server;
    let attempt = |header_from: Option<String>, port: Port| {
        let (env, user, password, address, postmaster) = (
            sendmail_env.clone(),
            user.clone(),
            password.clone(),
            address.clone(),
            postmaster.clone(),
        );
        async move {
            send_to(
                server,
                &env,
                port,
                &user,
                &password,
                Outgoing {
                    from: &address,
                    header_from: header_from.as_deref(),
                    to: &postmaster,
                    subject: "from check",
                },
            )
            .await
        }
    };

    // Its own address, with a display name and in another case: accepted on both ports.
    attempt(
        Some(format!("Shop <{}>", address.to_uppercase())),
        Port::Plain,
    )
    .await
    .unwrap();
    attempt(None, Port::Tls).await.unwrap();
    // Anyone else in the header, however dressed: refused with 550 5.7.1, on both ports.
    for (forged, port) in [
        ("ceo@bank.test".to_owned(), Port::Plain),
        (format!("\"{address}\" <ceo@bank.test>"), Port::Plain),
        (format!("{address}.evil.test"), Port::Tls),
        (server.postmaster(), Port::Tls),
    ] {
        let refused = attempt(Some(forged.clone()), port).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("550") && e.contains("5.7.1")),
            "From: {forged} on {port:?}: {refused:?}"
        );
    }

    // The milter gone: submission is tempfailed (4xx), never accepted.
    served.stop().await;
    let refused = attempt(None, Port::Plain).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("(4")),
        "submission without the milter: {refused:?}"
    );
}
