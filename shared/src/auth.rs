//! Bearer-token authentication of callers, checked by one interceptor on every addon call.

use std::{fs, path::Path, sync::Arc};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
};

/// Shortest token accepted, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// The token callers present as `authorization: Bearer <token>`. Only its SHA-256 is kept, so
/// comparisons take the same time whatever the input's length or content.
#[derive(Clone)]
pub struct ApiToken {
    digest: Arc<[u8; 32]>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

/// The token file is missing, unreadable or holds too short a token.
#[derive(Debug, thiserror::Error)]
pub enum ApiTokenError {
    #[error("cannot read the API token file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the API token in {path} must be at least {MIN_TOKEN_LEN} printable characters")]
    TooShort { path: String },
}

impl ApiToken {
    /// Reads the token from `path`; surrounding whitespace is ignored.
    pub fn from_file(path: &Path) -> Result<Self, ApiTokenError> {
        let shown = path.display().to_string();
        let raw = fs::read_to_string(path).map_err(|error| ApiTokenError::Unreadable {
            path: shown.clone(),
            reason: error.to_string(),
        })?;
        Self::new(raw.trim()).ok_or(ApiTokenError::TooShort { path: shown })
    }

    /// A token from its text; `None` if shorter than [`MIN_TOKEN_LEN`] or not printable ASCII
    /// (it has to fit an HTTP header).
    pub fn new(token: &str) -> Option<Self> {
        let printable = token.bytes().all(|b| b.is_ascii_graphic());
        (token.len() >= MIN_TOKEN_LEN && printable).then(|| Self {
            digest: Arc::new(Sha256::digest(token.as_bytes()).into()),
        })
    }

    /// Whether `candidate` is the token, in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        digest.ct_eq(&*self.digest).into()
    }
}

/// Interceptor that lets a call through only with the right bearer token.
#[derive(Clone, Debug)]
pub struct BearerAuth {
    token: ApiToken,
}

impl BearerAuth {
    /// Checks calls against `token`.
    pub fn new(token: ApiToken) -> Self {
        Self { token }
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(header) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "missing bearer token: send the header `authorization: Bearer <token>`",
            ));
        };
        let presented = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(token) if self.token.matches(token) => Ok(request),
            _ => Err(Status::unauthenticated("invalid bearer token")),
        }
    }
}

/// Client-side interceptor that sends `authorization: Bearer <token>` (when it has a token).
#[derive(Clone)]
pub struct SendBearer(Option<MetadataValue<Ascii>>);

impl SendBearer {
    /// Sends `token`; `None` sends nothing. Fails if the token cannot be a header value.
    pub fn new(token: Option<&str>) -> Result<Self, InvalidTokenText> {
        token
            .map(|t| format!("Bearer {t}").parse().map_err(|_| InvalidTokenText))
            .transpose()
            .map(Self)
    }
}

impl std::fmt::Debug for SendBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendBearer(***)")
    }
}

/// A token with characters an HTTP header cannot carry.
#[derive(Debug, thiserror::Error)]
#[error("the token contains characters an HTTP header cannot carry")]
pub struct InvalidTokenText;

impl Interceptor for SendBearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, metadata::MetadataValue};

    use super::*;

    fn call(header: Option<&str>) -> Result<(), Code> {
        let token = ApiToken::new("0123456789abcdef-token").ok_or(Code::Internal)?;
        let mut request = Request::new(());
        if let Some(value) = header {
            let value: MetadataValue<_> = value.parse().map_err(|_| Code::Internal)?;
            request.metadata_mut().insert("authorization", value);
        }
        BearerAuth::new(token)
            .call(request)
            .map(|_| ())
            .map_err(|status| status.code())
    }

    #[test]
    fn right_token_passes() {
        assert_eq!(call(Some("Bearer 0123456789abcdef-token")), Ok(()));
    }

    #[test]
    fn missing_or_wrong_token_is_unauthenticated() {
        for header in [
            None,
            Some("Bearer wrong"),
            Some("Bearer 0123456789abcdef-toke"),
            Some("0123456789abcdef-token"),
            Some("Basic 0123456789abcdef-token"),
        ] {
            assert_eq!(call(header), Err(Code::Unauthenticated), "{header:?}");
        }
    }

    #[test]
    fn short_or_unprintable_tokens_are_refused() {
        assert!(ApiToken::new("short").is_none());
        assert!(ApiToken::new("0123456789abcdef with space").is_none());
    }
}
