//! What the browser-facing endpoints share: cookies with every protective attribute, the login
//! form's CSRF token, the HTML pages (every value escaped), the client's source address and
//! random values.

use std::net::{IpAddr, SocketAddr};

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use fleet_shared::error::AddonError;

use super::Provider;

/// The provider's own login session (on the issuer's origin).
pub const SESSION_COOKIE: &str = "fleet_oidc_session";
/// The login form's CSRF cookie (on the issuer's origin).
pub const CSRF_COOKIE: &str = "fleet_oidc_csrf";
/// A wall's session (on the app's domain).
pub const WALL_COOKIE: &str = "fleet_wall_session";
/// A wall's login in progress: its `state` and where to return (on the app's domain).
pub const WALL_STATE_COOKIE: &str = "fleet_wall_state";

/// 32 random bytes, URL-safe: codes, tokens, sessions, states.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The value of the cookie `name` in the request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Secure` when `secure`, on `path`, for
/// `max_age_secs` (0 deletes it).
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    secure: bool,
    max_age_secs: i64,
) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The CSRF token the login form carries for the browser holding CSRF cookie `cookie`:
/// an HMAC of it, so a cookie planted by someone else (a sibling subdomain) is useless
/// without the key.
pub fn csrf_token(provider: &Provider, cookie: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(provider.csrf_key.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(cookie.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `token` is the CSRF token of the request's CSRF cookie.
pub fn csrf_valid(provider: &Provider, headers: &HeaderMap, token: &str) -> bool {
    let Some(cookie) = cookie(headers, CSRF_COOKIE) else {
        return false;
    };
    csrf_token(provider, &cookie)
        .as_bytes()
        .ct_eq(token.as_bytes())
        .into()
}

/// The client's address: the peer, or (when the peer is a trusted proxy) the last address
/// its `X-Forwarded-For` added.
pub fn source(provider: &Provider, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let peer = peer.ip();
    if !provider.trusted_proxies.contains(&peer) {
        return peer;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

/// `text` with HTML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A page: `title`, and `body` (HTML the caller escaped), never cached or framed.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:sans-serif;max-width:24rem;margin:4rem auto;\
         padding:0 1rem}}label,input,button{{display:block;width:100%;margin:.4rem 0}}\
         .error{{color:#b00}}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    let mut response = (status, Html(html)).into_response();
    protect(response.headers_mut());
    response
}

/// An error page for a request that cannot be answered by redirecting (unknown client,
/// unregistered redirect URI, forged form).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Cannot sign in",
        &format!("<p class=\"error\">{}</p>", escape(message)),
    )
}

/// The page shown when the directory or the store cannot be reached.
pub fn unavailable(error: &AddonError) -> Response {
    tracing::warn!(error = %error, "sign-in could not be completed");
    let status = if error.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    error_page(
        status,
        "The sign-in service cannot reach its directory or store right now. Try again shortly.",
    )
}

/// Headers every response of the provider's pages and JSON carries.
pub fn protect(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// `303 See Other` to `location`, with `cookies` set.
pub fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    protect(headers);
    response
}

/// `uri` with `params` added to its query.
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut url = uri.to_owned();
    let mut separator = if uri.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        url.push(separator);
        url.push_str(name);
        url.push('=');
        url.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
        separator = '&';
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<script>"x"&'y'</script>"#),
            "&lt;script&gt;&quot;x&quot;&amp;&#x27;y&#x27;&lt;/script&gt;"
        );
    }

    #[test]
    fn cookies_carry_every_attribute() {
        let value = set_cookie("n", "v", "/", true, 60);
        let text = value.to_str().unwrap_or_default();
        for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=60"] {
            assert!(text.contains(attribute), "{text}");
        }
        let plain = set_cookie("n", "v", "/", false, 60);
        assert!(!plain.to_str().unwrap_or_default().contains("Secure"));
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            with_query("app.immich:/cb", &[("code", "a b"), ("state", "x&y")]),
            "app.immich:/cb?code=a+b&state=x%26y"
        );
        assert_eq!(
            with_query("https://a/cb?x=1", &[("code", "c")]),
            "https://a/cb?x=1&code=c"
        );
    }
}
