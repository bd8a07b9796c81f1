//! The addon contract's conformance suite (`fleet_shared::testkit::conformance`) for sendmail
//! and recvmail, against the shared mail server. Each fixture reaches the server's directory
//! through a symlink of its own, which it removes to cut the service off (the accounts store
//! is a file: nothing else would take it away from one service only). A recvmail app stores a
//! message in its mailbox over IMAP; a sendmail app stores nothing, its credentials are
//! checked by an SMTP login.

use std::path::PathBuf;

use fleet_mail::mailbox::LocalPart;
use fleet_shared::{
    AppId,
    proto::addon::{MysqlOptions, provision_request::Options},
    testkit::{conformance::Env, harness::TestSecrets},
};
use sqlx::{Connection, SqliteConnection};

use crate::support::*;

/// The app the squatting account names as its owner.
const SQUATTER_APP: &str = "someone-else";
/// The squatting account's password hash (of "squatter").
const SQUATTER_HASH: &str = "{SHA512-CRYPT}$6$squat$planted";

/// The shared server, reached through a symlink the fixture can remove.
pub struct MailFixture {
    /// Holds the symlink.
    files: TestSecrets,
}

impl MailFixture {
    fn link(&self) -> PathBuf {
        self.files.path("mail-dir")
    }

    async fn start() -> Self {
        let files = TestSecrets::new().unwrap();
        std::os::unix::fs::symlink(server().dir(), files.path("mail-dir")).unwrap();
        Self { files }
    }

    fn service_env(&self) -> Vec<(String, String)> {
        service_env(server(), &self.link())
    }

    async fn store() -> SqliteConnection {
        let url = format!("sqlite://{}", server().accounts_db().display());
        SqliteConnection::connect(&url).await.unwrap()
    }

    /// Where the service would put `app_id`'s account.
    fn derived_address(app_id: &str) -> String {
        let local = LocalPart::derived(&AppId::parse(app_id).unwrap());
        format!("{}@{}", local.as_str(), server().domain())
    }

    async fn squat(addon: &str, app_id: &str) {
        sqlx::query(
            "INSERT INTO accounts (address, addon, app_id, password) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(Self::derived_address(app_id))
        .bind(addon)
        .bind(SQUATTER_APP)
        .bind(SQUATTER_HASH)
        .execute(&mut Self::store().await)
        .await
        .unwrap();
    }

    async fn squat_intact(addon: &str, app_id: &str) -> bool {
        let rows: Vec<(String, Option<String>, String)> =
            sqlx::query_as("SELECT addon, app_id, password FROM accounts WHERE address = ?1")
                .bind(Self::derived_address(app_id))
                .fetch_all(&mut Self::store().await)
                .await
                .unwrap();
        rows == [(
            addon.to_owned(),
            Some(SQUATTER_APP.to_owned()),
            SQUATTER_HASH.to_owned(),
        )]
    }

    async fn cut(&self) {
        std::fs::remove_file(self.link()).unwrap();
    }

    async fn restore(&self) {
        std::os::unix::fs::symlink(server().dir(), self.link()).unwrap();
    }

    fn secrets() -> Vec<String> {
        vec![server().postmaster_password().to_owned()]
    }
}

/// The fixture of one addon: sendmail (`RECVMAIL = false`) or recvmail.
pub struct AddonFixture<const RECVMAIL: bool>(MailFixture);

impl<const RECVMAIL: bool> fleet_shared::testkit::conformance::Fixture for AddonFixture<RECVMAIL> {
    type Service = fleet_mail::Service;
    const ADDON: &'static str = if RECVMAIL { "recvmail" } else { "sendmail" };
    const STORES_DATA: bool = RECVMAIL;

    async fn start() -> Self {
        Self(MailFixture::start().await)
    }
    fn service_env(&self) -> Vec<(String, String)> {
        self.0.service_env()
    }
    fn options(&self) -> Option<Options> {
        Some(if RECVMAIL {
            crate::support::recvmail()
        } else {
            crate::support::sendmail()
        })
    }
    fn foreign_options(&self) -> Options {
        Options::Mysql(MysqlOptions::default())
    }
    /// recvmail: a message stored over IMAP; sendmail: an SMTP login.
    async fn write(&self, env: &Env, value: &str) -> Result<(), String> {
        if RECVMAIL {
            append(env, value).await
        } else {
            smtp_login(env).await
        }
    }
    /// recvmail: the last message's subject; sendmail: nothing, once the login works.
    async fn read(&self, env: &Env) -> Result<Option<String>, String> {
        if !RECVMAIL {
            return smtp_login(env).await.map(|()| None);
        }
        let port: u16 = env["CLOUDRON_MAIL_IMAP_PORT"]
            .parse()
            .map_err(|e| format!("{e}"))?;
        let subjects = inbox_subjects(
            &env["CLOUDRON_MAIL_IMAP_SERVER"],
            port,
            &env["CLOUDRON_MAIL_IMAP_USERNAME"],
            &env["CLOUDRON_MAIL_IMAP_PASSWORD"],
        )
        .await?;
        Ok(subjects.last().cloned())
    }
    async fn squat(&self, app_id: &str) {
        MailFixture::squat(Self::ADDON, app_id).await;
    }
    async fn squat_intact(&self, app_id: &str) -> bool {
        MailFixture::squat_intact(Self::ADDON, app_id).await
    }
    async fn cut_backend(&self) {
        self.0.cut().await;
    }
    async fn restore_backend(&self) {
        self.0.restore().await;
    }
    fn secrets(&self) -> Vec<String> {
        MailFixture::secrets()
    }
}

mod sendmail {
    use super::*;

    fleet_shared::addon_conformance!(AddonFixture<false>);
}

mod recvmail {
    use super::*;

    fleet_shared::addon_conformance!(AddonFixture<true>);
}
