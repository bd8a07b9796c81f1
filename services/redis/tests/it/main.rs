//! Integration tests of the redis service with real redis-server instances and a real client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod attacks;
mod conformance;
mod instances;
mod lifecycle;
