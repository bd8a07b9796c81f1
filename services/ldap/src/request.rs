//! Requests as the domain sees them, built by conversions that name every bad field.

use fleet_shared::{
    AppId, Secret,
    addon::{InvalidField, foreign_options, parse_app_id},
    catalog,
    error::AddonError,
    proto::{
        addon::{LdapOptions, ProvisionRequest, provision_request::Options},
        directory::{CreateGroupRequest, CreateUserRequest, UpdateUserRequest},
    },
};

/// Longest username or group name.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest name field (display, given, family name).
pub const MAX_TEXT_CHARS: usize = 256;
/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Shortest and longest password.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=256;

/// A validated Provision call.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    pub app: AppId,
    pub generation: u32,
}

impl TryFrom<ProvisionRequest> for ProvisionSpec {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain: _, // The bind account does not depend on the app's domain.
            credential_generation,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        match options {
            None | Some(Options::Ldap(LdapOptions {})) => {}
            Some(other) => {
                return Err(foreign_options(catalog::LDAP, &other).into());
            }
        }
        Ok(Self {
            app,
            generation: credential_generation,
        })
    }
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub alternate_email: Option<String>,
    pub password: Option<Secret<String>>,
}

impl TryFrom<CreateUserRequest> for NewUser {
    type Error = AddonError;

    fn try_from(request: CreateUserRequest) -> Result<Self, AddonError> {
        let CreateUserRequest {
            username,
            email,
            display_name,
            given_name,
            family_name,
            alternate_email,
            password,
        } = request;
        Ok(Self {
            username: parse_username("username", username)?,
            email: parse_email("email", email)?,
            display_name: parse_text("display_name", display_name)?,
            given_name: parse_text("given_name", given_name)?,
            family_name: parse_text("family_name", family_name)?,
            alternate_email: parse_optional_email("alternate_email", alternate_email)?,
            password: password
                .map(|password| parse_password("password", password))
                .transpose()?,
        })
    }
}

/// Changes to a user: `None` keeps a field, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<Option<String>>,
    pub given_name: Option<Option<String>>,
    pub family_name: Option<Option<String>>,
    pub alternate_email: Option<Option<String>>,
}

impl TryFrom<UpdateUserRequest> for UserChanges {
    type Error = AddonError;

    fn try_from(request: UpdateUserRequest) -> Result<Self, AddonError> {
        let UpdateUserRequest {
            username,
            email,
            display_name,
            given_name,
            family_name,
            alternate_email,
        } = request;
        Ok(Self {
            username: parse_username("username", username)?,
            email: email.map(|email| parse_email("email", email)).transpose()?,
            display_name: display_name
                .map(|text| parse_text("display_name", text))
                .transpose()?,
            given_name: given_name
                .map(|text| parse_text("given_name", text))
                .transpose()?,
            family_name: family_name
                .map(|text| parse_text("family_name", text))
                .transpose()?,
            alternate_email: alternate_email
                .map(|email| parse_optional_email("alternate_email", email))
                .transpose()?,
        })
    }
}

/// A group to create; `gid_number` `None` lets the directory pick one.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub gid_number: Option<u32>,
}

impl TryFrom<CreateGroupRequest> for NewGroup {
    type Error = AddonError;

    fn try_from(request: CreateGroupRequest) -> Result<Self, AddonError> {
        let CreateGroupRequest { name, gid_number } = request;
        Ok(Self {
            name: parse_group_name("name", name)?,
            gid_number: (gid_number != 0).then_some(gid_number),
        })
    }
}

/// A username: printable ASCII without `@` (so no username reads as an email at login, and it
/// fits the IA5 `memberUid`). `*`, `(`, `)`, `,`, `=`, `\` and the like are allowed: they are
/// escaped wherever the name meets a DN or a filter.
pub fn parse_username(field: &str, value: String) -> Result<String, InvalidField> {
    let value = parse_name(field, value)?;
    if let Some(bad) = value.chars().find(|c| !c.is_ascii() || *c == '@') {
        let reason = format!(
            "may hold printable ASCII characters other than @, not {bad:?} (an @ would make \
             the name read as an email address at login)"
        );
        return Err(InvalidField::new(field, reason));
    }
    Ok(value)
}

/// A group name: any text without control characters.
pub fn parse_group_name(field: &str, value: String) -> Result<String, InvalidField> {
    parse_name(field, value)
}

fn parse_name(field: &str, value: String) -> Result<String, InvalidField> {
    let length = value.chars().count();
    if length == 0 {
        return Err(InvalidField::new(field, "is required"));
    }
    if length > MAX_NAME_CHARS {
        let reason = format!("is {length} characters long; at most {MAX_NAME_CHARS} are allowed");
        return Err(InvalidField::new(field, reason));
    }
    no_control_characters(field, &value)?;
    if value.trim() != value {
        let reason = "must not start or end with white space (LDAP ignores it when comparing)";
        return Err(InvalidField::new(field, reason));
    }
    Ok(value)
}

/// An optional name field; empty means unset.
fn parse_text(field: &str, value: String) -> Result<Option<String>, InvalidField> {
    let length = value.chars().count();
    if length > MAX_TEXT_CHARS {
        let reason = format!("is {length} characters long; at most {MAX_TEXT_CHARS} are allowed");
        return Err(InvalidField::new(field, reason));
    }
    no_control_characters(field, &value)?;
    let value = value.trim();
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

/// An email address: `local@domain`, ASCII (the LDAP `mail` attribute is IA5).
pub fn parse_email(field: &str, value: String) -> Result<String, InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    if value.len() > MAX_EMAIL_CHARS {
        let reason = format!("is longer than {MAX_EMAIL_CHARS} characters");
        return Err(InvalidField::new(field, reason));
    }
    let well_formed = value.is_ascii()
        && !value
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !well_formed {
        let reason = "must be an address of the form local@domain, in ASCII (an \
                      internationalized domain in its xn-- form), without spaces";
        return Err(InvalidField::new(field, reason));
    }
    Ok(value)
}

fn parse_optional_email(field: &str, value: String) -> Result<Option<String>, InvalidField> {
    if value.is_empty() {
        return Ok(None);
    }
    parse_email(field, value).map(Some)
}

/// A password of 8 to 256 characters.
pub fn parse_password(field: &str, value: String) -> Result<Secret<String>, InvalidField> {
    let length = value.chars().count();
    if !PASSWORD_CHARS.contains(&length) {
        // The length only; never the value.
        let reason = format!(
            "must be {} to {} characters long, not {length}",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        );
        return Err(InvalidField::new(field, reason));
    }
    Ok(Secret::new(value))
}

fn no_control_characters(field: &str, value: &str) -> Result<(), InvalidField> {
    match value.chars().find(|c| c.is_control()) {
        Some(bad) => Err(InvalidField::new(
            field,
            format!("must not contain control characters such as {bad:?}"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn reason(result: Result<impl std::fmt::Debug, InvalidField>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn hostile_usernames_are_allowed_but_not_control_characters_or_at() {
        for name in ["*", "a)(uid=*", r"x,ou=apps\", "=", "(", "#a", "O'Brien"] {
            assert_eq!(parse_username("username", name.to_owned()).unwrap(), name);
        }
        assert!(reason(parse_username("username", "a\0b".to_owned())).contains("control"));
        assert!(reason(parse_username("username", "a@b".to_owned())).contains("@"));
        assert!(reason(parse_username("username", "ü".to_owned())).contains("ASCII"));
        assert!(reason(parse_username("username", " a".to_owned())).contains("white space"));
        assert!(reason(parse_username("username", String::new())).contains("required"));
        assert!(reason(parse_username("username", "x".repeat(65))).contains("65"));
        assert_eq!(
            parse_group_name("name", "Équipe".to_owned()).unwrap(),
            "Équipe"
        );
    }

    #[test]
    fn emails_need_one_at_and_ascii() {
        assert!(parse_email("email", "a@example.com".to_owned()).is_ok());
        for bad in [
            "",
            "a",
            "@b",
            "a@",
            "a@b@c",
            "a b@c",
            "ü@example.com",
            "a@b\n",
        ] {
            let error = parse_email("email", bad.to_owned()).unwrap_err();
            assert_eq!(error.field, "email", "{bad:?}");
        }
        assert_eq!(
            parse_optional_email("alternate_email", String::new()).unwrap(),
            None
        );
    }

    #[test]
    fn password_errors_never_hold_the_password() {
        let error = reason(parse_password("password", "short1".to_owned()));
        assert!(
            error.contains("8 to 256") && !error.contains("short1"),
            "{error}"
        );
        assert!(parse_password("password", "x".repeat(257)).is_err());
        assert!(parse_password("password", "long enough".to_owned()).is_ok());
    }

    #[test]
    fn options_of_another_addon_are_refused() {
        let request = ProvisionRequest {
            app_id: "app".to_owned(),
            options: Some(Options::Redis(Default::default())),
            ..Default::default()
        };
        let Err(AddonError::InvalidArgument { field, .. }) = ProvisionSpec::try_from(request)
        else {
            panic!("accepted redis options")
        };
        assert_eq!(field, "options");
    }
}
