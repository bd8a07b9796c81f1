//! Integration tests of the mysql service against a real MariaDB (started by the test kit;
//! it stands in for MySQL 8) and real clients (sqlx as the app, tonic, grpcurl).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod binary;
mod conformance;
mod failures;
mod isolation;
mod lifecycle;
