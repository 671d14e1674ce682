//! The error type of orm-core.

use std::fmt;

use crate::entity::EntityMeta;
use crate::value::{FromSqlError, SqlType};

/// A boxed driver error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for callers that branch on the cause.
///
/// ```
/// use orm_core::ErrorKind;
/// assert_eq!(ErrorKind::UniqueViolation.to_string(), "unique constraint violated");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A `UNIQUE` or primary-key constraint.
    UniqueViolation,
    /// A foreign-key constraint.
    ForeignKeyViolation,
    /// A `NOT NULL` constraint.
    NotNullViolation,
    /// A `CHECK` constraint.
    CheckViolation,
    /// The database is locked by another writer and the busy timeout ran out.
    Busy,
    /// The connection could not be opened or was lost.
    Connection,
    /// A value read from the database does not fit the field.
    Conversion,
    /// A column name that the entity does not have.
    UnknownColumn,
    /// A value of the wrong type for its column.
    TypeMismatch,
    /// A row that was expected is not there.
    NotFound,
    /// An optimistic-concurrency check failed: someone else changed or deleted the row.
    StaleData,
    /// The object was deleted, or its session is gone.
    ObjectDeleted,
    /// The call is not valid in the current state (and none of the kinds below says why).
    InvalidState,
    /// Another object for the same row is already in the session (an `add` of a second
    /// object with a key the session holds).
    DuplicateObject,
    /// The object is in use: a `read()`/`write()` guard on it is alive, or a flush on
    /// another thread is writing it.
    Borrowed,
    /// The object is not in this session (it is transient, detached, or another session's).
    NotInSession,
    /// The session is closed.
    SessionClosed,
    /// The session was called from code running inside one of its own calls (a
    /// `with_connection` closure, a `Field` conversion, a bulk call's iterator).
    Reentrant,
    /// A panic unwound while a `write()` guard on the object was alive: its change may be
    /// half made, and the session refuses to flush it until it is reloaded.
    TornObject,
    /// The objects to insert reference each other in a cycle: none can go first.
    DependencyCycle,
    /// The object is not attached to a live session (expunged, closed, or never added).
    Detached,
    /// A query expected at most one row and found more.
    MultipleRows,
    /// The transaction failed and was (or must be) rolled back: the database aborted it
    /// (PostgreSQL after any failed statement, SQLite after a full disk or an I/O error), its
    /// `COMMIT` failed, or its connection was lost. Nothing it held is committed. Every call
    /// but `rollback()` and `close()` fails with this kind until `rollback()` is called
    /// (SQLAlchemy's `PendingRollbackError`).
    PendingRollback,
    /// An entity's mapping does not fit its live table (a column missing or of a type the
    /// field cannot go into).
    SchemaMismatch,
    /// Any other database error.
    Database,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::UniqueViolation => "unique constraint violated",
            ErrorKind::ForeignKeyViolation => "foreign key constraint violated",
            ErrorKind::NotNullViolation => "NOT NULL constraint violated",
            ErrorKind::CheckViolation => "CHECK constraint violated",
            ErrorKind::Busy => "database is busy",
            ErrorKind::Connection => "connection error",
            ErrorKind::Conversion => "value conversion failed",
            ErrorKind::UnknownColumn => "unknown column",
            ErrorKind::TypeMismatch => "type mismatch",
            ErrorKind::NotFound => "row not found",
            ErrorKind::StaleData => "stale data",
            ErrorKind::ObjectDeleted => "object deleted",
            ErrorKind::InvalidState => "invalid state",
            ErrorKind::DuplicateObject => "another object for this row is in the session",
            ErrorKind::Borrowed => "object in use",
            ErrorKind::NotInSession => "object not in this session",
            ErrorKind::SessionClosed => "session closed",
            ErrorKind::Reentrant => "re-entrant call",
            ErrorKind::TornObject => "object torn by a panic",
            ErrorKind::DependencyCycle => "dependency cycle",
            ErrorKind::Detached => "object detached",
            ErrorKind::MultipleRows => "multiple rows",
            ErrorKind::PendingRollback => "transaction failed; rollback() required",
            ErrorKind::SchemaMismatch => "mapping does not fit the table",
            ErrorKind::Database => "database error",
        })
    }
}

/// Errors of orm-core. Every variant names what it can: entity, table, column and the
/// placeholder SQL (bound values are never inlined into messages).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database rejected a statement.
    #[error("{kind} on `{table}`{}: {message}\n  SQL: {sql}", entity_suffix(*.entity))]
    Database {
        /// The cause, classified.
        kind: ErrorKind,
        /// The entity whose statement failed, if any.
        entity: Option<&'static str>,
        /// The table (or `-` when the statement has none).
        table: String,
        /// Placeholder SQL.
        sql: String,
        /// The driver's message.
        message: String,
        /// The driver error.
        #[source]
        source: BoxError,
    },
    /// A database could not be opened.
    #[error("cannot open database `{target}`: {source}")]
    Open {
        /// What was being opened (path or URL with the password removed).
        target: String,
        /// The driver error.
        #[source]
        source: BoxError,
    },
    /// A value read from the database does not fit a field.
    #[error("cannot read column `{column}` of `{table}` into {entity}::{field}: {source}")]
    Conversion {
        /// Entity.
        entity: &'static str,
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// Field.
        field: &'static str,
        /// What was wrong.
        #[source]
        source: FromSqlError,
    },
    /// A column name the entity does not have.
    #[error("{entity} (table `{table}`) has no column `{column}`; its columns are: {known}")]
    UnknownColumn {
        /// Entity.
        entity: &'static str,
        /// Table.
        table: &'static str,
        /// The name given.
        column: String,
        /// The known columns, comma separated.
        known: String,
    },
    /// A value of the wrong type, or NULL for a NOT NULL column, caught before any SQL.
    #[error("column `{column}` of {entity} (table `{table}`) takes {expected}, got {found}")]
    TypeMismatch {
        /// Entity.
        entity: &'static str,
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// The column's type (with `NOT NULL` when it is one).
        expected: String,
        /// What was given.
        found: String,
    },
    /// A row that was expected is not there.
    #[error("no row of {entity} (table `{table}`) with key {key}")]
    NotFound {
        /// Entity.
        entity: &'static str,
        /// Table.
        table: &'static str,
        /// The key looked for.
        key: String,
    },
    /// A raw query expected to return one value returned none (or not an integer).
    #[error("the query returned no integer in its first row and column\n  SQL: {sql}")]
    NoValue {
        /// Placeholder SQL.
        sql: String,
    },
    /// An optimistic-concurrency check found the row changed or deleted by someone else.
    #[error(
        "stale data: {entity} (table `{table}`) with key {key} was changed or deleted by \
         another writer since it was loaded; {operation} matched no row"
    )]
    StaleData {
        /// Entity.
        entity: &'static str,
        /// Table.
        table: &'static str,
        /// Key of the row.
        key: String,
        /// `UPDATE` or `DELETE`.
        operation: &'static str,
    },
    /// An expired object was read, and its row no longer exists.
    #[error(
        "{entity} (table `{table}`) with key {key} was expired and its row no longer exists \
         (deleted by another transaction?)"
    )]
    ObjectDeleted {
        /// Entity.
        entity: &'static str,
        /// Table.
        table: &'static str,
        /// Key of the vanished row.
        key: String,
    },
    /// The object needs its session, and it has none.
    #[error(
        "cannot {operation} {entity}: the object is not attached to a live session \
         (it was expunged, its session closed or dropped, or it was never added)"
    )]
    Detached {
        /// Entity.
        entity: &'static str,
        /// What was attempted.
        operation: &'static str,
    },
    /// More than one row where at most one was expected.
    #[error("expected at most one row of {entity} (table `{table}`), found more than one")]
    MultipleRows {
        /// Entity.
        entity: &'static str,
        /// Table.
        table: &'static str,
    },
    /// The call does not fit the state of the connection or object.
    #[error("{message}")]
    InvalidState {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A second object for a row the session holds an object for.
    #[error(
        "an object of {entity} (table `{table}`) with key {key} is already in this session; \
         use `get` to obtain it, or `merge` to copy this one's values onto it"
    )]
    DuplicateObject {
        /// Entity.
        entity: &'static str,
        /// Table.
        table: &'static str,
        /// The key.
        key: String,
    },
    /// The object is in use by a guard or a flush.
    #[error("cannot {operation} {entity}: {reason}")]
    Borrowed {
        /// Entity.
        entity: &'static str,
        /// What was attempted.
        operation: &'static str,
        /// Why, and what to do.
        reason: &'static str,
    },
    /// The object is not in this session.
    #[error(
        "cannot {operation} {entity}: the object is not in this session ({state}); add it (or \
         merge it) first"
    )]
    NotInSession {
        /// Entity.
        entity: &'static str,
        /// What was attempted.
        operation: &'static str,
        /// Where the object stands instead.
        state: String,
    },
    /// The session is closed.
    #[error("the session is closed; open another with `engine.session()`")]
    SessionClosed,
    /// The session was called from inside one of its own calls.
    #[error("{message}")]
    Reentrant {
        /// What happened and what to do instead.
        message: String,
    },
    /// A panic tore a change to the object.
    #[error(
        "cannot flush {entity}: a panic unwound while a write() guard on it was alive, so its \
         change may be half made; refresh or expire it to discard the change, or expunge it"
    )]
    TornObject {
        /// Entity.
        entity: &'static str,
    },
    /// Objects to insert reference each other in a cycle.
    #[error(
        "the objects to insert reference each other in a cycle ({cycle}): none can be inserted \
         first; insert one without its link, flush, then link it"
    )]
    DependencyCycle {
        /// The entities around the cycle, `A -> B -> A`.
        cycle: String,
    },
    /// An entity's mapping does not fit its live table: every problem found, each naming the
    /// column, the field's type and the column's type.
    #[error(
        "the mapping of {entity} does not fit table `{table}`:{}",
        problems.iter().map(|p| format!("\n  - {p}")).collect::<String>()
    )]
    Schema {
        /// Entity.
        entity: &'static str,
        /// Table.
        table: &'static str,
        /// One line per problem.
        problems: Vec<String>,
    },
    /// The transaction failed: nothing of it is committed, and the session refuses work
    /// until `rollback()` (see [`ErrorKind::PendingRollback`]).
    #[error(
        "the transaction failed and nothing of it was committed ({reason}); call rollback() \
         before using the session again"
    )]
    PendingRollback {
        /// What ended the transaction.
        reason: String,
    },
}

fn entity_suffix(entity: Option<&'static str>) -> String {
    entity.map(|e| format!(" ({e})")).unwrap_or_default()
}

impl Error {
    /// The cause, for branching without parsing text.
    ///
    /// ```
    /// use orm_core::{Error, ErrorKind};
    /// let e = Error::InvalidState { message: "no".into() };
    /// assert_eq!(e.kind(), ErrorKind::InvalidState);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Database { kind, .. } => *kind,
            Error::Open { .. } => ErrorKind::Connection,
            Error::Conversion { .. } => ErrorKind::Conversion,
            Error::UnknownColumn { .. } => ErrorKind::UnknownColumn,
            Error::TypeMismatch { .. } => ErrorKind::TypeMismatch,
            Error::NotFound { .. } | Error::NoValue { .. } => ErrorKind::NotFound,
            Error::StaleData { .. } => ErrorKind::StaleData,
            Error::InvalidState { .. } => ErrorKind::InvalidState,
            Error::DuplicateObject { .. } => ErrorKind::DuplicateObject,
            Error::Borrowed { .. } => ErrorKind::Borrowed,
            Error::NotInSession { .. } => ErrorKind::NotInSession,
            Error::SessionClosed => ErrorKind::SessionClosed,
            Error::Reentrant { .. } => ErrorKind::Reentrant,
            Error::TornObject { .. } => ErrorKind::TornObject,
            Error::DependencyCycle { .. } => ErrorKind::DependencyCycle,
            Error::ObjectDeleted { .. } => ErrorKind::ObjectDeleted,
            Error::Detached { .. } => ErrorKind::Detached,
            Error::MultipleRows { .. } => ErrorKind::MultipleRows,
            Error::PendingRollback { .. } => ErrorKind::PendingRollback,
            Error::Schema { .. } => ErrorKind::SchemaMismatch,
        }
    }

    /// The database server's detail on a failed statement (PostgreSQL's `DETAIL`, such as
    /// `Key (name)=(ada) already exists.`; MySQL's whole message). It may quote values of the
    /// row, so it is not part
    /// of the message (`Display`); ask for it here when it is safe to show.
    ///
    /// ```
    /// use orm_core::Error;
    /// let e = Error::InvalidState { message: "no".into() };
    /// assert_eq!(e.server_detail(), None);
    /// ```
    pub fn server_detail(&self) -> Option<String> {
        #[cfg(feature = "postgres")]
        if let Error::Database { source, .. } = self
            && let Some(pg) = source.downcast_ref::<postgres::Error>()
        {
            return pg.as_db_error()?.detail().map(str::to_owned);
        }
        #[cfg(feature = "mysql")]
        if let Error::Database { source, .. } = self
            && let Some(my) = source.downcast_ref::<mysql::Error>()
        {
            return crate::mysql::detail_of(my);
        }
        None
    }

    /// The placeholder SQL of the failed statement, if a statement failed.
    pub fn sql(&self) -> Option<&str> {
        match self {
            Error::Database { sql, .. } | Error::NoValue { sql } => Some(sql),
            _ => None,
        }
    }

    pub(crate) fn conversion(
        meta: &'static EntityMeta,
        index: usize,
        source: FromSqlError,
    ) -> Self {
        let column = &meta.columns[index];
        Error::Conversion {
            entity: meta.name,
            table: meta.table,
            column: column.name,
            field: column.field,
            source,
        }
    }

    /// An unknown column of `meta`.
    pub fn unknown_column(meta: &'static EntityMeta, column: &str) -> Self {
        Error::UnknownColumn {
            entity: meta.name,
            table: meta.table,
            column: column.to_owned(),
            known: meta
                .columns
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// A value that does not fit column `index` of `meta`.
    pub fn type_mismatch(meta: &'static EntityMeta, index: usize, found: String) -> Self {
        let c = &meta.columns[index];
        Error::TypeMismatch {
            entity: meta.name,
            table: meta.table,
            column: c.name,
            expected: describe_type(c.sql_type, c.nullable),
            found,
        }
    }
}

/// Turns "no row" into `Ok(None)`, as rusqlite's and diesel's `optional()` do.
///
/// ```
/// use orm_core::{Error, OptionalExt, Result};
/// let r: Result<i32> = Err(Error::NotFound { entity: "E", table: "e", key: "1".into() });
/// assert_eq!(r.optional().unwrap(), None);
/// ```
pub trait OptionalExt<T> {
    /// `Ok(None)` for [`ErrorKind::NotFound`], the rest unchanged.
    ///
    /// # Errors
    /// Any error other than "not found".
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExt<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The SQL type a column expects, named for messages.
pub(crate) fn describe_type(ty: SqlType, nullable: bool) -> String {
    if nullable {
        format!("{ty} or NULL")
    } else {
        format!("{ty} NOT NULL")
    }
}
