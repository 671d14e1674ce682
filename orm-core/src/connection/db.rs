//! The one interface a backend implements for [`Connection`](super::Connection): running a
//! statement, running a query row by row, transaction state, and what the connection knows
//! of its limits. Code above it (by-key reads and writes, queries, raw SQL) is written once
//! for every backend; what a backend does its own way (the fast insert path, key strategies,
//! cursors, batched writes) is reached through [`Connection::db`](super::Connection) too as
//! it moves behind this interface.
//!
//! Parameters travel as [`ValueRef`]s, which both drivers bind; rows come back as
//! [`RowValues`], which both drivers' rows implement, so a caller decodes a row the same way
//! whatever produced it.

use std::any::TypeId;

use super::batch::{BatchWrite, HashSet, Sent};
use super::{Connection, DResult, DriverError, TxStatus};
use crate::entity::{EntityMeta, RowValues};
use crate::error::{Error, Result};
use crate::sql::Backend;
use crate::value::Key;
use crate::value::ValueRef;

/// What every backend does for a [`Connection`](super::Connection).
pub(crate) trait Db {
    /// The SQL dialect.
    fn backend(&self) -> Backend;
    /// False once the connection was lost (a pool then opens a new one).
    fn is_usable(&self) -> bool;
    /// The most parameters one statement may bind.
    fn max_bind_parameters(&self) -> usize;
    /// Runs one statement (prepared once per connection), returning the rows it changed.
    fn execute(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64>;
    /// Runs one query (prepared once per connection), calling `each` with every row in
    /// order; stops at the first error. Returns the rows seen.
    fn query(
        &self,
        sql: &str,
        params: &[ValueRef<'_>],
        each: &mut dyn FnMut(&dyn RowValues) -> Result<()>,
    ) -> DResult<usize>;
    /// Runs a statement used once (a name of its own in it): not kept prepared.
    fn execute_once(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64>;
    /// Runs statements without parameters, unprepared.
    fn batch(&self, sql: &str) -> DResult<()>;
    /// Whether the database keeps a query's result open between fetches in a transaction
    /// (`DECLARE … CURSOR`); without, a cursor is the query's keys in a temporary table.
    fn server_cursors(&self) -> bool;
    /// How a cursor keeps its query's keys where the database has no server cursors (see
    /// [`Cursor`](super::Cursor)).
    fn temp_keys(&self) -> TempKeys {
        TempKeys::SQLITE
    }
    /// Forgets prepared statements (after DDL).
    fn forget_prepared(&self);
    /// Forgets what was learnt of the tables (key rules, column types, sequences), after
    /// DDL or raw SQL that may have changed them.
    fn forget_tables(&self);
    /// Learns that `meta`'s table fits its mapping, its columns stored as `types`
    /// ([`Connection::check_mapping`](crate::Connection::check_mapping) found it so), for a
    /// backend that sends values by the live column types. Forgotten with the rest by
    /// [`forget_tables`](Self::forget_tables).
    fn mapping_checked(&self, _meta: &'static EntityMeta, _types: &[crate::SqlType]) {}
    /// The transaction's state as the database reports it.
    fn transaction_status(&self) -> TxStatus;
    /// Whether a transaction is open.
    fn in_transaction(&self) -> bool;
    /// Begins a transaction, sending its statements through `batch` (which logs them and
    /// maps their errors).
    fn begin(&self, batch: &dyn Fn(&str) -> Result<()>) -> Result<()>;
    /// Why a `COMMIT` must not be sent now, if it must not: a transaction the database
    /// already ended would make it succeed without committing anything.
    fn commit_refused(&self) -> Option<Error>;
    /// Sends `COMMIT`.
    fn commit(&self) -> DResult<()>;
    /// What undoes a user's changes to the connection's session state before a pool hands
    /// it out again, if anything does.
    fn reset_sql(&self) -> Option<String>;
    /// Rows per statement of the batched write `write` by key of `rows` rows of `stride`
    /// values each, to `meta`'s table.
    fn batch_rows(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        rows: usize,
        stride: usize,
    ) -> Result<usize>;
    /// Sends one statement of a batched `UPDATE` or `DELETE` by key (`batch` holds whole
    /// rows, each key once): its count, or with `returning` the keys it changed.
    fn write_batch(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batch: &[ValueRef<'_>],
        returning: bool,
    ) -> Result<Sent>;
    /// Sends several statements of one batched write, as [`write_batch`](Db::write_batch)
    /// would one after another (the batches are in order, consecutive runs of rows of the
    /// call). A backend whose statements cost less when they share a prepared statement
    /// sends them through one (SQLite).
    fn write_batches(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batches: &[&[ValueRef<'_>]],
        returning: bool,
    ) -> Result<Vec<Sent>> {
        batches
            .iter()
            .map(|b| self.write_batch(conn, meta, write, b, returning))
            .collect()
    }
    /// How many statements of one batched write [`write_batches`](Db::write_batches) is
    /// handed at once.
    fn write_statements_per_call(&self) -> usize {
        1
    }
    /// Which of `keys` have a row (`SELECT key … WHERE key IN (…)`, unless the backend has a
    /// better way).
    fn existing_keys(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        keys: &[ValueRef<'_>],
    ) -> Result<HashSet<Key>> {
        super::batch::sqlite_side::existing(conn, meta, keys)
    }
    /// How the rows of `meta`'s table get generated integer keys that the inserter can
    /// prove, read once per inserter (and transaction).
    fn key_plan(&self, conn: &Connection, meta: &'static EntityMeta) -> Result<KeyPlan>;
    /// Rows per multi-row `INSERT` of `width` columns, for a caller asking for `requested`.
    fn insert_rows_per_statement(&self, requested: usize, width: usize) -> usize;
    /// How many full statements' worth of rows an inserter hands [`insert_batch`] at once
    /// (see [`InsertBatch::per_statement`]).
    ///
    /// [`insert_batch`]: Db::insert_batch
    fn insert_statements_per_batch(&self) -> usize {
        1
    }
    /// Keys for a batch of `n` rows whose generated keys the caller needs: reserved when
    /// `sent` (they travel with the rows), else, where the backend can, the keys the
    /// database will assign, checked against what it reports ([`KeyPlan::Consecutive`]).
    fn reserve_keys(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        n: usize,
        sent: bool,
        state: &mut KeyState,
    ) -> Result<Option<Reserved>>;
    /// Inserts one batch of rows, all or none, reporting the keys the database assigned as
    /// `batch.generated` asks.
    fn insert_batch(&self, conn: &Connection, batch: &InsertBatch<'_>) -> Result<Inserted>;
    /// The fewest rows worth the backend's streamed load (`COPY`), if it has one.
    fn bulk_load_min_rows(&self) -> Option<usize> {
        None
    }
    /// Streams rows of `columns` into `meta`'s table in one load: `next` writes rows until
    /// the writer is full (returns true: call again) or they run out (returns false).
    /// Returns the rows written. Only called where [`bulk_load_min_rows`](Self::bulk_load_min_rows)
    /// is `Some`.
    fn bulk_load(
        &self,
        conn: &Connection,
        entity: TypeId,
        meta: &'static EntityMeta,
        columns: &[usize],
        next: &mut dyn FnMut(&mut dyn RowWriter) -> Result<bool>,
    ) -> Result<u64> {
        let _ = (conn, entity, columns, next);
        Err(Error::InvalidState {
            message: format!(
                "{}: the {:?} backend has no streamed load",
                meta.name,
                self.backend()
            ),
        })
    }
    /// Whether `e`, the error of an `insert_if_absent` statement, says only that the row's
    /// key is taken (MySQL, which has no `ON CONFLICT (key) DO NOTHING`; the statement alone
    /// is undone, the transaction goes on).
    fn key_taken(&self, e: &Error) -> bool {
        let _ = e;
        false
    }
    /// Whether `UPDATE` and `DELETE` can return rows (`RETURNING`).
    fn writes_return_rows(&self) -> bool {
        true
    }
    /// What every `CREATE TABLE` ends with (MySQL: the engine and collation).
    fn table_options(&self) -> &'static str {
        ""
    }
    /// The driver object, for [`Connection::as_rusqlite`] and its kin.
    fn as_any(&self) -> &dyn std::any::Any;
    /// Turns the driver's error of statement `sql` into the ORM's, noting what it says of
    /// the connection (lost, or what it cached of the tables stale).
    fn map_error(
        &self,
        e: DriverError,
        entity: Option<&'static str>,
        table: &str,
        sql: &str,
    ) -> Error;
}

/// How a backend proves the generated integer keys of the rows it inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum KeyPlan {
    /// The database generates none (SQLite: a key that is not a rowid alias): the inserter
    /// always sends keys the backend reserved.
    Assign,
    /// The database generates keys, but the ones a caller needs are reserved first and sent
    /// with the rows (PostgreSQL: `nextval` of the key's sequence, one round trip a batch).
    Reserve,
    /// One multi-row `INSERT` gets consecutive keys in `VALUES` order, the first of which
    /// the backend reports after checking that nothing else was written (SQLite: a rowid
    /// table without triggers, under the write lock; InnoDB in lock mode 0 or 1).
    Consecutive,
    /// One row per statement, each key read back (SQLite: a table with triggers; MySQL
    /// where consecutive keys cannot be proven).
    PerRow,
}

/// What a backend keeps between the batches of one inserter.
#[derive(Debug, Default)]
pub(crate) struct KeyState {
    /// The next free key, once known, kept up to date by what the inserter sends; wider than
    /// a key, so that a batch ending exactly at `i64::MAX` is still accepted.
    pub next_key: Option<i128>,
    /// Whether the table's sequence bookkeeping exists (SQLite's `sqlite_sequence`).
    pub sequence_table: Option<bool>,
}

/// Keys reserved (or predicted) for a batch, in row order.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum Reserved {
    /// `first`, `first + 1`, …
    From(i64),
    /// Each row's.
    List(Vec<i64>),
}

/// Which keys a batch's statement must report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeneratedKeys {
    /// None: the rows carry their keys, or nobody asked.
    None,
    /// The first of the consecutive keys the database gave the batch.
    Consecutive,
    /// Each row's (one row per statement).
    Each,
}

/// One batch for [`Db::insert_batch`].
pub(crate) struct InsertBatch<'a> {
    pub entity: TypeId,
    pub meta: &'static EntityMeta,
    pub columns: &'a [usize],
    pub rows: &'a dyn BatchRows,
    /// Rows per statement: a batch of more rows (up to
    /// [`Db::insert_statements_per_batch`] statements' worth) is sent as several statements.
    pub per_statement: usize,
    pub generated: GeneratedKeys,
}

/// What [`Db::insert_batch`] did.
pub(crate) struct Inserted {
    pub rows: u64,
    pub keys: Assigned,
}

/// The keys the database assigned to a batch.
pub(crate) enum Assigned {
    None,
    First(i64),
    Each(Vec<i64>),
}

/// The rows of a batch as they are sent: `value(row, position)` for `position` in
/// `0..width()`, the columns of the batch in order.
pub(crate) trait BatchRows {
    fn len(&self) -> usize;
    fn width(&self) -> usize;
    fn value(&self, row: usize, position: usize) -> ValueRef<'_>;
}

/// Where a streamed load takes its rows.
pub(crate) trait RowWriter {
    /// Whether a chunk is ready to go (the caller returns, and is called again).
    fn full(&self) -> bool;
    /// Writes row `row` of `rows`.
    fn write(&mut self, rows: &dyn BatchRows, row: usize) -> Result<()>;
}

/// The statements of a cursor kept as a temporary table of keys, numbered in the query's
/// order. `{}` stands for the table's quoted name.
pub(crate) struct TempKeys {
    /// What goes before the query to fill the table.
    pub create: &'static str,
    /// The schema the table is named in, with its dot.
    pub schema: &'static str,
    /// The column that numbers the keys from 1, in order.
    pub position: &'static str,
    /// Drops the table if it is there.
    pub drop: &'static str,
    /// Counts the temporary tables of a name (`?`), where the database can tell.
    pub exists: Option<&'static str>,
}

impl TempKeys {
    /// SQLite: `rowid` numbers the rows of `CREATE TABLE … AS` in order.
    pub(crate) const SQLITE: TempKeys = TempKeys {
        create: "CREATE TEMP TABLE {} AS",
        schema: "temp.",
        position: "rowid",
        drop: "DROP TABLE IF EXISTS temp.{}",
        exists: Some("SELECT count(*) FROM temp.sqlite_master WHERE name = ?"),
    };
}
