//! The signing keys in use: loaded from the store, created on first start, replaced when they
//! grow old (the old ones stay published so the tokens they signed still verify), and
//! re-read periodically so every replica publishes and signs with the same keys.

use std::{sync::Arc, time::Duration};

use fleet_shared::error::AddonError;
use openidconnect::core::CoreJsonWebKeySet;
use tokio::sync::RwLock;

use crate::{
    keys::{self, Algorithm, IdTokenInput, KeyError, KeyRing, SigningKey},
    provider::now,
    store::Store,
};

/// The key ring, kept in step with the store.
pub struct Signer {
    store: Store,
    ring: RwLock<Arc<KeyRing>>,
    max_age: Duration,
}

impl Signer {
    /// Loads the keys from `store`, creating a key for each algorithm that has none (or only
    /// keys older than `max_age`).
    pub async fn start(store: Store, max_age: Duration) -> Result<Arc<Self>, AddonError> {
        let ring = KeyRing::new(Vec::new()).map_err(internal)?;
        let signer = Arc::new(Self {
            store,
            ring: RwLock::new(Arc::new(ring)),
            max_age,
        });
        signer.refresh().await?;
        Ok(signer)
    }

    /// Re-reads the keys, adding a new one for each algorithm that needs it.
    pub async fn refresh(&self) -> Result<(), AddonError> {
        let mut stored = self.store.signing_keys().await?;
        let due = due(&stored, self.max_age, now());
        for algorithm in due {
            let key = tokio::task::spawn_blocking(move || keys::generate(algorithm))
                .await
                .map_err(|e| AddonError::Internal(format!("key generation: {e}")))?
                .map_err(internal)?;
            tracing::info!(kid = %key.kid, algorithm = algorithm.as_str(), "new signing key");
            self.store.insert_signing_key(&key).await?;
            stored = self.store.signing_keys().await?;
        }
        let ring = KeyRing::new(stored).map_err(internal)?;
        *self.ring.write().await = Arc::new(ring);
        Ok(())
    }

    /// Every published key.
    pub async fn jwks(&self) -> CoreJsonWebKeySet {
        self.ring.read().await.jwks()
    }

    /// An ID token signed with the newest key of `algorithm`.
    pub async fn sign_id_token(
        &self,
        algorithm: Algorithm,
        input: &IdTokenInput<'_>,
    ) -> Result<String, KeyError> {
        let ring = Arc::clone(&*self.ring.read().await);
        ring.sign_id_token(algorithm, input)
    }
}

/// The algorithms whose newest key is missing or older than `max_age` at `now`.
fn due(keys: &[SigningKey], max_age: Duration, now: i64) -> Vec<Algorithm> {
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    Algorithm::ALL
        .into_iter()
        .filter(|algorithm| {
            keys.iter()
                .filter(|key| key.algorithm == *algorithm)
                .map(|key| key.created_at)
                .max()
                .is_none_or(|newest| now.saturating_sub(newest) >= max_age)
        })
        .collect()
}

fn internal(error: KeyError) -> AddonError {
    AddonError::Internal(format!("signing keys: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_shared::Secret;

    fn key(algorithm: Algorithm, created_at: i64) -> SigningKey {
        SigningKey {
            kid: format!("{}-{created_at}", algorithm.as_str()),
            algorithm,
            private_pem: Secret::new(String::new()),
            created_at,
        }
    }

    #[test]
    fn missing_and_old_keys_are_due() {
        let day = Duration::from_secs(86_400);
        assert_eq!(due(&[], day, 1000), Algorithm::ALL.to_vec());
        let fresh = [key(Algorithm::Rs256, 1000), key(Algorithm::EdDsa, 1000)];
        assert!(due(&fresh, day, 2000).is_empty());
        let mixed = [
            key(Algorithm::Rs256, 0),
            key(Algorithm::Rs256, 90_000),
            key(Algorithm::EdDsa, 0),
        ];
        assert_eq!(due(&mixed, day, 100_000), vec![Algorithm::EdDsa]);
    }
}
