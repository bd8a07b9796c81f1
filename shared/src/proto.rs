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
}

pub use fleet::addon::v1 as addon;
