//! Passwords derived from a master key, so that every replica of a service computes the same
//! credentials for an app without storing any secret.

use std::{fs, path::Path};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{AppId, Secret};

/// Shortest master key accepted, in bytes (256 bits).
pub const MIN_MASTER_KEY_LEN: usize = 32;

/// The fleet's master key. Only [`MasterKey::derive_password`] ever reads it.
#[derive(Clone, Debug)]
pub struct MasterKey(Secret<Vec<u8>>);

/// The master key file is missing, unreadable or too short.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("cannot read the master key file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "the master key file {path} holds {len} bytes; it needs at least {MIN_MASTER_KEY_LEN} \
         (create one with: head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > {path})"
    )]
    TooShort { path: String, len: usize },
}

impl MasterKey {
    /// Reads the key from `path`; surrounding whitespace (a trailing newline) is ignored.
    pub fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let shown = path.display().to_string();
        let bytes = fs::read(path).map_err(|error| MasterKeyError::Unreadable {
            path: shown.clone(),
            reason: error.to_string(),
        })?;
        Self::from_bytes(bytes.trim_ascii())
            .map_err(|len| MasterKeyError::TooShort { path: shown, len })
    }

    /// Uses `bytes` as the key; `Err` carries the length when it is too short.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, usize> {
        if bytes.len() < MIN_MASTER_KEY_LEN {
            return Err(bytes.len());
        }
        Ok(Self(Secret::new(bytes.to_vec())))
    }

    /// The password of `app` for `addon` at rotation `generation`: HMAC-SHA256 of the three,
    /// as 64 lowercase hex digits (safe in URLs, connection strings and config files).
    pub fn derive_password(&self, addon: &str, app: &AppId, generation: u32) -> Secret<String> {
        Secret::new(hex::encode(self.mac(&[
            b"fleet/password/v1",
            addon.as_bytes(),
            app.as_str().as_bytes(),
            &generation.to_be_bytes(),
        ])))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in parts {
            // Length-prefixed, so ("ab","c") and ("a","bc") differ.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; 32]).unwrap_or_else(|_| unreachable!())
    }

    fn app(id: &str) -> AppId {
        AppId::parse(id).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn passwords_are_deterministic_and_separate_every_input() {
        let k = key(7);
        let base = k.derive_password("postgresql", &app("a"), 0);
        assert_eq!(base, k.derive_password("postgresql", &app("a"), 0));
        assert_eq!(base.expose().len(), 64);
        assert!(base.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        for other in [
            k.derive_password("mysql", &app("a"), 0),
            k.derive_password("postgresql", &app("b"), 0),
            k.derive_password("postgresql", &app("a"), 1),
            key(8).derive_password("postgresql", &app("a"), 0),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(MasterKey::from_bytes(&[1; 31]).err(), Some(31));
    }

    #[test]
    fn key_file_is_read_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("fleet-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap_or_default();
        let from_file = MasterKey::from_file(&path).map(|k| k.derive_password("x", &app("a"), 0));
        let direct = MasterKey::from_bytes("ab".repeat(32).as_bytes())
            .map(|k| k.derive_password("x", &app("a"), 0));
        assert_eq!(from_file.ok(), direct.ok());
        std::fs::write(&path, "short").unwrap_or_default();
        assert!(matches!(
            MasterKey::from_file(&path),
            Err(MasterKeyError::TooShort { len: 5, .. })
        ));
        assert!(matches!(
            MasterKey::from_file(&dir.join("missing")),
            Err(MasterKeyError::Unreadable { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap_or_default();
    }
}
