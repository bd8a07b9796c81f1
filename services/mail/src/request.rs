//! Provision requests as the domain sees them: which of the three addons, and for sendmail and
//! recvmail the mailbox the platform asks for, checked before anything is written.

use fleet_shared::{
    AppId,
    addon::{InvalidField, foreign_options, parse_app_id},
    catalog,
    error::AddonError,
    proto::addon::{
        EmailOptions, ProvisionRequest, RecvmailOptions, SendmailOptions,
        provision_request::Options,
    },
};

use crate::mailbox::LocalPart;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;

/// A validated Provision call.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    pub app: AppId,
    /// The app's primary domain, as given (the default display name).
    pub app_domain: String,
    pub generation: u32,
    /// What to provision.
    pub kind: MailKind,
}

/// The addon Provision is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailKind {
    /// An SMTP account that sends as the app's address.
    Sendmail {
        /// The app configures mail itself: no account, no variables.
        optional: bool,
        /// `CLOUDRON_MAIL_FROM_DISPLAY_NAME` to return, if the app shows one.
        display_name: Option<String>,
        /// Name the server by its FQDN (its certificate's name).
        requires_valid_certificate: bool,
        mailbox: Mailbox,
    },
    /// A mailbox read over IMAP and POP3.
    Recvmail { mailbox: Mailbox },
    /// The server's coordinates for a webmail app; no account of its own.
    Email,
}

impl MailKind {
    /// The addon's manifest name.
    pub fn addon(&self) -> &'static str {
        match self {
            Self::Sendmail { .. } => "sendmail",
            Self::Recvmail { .. } => "recvmail",
            Self::Email => "email",
        }
    }
}

/// The mailbox the platform asks for; what is left empty is the default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    /// The local part; `None`: derived from the app id.
    pub name: Option<LocalPart>,
    /// The mail domain, as asked (checked against the server's domains when provisioning);
    /// empty: the primary one.
    pub domain: String,
}

impl TryFrom<ProvisionRequest> for ProvisionSpec {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain,
            credential_generation,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        let kind = match options {
            Some(Options::Sendmail(options)) => sendmail(options, &app_domain)?,
            Some(Options::Recvmail(options)) => recvmail(options)?,
            Some(Options::Email(EmailOptions {})) => MailKind::Email,
            None => {
                return Err(InvalidField::new(
                    "options",
                    "name the addon: sendmail, recvmail or email options (this service serves \
                     all three)",
                )
                .into());
            }
            Some(other) => {
                return Err(foreign_options(catalog::MAIL, &other).into());
            }
        };
        Ok(Self {
            app,
            app_domain,
            generation: credential_generation,
            kind,
        })
    }
}

fn sendmail(options: SendmailOptions, app_domain: &str) -> Result<MailKind, AddonError> {
    let SendmailOptions {
        optional,
        supports_display_name,
        requires_valid_certificate,
        mailbox_name,
        mailbox_domain,
        display_name,
    } = options;
    let mailbox = mailbox("sendmail", mailbox_name, mailbox_domain)?;
    check_display_name(&display_name)
        .map_err(|reason| InvalidField::new("options.sendmail.display_name", reason))?;
    let display_name = supports_display_name.then(|| {
        if display_name.is_empty() {
            app_domain.to_owned()
        } else {
            display_name
        }
    });
    Ok(MailKind::Sendmail {
        optional,
        display_name,
        requires_valid_certificate,
        mailbox,
    })
}

fn recvmail(options: RecvmailOptions) -> Result<MailKind, AddonError> {
    let RecvmailOptions {
        mailbox_name,
        mailbox_domain,
    } = options;
    Ok(MailKind::Recvmail {
        mailbox: mailbox("recvmail", mailbox_name, mailbox_domain)?,
    })
}

fn mailbox(addon: &str, name: String, domain: String) -> Result<Mailbox, InvalidField> {
    let name = match name.as_str() {
        "" => None,
        given => Some(
            LocalPart::parse(given)
                .map_err(|r| InvalidField::new(format!("options.{addon}.mailbox_name"), r))?,
        ),
    };
    if !domain.is_empty() && !fleet_shared::domain::is_domain_name(&domain) {
        return Err(InvalidField::new(
            format!("options.{addon}.mailbox_domain"),
            format!("{domain:?} is not a domain name"),
        ));
    }
    Ok(Mailbox { name, domain })
}

/// A display name an app can put in a From header as it is: printable, no characters that
/// end or quote a header's parts, at most [`MAX_DISPLAY_NAME`] characters.
fn check_display_name(name: &str) -> Result<(), String> {
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(format!("must be at most {MAX_DISPLAY_NAME} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '<' | '>' | '\\' | '\u{2028}' | '\u{2029}'))
    {
        return Err(format!(
            "must not contain {bad:?}: no line breaks, control characters, quotes or angle \
             brackets"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(options: Option<Options>) -> ProvisionRequest {
        ProvisionRequest {
            app_id: "app1".to_owned(),
            app_domain: "chat.example.com".to_owned(),
            credential_generation: 2,
            options,
        }
    }

    fn sendmail_request(options: SendmailOptions) -> Result<ProvisionSpec, AddonError> {
        ProvisionSpec::try_from(request(Some(Options::Sendmail(options))))
    }

    #[test]
    fn sendmail_options_are_kept() {
        let spec = sendmail_request(SendmailOptions {
            supports_display_name: true,
            requires_valid_certificate: true,
            mailbox_name: "Notifications".to_owned(),
            mailbox_domain: "other.test".to_owned(),
            ..SendmailOptions::default()
        })
        .unwrap();
        assert_eq!(spec.generation, 2);
        assert_eq!(
            spec.kind,
            MailKind::Sendmail {
                optional: false,
                display_name: Some("chat.example.com".to_owned()),
                requires_valid_certificate: true,
                mailbox: Mailbox {
                    name: Some(LocalPart::parse("notifications").unwrap()),
                    domain: "other.test".to_owned(),
                },
            }
        );
        let plain = sendmail_request(SendmailOptions {
            display_name: "Ünïcode Chat".to_owned(),
            ..SendmailOptions::default()
        })
        .unwrap();
        assert!(matches!(
            plain.kind,
            MailKind::Sendmail {
                display_name: None,
                ..
            }
        ));
    }

    #[test]
    fn hostile_values_are_invalid_with_their_field() {
        for (options, field) in [
            (
                SendmailOptions {
                    display_name: "Chat\r\nBcc: victim@example.com".to_owned(),
                    supports_display_name: true,
                    ..SendmailOptions::default()
                },
                "options.sendmail.display_name",
            ),
            (
                SendmailOptions {
                    display_name: "\"Bank\" <ceo@bank.test>".to_owned(),
                    ..SendmailOptions::default()
                },
                "options.sendmail.display_name",
            ),
            (
                SendmailOptions {
                    display_name: "x".repeat(MAX_DISPLAY_NAME + 1),
                    ..SendmailOptions::default()
                },
                "options.sendmail.display_name",
            ),
            (
                SendmailOptions {
                    mailbox_name: "postmaster".to_owned(),
                    ..SendmailOptions::default()
                },
                "options.sendmail.mailbox_name",
            ),
            (
                SendmailOptions {
                    mailbox_name: "a\nRCPT TO:<x@y>".to_owned(),
                    ..SendmailOptions::default()
                },
                "options.sendmail.mailbox_name",
            ),
            (
                SendmailOptions {
                    mailbox_domain: "evil.test>".to_owned(),
                    ..SendmailOptions::default()
                },
                "options.sendmail.mailbox_domain",
            ),
        ] {
            let error = sendmail_request(options).unwrap_err();
            assert!(
                matches!(&error, AddonError::InvalidArgument { field: f, .. } if f == field),
                "{error}"
            );
        }
        let error = ProvisionSpec::try_from(request(Some(Options::Recvmail(RecvmailOptions {
            mailbox_name: "../../etc".to_owned(),
            mailbox_domain: String::new(),
        }))))
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("options.recvmail.mailbox_name")
        );
    }

    #[test]
    fn the_addon_must_be_named() {
        let none = ProvisionSpec::try_from(request(None)).unwrap_err();
        assert!(none.to_string().contains("sendmail, recvmail or email"));
        let email = ProvisionSpec::try_from(request(Some(Options::Email(EmailOptions {}))));
        assert_eq!(email.unwrap().kind, MailKind::Email);
    }
}
