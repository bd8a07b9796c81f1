//! Provision requests as the domain sees them: the docker addon has no options.

use fleet_shared::{
    AppId,
    addon::{foreign_options, parse_app_id},
    catalog,
    error::AddonError,
    proto::addon::{DockerOptions, ProvisionRequest, provision_request::Options},
};

/// A validated Provision call.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    pub app: AppId,
    /// A new generation moves the app to a new endpoint; the old one closes.
    pub generation: u32,
}

impl TryFrom<ProvisionRequest> for ProvisionSpec {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain: _,
            credential_generation,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        match options {
            None | Some(Options::Docker(DockerOptions {})) => {}
            Some(other) => return Err(foreign_options(catalog::DOCKER_PROXY, &other).into()),
        }
        Ok(Self {
            app,
            generation: credential_generation,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use fleet_shared::proto::addon::RedisOptions;

    use super::*;

    fn request(options: Option<Options>) -> ProvisionRequest {
        ProvisionRequest {
            app_id: "runner".to_owned(),
            app_domain: String::new(),
            credential_generation: 2,
            options,
        }
    }

    #[test]
    fn docker_options_or_none_are_taken_others_refused() {
        let spec = ProvisionSpec::try_from(request(None)).unwrap();
        assert_eq!((spec.app.as_str(), spec.generation), ("runner", 2));
        assert!(ProvisionSpec::try_from(request(Some(Options::Docker(DockerOptions {})))).is_ok());
        let error = ProvisionSpec::try_from(request(Some(Options::Redis(RedisOptions::default()))))
            .unwrap_err();
        assert!(
            error.to_string().contains("docker options, not redis"),
            "{error}"
        );
    }
}
