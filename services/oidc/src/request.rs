//! Provision requests as the domain sees them, built by a conversion that names every field:
//! the app's client (`oidc`) or its wall (`proxyAuth`), with every URI checked before anything
//! is written.

use fleet_shared::{
    AppId,
    addon::{InvalidField, foreign_options, parse_app_id},
    catalog,
    domain::is_domain_name,
    error::AddonError,
    proto::addon::{
        OidcOptions, ProvisionRequest, ProxyAuthOptions, TokenSignatureAlgorithm,
        provision_request::Options,
    },
};

use crate::{keys::Algorithm, store::Wall};

/// Schemes a login redirect URI may not have: they would run code or reach files in the browser,
/// or (http, https) leave the app's own origin.
const REFUSED_SCHEMES: [&str; 6] = ["javascript", "data", "vbscript", "file", "http", "https"];

/// A validated Provision call.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    pub app: AppId,
    /// The app's primary domain (a host name, optionally with a port).
    pub app_domain: String,
    pub generation: u32,
    /// What to provision.
    pub kind: ClientKind,
}

/// The client Provision writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKind {
    /// The app's own OpenID client.
    Oidc {
        /// Paths on the app's origin (`/auth/callback`) and URIs with a scheme of their own
        /// (`app.immich:/`), as the manifest lists them.
        login_redirect_uris: Vec<String>,
        /// A path on the app's origin, or empty (the origin's `/`).
        logout_redirect_uri: String,
        algorithm: Algorithm,
    },
    /// The app's proxyAuth wall.
    ProxyAuth(Wall),
}

impl ClientKind {
    /// The addon's manifest name.
    pub fn addon(&self) -> &'static str {
        match self {
            Self::Oidc { .. } => "oidc",
            Self::ProxyAuth(_) => "proxyAuth",
        }
    }
}

impl TryFrom<ProvisionRequest> for ProvisionSpec {
    type Error = AddonError;

    fn try_from(request: ProvisionRequest) -> Result<Self, AddonError> {
        let ProvisionRequest {
            app_id,
            app_domain,
            credential_generation,
            options,
        } = request;
        let app = parse_app_id(&app_id)?;
        check_domain(&app_domain)?;
        // Host names compare without case; the wall finds the app by the host a proxy names.
        let app_domain = app_domain.to_ascii_lowercase();
        let kind = match options {
            None => oidc(OidcOptions::default())?,
            Some(Options::Oidc(options)) => oidc(options)?,
            Some(Options::ProxyAuth(options)) => proxy_auth(options)?,
            Some(other) => {
                return Err(foreign_options(catalog::OIDC, &other).into());
            }
        };
        Ok(Self {
            app,
            app_domain,
            generation: credential_generation,
            kind,
        })
    }
}

fn oidc(options: OidcOptions) -> Result<ClientKind, AddonError> {
    let OidcOptions {
        login_redirect_uris,
        logout_redirect_uri,
        token_signature_algorithm,
    } = options;
    for (index, uri) in login_redirect_uris.iter().enumerate() {
        check_redirect(uri).map_err(|reason| {
            InvalidField::new(format!("options.oidc.login_redirect_uris[{index}]"), reason)
        })?;
    }
    if !logout_redirect_uri.is_empty() {
        check_path(&logout_redirect_uri)
            .map_err(|reason| InvalidField::new("options.oidc.logout_redirect_uri", reason))?;
    }
    let algorithm = match TokenSignatureAlgorithm::try_from(token_signature_algorithm) {
        Ok(TokenSignatureAlgorithm::Unspecified | TokenSignatureAlgorithm::Rs256) => {
            Algorithm::Rs256
        }
        Ok(TokenSignatureAlgorithm::Eddsa) => Algorithm::EdDsa,
        Err(_) => {
            return Err(InvalidField::new(
                "options.oidc.token_signature_algorithm",
                format!("unknown algorithm {token_signature_algorithm}; use RS256 or EdDSA"),
            )
            .into());
        }
    };
    Ok(ClientKind::Oidc {
        login_redirect_uris,
        logout_redirect_uri,
        algorithm,
    })
}

fn proxy_auth(options: ProxyAuthOptions) -> Result<ClientKind, AddonError> {
    let ProxyAuthOptions {
        path,
        basic_auth,
        supports_bearer_auth,
    } = options;
    if !path.is_empty() {
        check_path(path.strip_prefix('!').unwrap_or(&path))
            .map_err(|reason| InvalidField::new("options.proxy_auth.path", reason))?;
    }
    Ok(ClientKind::ProxyAuth(Wall {
        path,
        basic_auth,
        supports_bearer_auth,
    }))
}

/// A host name (letters, digits, `-`, `.`), optionally with `:port`.
fn check_domain(domain: &str) -> Result<(), InvalidField> {
    let field = |reason: &str| InvalidField::new("app_domain", reason);
    if domain.is_empty() {
        return Err(field(
            "is required: the app's domain (e.g. chat.example.com)",
        ));
    }
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let host_ok = is_domain_name(host);
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(field(
            "must be a domain name such as chat.example.com (optionally with :port)",
        ))
    }
}

/// A login redirect: a path on the app's origin, or a URI with a scheme of its own.
fn check_redirect(uri: &str) -> Result<(), String> {
    if uri.starts_with('/') {
        return check_path(uri);
    }
    let parsed =
        url::Url::parse(uri).map_err(|e| format!("{uri:?} is neither a path nor a URI: {e}"))?;
    if REFUSED_SCHEMES.contains(&parsed.scheme()) {
        return Err(format!(
            "{uri:?}: a {}: URI is not allowed; give a path on the app's origin or a URI with \
             the app's own scheme (app.example:/callback)",
            parsed.scheme()
        ));
    }
    if parsed.fragment().is_some() || uri.chars().any(char::is_whitespace) {
        return Err(format!("{uri:?} must not contain a fragment or whitespace"));
    }
    Ok(())
}

/// A URL path: starts with one `/`, no fragment, whitespace, control characters or `..`.
fn check_path(path: &str) -> Result<(), String> {
    let valid = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.contains('#')
        && !path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        && !path.split(['/', '?']).any(|segment| segment == "..");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{path:?} must be a URL path starting with a single \"/\" (no \"..\", \"#\", \
             backslashes or whitespace)"
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(options: Option<Options>) -> ProvisionRequest {
        ProvisionRequest {
            app_id: "app1".to_owned(),
            app_domain: "chat.example.com".to_owned(),
            credential_generation: 0,
            options,
        }
    }

    fn oidc_request(uris: &[&str], logout: &str) -> ProvisionRequest {
        request(Some(Options::Oidc(OidcOptions {
            login_redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            logout_redirect_uri: logout.to_owned(),
            token_signature_algorithm: TokenSignatureAlgorithm::Eddsa.into(),
        })))
    }

    #[test]
    fn paths_and_custom_schemes_are_kept() {
        let spec =
            ProvisionSpec::try_from(oidc_request(&["/auth/callback", "app.immich:/"], "/home"))
                .unwrap();
        assert_eq!(
            spec.kind,
            ClientKind::Oidc {
                login_redirect_uris: vec!["/auth/callback".to_owned(), "app.immich:/".to_owned()],
                logout_redirect_uri: "/home".to_owned(),
                algorithm: Algorithm::EdDsa,
            }
        );
        let defaults = ProvisionSpec::try_from(request(None)).unwrap();
        assert!(matches!(
            defaults.kind,
            ClientKind::Oidc {
                algorithm: Algorithm::Rs256,
                ..
            }
        ));
    }

    #[test]
    fn hostile_uris_are_invalid_with_the_field() {
        for (uris, logout, field) in [
            (&["javascript:alert(1)"][..], "", "login_redirect_uris[0]"),
            (
                &["/ok", "https://evil.example/cb"][..],
                "",
                "login_redirect_uris[1]",
            ),
            (&["//evil.example/cb"][..], "", "login_redirect_uris[0]"),
            (&["/a/../b"][..], "", "login_redirect_uris[0]"),
            (&["callback"][..], "", "login_redirect_uris[0]"),
            (&["/cb#x"][..], "", "login_redirect_uris[0]"),
            (&["/ok"][..], "home", "logout_redirect_uri"),
            (&["/ok"][..], "/\\evil", "logout_redirect_uri"),
        ] {
            let error = ProvisionSpec::try_from(oidc_request(uris, logout)).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, AddonError::InvalidArgument { .. }),
                "{message}"
            );
            assert!(message.contains(field), "{uris:?}: {message}");
        }
    }

    #[test]
    fn domains_and_walls_are_checked() {
        for bad in [
            "",
            "a b",
            "x.com/path",
            "evil.com#",
            "x:0",
            "-x.com",
            "a..b",
        ] {
            let mut request = request(None);
            request.app_domain = bad.to_owned();
            let message = ProvisionSpec::try_from(request).unwrap_err().to_string();
            assert!(message.starts_with("app_domain"), "{bad:?}: {message}");
        }
        let wall = |path: &str| {
            ProvisionSpec::try_from(request(Some(Options::ProxyAuth(ProxyAuthOptions {
                path: path.to_owned(),
                basic_auth: true,
                supports_bearer_auth: false,
            }))))
        };
        assert!(matches!(
            wall("!/webhooks").unwrap().kind,
            ClientKind::ProxyAuth(_)
        ));
        assert!(wall("").is_ok());
        assert!(
            wall("admin")
                .unwrap_err()
                .to_string()
                .contains("options.proxy_auth.path")
        );
        assert!(wall("!admin").is_err());
    }
}
