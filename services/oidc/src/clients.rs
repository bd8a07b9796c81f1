//! How clients are named and how their secrets are derived: the one place both are decided,
//! for Provision and for the token endpoint that checks them.

use fleet_shared::{AppId, Secret, credentials::MasterKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::Client;

/// The client id of `app`'s `addon` client: `cid-` and 32 hex digits of a hash of the two.
/// Public (it travels in every authorization URL), and the same on every replica.
pub fn client_id(app: &AppId, addon: &str) -> String {
    let digest = Sha256::digest(format!("fleet/oidc-client/v1\0{addon}\0{app}").as_bytes());
    format!("cid-{}", &hex::encode(digest)[..32])
}

/// Derives client secrets from the master key, like every credential of the fleet.
#[derive(Clone)]
pub struct ClientSecrets {
    master_key: MasterKey,
}

impl ClientSecrets {
    /// Secrets under `master_key`.
    pub fn new(master_key: MasterKey) -> Self {
        Self { master_key }
    }

    /// The secret of `app`'s `addon` client at rotation `generation` (64 hex digits).
    pub fn secret(&self, app: &AppId, addon: &str, generation: u32) -> Secret<String> {
        self.master_key.derive_password(addon, app, generation)
    }

    /// Whether `presented` is `client`'s current secret (in constant time).
    pub fn verify(&self, client: &Client, presented: &str) -> bool {
        let Ok(app) = AppId::parse(&client.app_id) else {
            return false;
        };
        let expected = self.secret(&app, &client.addon, client.generation);
        expected
            .expose()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let app = AppId::parse("app1").unwrap();
        let id = client_id(&app, "oidc");
        assert_eq!(id, client_id(&app, "oidc"));
        assert_ne!(id, client_id(&app, "proxyAuth"));
        assert_ne!(id, client_id(&AppId::parse("app2").unwrap(), "oidc"));
        assert_eq!(id.len(), 36);
        assert!(id.starts_with("cid-"));
    }
}
