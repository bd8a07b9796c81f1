//! Provision against writing the same account directly, and messages per second from
//! submission to mailbox delivery, on a private Postfix + Dovecot (as root).
//!
//!     cargo bench -p fleet-mail --bench mail [-- ROUNDS]
//!
//! Provision is timed through the service's gRPC face (validation, the password derived and
//! hashed with SHA512-CRYPT, one `BEGIN IMMEDIATE` transaction on the accounts store); the
//! direct write is the same hash and the same `INSERT` on a connection kept open, which is the
//! floor any way of writing the account has. Delivery is ROUNDS messages sent by lettre over
//! a pool of submission connections (AUTH, sender checks, the service's From-header milter,
//! queue, LMTP into the mailbox) and
//! counted in the mailbox over IMAP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use fleet_mail::{accounts, mailbox::LocalPart};
use fleet_shared::{
    AppId, Secret,
    proto::addon::{
        ProvisionRequest, RecvmailOptions, SendmailOptions, provision_request::Options,
    },
    testkit::{
        MailServer,
        bench::Samples,
        free_port,
        harness::{InProcess, TestSecrets, addon_client},
        host::running_as_root,
    },
};
use futures::future::join_all;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    transport::smtp::authentication::{Credentials, Mechanism},
};
use sqlx::{Connection, SqliteConnection};

fn main() {
    if !running_as_root() {
        eprintln!("SKIPPED: the mail backend needs root (Postfix's master starts only as root)");
        return;
    }
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let milter_port = free_port().unwrap();
    let milter = format!("inet:127.0.0.1:{milter_port}");
    let server =
        MailServer::start_with(None, &[("MAIL_MILTER", &milter)]).expect("the mail server");
    runtime.block_on(run(&server, milter_port, rounds));
}

async fn run(server: &MailServer, milter_port: u16, rounds: usize) {
    let secrets = TestSecrets::new().unwrap();
    let mut env = secrets.common_env();
    env.push((
        "FLEET_MAIL_DIR".to_owned(),
        server.dir().display().to_string(),
    ));
    env.push((
        "FLEET_MAIL_PORT".to_owned(),
        server.submission_port().to_string(),
    ));
    env.push((
        "FLEET_MAIL_MILTER_LISTEN".to_owned(),
        format!("127.0.0.1:{milter_port}"),
    ));
    let service = InProcess::serve::<fleet_mail::Service>(env).await.unwrap();
    let token = std::fs::read_to_string(secrets.path("token")).unwrap();
    let mut client = addon_client(service.addr.port(), Some(token.trim()))
        .await
        .unwrap();

    println!("Accounts ({rounds} each, sequential):");
    let mut provision = Samples::default();
    for n in 0..rounds {
        let request = ProvisionRequest {
            app_id: format!("bench-provision-{n}"),
            app_domain: "bench.example.test".to_owned(),
            credential_generation: 0,
            options: Some(Options::Sendmail(SendmailOptions::default())),
        };
        provision.time(client.provision(request)).await.unwrap();
    }
    let mut direct = Samples::default();
    let url = format!("sqlite://{}", server.accounts_db().display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let password = Secret::new("x".repeat(64));
    for n in 0..rounds {
        let app = AppId::parse(&format!("bench-direct-{n}")).unwrap();
        let address = format!("{}@{}", LocalPart::derived(&app).as_str(), server.domain());
        direct
            .time(async {
                let hash = accounts::hash(&password).await.unwrap();
                sqlx::query(
                    "INSERT INTO accounts (address, addon, app_id, password) VALUES (?1, 'sendmail', ?2, ?3)",
                )
                .bind(&address)
                .bind(app.as_str())
                .bind(hash)
                .execute(&mut conn)
                .await
                .unwrap();
            })
            .await;
    }
    println!("{}", provision.report("Provision (gRPC, sendmail)"));
    println!("{}", direct.report("the same row written directly"));
    println!(
        "  ratio                                {:.2}x",
        provision.ratio_to(&direct)
    );

    let concurrent = Instant::now();
    let calls = (0..rounds).map(|n| {
        let mut client = client.clone();
        async move {
            let request = ProvisionRequest {
                app_id: format!("bench-concurrent-{n}"),
                app_domain: "bench.example.test".to_owned(),
                credential_generation: 0,
                options: Some(Options::Sendmail(SendmailOptions::default())),
            };
            client.provision(request).await.unwrap();
        }
    });
    join_all(calls).await;
    let elapsed = concurrent.elapsed();
    println!(
        "  {rounds} concurrent Provisions           {:>8.2} ms  ({:.0}/s)",
        elapsed.as_secs_f64() * 1e3,
        rounds as f64 / elapsed.as_secs_f64()
    );

    // Delivery: one app sends ROUNDS messages to another's mailbox.
    let provisioned = |app: &str, options: Options| {
        let mut client = client.clone();
        let request = ProvisionRequest {
            app_id: app.to_owned(),
            app_domain: "bench.example.test".to_owned(),
            credential_generation: 0,
            options: Some(options),
        };
        async move { client.provision(request).await.unwrap().into_inner().env }
    };
    let sender = provisioned(
        "bench-sender",
        Options::Sendmail(SendmailOptions::default()),
    )
    .await;
    let receiver = provisioned(
        "bench-receiver",
        Options::Recvmail(RecvmailOptions::default()),
    )
    .await;
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(server.submission_port())
            .credentials(Credentials::new(
                sender["CLOUDRON_MAIL_SMTP_USERNAME"].clone(),
                sender["CLOUDRON_MAIL_SMTP_PASSWORD"].clone(),
            ))
            .authentication(vec![Mechanism::Plain])
            .build();
    let from = sender["CLOUDRON_MAIL_FROM"].clone();
    let to = receiver["CLOUDRON_MAIL_TO"].clone();
    let started = Instant::now();
    let sends = (0..rounds).map(|n| {
        let message = Message::builder()
            .from(from.parse().unwrap())
            .to(to.parse().unwrap())
            .subject(format!("bench {n}"))
            .body(format!("message {n}\n"))
            .unwrap();
        let transport = transport.clone();
        async move { transport.send(message).await.unwrap() }
    });
    join_all(sends).await;
    let submitted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    let delivered = loop {
        let count = count_inbox(&receiver).await;
        if count >= rounds || Instant::now() > deadline {
            break count;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let total = started.elapsed();
    println!("Delivery ({rounds} messages, lettre's connection pool, the From-header milter on):");
    println!(
        "  submitted (accepted by Postfix)      {:>8.2} ms  ({:.0}/s)",
        submitted.as_secs_f64() * 1e3,
        rounds as f64 / submitted.as_secs_f64()
    );
    println!(
        "  delivered into the mailbox ({delivered})      {:>8.2} ms  ({:.0}/s)",
        total.as_secs_f64() * 1e3,
        delivered as f64 / total.as_secs_f64()
    );
    service.stop().await;
}

/// How many messages the recvmail mailbox holds, over IMAP.
async fn count_inbox(env: &std::collections::HashMap<String, String>) -> usize {
    let port: u16 = env["CLOUDRON_MAIL_IMAP_PORT"].parse().unwrap();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut client = async_imap::Client::new(stream);
    client.read_response().await.unwrap();
    let mut session = client
        .login(
            &env["CLOUDRON_MAIL_IMAP_USERNAME"],
            &env["CLOUDRON_MAIL_IMAP_PASSWORD"],
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let mailbox = session.examine("INBOX").await.unwrap();
    let _ = session.logout().await;
    mailbox.exists as usize
}
