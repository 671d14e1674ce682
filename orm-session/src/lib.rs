#![doc = include_str!("../../README.md")]

mod bulk;
mod engine;
mod handle;
mod plan;
mod query;
mod relations;
mod session;

pub use bulk::{BulkOptions, BulkResult};
pub use engine::{
    ConnectionManager, DEFAULT_CHECKOUT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, Engine, PooledConnection,
};
pub use handle::{AnyHandle, Handle, ObjectState, ReadGuard, WriteGuard};
#[cfg(feature = "postgres")]
pub use orm_core::PgOptions;
pub use orm_core::{
    AsEntity, Backend, Bind, Cascade, Column, ColumnMeta, Condition, Connection, Entity,
    EntityMeta, Error, ErrorKind, Field, Filter, ForeignKey, FromSqlError, Generated,
    InsertOptions, Key, ManyToMany, ManyToOne, Mapping, OnDelete, OneToMany, OneToOne, OptionalExt,
    Order, RelationKind, RelationMeta, Result, SqlType, SqliteOptions, Value, ValueRef, uuid_v7,
};
pub use query::Query;
pub use relations::Relation;
pub use session::Session;

/// Everything a user needs: `use orm_session::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AnyHandle, AsEntity, Bind, BulkOptions, BulkResult, Column, Connection, Engine, Entity,
        EntityMeta, Error, ErrorKind, Field, Filter, Handle, Key, ManyToMany, ManyToOne, Mapping,
        ObjectState, OneToMany, OneToOne, OptionalExt, Order, Query, Relation, Result, Session,
        SqliteOptions, Value,
    };
}
