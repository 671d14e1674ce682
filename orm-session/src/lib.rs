#![doc = include_str!("../../README.md")]

pub use orm_core::{
    AsEntity, Backend, Bind, Column, ColumnMeta, Condition, Connection, Entity, EntityMeta, Error,
    ErrorKind, Field, Filter, FromSqlError, Generated, InsertOptions, Key, OptionalExt, Order,
    Result, SqlType, SqliteOptions, Value, ValueRef,
};

/// Everything a user needs: `use orm_session::prelude::*;`.
pub mod prelude {
    pub use orm_core::{
        AsEntity, Bind, Column, Connection, Entity, Error, ErrorKind, Field, Filter, Key,
        OptionalExt, Order, Result, SqliteOptions, Value,
    };
}
