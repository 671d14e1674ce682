//! `#[derive(Entity)]`: maps a struct with named fields to a table.
//!
//! # Container attributes
//!
//! | attribute | meaning | default |
//! | --- | --- | --- |
//! | `#[orm(table = "name")]` | the table name | the struct name in snake_case |
//!
//! # Field attributes
//!
//! | attribute | meaning | default |
//! | --- | --- | --- |
//! | `#[orm(primary_key)]` | this field is the primary key (exactly one field must be) | — |
//! | `#[orm(auto_increment)]` | the database generates the key; the field is `Option<i64>` or `Option<i32>` and stays `None` until insert | off |
//! | `#[orm(uuid_v7)]` | the ORM generates a UUIDv7 key on insert when the field (`Uuid` or `Option<Uuid>`) is nil or `None` | off |
//! | `#[orm(column = "name")]` | the column name | the field name |
//! | `#[orm(unique)]` | a `UNIQUE` constraint | off |
//! | `#[orm(index)]` | a non-unique index | off |
//! | `#[orm(version)]` | an `i64`/`i32` optimistic-concurrency counter checked and bumped by every update and delete | off |
//!
//! Field types: `i32`, `i64`, `f64`, `bool`, `String`, `Vec<u8>`, `uuid::Uuid`, `Option` of
//! each (a nullable column), and any type implementing `orm_core::Field`.
//!
//! The derive also generates one typed column constant per field, named after the field in
//! upper case (`Customer::NAME`), for filters and bulk mappings.
//!
//! ```
//! use orm_core::Entity;
//!
//! #[derive(Entity)]
//! #[orm(table = "customer")]
//! struct Customer {
//!     #[orm(primary_key, auto_increment)]
//!     id: Option<i64>,
//!     #[orm(unique)]
//!     email: String,
//!     #[orm(column = "descr")]
//!     description: Option<String>,
//! }
//!
//! assert_eq!(Customer::META.columns[2].name, "descr");
//! assert_eq!(Customer::DESCRIPTION.name(), "descr");
//! ```

mod entity;

use proc_macro::TokenStream;

/// Implements `orm_core::Entity` for a struct; see the [crate documentation](crate) for the
/// attributes.
#[proc_macro_derive(Entity, attributes(orm))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    entity::derive(input.into()).into()
}
