//! Integration tests: one binary, one module per behaviour. Each test names the DESIGN.md
//! behaviour it covers (S…, B…, R…).

mod core_insert;
mod ddl;
mod errors;
mod hostile_input;
mod mapping;
