//! `#[derive(Entity)]`: maps a struct with named fields to a table.
//!
//! # Container attributes
//!
//! | attribute | meaning | default |
//! | --- | --- | --- |
//! | `#[orm(table = "name")]` | the table name | the struct name in snake_case |
//! | `#[orm(has_many(name = Child::REL, cascade = "…"))]` | a one-to-many relation through the child's foreign key `REL`; cascades `save-update`, `delete`, `delete-orphan`, `all`, `none` | `save-update` |
//! | `#[orm(has_one(name = Child::REL, cascade = "…"))]` | a one-to-one relation (make the foreign key `unique`) | `save-update` |
//! | `#[orm(many_to_many(name = Target, via = (Assoc::TO_SELF, Assoc::TO_TARGET)))]` | a many-to-many relation through an association entity | — |
//! | `#[orm(crate = "path")]` | where `orm_session` (or `orm_core`) is, for a renamed dependency | found in the crate's `Cargo.toml` |
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
//! | `#[orm(references = Entity)]` | a foreign key to `Entity`'s primary key (same type); makes the many-to-one constant, named after the field without `_id` | — |
//! | `#[orm(on_delete = "cascade")]` | the foreign key's `ON DELETE`: `"no action"`, `"restrict"`, `"cascade"`, `"set null"` | `"no action"` |
//! | `#[orm(relation = "name")]` | the many-to-one relation's name | the field name without `_id` |
//!
//! Field types: `i16`, `i32`, `i64`, `f32`, `f64`, `bool`, `String`, `Vec<u8>`, `uuid::Uuid`,
//! `Option` of each (a nullable column), and any type implementing `orm_core::Field`.
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

mod deps;
mod entity;
mod field_enum;
mod manifest;
mod row;

use proc_macro::TokenStream;

/// Implements `orm_core::Entity` for a struct; see the [crate documentation](crate) for the
/// attributes.
#[proc_macro_derive(Entity, attributes(orm))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    entity::derive(input.into()).into()
}

/// Implements `orm_core::Field` for an enum of unit variants, stored as text (the variant's
/// name, or `#[orm(rename = "…")]`; the default) or as an integer (`#[orm(repr = "i32")]` or
/// `"i64"`: the variant's discriminant). A value in the database that names no variant is a
/// conversion error naming the enum and the values it takes.
///
/// ```
/// use orm_core::{Entity, Field, FieldEnum, ValueRef};
///
/// #[derive(FieldEnum, Debug, Clone, Copy, PartialEq)]
/// enum Status { Active, #[orm(rename = "on_hold")] OnHold, Closed }
///
/// #[derive(FieldEnum, Debug, Clone, Copy, PartialEq)]
/// #[orm(repr = "i32")]
/// enum Priority { Low = 1, High = 10 }
///
/// #[derive(Entity)]
/// struct Ticket { #[orm(primary_key)] id: i64, status: Status, priority: Option<Priority> }
///
/// assert_eq!(Status::OnHold.to_sql(), ValueRef::Text("on_hold".into()));
/// assert_eq!(Priority::from_sql(ValueRef::I32(10)), Ok(Priority::High));
/// assert!(Status::from_sql(ValueRef::Text("gone".into())).is_err());
/// let _open = Ticket::STATUS.ne(Status::Closed);
/// ```
#[proc_macro_derive(FieldEnum, attributes(orm))]
pub fn derive_field_enum(input: TokenStream) -> TokenStream {
    field_enum::derive(input.into()).into()
}

/// Implements `orm_core::RawRow` for a struct of one to eight fields read by position (field
/// `i` from column `i`, through its `Field` type), and `From` of the tuple of its fields'
/// types: a row struct for column queries (`select(…).all_as::<S>()`, which compiles only
/// when the selection's types are the fields' types, in order) and for raw SQL
/// (`query_as::<S>`). Named and tuple structs; `#[orm(crate = "…")]` as for `Entity`.
///
/// ```
/// use orm_core::{Connection, FromRow, Value};
///
/// #[derive(FromRow, Debug, PartialEq)]
/// struct Total { region: String, amount: Option<i64> }
///
/// # fn main() -> orm_core::Result<()> {
/// let conn = Connection::open_sqlite_memory()?;
/// let rows: Vec<Total> = conn.query_as("SELECT 'north', ? UNION ALL SELECT 'south', NULL", &[Value::I64(7)])?;
/// assert_eq!(rows, [Total { region: "north".into(), amount: Some(7) }, Total { region: "south".into(), amount: None }]);
/// let t: Total = ("east".to_owned(), Some(1)).into();
/// assert_eq!(t.region, "east");
/// # Ok(()) }
/// ```
#[proc_macro_derive(FromRow, attributes(orm))]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    row::derive(input.into()).into()
}
