//! Provision requests as the domain sees them, built by a conversion that names every field.

use fleet_shared::{
    AppId,
    addon::{foreign_options, parse_app_id},
    catalog,
    error::AddonError,
    proto::addon::{ProvisionRequest, RedisOptions, provision_request::Options},
};

/// A validated Provision call.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    pub app: AppId,
    pub generation: u32,
    /// The instance takes connections without a password.
    pub no_password: bool,
}

impl TryFrom<ProvisionRequest> for ProvisionSpec {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain: _, // Redis has no use for the app's domain.
            credential_generation,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        let no_password = match options {
            None => false,
            Some(Options::Redis(RedisOptions { no_password })) => no_password,
            Some(other) => {
                return Err(foreign_options(catalog::REDIS, &other).into());
            }
        };
        Ok(Self {
            app,
            generation: credential_generation,
            no_password,
        })
    }
}
