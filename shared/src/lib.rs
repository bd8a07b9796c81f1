//! What every service of the fleet shares: the gRPC contract compiled from `proto/`, the server
//! kit (health, reflection, bearer auth, JSON logs, graceful shutdown), a service's start in one
//! place ([`service::run`]), configuration from the environment, the [`catalog`] of services
//! and addons, the addon services' one error type ([`error::AddonError`]), per-key locks
//! ([`keyed_lock`]), a service's SQLite-or-PostgreSQL state store (feature `state`), what talking to slapd
//! needs (feature `ldap`), app ids and the names and passwords derived from them, and (feature
//! `testkit`) real backends started on loopback for tests and benchmarks.

pub mod addon;
pub mod app_id;
pub mod auth;
#[cfg(feature = "backend-store")]
pub mod backend_store;
pub mod catalog;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod env_bundle;
pub mod error;
pub mod keyed_lock;
#[cfg(feature = "ldap")]
pub mod ldap;
pub mod listener;
pub mod metrics;
pub mod proto;
pub mod secret;
pub mod server;
pub mod service;
pub mod shutdown;
#[cfg(feature = "state")]
pub mod state;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use app_id::AppId;
pub use secret::Secret;
