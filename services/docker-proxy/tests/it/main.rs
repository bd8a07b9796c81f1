//! Integration tests of the docker-proxy service against a real Docker Engine, with the real
//! `docker` CLI and a Rust client (bollard) as the app.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod escapes;
mod flows;
mod metrics;
mod support;
