//! Signing keys and ID tokens: the provider's RS256 and EdDSA keys, the JWKS that publishes
//! them, and the one mapping from a directory user and the granted scopes to claims, shared by
//! the ID token and the userinfo endpoint.

use std::{fmt, str::FromStr, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use fleet_shared::Secret;
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, AuthorizationCode, EndUserEmail, EndUserFamilyName,
    EndUserGivenName, EndUserName, EndUserUsername, IdToken, IdTokenClaims, IssuerUrl,
    JsonWebKeyId, LanguageTag, Nonce, PrivateSigningKey, StandardClaims, SubjectIdentifier,
    UserInfoClaims,
    core::{
        CoreEdDsaPrivateSigningKey, CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet,
        CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
    },
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::user::User;

/// Size of generated RSA keys, in bits.
const RSA_BITS: usize = 2048;

/// Length of a key id: 16 base64url characters, 96 bits of the public key's hash.
const KID_LEN: usize = 16;

/// A signing key or ID token could not be made. Messages name keys by id, never by content.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A stored algorithm name is neither `RS256` nor `EdDSA`.
    #[error("unknown signing algorithm {0:?} (expected RS256 or EdDSA)")]
    UnknownAlgorithm(String),
    /// Generating or encoding a new key failed.
    #[error("could not generate an {0} signing key")]
    Generate(Algorithm),
    /// A stored private key does not parse as a key of its algorithm.
    #[error("signing key {kid} is not a valid {algorithm} private key")]
    InvalidKey {
        /// The key's id.
        kid: String,
        /// The algorithm the key is stored for.
        algorithm: Algorithm,
    },
    /// Two keys share a key id, so verifiers could not tell them apart.
    #[error("two signing keys share the key id {0}")]
    DuplicateKid(String),
    /// The ring has no key of the algorithm asked for.
    #[error("no {0} signing key")]
    NoKey(Algorithm),
    /// A value that goes into the ID token is out of range (issuer not a URL, times overflowing).
    #[error("invalid ID token {0}")]
    InvalidClaim(&'static str),
    /// Signing the ID token failed.
    #[error("signing an ID token with key {0} failed")]
    Sign(String),
}

/// A JWS algorithm the provider signs ID tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256: what every relying party supports (the default).
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Every algorithm, in the order discovery lists them (RS256 first, as OpenID requires).
    pub const ALL: [Algorithm; 2] = [Algorithm::Rs256, Algorithm::EdDsa];

    /// The JOSE name: `RS256` or `EdDSA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm as openidconnect names it (discovery metadata, verifiers).
    pub fn jws(self) -> CoreJwsSigningAlgorithm {
        match self {
            Algorithm::Rs256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Algorithm::EdDsa => CoreJwsSigningAlgorithm::EdDsa,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "RS256" => Ok(Algorithm::Rs256),
            "EdDSA" => Ok(Algorithm::EdDsa),
            other => Err(KeyError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// A private signing key as the store keeps it.
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// Key id: the first 16 characters of the unpadded base64url SHA-256 of the public key
    /// (DER SubjectPublicKeyInfo).
    pub kid: String,
    /// The algorithm the key signs with.
    pub algorithm: Algorithm,
    /// The private key: PKCS#1 PEM for RS256, PKCS#8 PEM for EdDSA.
    pub private_pem: Secret<String>,
    /// When the key was made (unix seconds); the newest key of an algorithm signs.
    pub created_at: i64,
}

/// A new key of `algorithm`, made now: RSA 2048 or Ed25519.
pub fn generate(algorithm: Algorithm) -> Result<SigningKey, KeyError> {
    let (private_pem, public_der) = match algorithm {
        Algorithm::Rs256 => generate_rsa(),
        Algorithm::EdDsa => generate_ed25519(),
    }
    .ok_or(KeyError::Generate(algorithm))?;
    Ok(SigningKey {
        kid: key_id(&public_der),
        algorithm,
        private_pem,
        created_at: Utc::now().timestamp(),
    })
}

/// An RSA key as PKCS#1 PEM (what `CoreRsaPrivateSigningKey::from_pem` reads) and its public
/// half as SPKI DER.
fn generate_rsa() -> Option<(Secret<String>, Vec<u8>)> {
    use rsa::{
        pkcs1::{EncodeRsaPrivateKey, LineEnding},
        pkcs8::EncodePublicKey,
    };

    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).ok()?;
    let pem = key.to_pkcs1_pem(LineEnding::LF).ok()?;
    let public = key.to_public_key().to_public_key_der().ok()?;
    Some((Secret::new(pem.as_str().to_owned()), public.into_vec()))
}

/// An Ed25519 key as PKCS#8 PEM (what `CoreEdDsaPrivateSigningKey::from_ed25519_pem` reads)
/// and its public half as SPKI DER.
fn generate_ed25519() -> Option<(Secret<String>, Vec<u8>)> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    use rand::RngCore;

    // From a seed rather than `SigningKey::generate`: ed25519-dalek 3 wants a newer rand_core
    // than the rand 0.8 the workspace uses.
    let mut seed = [0u8; ed25519_dalek::SECRET_KEY_LENGTH];
    rand::rngs::OsRng.try_fill_bytes(&mut seed).ok()?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let pem = key.to_pkcs8_pem(LineEnding::LF).ok()?;
    let public = key.verifying_key().to_public_key_der().ok()?;
    Some((Secret::new(pem.as_str().to_owned()), public.into_vec()))
}

/// The key id of a public key (DER): unpadded base64url of its SHA-256, first 16 characters.
fn key_id(public_der: &[u8]) -> String {
    let mut kid = URL_SAFE_NO_PAD.encode(Sha256::digest(public_der));
    kid.truncate(KID_LEN);
    kid
}

/// A loaded private key, in the type openidconnect signs with.
enum Signer {
    Rsa(CoreRsaPrivateSigningKey),
    EdDsa(CoreEdDsaPrivateSigningKey),
}

/// A key of the ring: the signer, and the public JWK that verifies it.
struct LoadedKey {
    kid: String,
    algorithm: Algorithm,
    created_at: i64,
    signer: Signer,
    public: CoreJsonWebKey,
}

/// The provider's signing keys: the newest key of each algorithm signs, every key is published
/// so tokens of older keys keep verifying.
pub struct KeyRing {
    /// Newest first (`created_at`, then `kid`): the first key of an algorithm is its signer.
    keys: Vec<LoadedKey>,
}

impl KeyRing {
    /// Loads `keys`. The newest (`created_at`, then `kid`) of each algorithm signs; all are
    /// published.
    pub fn new(keys: Vec<SigningKey>) -> Result<Self, KeyError> {
        let mut loaded = Vec::with_capacity(keys.len());
        for key in keys {
            if loaded.iter().any(|other: &LoadedKey| other.kid == key.kid) {
                return Err(KeyError::DuplicateKid(key.kid));
            }
            loaded.push(load(key)?);
        }
        loaded.sort_by(|a, b| (b.created_at, &b.kid).cmp(&(a.created_at, &a.kid)));
        Ok(Self { keys: loaded })
    }

    /// The algorithms the ring has no key for (to generate and store before serving).
    pub fn missing(&self) -> Vec<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(|algorithm| !self.keys.iter().any(|key| key.algorithm == *algorithm))
            .collect()
    }

    /// The public keys, newest first, each with `kid`, `use` (`sig`) and `alg`.
    pub fn jwks(&self) -> CoreJsonWebKeySet {
        CoreJsonWebKeySet::new(self.keys.iter().map(|key| key.public.clone()).collect())
    }

    /// The id of the key that signs `algorithm`'s tokens, if the ring has one.
    pub fn signing_kid(&self, algorithm: Algorithm) -> Option<&str> {
        self.signer(algorithm).map(|key| key.kid.as_str())
    }

    /// A signed ID token (compact JWS) for `input`, by the newest key of `algorithm`.
    pub fn sign_id_token(
        &self,
        algorithm: Algorithm,
        input: &IdTokenInput<'_>,
    ) -> Result<String, KeyError> {
        let key = self.signer(algorithm).ok_or(KeyError::NoKey(algorithm))?;
        let claims = id_token_claims(input)?;
        let access_token = input
            .access_token
            .map(|token| AccessToken::new(token.to_owned()));
        let code = input
            .code
            .map(|code| AuthorizationCode::new(code.to_owned()));
        let token = match &key.signer {
            Signer::Rsa(signer) => IdTokenWithGroups::new(
                claims,
                signer,
                algorithm.jws(),
                access_token.as_ref(),
                code.as_ref(),
            ),
            Signer::EdDsa(signer) => IdTokenWithGroups::new(
                claims,
                signer,
                algorithm.jws(),
                access_token.as_ref(),
                code.as_ref(),
            ),
        }
        .map_err(|_| KeyError::Sign(key.kid.clone()))?;
        Ok(token.to_string())
    }

    fn signer(&self, algorithm: Algorithm) -> Option<&LoadedKey> {
        self.keys.iter().find(|key| key.algorithm == algorithm)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for key in &self.keys {
            list.entry(&format_args!(
                "{} {} created_at={}",
                key.algorithm, key.kid, key.created_at
            ));
        }
        list.finish()
    }
}

/// Parses a stored key into its signer and public JWK (with `alg`, which openidconnect leaves
/// out).
fn load(key: SigningKey) -> Result<LoadedKey, KeyError> {
    let invalid = || KeyError::InvalidKey {
        kid: key.kid.clone(),
        algorithm: key.algorithm,
    };
    let kid = Some(JsonWebKeyId::new(key.kid.clone()));
    let pem = key.private_pem.expose();
    // The parse errors are dropped: they could quote the PEM.
    let (signer, public) = match key.algorithm {
        Algorithm::Rs256 => {
            let signer = CoreRsaPrivateSigningKey::from_pem(pem, kid).map_err(|_| invalid())?;
            let public = signer.as_verification_key();
            (Signer::Rsa(signer), public)
        }
        Algorithm::EdDsa => {
            let signer =
                CoreEdDsaPrivateSigningKey::from_ed25519_pem(pem, kid).map_err(|_| invalid())?;
            let public = signer.as_verification_key();
            (Signer::EdDsa(signer), public)
        }
    };
    let public = with_alg(public, key.algorithm).ok_or_else(invalid)?;
    Ok(LoadedKey {
        kid: key.kid,
        algorithm: key.algorithm,
        created_at: key.created_at,
        signer,
        public,
    })
}

/// `jwk` with its `alg` member set: CoreJsonWebKey has no setter, so through its JSON form.
fn with_alg(jwk: CoreJsonWebKey, algorithm: Algorithm) -> Option<CoreJsonWebKey> {
    let mut json = serde_json::to_value(jwk).ok()?;
    json.as_object_mut()?
        .insert("alg".to_owned(), algorithm.as_str().into());
    serde_json::from_value(json).ok()
}

/// What an ID token says, besides what the ring adds (`iat`, the signature, `kid`).
#[derive(Clone, Copy)]
pub struct IdTokenInput<'a> {
    /// `iss`: the provider's issuer URL, exactly as discovery publishes it.
    pub issuer: &'a str,
    /// `aud` (a one-element array).
    pub client_id: &'a str,
    /// `sub` and the scoped claims.
    pub user: &'a User,
    /// `nonce`, echoed from the authorization request.
    pub nonce: Option<&'a str>,
    /// `auth_time` (unix seconds): when the user logged in.
    pub auth_time: i64,
    /// `exp` - `iat`.
    pub lifetime: Duration,
    /// The access token issued with the ID token, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// The authorization code, for `c_hash` (hybrid flows).
    pub code: Option<&'a str>,
    /// The granted scopes, which choose the claims.
    pub scopes: &'a [String],
}

impl fmt::Debug for IdTokenInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |value: Option<&str>| value.map(|_| "***");
        f.debug_struct("IdTokenInput")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("user", &self.user.username)
            .field("nonce", &self.nonce)
            .field("auth_time", &self.auth_time)
            .field("lifetime", &self.lifetime)
            .field("access_token", &hidden(self.access_token))
            .field("code", &hidden(self.code))
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The claims beyond OpenID's standard ones: `groups`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupClaims {
    /// The names of the user's groups (scope `groups` or `profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

impl AdditionalClaims for GroupClaims {}

/// An ID token with `groups`, as the provider issues it (and a relying party parses it).
pub type IdTokenWithGroups = IdToken<
    GroupClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The claims of an [`IdTokenWithGroups`].
pub type IdTokenClaimsWithGroups = IdTokenClaims<GroupClaims, CoreGenderClaim>;

/// The ID token's claims but `at_hash` and `c_hash`, which the signing algorithm chooses.
fn id_token_claims(input: &IdTokenInput<'_>) -> Result<IdTokenClaimsWithGroups, KeyError> {
    let issuer =
        IssuerUrl::new(input.issuer.to_owned()).map_err(|_| KeyError::InvalidClaim("issuer"))?;
    let issued = Utc::now();
    let expiration = TimeDelta::from_std(input.lifetime)
        .ok()
        .and_then(|lifetime| issued.checked_add_signed(lifetime))
        .ok_or(KeyError::InvalidClaim("lifetime"))?;
    let auth_time =
        DateTime::from_timestamp(input.auth_time, 0).ok_or(KeyError::InvalidClaim("auth_time"))?;
    let (standard, groups) = user_claims(input.user, input.scopes);
    Ok(IdTokenClaims::new(
        issuer,
        vec![Audience::new(input.client_id.to_owned())],
        expiration,
        issued,
        standard,
        groups,
    )
    .set_auth_time(Some(auth_time))
    .set_nonce(input.nonce.map(|nonce| Nonce::new(nonce.to_owned()))))
}

/// The userinfo response for `user` under `scopes`: `sub` and the same claims the ID token
/// carries.
pub fn userinfo_claims(user: &User, scopes: &[String]) -> serde_json::Value {
    let (standard, groups) = user_claims(user, scopes);
    serde_json::to_value(UserInfoClaims::new(standard, groups)).unwrap_or_else(|_| {
        // Unreachable (plain strings and arrays always serialize); `sub` alone is still a
        // correct, if terse, answer.
        serde_json::json!({ "sub": user.username })
    })
}

/// The one mapping from a user and scopes to claims. `sub` always; `profile`: name, given and
/// family name, preferred_username, locale; `email`: email, email_verified; `groups` or
/// `profile`: groups. Empty directory attributes give no claim rather than an empty one.
fn user_claims(user: &User, scopes: &[String]) -> (StandardClaims<CoreGenderClaim>, GroupClaims) {
    let granted = |scope: &str| scopes.iter().any(|granted| granted == scope);
    let present = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    let mut claims = StandardClaims::new(SubjectIdentifier::new(user.username.clone()));
    if granted("profile") {
        claims = claims
            .set_name(present(&user.display_name).map(|name| EndUserName::new(name).into()))
            .set_given_name(
                present(&user.given_name).map(|name| EndUserGivenName::new(name).into()),
            )
            .set_family_name(
                present(&user.family_name).map(|name| EndUserFamilyName::new(name).into()),
            )
            .set_preferred_username(Some(EndUserUsername::new(user.username.clone())))
            .set_locale(present(&user.locale).map(LanguageTag::new));
    }
    if granted("email") && !user.email.is_empty() {
        claims = claims
            .set_email(Some(EndUserEmail::new(user.email.clone())))
            // Addresses come from the directory, where the platform's administrators set them.
            .set_email_verified(Some(true));
    }
    let groups = GroupClaims {
        groups: (granted("groups") || granted("profile")).then(|| user.groups.clone()),
    };
    (claims, groups)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::OnceLock;

    use openidconnect::{
        AccessTokenHash, AuthorizationCodeHash, ClientId, JsonWebKey,
        core::{CoreIdTokenVerifier, CoreJsonWebKeyUse},
    };

    use super::*;

    const ISSUER: &str = "http://127.0.0.1:8056";
    const CLIENT: &str = "app-1";

    /// Two RSA keys made once: RSA generation is the slow part of these tests.
    fn rsa_keys() -> &'static [SigningKey; 2] {
        static KEYS: OnceLock<[SigningKey; 2]> = OnceLock::new();
        KEYS.get_or_init(|| {
            [
                generate(Algorithm::Rs256).unwrap(),
                generate(Algorithm::Rs256).unwrap(),
            ]
        })
    }

    fn user() -> User {
        User {
            username: "alice".into(),
            email: "alice@example.com".into(),
            display_name: "Alice Liddell".into(),
            given_name: "Alice".into(),
            family_name: "Liddell".into(),
            locale: "en-US".into(),
            groups: vec!["admins".into(), "staff".into()],
        }
    }

    fn scopes(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn input<'a>(user: &'a User, scopes: &'a [String]) -> IdTokenInput<'a> {
        IdTokenInput {
            issuer: ISSUER,
            client_id: CLIENT,
            user,
            nonce: Some("nonce-1"),
            auth_time: Utc::now().timestamp() - 30,
            lifetime: Duration::from_secs(300),
            access_token: Some("access-token-1"),
            code: Some("code-1"),
            scopes,
        }
    }

    fn verifier(ring: &KeyRing, algorithm: Algorithm) -> CoreIdTokenVerifier<'static> {
        CoreIdTokenVerifier::new_public_client(
            ClientId::new(CLIENT.into()),
            IssuerUrl::new(ISSUER.into()).unwrap(),
            ring.jwks(),
        )
        .set_allowed_algs([algorithm.jws()])
    }

    /// The claims of `token`, verified against `ring`'s JWKS with the nonce `nonce-1`.
    fn verify(ring: &KeyRing, algorithm: Algorithm, token: &str) -> IdTokenClaimsWithGroups {
        let token: IdTokenWithGroups = token.parse().unwrap();
        token
            .into_claims(&verifier(ring, algorithm), &Nonce::new("nonce-1".into()))
            .unwrap()
    }

    fn kid_of(ring: &KeyRing, algorithm: Algorithm, token: &str) -> String {
        let token: IdTokenWithGroups = token.parse().unwrap();
        let verifier = verifier(ring, algorithm);
        let key = token.signing_key(&verifier).unwrap();
        key.key_id().unwrap().as_str().to_owned()
    }

    #[test]
    fn both_algorithms_sign_tokens_that_verify_against_the_jwks() {
        let ring = KeyRing::new(vec![
            rsa_keys()[0].clone(),
            generate(Algorithm::EdDsa).unwrap(),
        ])
        .unwrap();
        assert!(ring.missing().is_empty());
        let user = user();
        let scopes = scopes(&["openid", "profile"]);
        let input = input(&user, &scopes);
        for algorithm in Algorithm::ALL {
            let token = ring.sign_id_token(algorithm, &input).unwrap();
            let claims = verify(&ring, algorithm, &token);
            assert_eq!(claims.issuer().as_str(), ISSUER);
            assert_eq!(claims.audiences(), &[Audience::new(CLIENT.into())]);
            assert_eq!(claims.subject().as_str(), "alice");
            assert_eq!(claims.nonce().unwrap().secret(), "nonce-1");
            assert_eq!(claims.auth_time().unwrap().timestamp(), input.auth_time);
            assert_eq!(
                claims.expiration() - claims.issue_time(),
                TimeDelta::seconds(300)
            );
            assert_eq!(
                kid_of(&ring, algorithm, &token),
                ring.signing_kid(algorithm).unwrap()
            );

            // at_hash and c_hash as a relying party recomputes them with the token's key.
            let parsed: IdTokenWithGroups = token.parse().unwrap();
            let verifier = verifier(&ring, algorithm);
            let key = parsed.signing_key(&verifier).unwrap();
            let at_hash = AccessTokenHash::from_token(
                &AccessToken::new("access-token-1".into()),
                &algorithm.jws(),
                key,
            )
            .unwrap();
            assert_eq!(claims.access_token_hash(), Some(&at_hash));
            let c_hash = AuthorizationCodeHash::from_code(
                &AuthorizationCode::new("code-1".into()),
                &algorithm.jws(),
                key,
            )
            .unwrap();
            assert_eq!(claims.code_hash(), Some(&c_hash));
        }
    }

    #[test]
    fn verifiers_reject_another_issuer_audience_nonce_or_algorithm() {
        let ring = KeyRing::new(vec![generate(Algorithm::EdDsa).unwrap()]).unwrap();
        let user = user();
        let scopes = scopes(&["openid"]);
        let token: IdTokenWithGroups = ring
            .sign_id_token(Algorithm::EdDsa, &input(&user, &scopes))
            .unwrap()
            .parse()
            .unwrap();
        let nonce = Nonce::new("nonce-1".into());
        assert!(
            token
                .claims(&verifier(&ring, Algorithm::EdDsa), &nonce)
                .is_ok()
        );

        let other_client = CoreIdTokenVerifier::new_public_client(
            ClientId::new("app-2".into()),
            IssuerUrl::new(ISSUER.into()).unwrap(),
            ring.jwks(),
        )
        .set_allowed_algs([CoreJwsSigningAlgorithm::EdDsa]);
        assert!(token.claims(&other_client, &nonce).is_err());
        let other_issuer = CoreIdTokenVerifier::new_public_client(
            ClientId::new(CLIENT.into()),
            IssuerUrl::new("http://127.0.0.1:9999".into()).unwrap(),
            ring.jwks(),
        )
        .set_allowed_algs([CoreJwsSigningAlgorithm::EdDsa]);
        assert!(token.claims(&other_issuer, &nonce).is_err());
        let other_nonce = Nonce::new("nonce-2".into());
        assert!(
            token
                .claims(&verifier(&ring, Algorithm::EdDsa), &other_nonce)
                .is_err()
        );
        assert!(
            token
                .claims(&verifier(&ring, Algorithm::Rs256), &nonce)
                .is_err()
        );
        // A ring that never held the key cannot vouch for the token.
        let stranger = KeyRing::new(vec![generate(Algorithm::EdDsa).unwrap()]).unwrap();
        assert!(
            token
                .claims(&verifier(&stranger, Algorithm::EdDsa), &nonce)
                .is_err()
        );
    }

    #[test]
    fn the_newest_key_signs_and_older_tokens_still_verify() {
        let mut eddsa_old = generate(Algorithm::EdDsa).unwrap();
        eddsa_old.created_at -= 86_400;
        let eddsa_new = generate(Algorithm::EdDsa).unwrap();
        let mut rsa_old = rsa_keys()[0].clone();
        rsa_old.created_at = 1_000;
        let mut rsa_new = rsa_keys()[1].clone();
        rsa_new.created_at = 2_000;
        let user = user();
        let scopes = scopes(&["openid"]);
        let input = input(&user, &scopes);

        for (old, new) in [(rsa_old, rsa_new), (eddsa_old, eddsa_new)] {
            let algorithm = old.algorithm;
            let before = KeyRing::new(vec![old.clone()]).unwrap();
            let old_token = before.sign_id_token(algorithm, &input).unwrap();

            // Listed oldest first on purpose: the order of the store's rows must not matter.
            let after = KeyRing::new(vec![old.clone(), new.clone()]).unwrap();
            assert_eq!(after.signing_kid(algorithm), Some(new.kid.as_str()));
            let new_token = after.sign_id_token(algorithm, &input).unwrap();
            assert_eq!(kid_of(&after, algorithm, &new_token), new.kid);
            assert_eq!(
                verify(&after, algorithm, &new_token).subject().as_str(),
                "alice"
            );
            assert_eq!(kid_of(&after, algorithm, &old_token), old.kid);
            assert_eq!(
                verify(&after, algorithm, &old_token).subject().as_str(),
                "alice"
            );
        }
    }

    #[test]
    fn keys_of_one_age_are_ordered_by_kid() {
        let mut first = generate(Algorithm::EdDsa).unwrap();
        let mut second = generate(Algorithm::EdDsa).unwrap();
        first.created_at = 5;
        second.created_at = 5;
        let larger = first.kid.clone().max(second.kid.clone());
        let ring = KeyRing::new(vec![first.clone(), second.clone()]).unwrap();
        assert_eq!(ring.signing_kid(Algorithm::EdDsa), Some(larger.as_str()));
        let ring = KeyRing::new(vec![second, first]).unwrap();
        assert_eq!(ring.signing_kid(Algorithm::EdDsa), Some(larger.as_str()));
    }

    #[test]
    fn claims_follow_the_scopes() {
        let user = user();

        let bare = userinfo_claims(&user, &scopes(&["openid"]));
        assert_eq!(bare, serde_json::json!({ "sub": "alice" }));

        let profile = userinfo_claims(&user, &scopes(&["openid", "profile"]));
        assert_eq!(
            profile,
            serde_json::json!({
                "sub": "alice",
                "name": "Alice Liddell",
                "given_name": "Alice",
                "family_name": "Liddell",
                "preferred_username": "alice",
                "locale": "en-US",
                "groups": ["admins", "staff"],
            })
        );

        let email = userinfo_claims(&user, &scopes(&["openid", "email"]));
        assert_eq!(
            email,
            serde_json::json!({
                "sub": "alice",
                "email": "alice@example.com",
                "email_verified": true,
            })
        );

        let groups = userinfo_claims(&user, &scopes(&["openid", "groups"]));
        assert_eq!(
            groups,
            serde_json::json!({ "sub": "alice", "groups": ["admins", "staff"] })
        );

        let mut sparse = user.clone();
        sparse.given_name.clear();
        sparse.email.clear();
        let sparse = userinfo_claims(&sparse, &scopes(&["openid", "profile", "email"]));
        assert!(sparse.get("given_name").is_none());
        assert!(sparse.get("email").is_none());
        assert!(sparse.get("email_verified").is_none());
        assert_eq!(sparse["family_name"], "Liddell");
    }

    #[test]
    fn the_id_token_carries_the_userinfo_claims() {
        let ring = KeyRing::new(vec![generate(Algorithm::EdDsa).unwrap()]).unwrap();
        let user = user();
        for granted in [
            scopes(&["openid"]),
            scopes(&["openid", "profile"]),
            scopes(&["openid", "email"]),
            scopes(&["openid", "groups", "email"]),
        ] {
            let token = ring
                .sign_id_token(Algorithm::EdDsa, &input(&user, &granted))
                .unwrap();
            let claims = verify(&ring, Algorithm::EdDsa, &token);
            let in_token = serde_json::to_value(&claims).unwrap();
            let userinfo = userinfo_claims(&user, &granted);
            for (name, value) in userinfo.as_object().unwrap() {
                assert_eq!(&in_token[name], value, "{name} under {granted:?}");
            }
            for name in ["email", "email_verified", "name", "groups", "locale"] {
                assert_eq!(
                    in_token.get(name).is_some(),
                    userinfo.get(name).is_some(),
                    "{name} under {granted:?}"
                );
            }
        }

        let token = ring
            .sign_id_token(
                Algorithm::EdDsa,
                &input(&user, &scopes(&["openid", "profile"])),
            )
            .unwrap();
        let claims = verify(&ring, Algorithm::EdDsa, &token);
        assert!(claims.email().is_none());
        assert_eq!(
            claims.additional_claims().groups.as_deref(),
            Some(&["admins".to_owned(), "staff".to_owned()][..])
        );
        assert_eq!(claims.preferred_username().unwrap().as_str(), "alice");
        let token = ring
            .sign_id_token(Algorithm::EdDsa, &input(&user, &scopes(&["email"])))
            .unwrap();
        let claims = verify(&ring, Algorithm::EdDsa, &token);
        assert_eq!(claims.email().unwrap().as_str(), "alice@example.com");
        assert_eq!(claims.email_verified(), Some(true));
        assert!(claims.additional_claims().groups.is_none());
    }

    #[test]
    fn kids_hash_the_public_key_and_the_jwks_names_every_key() {
        use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey as _};
        use rsa::{pkcs1::DecodeRsaPrivateKey, pkcs8::EncodePublicKey as _};

        let eddsa = generate(Algorithm::EdDsa).unwrap();
        let rsa = rsa_keys()[0].clone();
        for key in [&eddsa, &rsa] {
            assert_eq!(key.kid.len(), 16, "{}", key.kid);
            assert!(
                key.kid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{}",
                key.kid
            );
            assert!((key.created_at - Utc::now().timestamp()).abs() < 600);
        }
        assert!(
            rsa.private_pem
                .expose()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----")
        );
        assert!(
            eddsa
                .private_pem
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );

        let public = ed25519_dalek::SigningKey::from_pkcs8_pem(eddsa.private_pem.expose())
            .unwrap()
            .verifying_key()
            .to_public_key_der()
            .unwrap();
        assert_eq!(eddsa.kid, key_id(public.as_bytes()));
        let public = rsa::RsaPrivateKey::from_pkcs1_pem(rsa.private_pem.expose())
            .unwrap()
            .to_public_key()
            .to_public_key_der()
            .unwrap();
        assert_eq!(rsa.kid, key_id(public.as_bytes()));

        let ring = KeyRing::new(vec![eddsa.clone(), rsa.clone()]).unwrap();
        let keys = ring.jwks().keys().clone();
        assert_eq!(keys.len(), 2);
        for (key, jwk) in [(&eddsa, "EdDSA"), (&rsa, "RS256")] {
            let public = keys
                .iter()
                .find(|public| public.key_id().map(|kid| kid.as_str()) == Some(&key.kid))
                .unwrap();
            assert_eq!(public.key_use(), Some(&CoreJsonWebKeyUse::Signature));
            let json = serde_json::to_value(public).unwrap();
            assert_eq!(json["alg"], jwk);
            assert_eq!(json["use"], "sig");
            // Public members only.
            assert!(json.get("d").is_none() && json.get("p").is_none());
        }
    }

    #[test]
    fn debug_output_carries_no_key_material() {
        let eddsa = generate(Algorithm::EdDsa).unwrap();
        let rsa = rsa_keys()[0].clone();
        let ring = KeyRing::new(vec![eddsa.clone(), rsa.clone()]).unwrap();
        let user = user();
        let scopes = scopes(&["openid"]);
        let printed = format!("{eddsa:?} {rsa:?} {ring:?} {:?}", input(&user, &scopes));
        assert!(!printed.contains("PRIVATE KEY"), "{printed}");
        for key in [&eddsa, &rsa] {
            let body = key.private_pem.expose().lines().nth(1).unwrap();
            assert!(!printed.contains(body), "{printed}");
            assert!(printed.contains(&key.kid), "{printed}");
        }
        assert!(!printed.contains("access-token-1"), "{printed}");
        assert!(!printed.contains("code-1"), "{printed}");
    }

    #[test]
    fn bad_keys_and_names_are_errors_that_quote_no_key() {
        assert_eq!("RS256".parse::<Algorithm>().unwrap(), Algorithm::Rs256);
        assert_eq!("EdDSA".parse::<Algorithm>().unwrap(), Algorithm::EdDsa);
        for algorithm in Algorithm::ALL {
            assert_eq!(algorithm.as_str().parse::<Algorithm>().unwrap(), algorithm);
        }
        assert!(matches!(
            "HS256".parse::<Algorithm>(),
            Err(KeyError::UnknownAlgorithm(name)) if name == "HS256"
        ));

        let eddsa = generate(Algorithm::EdDsa).unwrap();
        let mut mislabelled = eddsa.clone();
        mislabelled.algorithm = Algorithm::Rs256;
        let error = KeyRing::new(vec![mislabelled]).unwrap_err();
        assert!(matches!(error, KeyError::InvalidKey { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains(&eddsa.kid), "{message}");
        let body = eddsa.private_pem.expose().lines().nth(1).unwrap();
        assert!(!message.contains(body), "{message}");

        let garbage = SigningKey {
            kid: "garbage".into(),
            algorithm: Algorithm::EdDsa,
            private_pem: Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n".into()),
            created_at: 0,
        };
        assert!(matches!(
            KeyRing::new(vec![garbage]),
            Err(KeyError::InvalidKey { .. })
        ));

        let mut twin = generate(Algorithm::EdDsa).unwrap();
        twin.kid = eddsa.kid.clone();
        assert!(matches!(
            KeyRing::new(vec![eddsa.clone(), twin]),
            Err(KeyError::DuplicateKid(kid)) if kid == eddsa.kid
        ));

        let ring = KeyRing::new(vec![eddsa]).unwrap();
        assert_eq!(ring.missing(), vec![Algorithm::Rs256]);
        assert_eq!(KeyRing::new(Vec::new()).unwrap().missing(), Algorithm::ALL);
        let user = user();
        let scopes = scopes(&["openid"]);
        assert!(matches!(
            ring.sign_id_token(Algorithm::Rs256, &input(&user, &scopes)),
            Err(KeyError::NoKey(Algorithm::Rs256))
        ));
        let mut bad_issuer = input(&user, &scopes);
        bad_issuer.issuer = "not a url";
        assert!(matches!(
            ring.sign_id_token(Algorithm::EdDsa, &bad_issuer),
            Err(KeyError::InvalidClaim("issuer"))
        ));
    }

    #[test]
    fn the_ring_is_shareable_across_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<KeyRing>();
    }
}
