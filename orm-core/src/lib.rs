//! Metadata, values, SQL building and backends of the `orm` unit-of-work ORM.
//!
//! `orm-core` knows entities and statements, never sessions. Most users depend on
//! `orm-session`, which re-exports what is here.
//!
//! Backends: SQLite through rusqlite (always), and PostgreSQL through the synchronous
//! `postgres` crate with the `postgres` feature (`Connection::open_postgres`, `PgOptions`).
//! The API is the same on both.
//!
//! ```
//! use orm_core::{Connection, Entity};
//!
//! #[derive(Entity, Debug, Clone, PartialEq)]
//! #[orm(table = "customer")]
//! struct Customer {
//!     #[orm(primary_key, auto_increment)]
//!     id: Option<i64>,
//!     name: String,
//!     #[orm(column = "descr")]
//!     description: Option<String>,
//! }
//!
//! # fn main() -> orm_core::Result<()> {
//! let conn = Connection::open_sqlite_memory()?;
//! conn.create_table::<Customer>()?;
//! let rows = (0..250).map(|i| Customer { id: None, name: format!("c{i}"), description: None });
//! assert_eq!(conn.insert_many(rows)?, 250);
//! let first = conn.find::<Customer>(&1.into())?.expect("row 1");
//! assert_eq!(first.name, "c0");
//! assert_eq!(conn.count(Some(Customer::NAME.like("c1%")))?, 111);
//! # Ok(()) }
//! ```

extern crate self as orm_core;

mod connection;
mod entity;
mod error;
mod filter;
mod hash;
mod mapping;
#[cfg(feature = "postgres")]
mod postgres;
mod relation;
mod schema;
mod sql;
mod sqlite;
mod uuid7;
mod value;

pub use connection::{
    Connection, InsertOptions, InsertOutcome, InsertState, Inserter, SqliteOptions, TxStatus,
};
pub use entity::{
    AsEntity, Column, ColumnMeta, ColumnSet, Entity, EntityMeta, Generated, RowValues, assign,
    read_column,
};
pub use error::{BoxError, Error, ErrorKind, OptionalExt, Result};
pub use filter::{CmpOp, Condition, Filter, Order, SelectSpec};
pub use hash::{KeyHashState, KeyHasher};
pub use mapping::{ColumnValue, Mapping, RowSource};
pub use orm_derive::Entity;
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, display_url};
pub use relation::{
    Cascade, ForeignKey, ManyToMany, ManyToOne, MetaFn, OnDelete, OneToMany, OneToOne,
    RelationKind, RelationMeta, TypeVisitor, meta_of,
};
pub use schema::LiveColumn;
pub use sql::{Backend, statement_cache};
pub use uuid7::uuid_v7;
pub use value::{Bind, Field, FromSqlError, Key, SqlType, Value, ValueRef};
