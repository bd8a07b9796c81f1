//! Integration tests of the turn service against a real coturn, with coturn's own client
//! (`turnutils_uclient`) as the app.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod flows;
mod rust_client;
mod support;
