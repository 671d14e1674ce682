//! Integration tests: one binary, one module per behaviour. Each test names the DESIGN.md
//! behaviour it covers (S…, B…, R…).

#![allow(
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
mod autoflush;
mod batched;
mod bulk;
mod by_filter;
mod columns;
mod concurrency;
mod core_insert;
mod crash;
mod ddl;
mod derive_manifest;
mod dirty_tracking;
mod edges;
mod errors;
mod expiry;
mod faults;
mod flush;
mod hostile_input;
mod identity_map;
mod keys;
mod mapping;
mod mysql;
mod pool;
mod postgres;
mod properties;
mod query;
mod relations;
mod reliability;
mod rollback;
mod schema;
mod streaming;
mod threads;
mod types;
mod versioning;
