//! Provision requests as the domain sees them: the turn addon has no options (the kit's
//! [`OptionlessSpec`]).

use fleet_shared::{
    addon::{Optionless, OptionlessSpec},
    catalog,
    proto::addon::provision_request::Options,
};

/// The turn addon, as the kit validates its requests.
pub struct TurnAddon;

impl Optionless for TurnAddon {
    const SERVICE: catalog::Service = catalog::TURN;

    fn own(options: &Options) -> bool {
        matches!(options, Options::Turn(_))
    }
}

/// A validated Provision call: the app and its credential generation.
pub type ProvisionSpec = OptionlessSpec<TurnAddon>;
