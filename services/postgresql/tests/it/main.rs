//! Integration tests of the postgresql service against a real PostgreSQL (started by the test
//! kit) and real clients (sqlx as the app, tonic, the `buf` and `grpcurl` command lines).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod attacks;
mod binary;
mod conformance;
mod failures;
mod isolation;
mod lifecycle;
mod options;
