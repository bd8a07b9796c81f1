//! Integration tests of the mail service against a real Postfix + Dovecot (and slapd for the
//! directory's users), with lettre and async-imap as the apps' clients.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod debug_commands;
mod email;
mod flows;
mod header_from;
mod milter;
mod refusals;
mod support;
