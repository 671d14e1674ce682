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

use std::time::{Duration, Instant};

use super::batch::{BatchWrite, HashSet, Sent, sqlite_side};
use super::{Connection, DResult, DriverError, SqliteDriver, TxStatus};
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
    /// Forgets prepared statements (after DDL).
    fn forget_prepared(&self);
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
    /// Rows per statement of a batched write by key whose rows have `stride` values.
    fn batch_rows(&self, stride: usize) -> usize;
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
    /// Which of `keys` have a row.
    fn existing_keys(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        keys: &[ValueRef<'_>],
    ) -> Result<HashSet<Key>>;
    /// Turns the driver's error of statement `sql` into the ORM's, noting what it says of
    /// the connection (lost, or its cached statements stale: then `stale` is set, and the
    /// caller forgets what it cached of the tables too).
    fn map_error(
        &self,
        e: DriverError,
        entity: Option<&'static str>,
        table: &str,
        sql: &str,
    ) -> Mapped;
}

/// A driver error turned into the ORM's.
pub(crate) struct Mapped {
    pub error: Error,
    /// The tables changed under the connection's cached statements.
    pub stale: bool,
}

fn ours(e: Error) -> Mapped {
    Mapped {
        error: e,
        stale: false,
    }
}

impl Db for SqliteDriver {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn is_usable(&self) -> bool {
        true
    }

    fn max_bind_parameters(&self) -> usize {
        self.conn
            .limit(rusqlite::limits::Limit::SQLITE_LIMIT_VARIABLE_NUMBER)
            .ok()
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l > 0)
            .unwrap_or(999)
    }

    fn execute(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        for (i, v) in params.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, v)?;
        }
        Ok(stmt.raw_execute()? as u64)
    }

    fn query(
        &self,
        sql: &str,
        params: &[ValueRef<'_>],
        each: &mut dyn FnMut(&dyn RowValues) -> Result<()>,
    ) -> DResult<usize> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            n += 1;
            each(row)?;
        }
        Ok(n)
    }

    fn execute_once(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        Ok(self
            .conn
            .execute(sql, rusqlite::params_from_iter(params.iter()))? as u64)
    }

    fn batch(&self, sql: &str) -> DResult<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn server_cursors(&self) -> bool {
        false
    }

    fn forget_prepared(&self) {
        self.conn.flush_prepared_statement_cache();
    }

    fn transaction_status(&self) -> TxStatus {
        // SQLite sets autocommit again itself when it rolls a transaction back (a full
        // disk, an I/O error).
        if self.conn.is_autocommit() {
            TxStatus::Idle
        } else {
            TxStatus::Active
        }
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    fn begin(&self, batch: &dyn Fn(&str) -> Result<()>) -> Result<()> {
        if !self.options.begin_immediate {
            return batch("BEGIN");
        }
        // SQLite's busy handler backs off to sleeps of 100 ms, so under contention a waiting
        // writer keeps missing the short moments between other writers' transactions and can
        // starve past the timeout. Taking the write lock is retried here instead, with short
        // jittered sleeps, until the busy timeout runs out.
        let deadline = Instant::now() + self.options.busy_timeout;
        let _ = self.conn.busy_timeout(Duration::from_millis(2));
        let mut attempt = 0u32;
        let result = loop {
            match batch("BEGIN IMMEDIATE") {
                Err(e) if e.kind() == crate::ErrorKind::Busy && Instant::now() < deadline => {
                    attempt = attempt.wrapping_add(1);
                    std::thread::sleep(Duration::from_micros(
                        200 + u64::from(super::jitter(attempt) % 1800),
                    ));
                }
                other => break other,
            }
        };
        let _ = self.conn.busy_timeout(self.options.busy_timeout);
        result
    }

    fn commit_refused(&self) -> Option<Error> {
        self.conn.is_autocommit().then(|| Error::PendingRollback {
            reason: "no transaction is open to commit: SQLite rolled it back after a failure, \
                     or none was begun"
                .into(),
        })
    }

    fn commit(&self) -> DResult<()> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }

    fn reset_sql(&self) -> Option<String> {
        None
    }

    fn batch_rows(&self, stride: usize) -> usize {
        super::batch::SQLITE_ROWS
            .min(self.max_bind_parameters() / stride)
            .max(1)
    }

    fn write_batch(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batch: &[ValueRef<'_>],
        returning: bool,
    ) -> Result<Sent> {
        sqlite_side::write(conn, meta, write, batch, returning)
    }

    fn existing_keys(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        keys: &[ValueRef<'_>],
    ) -> Result<HashSet<Key>> {
        sqlite_side::existing(conn, meta, keys)
    }

    fn map_error(
        &self,
        e: DriverError,
        entity: Option<&'static str>,
        table: &str,
        sql: &str,
    ) -> Mapped {
        match e {
            DriverError::Sqlite(e) => ours(crate::sqlite::map_error(e, entity, table, sql)),
            DriverError::Orm(e) => ours(e),
            #[cfg(feature = "postgres")]
            DriverError::Pg(e) => ours(crate::postgres::map_error(e, entity, table, sql)),
        }
    }
}

#[cfg(feature = "postgres")]
impl Db for crate::postgres::PgConn {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn is_usable(&self) -> bool {
        !self.is_closed()
    }

    fn max_bind_parameters(&self) -> usize {
        // The protocol's limit: a parameter count is an unsigned 16-bit number.
        65535
    }

    fn execute(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        crate::postgres::PgConn::execute(self, sql, &pg_refs(params))
    }

    fn query(
        &self,
        sql: &str,
        params: &[ValueRef<'_>],
        each: &mut dyn FnMut(&dyn RowValues) -> Result<()>,
    ) -> DResult<usize> {
        // All rows at once, as `Client::query` does: iterating a row stream costs a trip
        // through the driver's runtime per row.
        let rows = self.query(sql, &pg_refs(params))?;
        for row in &rows {
            each(row)?;
        }
        Ok(rows.len())
    }

    fn execute_once(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        crate::postgres::PgConn::execute_once(self, sql, &pg_refs(params))
    }

    fn batch(&self, sql: &str) -> DResult<()> {
        Ok(self.batch(sql)?)
    }

    fn server_cursors(&self) -> bool {
        true
    }

    fn forget_prepared(&self) {
        self.forget();
    }

    fn transaction_status(&self) -> TxStatus {
        self.status()
    }

    fn in_transaction(&self) -> bool {
        crate::postgres::PgConn::in_transaction(self)
    }

    fn begin(&self, batch: &dyn Fn(&str) -> Result<()>) -> Result<()> {
        batch("BEGIN")
    }

    fn commit_refused(&self) -> Option<Error> {
        // The server's own answer decides: `PgConn::commit` refuses an aborted transaction.
        None
    }

    fn commit(&self) -> DResult<()> {
        Ok(crate::postgres::PgConn::commit(self)?)
    }

    fn reset_sql(&self) -> Option<String> {
        Some(crate::postgres::PgConn::reset_sql(self))
    }

    fn batch_rows(&self, _stride: usize) -> usize {
        super::batch::PG_ROWS
    }

    fn write_batch(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batch: &[ValueRef<'_>],
        returning: bool,
    ) -> Result<Sent> {
        super::batch::pg_side::write(self, conn, meta, write, batch, returning)
    }

    fn existing_keys(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        keys: &[ValueRef<'_>],
    ) -> Result<HashSet<Key>> {
        super::batch::pg_side::existing(self, conn, meta, keys)
    }

    fn map_error(
        &self,
        e: DriverError,
        entity: Option<&'static str>,
        table: &str,
        sql: &str,
    ) -> Mapped {
        let e = match e {
            DriverError::Pg(e) => crate::postgres::map_error(e, entity, table, sql),
            DriverError::Sqlite(e) => crate::sqlite::map_error(e, entity, table, sql),
            // An error of ours in the middle of a statement (a value that does not fit, an
            // abandoned COPY) fails the statement on the server too.
            DriverError::Orm(e) => {
                self.note_failure();
                return ours(e);
            }
        };
        if e.kind() == crate::ErrorKind::Connection {
            self.mark_broken();
        }
        // A table dropped and made again by someone else: statements cached here describe
        // the old one.
        let stale = crate::postgres::is_stale_cache(&e);
        if stale {
            self.forget();
        }
        self.note_failure();
        Mapped { error: e, stale }
    }
}

#[cfg(feature = "postgres")]
fn pg_refs<'a>(params: &'a [ValueRef<'_>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}
