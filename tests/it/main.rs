//! The integration tests, one module per concern, in one binary: the shared fixture
//! ([`common::fixture`]) is generated and trained once per test run, and the crate is linked
//! once.

mod bad_input;
mod common;
mod fetch;
mod forest;
mod generated_bytes;
mod history;
mod incremental;
mod pipeline;
mod query;
mod serve;
mod submit;
mod validate;
mod world;
