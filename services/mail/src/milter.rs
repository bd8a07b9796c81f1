//! The From-header milter: Postfix's submission services ask it about every message, and it
//! refuses one whose `From:` (or `Sender:`) header names anyone but the SASL login that sends it.
//!
//! Postfix itself only ties the envelope sender to the login (`smtpd_sender_login_maps`); the
//! header is what a reader sees, so it is checked here. Postfix calls the milter with
//! `milter_default_action = tempfail`: while the milter is down, submission is tempfailed.
//! The policy is [`check_from`], a pure function; [`serve`] wires it to the milter protocol
//! (indymilter): the login from the `{auth_authen}` macro at MAIL FROM, the From and Sender
//! headers (nothing else is kept, and at most [`MAX_HEADER_LEN`] bytes of each), the verdict at
//! the end of the headers. The body is never asked for.

use std::{ffi::CStr, fmt, future::Future, io, str::FromStr, time::Duration};

use indymilter::{Actions, Callbacks, Config, Context, MacroStage, SetErrorReply, Status};
use lettre::message::Mailboxes;
use tokio::net::TcpListener;

/// The longest From or Sender header value (unfolded or not) that is parsed; longer ones are
/// refused. An honest From header is one address and a display name, far below this.
pub const MAX_HEADER_LEN: usize = 4096;

/// The SASL login, as Postfix names it (in its default `milter_mail_macros` too).
const AUTH_AUTHEN: &CStr = c"{auth_authen}";
/// The queue id, for the log.
const QUEUE_ID: &CStr = c"i";

/// Serves the From-header check on `listener` until `shutdown` resolves; the error is the
/// listener's when it can no longer accept connections.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let config = Config {
        // Postfix holds one milter connection per SMTP session, and each submission service
        // runs up to default_process_limit (100) sessions; connections beyond this wait.
        max_connections: 256,
        // We change nothing in a message.
        actions: Actions::empty(),
        // libmilter's default (and indymilter's), which both advise against lowering: an SMTP
        // session keeps its milter connection while it idles.
        connection_timeout: Duration::from_secs(7210),
    };
    indymilter::run(listener, callbacks(), config, shutdown).await
}

/// What is kept of the message being received.
#[derive(Debug, Default)]
struct Message {
    /// The SASL login of the session.
    login: String,
    /// Postfix's queue id, for the log.
    queue_id: Option<String>,
    /// The From header values, at most two kept, each cut at `MAX_HEADER_LEN + 1` bytes: a
    /// third header or a longer value would not change the verdict.
    from: Vec<Vec<u8>>,
    /// The Sender header values, kept the same way.
    sender: Vec<Vec<u8>>,
}

fn callbacks() -> Callbacks<Message> {
    Callbacks::new()
        .on_negotiate(|cx, mta_actions, _| {
            // Ask for the macros we read, whatever milter_mail_macros says (Postfix honours a
            // milter's list with protocol 6; it then sends no other stage's defaults, which we
            // do not read). No other action: the milter changes nothing, it only replies.
            cx.requested_actions = mta_actions & Actions::REQUEST_MACROS;
            cx.requested_macros
                .insert(MacroStage::Mail, c"i {auth_authen}".to_owned());
            Box::pin(async { Status::Continue })
        })
        .on_mail(|cx, _args| {
            let status = on_mail(cx);
            Box::pin(async move { status })
        })
        .on_header(|cx, name, value| {
            on_header(cx, &name, &value);
            Box::pin(async { Status::Continue })
        })
        .on_eoh(|cx| {
            let status = on_eoh(cx);
            Box::pin(async move { status })
        })
        .on_abort(|cx| {
            cx.data = None;
            Box::pin(async { Status::Continue })
        })
}

fn macro_value(cx: &Context<Message>, name: &CStr) -> Option<String> {
    let value = cx.macros.get(name)?.to_str().ok()?;
    (!value.is_empty()).then(|| value.to_owned())
}

fn on_mail(cx: &mut Context<Message>) -> Status {
    cx.data = None;
    match macro_value(cx, AUTH_AUTHEN) {
        // Not authenticated: the submission services this milter serves refuse such clients
        // themselves (submission_client_restrictions = permit_sasl_authenticated, reject), so
        // there is no login to hold the From header to. Accept skips the rest of this message.
        None => Status::Accept,
        Some(login) => {
            cx.data = Some(Message {
                login,
                queue_id: macro_value(cx, QUEUE_ID),
                ..Message::default()
            });
            Status::Continue
        }
    }
}

fn on_header(cx: &mut Context<Message>, name: &CStr, value: &CStr) {
    let Some(message) = cx.data.as_mut() else {
        return;
    };
    // Postfix strips the blanks before the colon; trimming again costs nothing.
    let name = name.to_bytes().trim_ascii();
    let kept = if name.eq_ignore_ascii_case(b"From") {
        &mut message.from
    } else if name.eq_ignore_ascii_case(b"Sender") {
        &mut message.sender
    } else {
        return;
    };
    if kept.len() < 2 {
        // A copy of the head only: the CString came in whole (indymilter caps a milter
        // message at 1 MiB, Postfix a header at header_size_limit, 100 KiB by default).
        let value = value.to_bytes();
        kept.push(value[..value.len().min(MAX_HEADER_LEN + 1)].to_vec());
    }
}

fn on_eoh(cx: &mut Context<Message>) -> Status {
    let Some(message) = cx.data.take() else {
        // Headers without a MAIL FROM that named a login: not a conversation Postfix has.
        tracing::warn!("milter saw the end of headers of a message it had no MAIL FROM for");
        return Status::Tempfail;
    };
    let from: Vec<&[u8]> = message.from.iter().map(Vec::as_slice).collect();
    let sender: Vec<&[u8]> = message.sender.iter().map(Vec::as_slice).collect();
    match check_from(Some(&message.login), &from, &sender) {
        Ok(()) => Status::Accept,
        Err(refusal) => {
            tracing::info!(
                login = %message.login,
                queue_id = message.queue_id.as_deref().unwrap_or(""),
                reason = %refusal,
                "refused a message whose From or Sender header is not its login"
            );
            let text = refusal.reply_text(&message.login);
            if let Err(error) = cx.reply.set_error_reply("550", Some("5.7.1"), [text]) {
                // Only a login with characters a reply cannot carry gets here; Postfix then
                // answers its own 5.7.1 text.
                tracing::warn!(%error, "the refusal's reply text was not usable");
            }
            Status::Reject
        }
    }
}

/// Why a message's From or Sender header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// There is no From header.
    NoFrom,
    /// There is more than one header of this name.
    Repeated(&'static str),
    /// The header's value is longer than [`MAX_HEADER_LEN`].
    TooLong(&'static str),
    /// The header's value is not UTF-8, has a line break that is no folding, or a control
    /// character.
    BadCharacters(&'static str),
    /// The header's value is not a list of mailboxes (groups, comments and domain literals are
    /// not accepted).
    Unparsable(&'static str),
    /// The header names no address or more than one.
    NotOneAddress(&'static str, usize),
    /// The header names another address than the login.
    OtherAddress(&'static str, String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFrom => write!(f, "the message has no From header"),
            Self::Repeated(name) => write!(f, "the message has more than one {name} header"),
            Self::TooLong(name) => {
                write!(f, "the {name} header is longer than {MAX_HEADER_LEN} bytes")
            }
            Self::BadCharacters(name) => write!(
                f,
                "the {name} header has bytes that are not UTF-8, control characters or a bare line break"
            ),
            Self::Unparsable(name) => write!(f, "the {name} header is not a plain address list"),
            Self::NotOneAddress(name, n) => {
                write!(f, "the {name} header names {n} addresses instead of one")
            }
            Self::OtherAddress(name, address) => {
                write!(f, "the {name} header names {address:?}")
            }
        }
    }
}

impl Refusal {
    /// The text after `550 5.7.1`: what was wrong and which address is allowed.
    pub fn reply_text(&self, login: &str) -> String {
        let name = match self {
            Self::NoFrom => "From",
            Self::Repeated(name)
            | Self::TooLong(name)
            | Self::BadCharacters(name)
            | Self::Unparsable(name)
            | Self::NotOneAddress(name, _)
            | Self::OtherAddress(name, _) => name,
        };
        let problem = match self {
            Self::NoFrom => "there is no From header".to_owned(),
            Self::Repeated(name) => format!("there is more than one {name} header"),
            Self::TooLong(name) => format!("the {name} header is too long"),
            Self::BadCharacters(name) => format!("the {name} header has invalid characters"),
            Self::Unparsable(name) => format!("the {name} header is not one plain address"),
            Self::NotOneAddress(name, n) => format!("the {name} header names {n} addresses"),
            Self::OtherAddress(name, _) => format!("the {name} header names another address"),
        };
        // The login comes from Postfix's SASL layer; a reply only carries printable ASCII
        // (and `%` is an escape in milter replies), so anything else is not echoed.
        if login.bytes().all(|b| b.is_ascii_graphic() && b != b'%') && login.len() <= 320 {
            format!(
                "{problem}: the {name} header must be {login}, the address this account logs in as"
            )
        } else {
            format!("{problem}: the {name} header must be the address this account logs in as")
        }
    }
}

/// The policy: with a login, the message has exactly one From header, whose value is exactly
/// one mailbox whose address is the login (ignoring ASCII case; any display name, RFC 2047
/// encoded or not), and at most one Sender header, held to the same rule. Without a login
/// (unauthenticated session) anything goes. Values are the raw header values as Postfix passes
/// them (possibly folded); addresses are compared after parsing, never as substrings.
pub fn check_from(
    login: Option<&str>,
    from_headers: &[&[u8]],
    sender_headers: &[&[u8]],
) -> Result<(), Refusal> {
    let Some(login) = login else {
        return Ok(());
    };
    match from_headers {
        [] => return Err(Refusal::NoFrom),
        [from] => check_header("From", login, from)?,
        [_, _, ..] => return Err(Refusal::Repeated("From")),
    }
    match sender_headers {
        [] => Ok(()),
        [sender] => check_header("Sender", login, sender),
        [_, _, ..] => Err(Refusal::Repeated("Sender")),
    }
}

fn check_header(name: &'static str, login: &str, value: &[u8]) -> Result<(), Refusal> {
    if value.len() > MAX_HEADER_LEN {
        return Err(Refusal::TooLong(name));
    }
    let value = std::str::from_utf8(value).map_err(|_| Refusal::BadCharacters(name))?;
    let value = unfold(value).ok_or(Refusal::BadCharacters(name))?;
    let mailboxes = Mailboxes::from_str(value.trim_matches([' ', '\t']))
        .map_err(|_| Refusal::Unparsable(name))?;
    let addresses: Vec<_> = mailboxes.iter().map(|mailbox| &mailbox.email).collect();
    match addresses[..] {
        [address] if AsRef::<str>::as_ref(address).eq_ignore_ascii_case(login) => Ok(()),
        [address] => Err(Refusal::OtherAddress(name, address.to_string())),
        _ => Err(Refusal::NotOneAddress(name, addresses.len())),
    }
}

/// Undoes RFC 5322 folding (a CRLF, or a bare LF as Postfix passes continuation lines, before a
/// space or tab), or `None` if any other line break or control character (but tab) remains: a
/// header value carries none, and the parser must not see one.
fn unfold(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                if !matches!(chars.peek(), Some(' ' | '\t')) {
                    return None;
                }
            }
            '\n' => {
                if !matches!(chars.peek(), Some(' ' | '\t')) {
                    return None;
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = "app@example.test";

    fn from(value: &str) -> Result<(), Refusal> {
        check_from(Some(LOGIN), &[value.as_bytes()], &[])
    }

    #[test]
    fn accepts_the_login_with_or_without_display_name() {
        for value in [
            "app@example.test",
            " app@example.test ",
            "<app@example.test>",
            "App <APP@example.test>",
            "APP@EXAMPLE.TEST",
            "\"App, the one\" <app@example.test>",
            "\"App \\\"quoted\\\"\" <app@example.test>",
            "John Q. Public <app@example.test>",
            "=?UTF-8?B?w4RwcA==?= <app@example.test>",
            "=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <app@example.test>",
            "\"=?utf-8?q?evil=40other.test?=\" <app@example.test>",
            "Jörg <app@example.test>",
            "App\r\n <app@example.test>",
            "App\n\t<app@example.test>",
            "\"app\"@example.test",
        ] {
            assert_eq!(from(value), Ok(()), "{value:?}");
        }
    }

    #[test]
    fn login_case_is_ignored() {
        assert_eq!(
            check_from(Some("App@Example.TEST"), &[b"app@example.test"], &[]),
            Ok(())
        );
    }

    #[test]
    fn refuses_other_addresses() {
        for value in [
            "\"app@example.test\" <evil@other.test>",
            "app@example.test <evil@other.test>",
            "<app@example.test> <evil@other.test>",
            "app@example.test.evil",
            "app@example.test.",
            "app@example.testx",
            "xapp@example.test",
            "app@sub.example.test",
            "app+tag@example.test",
            "app@exämple.test",
            "app@xn--exmple-cua.test",
            "аpp@example.test", // Cyrillic a
            "app@example.test\u{200b}",
            "\"app@example.test\"@other.test",
            "app%example.test@other.test",
            "app@[127.0.0.1]",
            "evil@other.test",
            "<=?utf-8?q?app=40example.test?=>",
            "=?utf-8?q?app=40example.test?=",
            "app@example.test\n evil@other.test",
        ] {
            assert!(from(value).is_err(), "{value:?} was accepted");
        }
        assert_eq!(
            from("App <evil@other.test>"),
            Err(Refusal::OtherAddress("From", "evil@other.test".into()))
        );
    }

    #[test]
    fn refuses_lists_groups_and_garbage() {
        for value in [
            "",
            "   ",
            "App",
            "<>",
            "app",
            "@example.test",
            "app@",
            "app@example.test;",
            "app@example.test, evil@other.test",
            "App <app@example.test>, app@example.test",
            "app@example.test,",
            "Team: app@example.test;",
            "undisclosed-recipients:;",
            "(x) app@example.test",
            "app@example.test (comment)",
            "App <app@example.test",
            "App app@example.test>",
            "\"App <app@example.test>",
        ] {
            assert!(from(value).is_err(), "{value:?} was accepted");
        }
        assert_eq!(
            from("app@example.test, app@example.test"),
            Err(Refusal::NotOneAddress("From", 2))
        );
    }

    #[test]
    fn refuses_line_breaks_and_controls() {
        for value in [
            "app@example.test\r\nBcc: evil@other.test",
            "app@example.test\nBcc: evil@other.test",
            "app@example.test\r",
            "app@example.test\r\n",
            "app@example.test\n",
            "App\r <app@example.test>",
            "App\r\n\r\n <app@example.test>",
            "App\x0b <app@example.test>",
            "App\x1b[2J <app@example.test>",
            "\"App\x7f\" <app@example.test>",
        ] {
            assert_eq!(
                from(value),
                Err(Refusal::BadCharacters("From")),
                "{value:?}"
            );
        }
        assert_eq!(
            check_from(Some(LOGIN), &[b"J\xf6rg <app@example.test>"], &[]),
            Err(Refusal::BadCharacters("From"))
        );
    }

    #[test]
    fn counts_from_headers() {
        assert_eq!(check_from(Some(LOGIN), &[], &[]), Err(Refusal::NoFrom));
        assert_eq!(
            check_from(
                Some(LOGIN),
                &[b"app@example.test", b"app@example.test"],
                &[]
            ),
            Err(Refusal::Repeated("From"))
        );
    }

    #[test]
    fn caps_the_length() {
        let name = "a".repeat(MAX_HEADER_LEN);
        assert_eq!(
            from(&format!("{name} <app@example.test>")),
            Err(Refusal::TooLong("From"))
        );
        let name = "a".repeat(MAX_HEADER_LEN - " <app@example.test>".len());
        assert_eq!(from(&format!("{name} <app@example.test>")), Ok(()));
    }

    #[test]
    fn holds_sender_to_the_login() {
        let ok: &[u8] = b"app@example.test";
        assert_eq!(
            check_from(Some(LOGIN), &[ok], &[b"App <APP@example.test>"]),
            Ok(())
        );
        assert_eq!(
            check_from(Some(LOGIN), &[ok], &[b"evil@other.test"]),
            Err(Refusal::OtherAddress("Sender", "evil@other.test".into()))
        );
        assert_eq!(
            check_from(Some(LOGIN), &[ok], &[ok, ok]),
            Err(Refusal::Repeated("Sender"))
        );
        assert_eq!(
            check_from(Some(LOGIN), &[ok], &[b"app@example.test, evil@other.test"]),
            Err(Refusal::NotOneAddress("Sender", 2))
        );
        // A good Sender does not make up for a bad From.
        assert_eq!(
            check_from(Some(LOGIN), &[b"evil@other.test"], &[ok]),
            Err(Refusal::OtherAddress("From", "evil@other.test".into()))
        );
    }

    #[test]
    fn unauthenticated_sessions_pass() {
        assert_eq!(check_from(None, &[], &[]), Ok(()));
        assert_eq!(check_from(None, &[b"evil@other.test"], &[]), Ok(()));
    }

    #[test]
    fn reply_names_the_login() {
        let text = Refusal::OtherAddress("From", "evil@other.test".into()).reply_text(LOGIN);
        assert_eq!(
            text,
            "the From header names another address: the From header must be app@example.test, \
             the address this account logs in as"
        );
        let text = Refusal::NoFrom.reply_text("odd%login@example.test");
        assert!(!text.contains('%'), "{text}");
        assert!(!Refusal::NoFrom.reply_text("a\r\nb").contains('\n'));
    }
}
