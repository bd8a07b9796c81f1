//! Requests as the domain sees them: validated, typed, built from the wire types by
//! conversions that name every field, so a new field in the contract breaks the build here.

use fleet_shared::{
    AppId,
    addon::{foreign_options, parse_app_id},
    catalog,
    error::AddonError,
    proto::addon::{ProvisionRequest, provision_request::Options},
};

use crate::extensions;

/// A validated Provision call.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    /// Whose resources.
    pub app: AppId,
    /// Credential rotation counter.
    pub generation: u32,
    /// LC_COLLATE/LC_CTYPE for a new database; `None` keeps the server's default.
    pub locale: Option<Locale>,
    /// Whitelisted extensions to create, without duplicates, in request order.
    pub extensions: Vec<String>,
}

/// A locale name as PostgreSQL and libc spell them (`de_DE.UTF-8`, `C`, `sr_RS@latin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale(String);

impl Locale {
    /// Validates the spelling; whether the server has the locale is PostgreSQL's call.
    pub fn parse(value: &str) -> Result<Self, AddonError> {
        let valid = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(AddonError::invalid(
                "options.postgresql.locale",
                format!("{value:?} is not a locale name (e.g. \"de_DE.UTF-8\")"),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<ProvisionRequest> for ProvisionSpec {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain: _, // PostgreSQL has no use for the app's domain.
            credential_generation,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        let (locale, requested) = match options {
            None => (String::new(), Vec::new()),
            Some(Options::Postgresql(options)) => {
                let fleet_shared::proto::addon::PostgresqlOptions { locale, extensions } = options;
                (locale, extensions)
            }
            Some(other) => {
                return Err(foreign_options(catalog::POSTGRESQL, &other).into());
            }
        };
        let locale = if locale.is_empty() {
            None
        } else {
            Some(Locale::parse(&locale)?)
        };
        Ok(Self {
            app,
            generation: credential_generation,
            locale,
            extensions: validate_extensions(requested)?,
        })
    }
}

fn validate_extensions(requested: Vec<String>) -> Result<Vec<String>, AddonError> {
    let mut accepted: Vec<String> = Vec::with_capacity(requested.len());
    let mut refused = Vec::new();
    for (index, name) in requested.into_iter().enumerate() {
        if !extensions::is_whitelisted(&name) {
            refused.push(format!("[{index}] {name:?}"));
        } else if !accepted.contains(&name) {
            accepted.push(name);
        }
    }
    if refused.is_empty() {
        Ok(accepted)
    } else {
        Err(AddonError::invalid(
            "options.postgresql.extensions",
            format!(
                "not on the addon's whitelist: {}; allowed: {}",
                refused.join(", "),
                extensions::whitelist().join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use fleet_shared::proto::addon::{MysqlOptions, PostgresqlOptions};

    use super::*;

    fn request(options: Option<Options>) -> ProvisionRequest {
        ProvisionRequest {
            app_id: "app-1".to_owned(),
            app_domain: "app.example.com".to_owned(),
            credential_generation: 2,
            options,
        }
    }

    fn postgresql(locale: &str, extensions: &[&str]) -> Option<Options> {
        Some(Options::Postgresql(PostgresqlOptions {
            locale: locale.to_owned(),
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        }))
    }

    #[test]
    fn defaults_when_no_options() {
        let spec = ProvisionSpec::try_from(request(None));
        let spec = spec.map(|s| (s.app.to_string(), s.generation, s.locale, s.extensions));
        assert_eq!(spec.ok(), Some(("app-1".to_owned(), 2, None, Vec::new())));
    }

    #[test]
    fn extensions_are_deduplicated_in_order() {
        let spec = ProvisionSpec::try_from(request(postgresql(
            "de_DE.UTF-8",
            &["hstore", "postgis", "hstore"],
        )));
        let spec = spec.map(|s| (s.locale.map(|l| l.0), s.extensions));
        assert_eq!(
            spec.ok(),
            Some((
                Some("de_DE.UTF-8".to_owned()),
                vec!["hstore".to_owned(), "postgis".to_owned()]
            ))
        );
    }

    #[test]
    fn every_unlisted_extension_is_named() {
        let error =
            ProvisionSpec::try_from(request(postgresql("", &["hstore", "adminpack", "x;y"])))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(
            error.starts_with("options.postgresql.extensions:"),
            "{error}"
        );
        assert!(error.contains("[1] \"adminpack\""), "{error}");
        assert!(error.contains("[2] \"x;y\""), "{error}");
        assert!(!error.contains("[0]"), "{error}");
    }

    #[test]
    fn malformed_locales_and_foreign_options_are_refused() {
        for locale in ["de_DE'; --", "a b", &"x".repeat(65)] {
            let error = ProvisionSpec::try_from(request(postgresql(locale, &[]))).err();
            assert!(
                matches!(&error, Some(AddonError::InvalidArgument { field, .. }) if field == "options.postgresql.locale"),
                "{locale}: {error:?}"
            );
        }
        let error =
            ProvisionSpec::try_from(request(Some(Options::Mysql(MysqlOptions::default())))).err();
        assert!(
            matches!(&error, Some(AddonError::InvalidArgument { field, .. }) if field == "options"),
            "{error:?}"
        );
    }
}
