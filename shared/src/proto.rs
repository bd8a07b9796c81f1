//! Code generated from `proto/` by `build.rs`; never edited by hand.

/// The encoded descriptor set of every fleet proto, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fleet_descriptor.bin"));

/// `package fleet.*`
pub mod fleet {
    /// `package fleet.addon.*`
    pub mod addon {
        /// `package fleet.addon.v1`: the contract every addon service implements.
        #[allow(clippy::all, clippy::pedantic, missing_docs)]
        pub mod v1 {
            tonic::include_proto!("fleet.addon.v1");
        }
    }

    /// `package fleet.coordinator.*`
    pub mod coordinator {
        /// `package fleet.coordinator.v1`: the orchestrator's entry point.
        #[allow(clippy::all, clippy::pedantic, missing_docs)]
        pub mod v1 {
            tonic::include_proto!("fleet.coordinator.v1");
        }
    }

    /// `package fleet.directory.*`
    pub mod directory {
        /// `package fleet.directory.v1`: the platform's users and groups, served by ldap.
        #[allow(clippy::all, clippy::pedantic, missing_docs)]
        pub mod v1 {
            tonic::include_proto!("fleet.directory.v1");
        }
    }
}

pub use fleet::{addon::v1 as addon, coordinator::v1 as coordinator, directory::v1 as directory};

impl addon::provision_request::Options {
    /// The manifest name of the addon these options belong to.
    pub fn addon_name(&self) -> &'static str {
        use addon::provision_request::Options;
        match self {
            Options::Mysql(_) => "mysql",
            Options::Postgresql(_) => "postgresql",
            Options::Mongodb(_) => "mongodb",
            Options::Redis(_) => "redis",
            Options::Ldap(_) => "ldap",
            Options::Oidc(_) => "oidc",
            Options::Sendmail(_) => "sendmail",
            Options::Recvmail(_) => "recvmail",
            Options::Email(_) => "email",
            Options::Turn(_) => "turn",
            Options::Docker(_) => "docker",
            Options::ProxyAuth(_) => "proxyAuth",
        }
    }
}
