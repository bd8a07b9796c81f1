//! Integration tests of the oidc service against a real slapd, with `openidconnect` as the
//! relying party.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod directory;
mod flows;
mod support;
