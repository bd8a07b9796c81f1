//! Provision requests as the domain sees them: the docker addon has no options (the kit's
//! [`OptionlessSpec`]).

use fleet_shared::{
    addon::{Optionless, OptionlessSpec},
    catalog,
    proto::addon::provision_request::Options,
};

/// The docker addon, as the kit validates its requests.
pub struct DockerAddon;

impl Optionless for DockerAddon {
    const SERVICE: catalog::Service = catalog::DOCKER_PROXY;

    fn own(options: &Options) -> bool {
        matches!(options, Options::Docker(_))
    }
}

/// A validated Provision call: the app and its credential generation.
pub type ProvisionSpec = OptionlessSpec<DockerAddon>;
