//! Provision requests as the domain sees them, built by a conversion that names every field.

use fleet_shared::{
    AppId,
    addon::{foreign_options, parse_app_id},
    catalog,
    error::AddonError,
    proto::addon::{MongodbOptions, ProvisionRequest, provision_request::Options},
};

/// A validated Provision call.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    pub app: AppId,
    pub generation: u32,
    /// Also grant read access to the oplog (`local`) and return `CLOUDRON_MONGODB_OPLOG_URL`.
    /// The oplog of a replica set holds every database's writes, so such an app sees the other
    /// apps' changes too (on a real mongod as well): for trusted apps only.
    pub oplog: bool,
}

impl TryFrom<ProvisionRequest> for ProvisionSpec {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain: _, // MongoDB has no use for the app's domain.
            credential_generation,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        let oplog = match options {
            None => false,
            Some(Options::Mongodb(MongodbOptions { oplog })) => oplog,
            Some(other) => {
                return Err(foreign_options(catalog::MONGODB, &other).into());
            }
        };
        Ok(Self {
            app,
            generation: credential_generation,
            oplog,
        })
    }
}
