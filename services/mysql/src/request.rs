//! Requests as the domain sees them: validated, typed, built from the wire types by
//! conversions that name every field, so a new field in the contract breaks the build here.

use fleet_shared::{
    AppId,
    addon::{foreign_options, parse_app_id},
    catalog,
    error::AddonError,
    proto::addon::{MysqlOptions, ProvisionRequest, provision_request::Options},
};

/// A validated Provision call.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    /// Whose resources.
    pub app: AppId,
    /// Credential rotation counter.
    pub generation: u32,
    /// One database made for the app, or a prefix under which it makes its own.
    pub layout: Layout,
}

/// How an app's data is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One database, created by the service (the default).
    SingleDatabase,
    /// No database; the app may create any database whose name starts with its prefix.
    MultipleDatabases,
}

impl Layout {
    /// The name recorded in the service's metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SingleDatabase => "single",
            Self::MultipleDatabases => "multiple",
        }
    }

    /// The inverse of [`Layout::as_str`].
    pub fn from_recorded(value: &str) -> Option<Self> {
        match value {
            "single" => Some(Self::SingleDatabase),
            "multiple" => Some(Self::MultipleDatabases),
            _ => None,
        }
    }
}

impl TryFrom<ProvisionRequest> for ProvisionSpec {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain: _, // MySQL has no use for the app's domain.
            credential_generation,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        let multiple_databases = match options {
            None => false,
            Some(Options::Mysql(MysqlOptions { multiple_databases })) => multiple_databases,
            Some(other) => {
                return Err(foreign_options(catalog::MYSQL, &other).into());
            }
        };
        Ok(Self {
            app,
            generation: credential_generation,
            layout: if multiple_databases {
                Layout::MultipleDatabases
            } else {
                Layout::SingleDatabase
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use fleet_shared::proto::addon::PostgresqlOptions;

    use super::*;

    fn request(options: Option<Options>) -> ProvisionRequest {
        ProvisionRequest {
            app_id: "app-1".to_owned(),
            app_domain: String::new(),
            credential_generation: 3,
            options,
        }
    }

    #[test]
    fn layout_follows_the_option() {
        let single = ProvisionSpec::try_from(request(None)).map(|s| (s.layout, s.generation));
        assert_eq!(single.ok(), Some((Layout::SingleDatabase, 3)));
        let multiple = ProvisionSpec::try_from(request(Some(Options::Mysql(MysqlOptions {
            multiple_databases: true,
        }))));
        assert_eq!(
            multiple.map(|s| s.layout).ok(),
            Some(Layout::MultipleDatabases)
        );
    }

    #[test]
    fn foreign_options_and_bad_ids_are_refused() {
        let foreign = ProvisionSpec::try_from(request(Some(Options::Postgresql(
            PostgresqlOptions::default(),
        ))));
        assert!(
            matches!(foreign, Err(AddonError::InvalidArgument { field, .. }) if field == "options")
        );
        let bad = ProvisionSpec::try_from(ProvisionRequest {
            app_id: "../a".to_owned(),
            ..request(None)
        });
        assert!(matches!(bad, Err(AddonError::InvalidArgument { field, .. }) if field == "app_id"));
    }

    #[test]
    fn recorded_layouts_round_trip() {
        for layout in [Layout::SingleDatabase, Layout::MultipleDatabases] {
            assert_eq!(Layout::from_recorded(layout.as_str()), Some(layout));
        }
        assert_eq!(Layout::from_recorded("other"), None);
    }
}
