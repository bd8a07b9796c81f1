//! Integration tests of the coordinator with the real postgresql, mysql and oidc services
//! (served in-process on their own ports, over gRPC) on real PostgreSQL, MariaDB and slapd, and
//! the coordinator itself in-process or as its binary (restart, kill -9).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod coordinator_replicas;
mod docker;
mod install;
mod limits;
mod mail;
mod oidc;
mod paging;
mod proxy_auth;
mod recovery;
mod replicas;
mod turn;
mod update;
mod validation;
