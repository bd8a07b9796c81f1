//! Integration tests of the oidc service against a real slapd, with `openidconnect` as the
//! relying party.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod directory;
mod flows;
mod proxy_auth;
mod refusals;
mod support;
