//! The email addon: a webmail app gets the server's coordinates and its users log in with
//! their own directory accounts. Users are made through the ldap service's Directory API (in
//! process, on the slapd the mail server authenticates against).

use fleet_shared::{
    auth::SendBearer,
    proto::directory::{CreateUserRequest, DeleteUserRequest, directory_client::DirectoryClient},
    testkit::{
        LdapServer,
        harness::{Served, TestSecrets},
    },
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::support::*;

const PASSWORD: &str = "a long directory password";

type Directory = DirectoryClient<InterceptedService<Channel, SendBearer>>;

/// The ldap service on the slapd the mail server reads users from.
struct Users {
    _service: Served,
    directory: Directory,
}

impl Users {
    async fn start() -> Self {
        // The mail server is configured against the shared slapd: start it first.
        server();
        let slapd = LdapServer::shared().expect("slapd");
        let secrets = TestSecrets::new().unwrap();
        std::fs::write(secrets.path("ldap-admin"), slapd.admin_password()).unwrap();
        let env = [
            ("FLEET_LDAP_ADMIN_URL", slapd.url()),
            (
                "FLEET_LDAP_ADMIN_PASSWORD_FILE",
                secrets.path("ldap-admin").display().to_string(),
            ),
        ]
        .map(|(name, value)| (name.to_owned(), value));
        let service = Served::start::<fleet_ldap::Service>(secrets, env)
            .await
            .unwrap();
        let channel = Channel::from_shared(format!("http://127.0.0.1:{}", service.port()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let bearer = SendBearer::new(Some(&service.secrets.token)).unwrap();
        Self {
            directory: DirectoryClient::with_interceptor(channel, bearer),
            _service: service,
        }
    }

    /// A new user whose address is on the mail domain; their address.
    async fn create(&mut self, stem: &str) -> (String, String) {
        let username = token(stem).replace('-', "");
        let email = format!("{username}@{}", server().domain());
        let request = CreateUserRequest {
            username: username.clone(),
            email: email.clone(),
            display_name: "Grace Hopper".to_owned(),
            given_name: "Grace".to_owned(),
            family_name: "Hopper".to_owned(),
            alternate_email: String::new(),
            password: Some(PASSWORD.to_owned()),
        };
        self.directory.create_user(request).await.unwrap();
        (username, email)
    }

    async fn delete(&mut self, username: &str) {
        let request = DeleteUserRequest {
            username: username.to_owned(),
        };
        self.directory.delete_user(request).await.unwrap();
    }
}

#[tokio::test]
async fn the_bundle_names_the_server_and_holds_no_credentials() {
    if !runnable() {
        return;
    }
    let mut mail = Mail::start().await;
    let env = mail.provision(&app("webmail"), email()).await.unwrap();
    let server = server();
    assert_eq!(
        names(&env),
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
    assert_eq!(env["CLOUDRON_EMAIL_DOMAIN"], server.domain());
    assert!(
        env["CLOUDRON_EMAIL_DOMAINS"]
            .split(',')
            .any(|d| d == server.domain())
    );
    assert_eq!(
        env["CLOUDRON_EMAIL_SERVER_HOST"],
        format!("mail.{}", server.domain())
    );
    assert_eq!(
        env["CLOUDRON_EMAIL_SMTP_PORT"],
        server.submission_port().to_string()
    );
    assert_eq!(
        env["CLOUDRON_EMAIL_IMAP_PORT"],
        server.imap_port().to_string()
    );
    assert_eq!(
        env["CLOUDRON_EMAIL_IMAPS_PORT"],
        server.imaps_port().to_string()
    );
    assert_eq!(
        env["CLOUDRON_EMAIL_SIEVE_PORT"],
        server.sieve_port().to_string()
    );
}

#[tokio::test]
async fn a_directory_user_receives_mail_reads_it_and_sends_only_as_themselves() {
    if !runnable() {
        return;
    }
    let mut users = Users::start().await;
    let mut mail = Mail::start().await;
    let webmail = mail.provision(&app("webmail-user"), email()).await.unwrap();
    let (username, address) = users.create("grace").await;

    // An app mails the user; the user reads it with their own password, as a webmail would.
    let notifier = mail.provision(&app("notifier"), sendmail()).await.unwrap();
    let subject = token("for-grace");
    send_as_app(&notifier, Port::Plain, &address, &subject)
        .await
        .unwrap();
    let imap_port: u16 = webmail["CLOUDRON_EMAIL_IMAP_PORT"].parse().unwrap();
    let host = webmail["CLOUDRON_EMAIL_IMAP_SERVER"].clone();
    assert!(
        delivered(&host, imap_port, &address, PASSWORD, &subject).await,
        "the user's mail did not arrive"
    );
    assert!(
        imap_login(&host, imap_port, &address, "wrong password")
            .await
            .is_err()
    );

    // The user sends as themselves through the webmail's SMTP port, never as anyone else.
    let smtp_env = env_of(&[
        (
            "CLOUDRON_MAIL_SMTP_SERVER",
            &webmail["CLOUDRON_EMAIL_SMTP_SERVER"],
        ),
        (
            "CLOUDRON_MAIL_SMTP_PORT",
            &webmail["CLOUDRON_EMAIL_SMTP_PORT"],
        ),
    ]);
    let reply = token("reply");
    send(
        &smtp_env,
        Port::Plain,
        &address,
        PASSWORD,
        Outgoing {
            from: &address,
            header_from: None,
            to: &address,
            subject: &reply,
        },
    )
    .await
    .unwrap();
    assert!(delivered(&host, imap_port, &address, PASSWORD, &reply).await);
    let spoof = send(
        &smtp_env,
        Port::Plain,
        &address,
        PASSWORD,
        Outgoing {
            from: &notifier["CLOUDRON_MAIL_FROM"],
            header_from: None,
            to: &address,
            subject: "spoof",
        },
    )
    .await;
    assert!(spoof.is_err(), "a user sent as an app's address");

    // A user who leaves the directory can no longer log in.
    users.delete(&username).await;
    assert!(
        imap_login(&host, imap_port, &address, PASSWORD)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_app_is_never_given_a_directory_users_address() {
    if !runnable() {
        return;
    }
    let mut users = Users::start().await;
    let mut mail = Mail::start().await;
    let (_, address) = users.create("taken").await;
    let local = address.split_once('@').unwrap().0.to_owned();
    let app = app("hijack");
    for options in [
        fleet_shared::proto::addon::provision_request::Options::Recvmail(
            fleet_shared::proto::addon::RecvmailOptions {
                mailbox_name: local.clone(),
                mailbox_domain: String::new(),
            },
        ),
        fleet_shared::proto::addon::provision_request::Options::Sendmail(
            fleet_shared::proto::addon::SendmailOptions {
                mailbox_name: local.to_uppercase(),
                ..Default::default()
            },
        ),
    ] {
        let status = mail.provision(&app, options).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains("directory user"), "{status:?}");
    }
    assert!(!list(&mut mail.client).await.unwrap().contains(&app));
}
