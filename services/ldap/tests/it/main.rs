//! Integration tests of the ldap service against a real slapd (started by the test kit with
//! `deploy/ldap/cluster.sh`, as `make up` does), with ldap3 as the app.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod addon;
mod collisions;
mod conformance;
mod directory;
mod process;
mod support;
