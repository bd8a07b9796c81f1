//! sendmail, recvmail and email (root only: Postfix and Dovecot start only as root): the app
//! sends a mail with its SMTP credentials to its own recvmail address and reads it over IMAP;
//! the email addon's servers answer where the bundle says.

use std::time::Duration;

use crate::{
    clients::{self, Bundle},
    mask::ensure,
};

/// How long a sent mail may take to reach the mailbox.
const DELIVERY: Duration = Duration::from_secs(30);

/// Sends a mail with subject `subject` from the app to itself and finds it over IMAP.
pub fn works(env: &Bundle, subject: &str) {
    let sent = clients::smtp_send(env, env.var("MAIL_TO"), subject);
    ensure(sent.ok && sent.out == "sent\n", || {
        format!("SMTP submission with the CLOUDRON_MAIL_SMTP_* credentials: {sent:?}")
    });
    let found = clients::imap_count(env, subject, DELIVERY);
    ensure(found.ok && found.out == "1\n", || {
        format!("IMAP login with the CLOUDRON_MAIL_IMAP_* credentials, the mail sent: {found:?}")
    });
    // The email addon (no credentials of its own: a webmail logs its users in): its SMTP and
    // IMAP servers answer where the bundle says.
    let servers = clients::email_servers(env);
    ensure(
        servers.ok && servers.out == "smtp 250 imap IMAP4REV1\n",
        || format!("the CLOUDRON_EMAIL_SMTP_* and _IMAP_* servers: {servers:?}"),
    );
}

/// The mail sent at install is still in the mailbox, and the credentials still work.
pub fn kept(env: &Bundle, subject: &str) {
    let found = clients::imap_count(env, subject, Duration::ZERO);
    ensure(found.ok && found.out == "1\n", || {
        format!("IMAP after StartApp: the mail sent at install: {found:?}")
    });
}

/// Neither account logs in any more.
pub fn gone(env: &Bundle) {
    let sent = clients::smtp_send(env, env.var("MAIL_TO"), "after uninstall");
    ensure(!sent.ok && sent.out.contains("535"), || {
        format!("SMTP login of the uninstalled app must be refused (535): {sent:?}")
    });
    let found = clients::imap_count(env, "after uninstall", Duration::ZERO);
    ensure(
        !found.ok && found.out.contains("AUTHENTICATIONFAILED"),
        || format!("IMAP login of the uninstalled app must be refused: {found:?}"),
    );
}
