//! Integration tests of the coordinator with the real postgresql and mysql services (served
//! in-process on their own ports, over gRPC) on real PostgreSQL and MariaDB, and the
//! coordinator itself in-process or as its binary (restart, kill -9).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod install;
mod limits;
mod paging;
mod proxy_auth;
mod recovery;
mod update;
mod validation;
