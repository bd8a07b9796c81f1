//! Integration tests of the mongodb service with the real `mongodb` driver, against SecantusDB
//! (started by the test kit) or a real mongod named by `MONGODB_TEST_ADMIN_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod attacks;
mod conformance;
mod process;
mod support;
mod tests;
