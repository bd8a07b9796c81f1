//! ldap, oidc and proxyAuth: the directory's bind account (ldapwhoami, ldapsearch), the OpenID
//! provider (curl of the discovery document, the app's client at the token endpoint) and the
//! login wall (the provider's check that the reverse proxy calls).

use std::path::Path;

use serde_json::Value;

use crate::{
    clients::{self, Bundle},
    mask::{ensure, fail},
};

/// The path the manifest's proxyAuth protects.
pub const PROXY_AUTH_PATH: &str = "/admin";
/// The manifest's oidc loginRedirectUri.
pub const LOGIN_REDIRECT: &str = "/callback";

/// The bind account, the OIDC client and the login wall work.
pub fn works(env: &Bundle, work: &Path, provider: &str, domain: &str) {
    let whoami = clients::ldapwhoami(env, work);
    let expected = format!("dn:{}\n", env.var("LDAP_BIND_DN"));
    ensure(whoami.ok && whoami.out == expected, || {
        format!("ldapwhoami with CLOUDRON_LDAP_BIND_DN and _PASSWORD: {whoami:?}")
    });
    let users = clients::ldapsearch_users(env, work);
    ensure(
        users.ok
            && users
                .out
                .contains(&format!("dn: {}", env.var("LDAP_USERS_BASE_DN"))),
        || format!("ldapsearch of CLOUDRON_LDAP_USERS_BASE_DN as the app: {users:?}"),
    );

    let discovery = clients::curl_get(env.var("OIDC_DISCOVERY_URL"));
    ensure(discovery.ok, || {
        format!("curl of CLOUDRON_OIDC_DISCOVERY_URL: {discovery:?}")
    });
    let document: Value = serde_json::from_str(&discovery.out).unwrap_or_else(|e| {
        fail(&format!(
            "the discovery document is no JSON ({e}): {discovery:?}"
        ))
    });
    for (field, variable) in [
        ("issuer", "OIDC_ISSUER"),
        ("authorization_endpoint", "OIDC_AUTH_ENDPOINT"),
        ("token_endpoint", "OIDC_TOKEN_ENDPOINT"),
        ("jwks_uri", "OIDC_KEYS_ENDPOINT"),
        ("userinfo_endpoint", "OIDC_PROFILE_ENDPOINT"),
    ] {
        ensure(document[field].as_str() == Some(env.var(variable)), || {
            format!(
                "discovery {field} is {}, CLOUDRON_{variable} {}",
                document[field],
                env.var(variable)
            )
        });
    }
    let redirect = format!("http://{domain}{LOGIN_REDIRECT}");
    let error = clients::oidc_token_error(env, &redirect);
    ensure(error == "invalid_grant", || {
        format!(
            "the app's OIDC client must authenticate (the made-up code is then invalid_grant): {error}"
        )
    });

    let wall = clients::proxy_auth_status(provider, domain, PROXY_AUTH_PATH);
    ensure(wall == 401, || {
        format!("proxyAuth must send {PROXY_AUTH_PATH} to the login (401), got {wall}")
    });
    let open = clients::proxy_auth_status(provider, domain, "/");
    ensure(open == 204, || {
        format!("proxyAuth protects only {PROXY_AUTH_PATH}: / must pass (204), got {open}")
    });
}

/// The bind account, the client and the wall are gone.
pub fn gone(env: &Bundle, work: &Path, provider: &str, domain: &str) {
    let whoami = clients::ldapwhoami(env, work);
    ensure(
        !whoami.ok && whoami.out.contains("Invalid credentials (49)"),
        || {
            format!(
                "ldapwhoami with the uninstalled app's bind account must be refused: {whoami:?}"
            )
        },
    );
    let redirect = format!("http://{domain}{LOGIN_REDIRECT}");
    let error = clients::oidc_token_error(env, &redirect);
    ensure(error == "invalid_client", || {
        format!("the uninstalled app's OIDC client must be unknown (invalid_client): {error}")
    });
    let wall = clients::proxy_auth_status(provider, domain, PROXY_AUTH_PATH);
    ensure(wall == 403, || {
        format!("no wall is left for {domain}: the check must answer 403, got {wall}")
    });
}
