//! `Connection`: one database connection and every statement the ORM sends.

use std::any::TypeId;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::OpenFlags;

use crate::entity::{Entity, EntityMeta, Generated, RowValues};
use crate::error::{Error, Result};
use crate::filter::{Condition, SelectSpec};
use crate::mapping::RowSource;
use crate::sql::{self, Backend, Kind, Shape};
use crate::value::{Key, SqlType, Value, ValueRef};

mod batch;
mod cursor;
mod db;
mod raw;
pub use batch::{Matched, VersionRule};
pub use cursor::Cursor;
pub use raw::RawRow;

/// Options for opening SQLite.
///
/// ```
/// use std::time::Duration;
/// use orm_core::SqliteOptions;
/// let mut opts = SqliteOptions::default();
/// opts.wal = true;
/// opts.busy_timeout = Duration::from_secs(10);
/// assert!(opts.foreign_keys);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How long a statement waits for another writer's lock before failing with
    /// [`ErrorKind::Busy`](crate::ErrorKind::Busy). Default 5 s.
    pub busy_timeout: Duration,
    /// `PRAGMA journal_mode = WAL` (files only). Default off.
    pub wal: bool,
    /// `PRAGMA foreign_keys = ON`. Default on.
    pub foreign_keys: bool,
    /// Start transactions with `BEGIN IMMEDIATE`, taking the write lock at once so that a
    /// transaction never fails with "database is locked" half way through. Default on.
    pub begin_immediate: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            wal: false,
            foreign_keys: true,
            begin_immediate: true,
        }
    }
}

/// Options for [`Connection::insert_many_with`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct InsertOptions {
    /// Rows per multi-row `INSERT` statement, lowered as needed to stay under the backend's
    /// bound-parameter limit. Default 100.
    pub batch_rows: usize,
    /// Keep the input order exactly: a row carrying another column set than the previous row
    /// starts a new statement. Off, rows are grouped by column set and each group is sent
    /// when full (fewer, fuller statements). Default on.
    pub ordered: bool,
}

impl Default for InsertOptions {
    fn default() -> Self {
        InsertOptions {
            batch_rows: 100,
            ordered: true,
        }
    }
}

impl InsertOptions {
    /// Options with the given batch size.
    pub fn batch_rows(batch_rows: usize) -> Self {
        InsertOptions {
            batch_rows: batch_rows.max(1),
            ..InsertOptions::default()
        }
    }

    /// These options, grouping rows by column set instead of keeping their order.
    #[must_use]
    pub fn grouped(self) -> Self {
        InsertOptions {
            ordered: false,
            ..self
        }
    }
}

/// One database connection. Statements built by sea-query are cached for the process;
/// prepared statements are cached per connection.
///
/// A `Connection` is `Send` but not `Sync`: one thread uses it at a time.
///
/// ```
/// use orm_core::{Connection, Entity};
/// #[derive(Entity, Debug, PartialEq)]
/// struct Note { #[orm(primary_key)] id: i64, body: String }
///
/// # fn main() -> orm_core::Result<()> {
/// let conn = Connection::open_sqlite_memory()?;
/// conn.create_table::<Note>()?;
/// conn.insert_many([Note { id: 1, body: "hi".into() }, Note { id: 2, body: "yo".into() }])?;
/// assert_eq!(conn.find::<Note>(&2.into())?, Some(Note { id: 2, body: "yo".into() }));
/// assert_eq!(conn.count::<Note>(Some(Note::BODY.like("h%")))?, 1);
/// # Ok(()) }
/// ```
pub struct Connection {
    driver: Driver,
    target: String,
    /// SQLite: how each table's key gets its values, with the transaction it was read in.
    /// While that write transaction lasts no other connection can change the schema, and this
    /// one changes it only through DDL or raw SQL, which forget it.
    key_info: std::cell::RefCell<std::collections::HashMap<&'static str, (u64, SqliteKeys)>>,
    /// Counts the transactions this connection began.
    tx_serial: std::cell::Cell<u64>,
    /// Raw SQL ran (or the driver was handed out): it may have changed session state
    /// (`SET`, temporary tables) that [`reset`](Connection::reset) undoes before reuse.
    raw_used: std::cell::Cell<bool>,
    /// When [`reset`](Connection::reset) last made it idle.
    idle_since: std::cell::Cell<Option<Instant>>,
    /// PostgreSQL: the id of each table's key sequence, with the transaction it was looked up
    /// in (valid only within it).
    sequences: std::cell::RefCell<std::collections::HashMap<&'static str, (u64, i64)>>,
    /// PostgreSQL: the type each column of a table is sent as by `COPY` (the live column's,
    /// where the mapping's field converts into it without loss), checked once per table.
    wire_types: std::cell::RefCell<
        std::collections::HashMap<&'static str, std::sync::Arc<[crate::SqlType]>>,
    >,
}

enum Driver {
    Sqlite(SqliteDriver),
    #[cfg(feature = "postgres")]
    Postgres(Box<crate::postgres::PgConn>),
}

/// A SQLite connection and the options it was opened with.
pub(crate) struct SqliteDriver {
    conn: rusqlite::Connection,
    options: SqliteOptions,
}

/// A connection's transaction, as the database reports it
/// ([`Connection::transaction_status`]).
///
/// ```
/// # fn main() -> orm_core::Result<()> {
/// use orm_core::{Connection, TxStatus};
/// let conn = Connection::open_sqlite_memory()?;
/// assert_eq!(conn.transaction_status(), TxStatus::Idle);
/// conn.begin()?;
/// assert_eq!(conn.transaction_status(), TxStatus::Active);
/// conn.rollback()?;
/// assert_eq!(conn.transaction_status(), TxStatus::Idle);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxStatus {
    /// No transaction is open (SQLite's autocommit mode; PostgreSQL outside a block).
    Idle,
    /// A transaction is open and can go on.
    Active,
    /// A transaction is open but aborted: statements fail until `ROLLBACK` (PostgreSQL
    /// after any failed statement).
    Failed,
    /// The connection is gone, and with it any transaction.
    Lost,
}

/// What a driver call can fail with: the driver's own error, or one of ours raised on the
/// way (a value that does not fit, a key that cannot be reserved).
#[derive(Debug)]
pub(crate) enum DriverError {
    Sqlite(rusqlite::Error),
    #[cfg(feature = "postgres")]
    Pg(postgres::Error),
    Orm(Error),
}

impl From<rusqlite::Error> for DriverError {
    fn from(e: rusqlite::Error) -> Self {
        DriverError::Sqlite(e)
    }
}

#[cfg(feature = "postgres")]
impl From<postgres::Error> for DriverError {
    fn from(e: postgres::Error) -> Self {
        DriverError::Pg(e)
    }
}

impl From<Error> for DriverError {
    fn from(e: Error) -> Self {
        DriverError::Orm(e)
    }
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriverError::Sqlite(e) => e.fmt(f),
            #[cfg(feature = "postgres")]
            DriverError::Pg(e) => e.fmt(f),
            DriverError::Orm(e) => e.fmt(f),
        }
    }
}

type DResult<T> = std::result::Result<T, DriverError>;

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Names the statement for logging and errors.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    entity: Option<&'static str>,
    table: &'a str,
}

impl Ctx<'static> {
    fn of(meta: &'static EntityMeta) -> Self {
        Ctx {
            entity: Some(meta.name),
            table: meta.table,
        }
    }
    const RAW: Ctx<'static> = Ctx {
        entity: None,
        table: "-",
    };
}

impl Connection {
    /// Opens (creating if needed) a SQLite database file with default options.
    ///
    /// # Errors
    /// [`Error::Open`] when the file cannot be opened or is not a database.
    pub fn open_sqlite(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_sqlite_with(path, &SqliteOptions::default())
    }

    /// Opens a SQLite database file with options.
    ///
    /// # Errors
    /// [`Error::Open`] when the file cannot be opened or the options cannot be applied.
    pub fn open_sqlite_with(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self> {
        let path = path.as_ref();
        let target = path.display().to_string();
        let conn = rusqlite::Connection::open(path).map_err(|e| open_error(&target, e))?;
        Self::configure(conn, options.clone(), target, true)
    }

    /// Opens a private in-memory SQLite database.
    ///
    /// # Errors
    /// [`Error::Open`] if SQLite cannot allocate it.
    pub fn open_sqlite_memory() -> Result<Self> {
        let conn = rusqlite::Connection::open_in_memory().map_err(|e| open_error(":memory:", e))?;
        Self::configure(conn, SqliteOptions::default(), ":memory:".into(), false)
    }

    /// Opens an in-memory SQLite database that every connection of this process opened with
    /// the same `name` shares (SQLite's `memdb` VFS). It lives while one connection to it is
    /// open. Locking works as for a file, so the busy timeout applies.
    ///
    /// ```
    /// # fn main() -> orm_core::Result<()> {
    /// let a = orm_core::Connection::open_sqlite_shared_memory("doc-shared")?;
    /// a.execute("CREATE TABLE t (x INTEGER)", &[])?;
    /// let b = orm_core::Connection::open_sqlite_shared_memory("doc-shared")?;
    /// assert_eq!(b.execute("INSERT INTO t VALUES (1)", &[])?, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Open`] if SQLite cannot open it.
    pub fn open_sqlite_shared_memory(name: &str) -> Result<Self> {
        let encoded: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let uri = format!("file:/{encoded}?vfs=memdb");
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            rusqlite::Connection::open_with_flags(&uri, flags).map_err(|e| open_error(&uri, e))?;
        Self::configure(conn, SqliteOptions::default(), uri, false)
    }

    fn configure(
        conn: rusqlite::Connection,
        options: SqliteOptions,
        target: String,
        file: bool,
    ) -> Result<Self> {
        let apply = || -> rusqlite::Result<()> {
            conn.busy_timeout(options.busy_timeout)?;
            conn.pragma_update(None, "foreign_keys", options.foreign_keys)?;
            if options.wal && file {
                conn.pragma_update(None, "journal_mode", "WAL")?;
            }
            conn.set_prepared_statement_cache_capacity(128);
            Ok(())
        };
        apply().map_err(|e| open_error(&target, e))?;
        Ok(Self::with_driver(
            Driver::Sqlite(SqliteDriver { conn, options }),
            target,
        ))
    }

    fn with_driver(driver: Driver, target: String) -> Self {
        Connection {
            driver,
            target,
            key_info: std::cell::RefCell::default(),
            tx_serial: std::cell::Cell::new(0),
            raw_used: std::cell::Cell::new(false),
            idle_since: std::cell::Cell::new(None),
            wire_types: std::cell::RefCell::default(),
            sequences: std::cell::RefCell::default(),
        }
    }

    /// Opens a PostgreSQL connection from a URL (`postgres://user:password@host:port/db`) or
    /// a key-value string (`host=… user=…`).
    ///
    /// ```no_run
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = orm_core::Connection::open_postgres("postgres://postgres@127.0.0.1/test")?;
    /// assert_eq!(conn.backend(), orm_core::Backend::Postgres);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Open`] when the server cannot be reached or refuses the login.
    #[cfg(feature = "postgres")]
    pub fn open_postgres(url: &str) -> Result<Self> {
        Self::open_postgres_with(url, &crate::PgOptions::default())
    }

    /// Opens a PostgreSQL connection with options (a schema of its own, …).
    ///
    /// # Errors
    /// [`Error::Open`] when the server cannot be reached, refuses the login, or the schema
    /// cannot be created or set.
    #[cfg(feature = "postgres")]
    pub fn open_postgres_with(url: &str, options: &crate::PgOptions) -> Result<Self> {
        let pg = crate::postgres::PgConn::connect(url, options)?;
        Ok(Self::with_driver(
            Driver::Postgres(Box::new(pg)),
            crate::postgres::redact(url),
        ))
    }

    /// The SQL dialect.
    pub fn backend(&self) -> Backend {
        self.db().backend()
    }

    /// The backend behind this connection, through the interface every backend implements.
    fn db(&self) -> &dyn db::Db {
        match &self.driver {
            Driver::Sqlite(s) => s,
            #[cfg(feature = "postgres")]
            Driver::Postgres(pg) => &**pg,
        }
    }

    /// Runs a query through [`run`](Self::run), calling `each` with every row.
    fn query_rows(
        &self,
        ctx: Ctx<'_>,
        sql: &str,
        params: &[ValueRef<'_>],
        mut each: impl FnMut(&dyn RowValues) -> Result<()>,
    ) -> Result<usize> {
        self.run(ctx, sql, || {
            let n = self.db().query(sql, params, &mut each)?;
            Ok((n, n))
        })
    }

    /// Whether the connection can still be used: false once a PostgreSQL connection was
    /// lost (an engine then opens a new one instead of reusing it).
    pub fn is_usable(&self) -> bool {
        self.db().is_usable()
    }

    /// What this connection was opened on (a path or URI).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The largest number of bound parameters one statement may carry: on SQLite as the
    /// linked library reports it now (`SQLITE_LIMIT_VARIABLE_NUMBER`), on PostgreSQL 65535
    /// (the protocol's limit).
    pub fn max_bind_parameters(&self) -> usize {
        self.db().max_bind_parameters()
    }

    /// The underlying rusqlite connection, for what the ORM does not cover (setting limits,
    /// user functions); `None` on another backend. Statements sent through it bypass the
    /// ORM's log.
    pub fn as_rusqlite(&self) -> Option<&rusqlite::Connection> {
        self.raw_sql_ran();
        match &self.driver {
            Driver::Sqlite(SqliteDriver { conn, .. }) => Some(conn),
            #[cfg(feature = "postgres")]
            Driver::Postgres(_) => None,
        }
    }

    /// The underlying `postgres` client, for what the ORM does not cover; `None` on another
    /// backend. Statements sent through it bypass the ORM's log, and a transaction begun
    /// through it is not seen by [`in_transaction`](Self::in_transaction).
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<std::cell::RefMut<'_, postgres::Client>> {
        self.raw_sql_ran();
        match &self.driver {
            Driver::Postgres(pg) => Some(pg.client()),
            Driver::Sqlite(_) => None,
        }
    }

    /// The single place every statement goes through: one `tracing` event (target
    /// `orm::sql`: placeholder SQL, rows, elapsed) and driver errors mapped with context.
    #[inline]
    fn run<T>(
        &self,
        ctx: Ctx<'_>,
        sql: &str,
        f: impl FnOnce() -> DResult<(T, usize)>,
    ) -> Result<T> {
        let log = tracing::enabled!(target: "orm::sql", tracing::Level::DEBUG);
        let start = log.then(Instant::now);
        let result = f();
        if let Some(start) = start {
            let elapsed_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            match &result {
                Ok((_, rows)) => tracing::debug!(
                    target: "orm::sql", sql, rows, elapsed_us, table = ctx.table, "statement"
                ),
                Err(e) => tracing::debug!(
                    target: "orm::sql", sql, elapsed_us, table = ctx.table, error = %e, "statement failed"
                ),
            }
        }
        result.map(|(v, _)| v).map_err(|e| {
            let mapped = self.db().map_error(e, ctx.entity, ctx.table, sql);
            if mapped.stale {
                // Column types cached for `COPY` describe the old tables too.
                self.wire_types.borrow_mut().clear();
            }
            mapped.error
        })
    }

    /// Executes raw SQL with bound parameters; returns the number of rows changed.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        // Raw SQL may be DDL (a new trigger, a recreated table), or change the search path.
        self.raw_sql_ran();
        let params = refs(params);
        self.run(Ctx::RAW, sql, || {
            let n = self.db().execute(sql, &params)?;
            Ok((n, usize::try_from(n).unwrap_or(usize::MAX)))
        })
    }

    /// Runs a raw query; each row comes back as values decoded by their storage class
    /// (integers as `I64`, reals as `F64`, …).
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn query_values(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        self.raw_used.set(true);
        self.catalog_values(sql, params)
    }

    /// [`query_values`](Self::query_values) for the ORM's own catalogue reads, which change
    /// nothing a pool must reset.
    pub(crate) fn catalog_values(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let mut out = Vec::new();
        self.query_rows(Ctx::RAW, sql, &refs(params), |row| {
            out.push(
                (0..row.width())
                    .map(|i| {
                        row.any_value(i).map_err(|e| Error::InvalidState {
                            message: format!("column {i} of `{sql}`: {e}"),
                        })
                    })
                    .collect::<Result<_>>()?,
            );
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs a raw query that returns one integer (`SELECT count(*) …`).
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::NoValue`] for no row or a non-integer.
    pub fn query_i64(&self, sql: &str, params: &[Value]) -> Result<i64> {
        match self
            .query_values(sql, params)?
            .first()
            .and_then(|r| r.first())
        {
            Some(Value::I64(v)) => Ok(*v),
            _ => Err(Error::NoValue {
                sql: sql.to_owned(),
            }),
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` for `E`, with its indexes.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn create_table<E: Entity>(&self) -> Result<()> {
        self.create_meta(E::META, &[])
    }

    fn create_meta(&self, meta: &'static EntityMeta, later: &[&EntityMeta]) -> Result<()> {
        self.forget_prepared();
        for stmt in sql::create_table(meta, self.backend(), later) {
            self.run(Ctx::of(meta), &stmt, || {
                self.batch_raw(&stmt).map(|()| ((), 0))
            })?;
        }
        Ok(())
    }

    /// `CREATE TABLE IF NOT EXISTS` for a set of entities, referenced tables first
    /// (SQLAlchemy's `create_all`): the order of `metas` does not matter. Where references form
    /// a cycle, PostgreSQL gets the constraints that point forward as `ALTER TABLE … ADD
    /// CONSTRAINT` once every table exists (each only if it is not there yet); SQLite takes
    /// them all in `CREATE TABLE`.
    ///
    /// ```
    /// use orm_core::{Connection, Entity};
    /// #[derive(Entity)]
    /// struct Author { #[orm(primary_key, auto_increment)] id: Option<i64> }
    /// #[derive(Entity)]
    /// struct Book { #[orm(primary_key, auto_increment)] id: Option<i64>,
    ///               #[orm(references = Author)] author_id: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_all(&[Book::META, Author::META])?;
    /// assert!(conn.execute("INSERT INTO book (author_id) VALUES (7)", &[]).is_err()); // no author 7
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn create_all(&self, metas: &[&'static EntityMeta]) -> Result<()> {
        let mut left: Vec<&'static EntityMeta> = Vec::new();
        for m in metas {
            if !left.iter().any(|l| l.is(m)) {
                left.push(m);
            }
        }
        let mut alter: Vec<(&'static EntityMeta, &'static EntityMeta)> = Vec::new();
        while !left.is_empty() {
            // The referenced tables of `m` that are still to be created.
            let waits_for = |m: &EntityMeta, left: &[&'static EntityMeta]| {
                m.foreign_keys()
                    .map(|(_, fk)| fk.target())
                    .filter(|t| !t.is(m) && left.iter().any(|l| l.is(t)))
                    .collect::<Vec<_>>()
            };
            // The first entity whose referenced tables exist; in a cycle, the first one left,
            // with its forward references added afterwards.
            let i = left
                .iter()
                .position(|m| waits_for(m, &left).is_empty())
                .unwrap_or(0);
            let m = left.remove(i);
            let later = if self.backend() == Backend::Postgres {
                waits_for(m, &left)
            } else {
                Vec::new()
            };
            self.create_meta(m, &later)?;
            alter.extend(later.into_iter().map(|t| (m, t)));
        }
        for (m, target) in alter {
            for (i, fk) in m.foreign_keys() {
                if !fk.target().is(target) {
                    continue;
                }
                let name = sql::fk_name(m.table, m.columns[i].name);
                let exists = self.catalog_values(
                    "SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = to_regclass($2)",
                    &[
                        Value::Text(name),
                        Value::Text(format!("\"{}\"", m.table.replace('"', "\"\""))),
                    ],
                )?;
                if exists.is_empty() {
                    let stmt = sql::add_foreign_key(m, i, fk, self.backend());
                    self.run(Ctx::of(m), &stmt, || {
                        self.batch_raw(&stmt).map(|()| ((), 0))
                    })?;
                }
            }
        }
        Ok(())
    }

    /// `DROP TABLE IF EXISTS` for `E`.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn drop_table<E: Entity>(&self) -> Result<()> {
        self.forget_prepared();
        let stmt = sql::drop_table(E::META, self.backend());
        self.run(Ctx::of(E::META), &stmt, || {
            self.batch_raw(&stmt).map(|()| ((), 0))
        })
    }

    /// Raw SQL may change what cached lookups rely on (DDL, the search path) and the session
    /// state a pool must reset.
    fn raw_sql_ran(&self) {
        self.raw_used.set(true);
        self.key_info.borrow_mut().clear();
        self.wire_types.borrow_mut().clear();
        self.sequences.borrow_mut().clear();
    }

    /// Makes the connection fit for its next user, as a pool does when it takes one back:
    /// an open transaction is rolled back, and after raw SQL the PostgreSQL session state is
    /// reset (`RESET ALL`, temporary tables, cursors, advisory locks, `LISTEN`s) and the
    /// engine's schema put back first on the `search_path`. Prepared statements survive it.
    ///
    /// ```
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = orm_core::Connection::open_sqlite_memory()?;
    /// conn.begin()?;
    /// conn.reset()?;
    /// assert!(!conn.in_transaction());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The driver's error: the connection should then be dropped.
    pub fn reset(&self) -> Result<()> {
        if !self.is_usable() {
            return Err(Error::InvalidState {
                message: format!("the connection to {} is lost", self.target),
            });
        }
        if self.in_transaction() || self.transaction_status() != TxStatus::Idle {
            self.batch("ROLLBACK")?;
        }
        if self.raw_used.replace(false)
            && let Some(sql) = self.db().reset_sql()
        {
            self.batch(&sql)?;
            self.db().forget_prepared();
        }
        self.idle_since.set(Some(Instant::now()));
        Ok(())
    }

    /// Checks that a connection that has been idle for a while still works (a round trip
    /// after 30 s of idleness; none otherwise), as a pool does before handing it out.
    ///
    /// # Errors
    /// The driver's error when the connection is lost.
    pub fn validate(&self) -> Result<()> {
        const IDLE: Duration = Duration::from_secs(30);
        if !self.is_usable() {
            return Err(Error::InvalidState {
                message: format!("the connection to {} is lost", self.target),
            });
        }
        if self.idle_since.get().is_some_and(|t| t.elapsed() > IDLE) {
            self.batch("SELECT 1")?;
        }
        Ok(())
    }

    /// Prepared statements and looked-up sequences may refer to what DDL changes.
    fn forget_prepared(&self) {
        self.key_info.borrow_mut().clear();
        self.wire_types.borrow_mut().clear();
        self.db().forget_prepared();
    }

    /// Statements without parameters, unlogged (the caller logs).
    fn batch_raw(&self, sql: &str) -> DResult<()> {
        self.db().batch(sql)
    }

    /// The transaction's state as the database reports it: SQLite's autocommit flag (which
    /// SQLite itself sets when it rolls a transaction back after a full disk or an I/O
    /// error); on PostgreSQL the server's answer, asked with a savepoint probe (one round
    /// trip) only when a statement failed since it last confirmed the transaction healthy.
    pub fn transaction_status(&self) -> TxStatus {
        self.db().transaction_status()
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.db().in_transaction()
    }

    /// Begins a transaction (`BEGIN IMMEDIATE` unless the options say otherwise).
    ///
    /// # Errors
    /// [`Error::Database`]: already in a transaction, or busy past the timeout.
    pub fn begin(&self) -> Result<()> {
        self.tx_serial.set(self.tx_serial.get().wrapping_add(1));
        self.db().begin(&|sql| self.batch(sql))
    }

    /// Commits the open transaction. `Ok` means the database committed it: committing an
    /// aborted PostgreSQL transaction (which the server would silently roll back) fails.
    ///
    /// # Errors
    /// [`Error::PendingRollback`] when no transaction is open (SQLite ended it after a
    /// failure) or it is aborted (PostgreSQL, SQLSTATE 25P02; it stays open until
    /// [`rollback`](Self::rollback)); [`Error::Database`] when the `COMMIT` itself fails (a
    /// deferred constraint, a busy database: SQLite then keeps the transaction open).
    pub fn commit(&self) -> Result<()> {
        if let Some(refused) = self.db().commit_refused() {
            return Err(refused);
        }
        self.run(Ctx::RAW, "COMMIT", || self.db().commit().map(|()| ((), 0)))
    }

    /// Rolls back the open transaction, if any.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn rollback(&self) -> Result<()> {
        if self.in_transaction() {
            self.batch("ROLLBACK")
        } else {
            Ok(())
        }
    }

    /// `SAVEPOINT name`.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn savepoint(&self, name: &str) -> Result<()> {
        self.batch(&format!("SAVEPOINT \"{}\"", name.replace('"', "\"\"")))
    }

    /// `RELEASE SAVEPOINT name`.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn release(&self, name: &str) -> Result<()> {
        self.batch(&format!(
            "RELEASE SAVEPOINT \"{}\"",
            name.replace('"', "\"\"")
        ))
    }

    /// `ROLLBACK TO SAVEPOINT name` then `RELEASE` it.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn rollback_to(&self, name: &str) -> Result<()> {
        let n = name.replace('"', "\"\"");
        self.batch(&format!("ROLLBACK TO SAVEPOINT \"{n}\""))?;
        self.batch(&format!("RELEASE SAVEPOINT \"{n}\""))
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.run(Ctx::RAW, sql, || self.batch_raw(sql).map(|()| ((), 0)))
    }

    /// Runs `f` so that either all it wrote stays or none of it: inside a savepoint when a
    /// transaction is open, else in a transaction of its own, committed at the end.
    ///
    /// # Errors
    /// The error of `f` (after rolling back), or of the transaction statements.
    pub fn atomic<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        let own = !self.in_transaction();
        let value = self.write_atomically(f)?;
        if own && let Err(e) = self.commit() {
            // A COMMIT that failed may leave the transaction open (SQLite when busy): end it,
            // so that nothing of the call lingers to be committed by a later statement.
            if self.in_transaction()
                && let Err(undo) = self.rollback()
            {
                tracing::warn!(target: "orm::sql", error = %undo, "rolling back after a failed COMMIT failed");
            }
            return Err(e);
        }
        Ok(value)
    }

    /// Runs `f` so that either all it wrote stays or none of it, and leaves the transaction
    /// open. When a transaction is open already (it holds earlier writes), `f` runs in a
    /// savepoint that a failure rolls back. Otherwise this begins the transaction (`BEGIN
    /// IMMEDIATE`) and a failure rolls all of it back: the same outcome without a savepoint,
    /// whose statement journal would copy every page `f` touches.
    ///
    /// ```
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = orm_core::Connection::open_sqlite_memory()?;
    /// conn.execute("CREATE TABLE t (x INTEGER UNIQUE)", &[])?;
    /// conn.write_atomically(|c| c.execute("INSERT INTO t VALUES (1)", &[]))?;
    /// let failed = conn.write_atomically(|c| {
    ///     c.execute("INSERT INTO t VALUES (2)", &[])?;
    ///     c.execute("INSERT INTO t VALUES (1)", &[]) // unique violation
    /// });
    /// assert!(failed.is_err());
    /// conn.commit()?;
    /// assert_eq!(conn.query_i64("SELECT count(*) FROM t", &[])?, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The error of `f` (after rolling back), or of the transaction statements.
    pub fn write_atomically<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        const SP: &str = "orm_write";
        let nested = self.in_transaction();
        if nested {
            self.savepoint(SP)?;
        } else {
            self.begin()?;
        }
        let undo = || self.undo_write(nested.then_some(SP));
        // A panic in `f` (a user's iterator or conversion) must not leave its writes behind
        // in the transaction for a later COMMIT: roll back, then let the panic go on.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(Ok(v)) => {
                if nested {
                    self.release(SP)?;
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                undo();
                Err(e)
            }
            Err(panic) => {
                undo();
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Undoes a write that failed: rolls back to `savepoint` (and releases it), or without
    /// one rolls the whole transaction back. A failure to do so is logged, not returned: the
    /// caller reports the write's own error, and the transaction's state is asked of the
    /// driver afterwards ([`transaction_status`](Self::transaction_status)).
    ///
    /// ```
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = orm_core::Connection::open_sqlite_memory()?;
    /// conn.begin()?;
    /// conn.savepoint("step")?;
    /// conn.execute("CREATE TABLE t (x)", &[])?;
    /// conn.undo_write(Some("step"));
    /// assert!(conn.in_transaction());
    /// conn.undo_write(None);
    /// assert!(!conn.in_transaction());
    /// # Ok(()) }
    /// ```
    pub fn undo_write(&self, savepoint: Option<&str>) {
        let undone = match savepoint {
            Some(name) => self.rollback_to(name),
            None => self.rollback(),
        };
        if let Err(e) = undone {
            tracing::warn!(target: "orm::sql", error = %e, "rolling back a failed write failed");
        }
    }

    fn shape<E: Entity>(
        &self,
        kind: Kind,
        columns: &[usize],
        batch: usize,
        check_version: bool,
    ) -> std::sync::Arc<str> {
        Shape {
            backend: self.backend(),
            entity: TypeId::of::<E>(),
            meta: E::META,
            kind,
            columns,
            batch,
            check_version,
        }
        .sql()
    }

    /// Inserts rows through multi-row `INSERT … VALUES` statements of up to 100 rows,
    /// prepared once per shape, in chunks that respect the bound-parameter limit (B5, B6).
    /// All rows or none are written. Returns the number of rows inserted.
    ///
    /// Rows are entities (`E`, `&E`, `Box<E>`, …) or [`Mapping`](crate::Mapping)s; they are
    /// grouped by the set of columns they carry, so one call may mix rows with and without
    /// keys. Memory stays bounded by the batch, whatever the number of rows (B7).
    /// Database-generated keys are not read back: see
    /// [`insert_returning_keys`](Self::insert_returning_keys). A UUIDv7 key that is nil or
    /// missing is generated.
    ///
    /// # Errors
    /// [`Error::Database`] (e.g. [`ErrorKind::UniqueViolation`](crate::ErrorKind)), or a
    /// mapping's [`Error::TypeMismatch`]: nothing of the call is written.
    pub fn insert_many<R: RowSource>(&self, rows: impl IntoIterator<Item = R>) -> Result<u64> {
        self.insert_many_with(rows, &InsertOptions::default())
    }

    /// [`insert_many`](Self::insert_many) with options.
    ///
    /// # Errors
    /// As `insert_many`.
    pub fn insert_many_with<R: RowSource>(
        &self,
        rows: impl IntoIterator<Item = R>,
        options: &InsertOptions,
    ) -> Result<u64> {
        self.atomic(|conn| {
            let mut ins = conn.inserter::<R>(options, false)?;
            ins.push_all(rows.into_iter().map(Ok))?;
            Ok(ins.finish()?.rows)
        })
    }

    /// Inserts rows like [`insert_many`](Self::insert_many) and returns the key of every
    /// row, in input order. Each key is its row's own by construction, never by trusting the
    /// order of a multi-row `RETURNING`: user-given keys are the rows' own, UUIDv7 keys are
    /// generated here, and database keys on SQLite are computed before the rows are sent
    /// (`max(key) + 1` onwards, read once while the transaction holds the write lock: SQLite's
    /// own rule for a rowid key) and checked afterwards against `last_insert_rowid()`.
    ///
    /// # Errors
    /// As `insert_many`: nothing of the call is written.
    pub fn insert_returning_keys<R: RowSource>(
        &self,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<Vec<Key>> {
        self.atomic(|conn| {
            let mut ins = conn.inserter::<R>(&InsertOptions::default(), true)?;
            ins.push_all(rows.into_iter().map(Ok))?;
            Ok(ins.finish()?.keys)
        })
    }

    /// A streaming inserter for rows of type `R`. It is not atomic on its own: use it inside
    /// a transaction or [`atomic`](Self::atomic). With `return_keys`, it needs the
    /// transaction to hold the write lock (the default `BEGIN IMMEDIATE` does).
    ///
    /// # Errors
    /// Database errors while inspecting the table.
    pub fn inserter<R: RowSource>(
        &self,
        options: &InsertOptions,
        return_keys: bool,
    ) -> Result<Inserter<'_, R>> {
        let meta = R::Entity::META;
        Ok(Inserter {
            conn: self,
            st: InsertState {
                tx_serial: self.tx_serial.get(),
                meta,
                generated: meta.key_column().generated,
                return_keys,
                ordered: options.ordered,
                last_group: None,
                batch_rows: options.batch_rows.max(1),
                max_params: self.max_bind_parameters(),
                groups: Vec::new(),
                keys: Vec::new(),
                count: 0,
                written: 0,
                scratch: Vec::new(),
                sequence_table: None,
                next_key: None,
                explicit_keys: self.backend() == Backend::Postgres,
                sqlite_keys: None,
            },
        })
    }

    /// Takes up an inserter put aside with [`Inserter::suspend`]. What it knew of the table's
    /// keys is kept only within the transaction it was used in; in another it is read again.
    pub fn resume_inserter<R: RowSource>(&self, mut state: InsertState<R>) -> Inserter<'_, R> {
        let serial = self.tx_serial.get();
        if state.tx_serial != serial || !self.in_transaction() {
            state.next_key = None;
            state.sqlite_keys = None;
            state.tx_serial = serial;
        }
        Inserter {
            conn: self,
            st: state,
        }
    }

    /// The types `meta`'s columns are sent as by `COPY`: checked against the live table once
    /// per connection and table ([`check_mapping`](Self::check_mapping)); a mapping that does
    /// not fit fails here, before anything is sent.
    #[cfg(feature = "postgres")]
    fn wire_types(&self, meta: &'static EntityMeta) -> Result<std::sync::Arc<[crate::SqlType]>> {
        if let Some(t) = self.wire_types.borrow().get(meta.table) {
            return Ok(std::sync::Arc::clone(t));
        }
        let types: std::sync::Arc<[crate::SqlType]> = self.check_mapping(meta)?.into();
        self.wire_types
            .borrow_mut()
            .insert(meta.table, std::sync::Arc::clone(&types));
        Ok(types)
    }

    /// The first of `n` consecutive keys nobody uses: what SQLite would assign next. Sound
    /// only while this connection holds the write lock.
    fn reserve_keys<E: Entity>(&self, n: usize, sequence_table: &mut Option<bool>) -> Result<i64> {
        let meta = E::META;
        let conn = match &self.driver {
            Driver::Sqlite(SqliteDriver { conn, .. }) => conn,
            #[cfg(feature = "postgres")]
            Driver::Postgres(_) => {
                return Err(Error::InvalidState {
                    message: "keys from max(key) + 1 are only sound on SQLite".into(),
                });
            }
        };
        let sql = self.shape::<E>(Kind::MaxKey, &[], 0, false);
        let max: Option<i64> = self.run(Ctx::of(meta), &sql, || {
            Ok((conn.prepare_cached(&sql)?.query_row([], |r| r.get(0))?, 1))
        })?;
        let has_sequence = match *sequence_table {
            Some(v) => v,
            None => {
                let v = self.query_i64(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
                    &[],
                )? > 0;
                *sequence_table = Some(v);
                v
            }
        };
        let mut last = max.unwrap_or(0);
        if has_sequence {
            let seq = self.query_values(
                "SELECT seq FROM sqlite_sequence WHERE name = ?",
                &[Value::Text(meta.table.into())],
            )?;
            if let Some(Value::I64(s)) = seq.first().and_then(|r| r.first()) {
                last = last.max(*s);
            }
        }
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        // The keys are last + 1 ..= last + n: they must fit, the last one may be i64::MAX.
        last.checked_add(n)
            .map(|_| last + 1)
            .ok_or_else(|| Error::InvalidState {
                message: format!(
                    "{} (table `{}`): the integer key space is exhausted",
                    meta.name, meta.table
                ),
            })
    }

    /// How SQLite gives values to the integer key of `meta`'s table (see [`SqliteKeys`]): two
    /// catalogue reads, once per inserter.
    fn sqlite_keys(&self, meta: &'static EntityMeta) -> Result<SqliteKeys> {
        let serial = self.tx_serial.get();
        let in_tx = self.in_transaction();
        if in_tx
            && let Some(&(seen, keys)) = self.key_info.borrow().get(meta.table)
            && seen == serial
        {
            return Ok(keys);
        }
        let keys = self.read_sqlite_keys(meta)?;
        if in_tx {
            self.key_info
                .borrow_mut()
                .insert(meta.table, (serial, keys));
        }
        Ok(keys)
    }

    fn read_sqlite_keys(&self, meta: &'static EntityMeta) -> Result<SqliteKeys> {
        let table = Value::Text(meta.table.into());
        let key = Value::Text(meta.key_column().name.into());
        // A rowid alias: the only key column, declared exactly `INTEGER`, in a rowid table.
        let alias = self.query_i64(
            "SELECT (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1 \
               AND (SELECT upper(type) FROM pragma_table_info(?1) WHERE name = ?2 AND pk > 0) \
                   = 'INTEGER' \
               AND coalesce((SELECT upper(sql) NOT LIKE '%WITHOUT%ROWID%' FROM sqlite_master \
                   WHERE type = 'table' AND name = ?1 COLLATE NOCASE), 1)",
            &[table.clone(), key],
        )? == 1;
        let triggers = self.query_i64(
            "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'trigger' \
                     AND tbl_name = ?1 COLLATE NOCASE) \
                  + (SELECT count(*) FROM sqlite_temp_master WHERE type = 'trigger' \
                     AND tbl_name = ?1 COLLATE NOCASE)",
            &[table],
        )? > 0;
        Ok(match (alias, triggers) {
            (false, _) => SqliteKeys::NotGenerated,
            (true, false) => SqliteKeys::Rowid,
            (true, true) => SqliteKeys::RowidWithTriggers,
        })
    }

    /// The row of `E` with this key.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::Conversion`] when a column does not fit.
    pub fn find<E: Entity>(&self, key: &Key) -> Result<Option<E>> {
        if !key_fits(E::META, key) {
            // No row can have a key its column cannot hold: the same answer on every backend.
            return Ok(None);
        }
        let sql = self.shape::<E>(Kind::SelectByKey, &[], 0, false);
        let k = key.to_value(E::META.key_column().sql_type);
        let mut found = None;
        self.query_rows(Ctx::of(E::META), &sql, &[k.as_ref()], |row| {
            found = Some(E::from_row(row)?);
            Ok(())
        })?;
        Ok(found)
    }

    /// Reloads columns `columns` of `target` from the row with `target`'s key. Returns false
    /// (and changes nothing) when the row is gone.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::Conversion`] when a column does not fit.
    pub fn reload_columns<E: Entity>(
        &self,
        key: &Key,
        columns: &[usize],
        target: &mut E,
    ) -> Result<bool> {
        let meta = E::META;
        let sql = self.shape::<E>(Kind::SelectColumnsByKey, columns, 0, false);
        let k = key.to_value(meta.key_column().sql_type);
        let found = self.query_rows(Ctx::of(meta), &sql, &[k.as_ref()], |row| {
            for (i, &col) in columns.iter().enumerate() {
                let ty = meta.columns[col].sql_type;
                row.value(i, ty)
                    .and_then(|v| target.set_column(col, v))
                    .map_err(|source| Error::conversion(meta, col, source))?;
            }
            Ok(())
        })?;
        Ok(found > 0)
    }

    /// Every row of `E`.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::Conversion`] when a column does not fit.
    pub fn select_all<E: Entity>(&self) -> Result<Vec<E>> {
        self.select(&SelectSpec::default())
    }

    /// Rows of `E` matching a filter, ordered and limited as `spec` says.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::Conversion`] when a column does not fit.
    pub fn select<E: Entity>(&self, spec: &SelectSpec) -> Result<Vec<E>> {
        let mut out = Vec::new();
        self.select_each::<E>(spec, |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    /// The selected columns of the rows of `E` matching `spec` (filter, order, limit,
    /// offset), each row decoded as the selection's row type; with `distinct`, each
    /// distinct row once (see [`Selection`](crate::Selection)).
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::Conversion`].
    pub fn select_columns<E: Entity, S: crate::Selection<E>>(
        &self,
        selection: &S,
        spec: &SelectSpec,
        distinct: bool,
    ) -> Result<Vec<S::Row>> {
        let exprs = selection.exprs();
        let (sql, params) = sql::select_columns(E::META, &exprs, distinct, spec, self.backend());
        let mut out = Vec::new();
        self.query_rows(Ctx::of(E::META), &sql, &refs(&params), |row| {
            out.push(selection.decode(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Streams rows of `E` matching `spec` into `f` (SQLite reads them one at a time;
    /// PostgreSQL receives the whole result first, as `postgres::Client::query` does).
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::Conversion`]; the first error of `f`.
    pub fn select_each<E: Entity>(
        &self,
        spec: &SelectSpec,
        mut f: impl FnMut(E) -> Result<()>,
    ) -> Result<()> {
        let (sql, params) = sql::select(E::META, spec, self.backend());
        self.query_rows(Ctx::of(E::META), &sql, &refs(&params), |row| {
            E::from_row(row).and_then(&mut f)
        })?;
        Ok(())
    }

    /// `SELECT COUNT(*)` of `E` with an optional filter.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn count<E: Entity>(&self, filter: Option<crate::Filter<E>>) -> Result<u64> {
        self.count_where::<E>(filter.as_ref().map(crate::Filter::condition))
    }

    /// `UPDATE` of every row of `E` that `filter` matches (all rows without one), setting the
    /// columns of `values`; a versioned entity's version is incremented unless `values` sets
    /// it. Returns the number of rows changed and, with `returning`, their keys
    /// (`RETURNING`, on both backends).
    ///
    /// ```
    /// use orm_core::{Connection, Entity, Value};
    /// #[derive(Entity, Debug)]
    /// struct Item { #[orm(primary_key)] id: i64, qty: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Item>()?;
    /// conn.insert_many((1..=4).map(|id| Item { id, qty: id * 10 }))?;
    /// let low = Item::QTY.lt(25_i64);
    /// let (n, keys) = conn.update_where::<Item>(&[(1, Value::I64(0))], Some(low.condition()), true)?;
    /// assert_eq!((n, keys.len()), (2, 2));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn update_where<E: Entity>(
        &self,
        values: &[(usize, Value)],
        filter: Option<&Condition>,
        returning: bool,
    ) -> Result<(u64, Vec<Key>)> {
        let meta = E::META;
        let bump = meta
            .version_column()
            .filter(|v| !values.iter().any(|(c, _)| c == v));
        let (sql, params) =
            sql::update_where(meta, values, bump, filter, returning, self.backend());
        self.write_returning::<E>(&sql, &params, returning)
    }

    /// `DELETE` of every row of `E` that `filter` matches (all rows without one). Returns the
    /// number of rows deleted and, with `returning`, their keys.
    ///
    /// ```
    /// use orm_core::{Connection, Entity};
    /// #[derive(Entity, Debug)]
    /// struct Item { #[orm(primary_key)] id: i64, qty: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Item>()?;
    /// conn.insert_many((1..=4).map(|id| Item { id, qty: id * 10 }))?;
    /// let (n, _) = conn.delete_where::<Item>(Some(Item::QTY.ge(30_i64).condition()), false)?;
    /// assert_eq!(n, 2);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Database`] from the driver (a row still referenced by a foreign key).
    pub fn delete_where<E: Entity>(
        &self,
        filter: Option<&Condition>,
        returning: bool,
    ) -> Result<(u64, Vec<Key>)> {
        let (sql, params) = sql::delete_where(E::META, filter, returning, self.backend());
        self.write_returning::<E>(&sql, &params, returning)
    }

    /// Runs a write; its row count, and with `returning` the keys its rows return.
    fn write_returning<E: Entity>(
        &self,
        sql: &str,
        params: &[Value],
        returning: bool,
    ) -> Result<(u64, Vec<Key>)> {
        let meta = E::META;
        let ty = meta.key_column().sql_type;
        let params = refs(params);
        if !returning {
            return self.run(Ctx::of(meta), sql, || {
                let n = self.db().execute(sql, &params)?;
                Ok(((n, Vec::new()), usize::try_from(n).unwrap_or(usize::MAX)))
            });
        }
        let mut keys = Vec::new();
        self.query_rows(Ctx::of(meta), sql, &params, |row| {
            let v = row
                .value(0, ty)
                .map_err(|e| Error::type_mismatch(meta, meta.primary_key, e.to_string()))?;
            keys.extend(Key::from_value(&v));
            Ok(())
        })?;
        Ok((keys.len() as u64, keys))
    }

    /// Whether a row of `E` matches `filter` (any row without one): `SELECT EXISTS (…)`,
    /// which stops at the first.
    ///
    /// ```
    /// use orm_core::{Connection, Entity};
    /// #[derive(Entity, Debug)]
    /// struct Item { #[orm(primary_key)] id: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Item>()?;
    /// assert!(!conn.exists_where::<Item>(None)?);
    /// conn.insert_many([Item { id: 3 }])?;
    /// assert!(conn.exists_where::<Item>(Some(Item::ID.eq(3_i64).condition()))?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn exists_where<E: Entity>(&self, filter: Option<&Condition>) -> Result<bool> {
        let (sql, params) = sql::exists(E::META, filter, self.backend());
        let mut found = false;
        self.query_rows(Ctx::of(E::META), &sql, &refs(&params), |row| {
            found = matches!(
                row.value(0, SqlType::Bool)
                    .map_err(|e| scalar_error(&sql, &e))?,
                ValueRef::Bool(true)
            );
            Ok(())
        })?;
        Ok(found)
    }

    /// `SELECT COUNT(*)` of `E` with an untyped condition.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn count_where<E: Entity>(&self, filter: Option<&Condition>) -> Result<u64> {
        let (sql, params) = sql::count(E::META, filter, self.backend());
        let mut n = 0;
        self.query_rows(Ctx::of(E::META), &sql, &refs(&params), |row| {
            if let ValueRef::I64(v) = row
                .value(0, SqlType::I64)
                .map_err(|e| scalar_error(&sql, &e))?
            {
                n = v;
            }
            Ok(())
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// `UPDATE` columns `columns` of the row with `row`'s key, setting them from `row`.
    /// With `expected_version`, the statement also requires the version column to hold that
    /// value and increments it. Returns the number of rows matched.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn update_columns<E: Entity>(
        &self,
        row: &E,
        columns: &[usize],
        expected_version: Option<&Value>,
    ) -> Result<u64> {
        let meta = E::META;
        let sql = self.shape::<E>(Kind::UpdateByKey, columns, 0, expected_version.is_some());
        let key = row.column(meta.primary_key);
        self.execute_prepared(
            Ctx::of(meta),
            &sql,
            columns.len() + 2,
            columns
                .iter()
                .map(|&c| row.column(c))
                .chain(std::iter::once(key))
                .chain(expected_version.map(Value::as_ref)),
        )
    }

    /// Executes a cached statement with these parameters; returns the rows changed.
    fn execute_prepared<'v>(
        &self,
        ctx: Ctx<'_>,
        sql: &str,
        capacity: usize,
        params: impl Iterator<Item = ValueRef<'v>>,
    ) -> Result<u64> {
        let mut values: Vec<ValueRef<'v>> = Vec::with_capacity(capacity);
        values.extend(params);
        self.run(ctx, sql, || {
            let n = self.db().execute(sql, &values)?;
            Ok((n, usize::try_from(n).unwrap_or(usize::MAX)))
        })
    }

    /// `UPDATE` from explicit values: `values` pairs column positions with values, `key` picks
    /// the row. A versioned entity's version is always incremented; with `expected_version`,
    /// the row must also hold that version. Returns the number of rows matched.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn update_values<E: Entity>(
        &self,
        key: &Value,
        values: &[(usize, Value)],
        expected_version: Option<&Value>,
    ) -> Result<u64> {
        let cols: Vec<usize> = values.iter().map(|(c, _)| *c).collect();
        let kind = if expected_version.is_none() && E::META.version_column().is_some() {
            Kind::UpdateBumpByKey
        } else {
            Kind::UpdateByKey
        };
        let sql = self.shape::<E>(kind, &cols, 0, expected_version.is_some());
        self.execute_prepared(
            Ctx::of(E::META),
            &sql,
            values.len() + 2,
            values
                .iter()
                .map(|(_, v)| v.as_ref())
                .chain(std::iter::once(key.as_ref()))
                .chain(expected_version.map(Value::as_ref)),
        )
    }

    /// Inserts the row, or updates every other column of the row with its key when there is
    /// one (`INSERT … ON CONFLICT (key) DO UPDATE`).
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn upsert<E: Entity>(&self, row: &E) -> Result<u64> {
        self.insert_whole_row(row, Kind::Upsert)
    }

    /// One row with every column, through the `INSERT … ON CONFLICT` statement `kind`.
    fn insert_whole_row<E: Entity>(&self, row: &E, kind: Kind) -> Result<u64> {
        let cols: Vec<usize> = (0..E::META.columns.len()).collect();
        let sql = self.shape::<E>(kind, &cols, 1, false);
        self.execute_prepared(
            Ctx::of(E::META),
            &sql,
            cols.len(),
            cols.iter().map(|&c| row.column(c)),
        )
    }

    /// Inserts the row unless a row with its key exists (`INSERT … ON CONFLICT (key) DO
    /// NOTHING`). Returns 1 when it was inserted, 0 when the key was taken.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn insert_if_absent<E: Entity>(&self, row: &E) -> Result<u64> {
        self.insert_whole_row(row, Kind::InsertIfAbsent)
    }

    /// `DELETE` the row with this key (and, with `expected_version`, that version). Returns
    /// the number of rows deleted.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn delete_by_key<E: Entity>(
        &self,
        key: &Key,
        expected_version: Option<&Value>,
    ) -> Result<u64> {
        let meta = E::META;
        let sql = self.shape::<E>(Kind::DeleteByKey, &[], 0, expected_version.is_some());
        let k = key.to_value(meta.key_column().sql_type);
        self.execute_prepared(
            Ctx::of(meta),
            &sql,
            2,
            std::iter::once(k.as_ref()).chain(expected_version.map(Value::as_ref)),
        )
    }
}

/// Rows per binary `COPY` on PostgreSQL (at least; `batch_rows` if larger).
const PG_COPY_ROWS: usize = 10_000;

/// Below this many rows, a multi-row `INSERT` costs PostgreSQL fewer round trips than `COPY`.
#[cfg(feature = "postgres")]
const PG_COPY_MIN_ROWS: usize = 32;

/// How the key column of a group of rows gets its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// From the row (or not sent at all, for a database key nobody asked back).
    Row,
    /// Reserved by the inserter: on SQLite consecutive from `max(key) + 1`, on PostgreSQL
    /// from the key's identity sequence.
    Sequential,
    /// A UUIDv7 generated per row.
    Uuid,
    /// SQLite, a table with triggers: one row per statement, its key read back.
    PerRow,
}

struct Group<R> {
    columns: Vec<usize>,
    fill: Fill,
    per_statement: usize,
    rows: Vec<(usize, R)>,
}

/// What an [`Inserter`] did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct InsertOutcome {
    /// Rows inserted.
    pub rows: u64,
    /// The key of every row, in input order (empty unless keys were asked for).
    pub keys: Vec<Key>,
}

/// Streams rows into multi-row `INSERT`s: rows are grouped by the columns they carry and each
/// group is sent as soon as it holds a full statement's worth, so memory is bounded by the
/// batch, not the row count. Made by [`Connection::inserter`].
pub struct Inserter<'c, R: RowSource> {
    conn: &'c Connection,
    st: InsertState<R>,
}

/// An [`Inserter`] put aside between two uses of its connection ([`Inserter::suspend`],
/// [`Connection::resume_inserter`]): its buffered rows, the keys it handed out and what it
/// knows of the table's keys. A caller that must not hold its connection while it makes rows
/// (a session running the caller's iterator without its lock) suspends after each chunk and
/// resumes for the next, so batches stay full across chunks.
pub struct InsertState<R: RowSource> {
    /// The connection's transaction serial when this state was last used: what it knows of
    /// the table's keys holds only within that transaction.
    tx_serial: u64,
    meta: &'static EntityMeta,
    generated: Generated,
    return_keys: bool,
    ordered: bool,
    last_group: Option<usize>,
    batch_rows: usize,
    max_params: usize,
    groups: Vec<Group<R>>,
    keys: Vec<Option<Key>>,
    count: usize,
    written: u64,
    scratch: Vec<usize>,
    sequence_table: Option<bool>,
    /// The next free database key, once known: the table's maximum is read once per
    /// inserter, then kept up to date by what it sends. Wider than a key, so that a batch
    /// ending exactly at `i64::MAX` is still accepted.
    next_key: Option<i128>,
    /// PostgreSQL: keys reserved from the sequence travel with their rows (and rows go by
    /// `COPY`), where SQLite assigns precomputed keys itself.
    explicit_keys: bool,
    /// SQLite: how the table's key gets its values, looked up at the first row that needs a
    /// generated key.
    sqlite_keys: Option<SqliteKeys>,
}

/// How an SQLite table's integer key gets its values, which decides how an inserter proves
/// the key of every row it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SqliteKeys {
    /// A rowid alias (`INTEGER PRIMARY KEY`) and no trigger: SQLite gives a multi-row
    /// `VALUES` the keys `max + 1` onwards, in order, and nothing else writes during the
    /// statement (checked by `total_changes`).
    Rowid,
    /// A rowid alias with triggers, which may write to the table between our rows: rows go one
    /// by one and each key is read back with `last_insert_rowid()` (which SQLite restores
    /// after a trigger).
    RowidWithTriggers,
    /// Not a rowid alias (`id BIGINT PRIMARY KEY`, `WITHOUT ROWID`): SQLite generates
    /// nothing, so the inserter sends keys it computed under the write lock.
    NotGenerated,
}

impl<R: RowSource> Inserter<'_, R> {
    /// Adds a row; sends its group's statement when the group is full.
    ///
    /// # Errors
    /// The row's own check ([`Error::TypeMismatch`]) or the database's error.
    pub fn push(&mut self, row: R) -> Result<()> {
        let (g, index) = self.classify(&row)?;
        self.place(g, index, row)?;
        if self.st.groups[g].rows.len() >= self.st.groups[g].per_statement {
            self.send(g)?;
        }
        Ok(())
    }

    /// Adds every row of `rows`, as [`push`](Self::push) would. On PostgreSQL, once a group
    /// of rows that need no reserved keys is large enough, it is streamed: one `COPY` stays
    /// open while the iterator yields rows of that group, so the server inserts while the
    /// caller's rows are still being made.
    ///
    /// # Errors
    /// As `push`, and the first error the iterator yields.
    pub fn push_all(&mut self, rows: impl IntoIterator<Item = Result<R>>) -> Result<()> {
        let mut rows = rows.into_iter();
        // Not a `for` loop: the streaming branch goes on pulling from `rows` itself.
        #[allow(clippy::while_let_on_iterator)]
        while let Some(row) = rows.next() {
            let row = row?;
            let (g, index) = self.classify(&row)?;
            self.place(g, index, row)?;
            #[cfg(feature = "postgres")]
            if let Driver::Postgres(pg) = &self.conn.driver
                && self.st.groups[g].fill != Fill::Sequential
                && !self.st.groups[g].columns.is_empty()
                && self.st.groups[g].rows.len() >= PG_COPY_MIN_ROWS
            {
                if let Some((g2, index, row)) = self.stream_postgres(pg, g, &mut rows)? {
                    self.place(g2, index, row)?;
                }
                continue;
            }
            if self.st.groups[g].rows.len() >= self.st.groups[g].per_statement {
                self.send(g)?;
            }
        }
        Ok(())
    }

    /// Puts a classified row into its group, first sending the previous group when the
    /// input order must be kept.
    fn place(&mut self, g: usize, index: usize, row: R) -> Result<()> {
        if self.st.ordered
            && let Some(last) = self.st.last_group
            && last != g
            && !self.st.groups[last].rows.is_empty()
        {
            self.send(last)?;
        }
        self.st.last_group = Some(g);
        self.st.groups[g].rows.push((index, row));
        Ok(())
    }

    /// Checks a row and finds (or makes) the group of rows it goes with; returns the group
    /// and the row's input index.
    fn classify(&mut self, row: &R) -> Result<(usize, usize)> {
        row.check()?;
        let index = self.st.count;
        self.st.count += 1;
        let pk = self.st.meta.primary_key;
        let mut cols = std::mem::take(&mut self.st.scratch);
        cols.clear();
        row.carried(&mut cols);
        let key_is_null = row.value(pk).is_null();
        if self.st.generated == Generated::AutoIncrement
            && key_is_null
            && !self.st.explicit_keys
            && self.st.sqlite_keys.is_none()
        {
            self.st.sqlite_keys = Some(self.conn.sqlite_keys(self.st.meta)?);
        }
        let key = row.value(pk);
        let fill = match self.st.generated {
            Generated::AutoIncrement if key.is_null() => {
                cols.retain(|&c| c != pk);
                match self.st.sqlite_keys {
                    Some(SqliteKeys::NotGenerated) => {
                        cols.push(pk);
                        cols.sort_unstable();
                        Fill::Sequential
                    }
                    Some(SqliteKeys::RowidWithTriggers) if self.st.return_keys => Fill::PerRow,
                    _ if self.st.return_keys => {
                        if self.st.explicit_keys {
                            cols.push(pk);
                            cols.sort_unstable();
                        }
                        Fill::Sequential
                    }
                    _ => Fill::Row,
                }
            }
            Generated::UuidV7
                if matches!(key, ValueRef::Null)
                    || matches!(key, ValueRef::Uuid(u) if u.is_nil()) =>
            {
                if !cols.contains(&pk) {
                    cols.push(pk);
                    cols.sort_unstable();
                }
                Fill::Uuid
            }
            _ => Fill::Row,
        };
        if self.st.return_keys {
            self.st.keys.push(if fill == Fill::Row {
                Key::from_value(&key)
            } else {
                None
            });
        }
        drop(key);
        let g = match self
            .st
            .groups
            .iter()
            .position(|g| g.fill == fill && g.columns == cols)
        {
            Some(g) => {
                self.st.scratch = cols;
                g
            }
            None => {
                if let Some(c) = crate::mapping::missing_required(self.st.meta, &cols) {
                    return Err(Error::type_mismatch(
                        self.st.meta,
                        c,
                        "nothing (the column is missing from the row)".into(),
                    ));
                }
                let per_statement = if cols.is_empty() && !self.st.explicit_keys {
                    // SQLite's `DEFAULT VALUES` inserts one row.
                    1
                } else if self.st.explicit_keys {
                    // PostgreSQL: binary COPY, so a batch is bounded by memory, not parameters.
                    self.st.batch_rows.max(PG_COPY_ROWS)
                } else {
                    self.st
                        .batch_rows
                        .min(self.st.max_params / cols.len().max(1))
                        .max(1)
                };
                self.st.groups.push(Group {
                    columns: cols,
                    fill,
                    per_statement,
                    rows: Vec::with_capacity(per_statement.min(1024)),
                });
                self.st.groups.len() - 1
            }
        };
        Ok((g, index))
    }

    /// Streams group `g` into one `COPY`: its buffered rows, then rows from `rows` for as
    /// long as they belong to `g`. Returns the first row that does not, classified.
    #[cfg(feature = "postgres")]
    fn stream_postgres(
        &mut self,
        pg: &crate::postgres::PgConn,
        g: usize,
        rows: &mut impl Iterator<Item = Result<R>>,
    ) -> Result<Option<(usize, usize, R)>> {
        let conn = self.conn;
        let meta = self.st.meta;
        let types = conn.wire_types(meta)?;
        // A copy: the group keeps its columns, so that rows classified meanwhile find it.
        let columns = self.st.groups[g].columns.clone();
        let fill = self.st.groups[g].fill;
        let mut buffered = std::mem::take(&mut self.st.groups[g].rows).into_iter();
        let sql = conn.shape::<R::Entity>(Kind::Copy, &columns, 0, false);
        let mut started = false;
        let mut done = false;
        let mut other = None;
        let outcome = conn.run(Ctx::of(meta), &sql, || {
            let written = pg.copy_in(&sql, |buf| {
                let mut enc = crate::postgres::CopyEncoder { buf };
                if !started {
                    enc.header();
                    started = true;
                }
                while enc.buf.len() < crate::postgres::COPY_CHUNK {
                    let (index, row) = match buffered.next() {
                        Some(r) => r,
                        None => match rows.next() {
                            None => {
                                done = true;
                                break;
                            }
                            Some(row) => {
                                let row = row?;
                                let (g2, index) = self.classify(&row)?;
                                if g2 != g {
                                    other = Some((g2, index, row));
                                    done = true;
                                    break;
                                }
                                (index, row)
                            }
                        },
                    };
                    let key = (fill == Fill::Uuid).then(|| {
                        let id = crate::uuid_v7();
                        if self.st.return_keys {
                            self.st.keys[index] = Some(Key::Uuid(id));
                        }
                        ValueRef::Uuid(id)
                    });
                    copy_row(&mut enc, meta, &types, &columns, &row, key.as_ref())?;
                }
                if done {
                    enc.trailer();
                }
                Ok(!done)
            })?;
            Ok((written, usize::try_from(written).unwrap_or(usize::MAX)))
        });
        self.st.written += outcome?;
        Ok(other)
    }

    /// Puts the inserter aside (its buffered rows kept, nothing sent), so that its connection
    /// can be used or given back meanwhile; [`Connection::resume_inserter`] takes it up again.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, InsertOptions};
    /// #[derive(Entity, Debug)]
    /// struct N { #[orm(primary_key, auto_increment)] id: Option<i64>, v: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<N>()?;
    /// conn.begin()?;
    /// let mut ins = conn.inserter::<N>(&InsertOptions::default(), true)?;
    /// ins.push(N { id: None, v: 1 })?;
    /// let state = ins.suspend();
    /// let mut ins = conn.resume_inserter(state);
    /// ins.push(N { id: None, v: 2 })?;
    /// assert_eq!(ins.finish()?.keys.len(), 2);
    /// conn.commit()?;
    /// # Ok(()) }
    /// ```
    pub fn suspend(self) -> InsertState<R> {
        self.st
    }

    /// Sends what is left and reports what was done.
    ///
    /// # Errors
    /// The database's error.
    pub fn finish(mut self) -> Result<InsertOutcome> {
        for g in 0..self.st.groups.len() {
            if !self.st.groups[g].rows.is_empty() {
                self.send(g)?;
            }
        }
        let keys = if self.st.return_keys {
            let meta = self.st.meta;
            self.st
                .keys
                .into_iter()
                .map(|k| {
                    k.ok_or_else(|| Error::InvalidState {
                        message: format!(
                            "{} (table `{}`): a row has no value for the primary key `{}` and it \
                             is not generated",
                            meta.name,
                            meta.table,
                            meta.key_column().name
                        ),
                    })
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(InsertOutcome {
            rows: self.st.written,
            keys,
        })
    }

    fn send(&mut self, g: usize) -> Result<()> {
        let conn = self.conn;
        let meta = self.st.meta;
        let pk = meta.primary_key;
        let c = match &conn.driver {
            Driver::Sqlite(SqliteDriver { conn, .. }) => conn,
            #[cfg(feature = "postgres")]
            Driver::Postgres(pg) => return self.send_postgres(g, pg),
        };
        let group = &mut self.st.groups[g];
        let n = group.rows.len();
        let first = match (group.fill, self.st.next_key) {
            (Fill::Sequential, Some(next)) => keys_from(meta, next, n)?,
            (Fill::Sequential, None) => {
                conn.reserve_keys::<R::Entity>(n, &mut self.st.sequence_table)?
            }
            _ => 0,
        };
        let fill = group.fill;
        let columns = &group.columns;
        let rows = &group.rows;
        // With the key among the columns, the computed keys are sent (a table whose key
        // SQLite does not generate); otherwise SQLite assigns them.
        let explicit = fill == Fill::Sequential && columns.contains(&pk);
        let bind_row = |stmt: &mut rusqlite::CachedStatement<'_>,
                        i: &mut usize,
                        j: usize,
                        row: &R,
                        uuids: &mut Vec<uuid::Uuid>|
         -> rusqlite::Result<()> {
            for (position, &col) in columns.iter().enumerate() {
                if col == pk && fill == Fill::Uuid {
                    let id = crate::uuid_v7();
                    uuids.push(id);
                    stmt.raw_bind_parameter(*i, ValueRef::Uuid(id))?;
                } else if col == pk && explicit {
                    let key = first + i64::try_from(j).unwrap_or(i64::MAX);
                    stmt.raw_bind_parameter(*i, ValueRef::I64(key))?;
                } else {
                    stmt.raw_bind_parameter(*i, row.value_at(position, col))?;
                }
                *i += 1;
            }
            Ok(())
        };
        let mut uuids = Vec::new();
        if fill == Fill::PerRow {
            // One row per statement, each key read back: correct whatever triggers do.
            let sql = conn.shape::<R::Entity>(Kind::Insert, columns, 1, false);
            let mut keys = Vec::with_capacity(n);
            conn.run(Ctx::of(meta), &sql, || {
                let mut stmt = c.prepare_cached(&sql)?;
                for (j, (_, row)) in rows.iter().enumerate() {
                    let mut i = 1;
                    bind_row(&mut stmt, &mut i, j, row, &mut uuids)?;
                    stmt.raw_execute()?;
                    keys.push(c.last_insert_rowid());
                }
                Ok(((), n))
            })?;
            for ((index, _), key) in group.rows.iter().zip(keys) {
                self.st.keys[*index] = Some(Key::Int(key));
            }
            group.rows.clear();
            self.st.written += n as u64;
            return Ok(());
        }
        let sql = conn.shape::<R::Entity>(Kind::Insert, columns, n, false);
        let before = c.total_changes();
        let (written, last_rowid) = conn.run(Ctx::of(meta), &sql, || {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut i = 1;
            for (j, (_, row)) in rows.iter().enumerate() {
                bind_row(&mut stmt, &mut i, j, row, &mut uuids)?;
            }
            let n = stmt.raw_execute()?;
            Ok(((n as u64, c.last_insert_rowid()), n))
        })?;
        if fill == Fill::Sequential && !explicit {
            // SQLite gave the rows `max(key) + 1` onwards, in VALUES order (its documented
            // rule for a rowid key, which the write lock keeps to this connection). The keys
            // were computed before sending; the last one is checked against SQLite's own, and
            // the count of rows changed (triggers included) shows nothing else was written
            // in between.
            let expected = first.saturating_add(i64::try_from(n).unwrap_or(i64::MAX) - 1);
            let changed = c.total_changes().wrapping_sub(before);
            if last_rowid != expected || changed != n as u64 {
                return Err(Error::InvalidState {
                    message: format!(
                        "{} (table `{}`): SQLite assigned keys up to {last_rowid} (and changed \
                         {changed} rows) where the keys {first}..={expected} of {n} rows were \
                         computed; the call is rolled back rather than hand out wrong keys",
                        meta.name, meta.table
                    ),
                });
            }
        }
        if self.st.return_keys {
            for (j, (index, _)) in group.rows.iter().enumerate() {
                self.st.keys[*index] = match fill {
                    Fill::Sequential => {
                        Some(Key::Int(first + i64::try_from(j).unwrap_or(i64::MAX)))
                    }
                    Fill::Uuid => uuids.get(j).copied().map(Key::Uuid),
                    Fill::Row | Fill::PerRow => self.st.keys[*index].take(),
                };
            }
        }
        match fill {
            Fill::Sequential => {
                self.st.next_key = Some(i128::from(first) + n as i128);
            }
            Fill::Row if self.st.generated == Generated::AutoIncrement => {
                // Rows that carried their own key may sit above what was reserved so far.
                if let Some(next) = self.st.next_key {
                    let top = group
                        .rows
                        .iter()
                        .filter_map(|(_, r)| match r.value(pk) {
                            ValueRef::I64(k) => Some(k),
                            ValueRef::I32(k) => Some(i64::from(k)),
                            _ => None,
                        })
                        .max();
                    if let Some(top) = top {
                        self.st.next_key = Some(next.max(i128::from(top) + 1));
                    }
                }
            }
            _ => {}
        }
        group.rows.clear();
        self.st.written += written;
        Ok(())
    }

    /// PostgreSQL: keys come from the identity sequence (`nextval`, one round trip for the
    /// batch), and rows go by binary `COPY`, or by one multi-row `INSERT` when few.
    #[cfg(feature = "postgres")]
    fn send_postgres(&mut self, g: usize, pg: &crate::postgres::PgConn) -> Result<()> {
        let conn = self.conn;
        let meta = self.st.meta;
        let pk = meta.primary_key;
        let group = &mut self.st.groups[g];
        let n = group.rows.len();
        let fill = group.fill;
        let ctx = Ctx::of(meta);
        let reserved: Vec<i64> = if fill == Fill::Sequential {
            // The sequence's id is looked up once per transaction: while it lasts, the rows
            // this transaction wrote lock the table against being dropped and made again.
            let serial = conn.tx_serial.get();
            let known = conn
                .sequences
                .borrow()
                .get(meta.table)
                .filter(|(s, _)| *s == serial)
                .map(|(_, id)| *id);
            let (keys, id) = conn.run(ctx, crate::postgres::RESERVE_KEYS, || {
                Ok((pg.reserve_keys(meta, n, known)?, n))
            })?;
            conn.sequences.borrow_mut().insert(meta.table, (serial, id));
            if keys.len() != n {
                return Err(Error::InvalidState {
                    message: format!(
                        "{} (table `{}`): asked the sequence for {n} keys, got {}",
                        meta.name,
                        meta.table,
                        keys.len()
                    ),
                });
            }
            keys
        } else {
            Vec::new()
        };
        let mut uuids = Vec::new();
        let columns = &group.columns;
        let rows = &group.rows;
        let mut next_uuid = || {
            let id = crate::uuid_v7();
            uuids.push(id);
            id
        };
        let written = if n >= PG_COPY_MIN_ROWS && !columns.is_empty() {
            let types = conn.wire_types(meta)?;
            let sql = conn.shape::<R::Entity>(Kind::Copy, columns, 0, false);
            let mut next = 0;
            conn.run(ctx, &sql, || {
                let written = pg.copy_in(&sql, |buf| {
                    let mut enc = crate::postgres::CopyEncoder { buf };
                    if next == 0 {
                        enc.header();
                    }
                    while next < n && enc.buf.len() < crate::postgres::COPY_CHUNK {
                        let key = match fill {
                            Fill::Uuid => Some(ValueRef::Uuid(next_uuid())),
                            Fill::Sequential => Some(ValueRef::I64(reserved[next])),
                            // SQLite only.
                            Fill::Row | Fill::PerRow => None,
                        };
                        copy_row(&mut enc, meta, &types, columns, &rows[next].1, key.as_ref())?;
                        next += 1;
                    }
                    if next == n {
                        enc.trailer();
                    }
                    Ok(next < n)
                })?;
                Ok((written, usize::try_from(written).unwrap_or(usize::MAX)))
            })?
        } else {
            let sql = conn.shape::<R::Entity>(Kind::Insert, columns, n, false);
            let mut values: Vec<ValueRef<'_>> = Vec::with_capacity(n * columns.len());
            for (j, (_, row)) in rows.iter().enumerate() {
                for (position, &col) in columns.iter().enumerate() {
                    values.push(match fill {
                        Fill::Uuid if col == pk => ValueRef::Uuid(next_uuid()),
                        Fill::Sequential if col == pk => ValueRef::I64(reserved[j]),
                        _ => row.value_at(position, col),
                    });
                }
            }
            conn.execute_prepared(ctx, &sql, values.len(), values.into_iter())?
        };
        if self.st.return_keys {
            for (j, (index, _)) in group.rows.iter().enumerate() {
                self.st.keys[*index] = match fill {
                    Fill::Sequential => reserved.get(j).copied().map(Key::Int),
                    Fill::Uuid => uuids.get(j).copied().map(Key::Uuid),
                    Fill::Row | Fill::PerRow => self.st.keys[*index].take(),
                };
            }
        }
        group.rows.clear();
        self.st.written += written;
        Ok(())
    }
}

/// Whether `key` can be a value of `meta`'s key column (an integer key of an `i32` column
/// must fit in 32 bits).
fn key_fits(meta: &EntityMeta, key: &Key) -> bool {
    match (meta.key_column().sql_type, key) {
        (crate::SqlType::I32, Key::Int(v)) => i32::try_from(*v).is_ok(),
        _ => true,
    }
}

/// The first of `n` keys from `next` on, when all of them fit in an `i64`.
fn keys_from(meta: &EntityMeta, next: i128, n: usize) -> Result<i64> {
    let last = next + n as i128 - 1;
    match (i64::try_from(next), i64::try_from(last)) {
        (Ok(first), Ok(_)) => Ok(first),
        _ => Err(Error::InvalidState {
            message: format!(
                "{} (table `{}`): the integer key space is exhausted",
                meta.name, meta.table
            ),
        }),
    }
}

/// Encodes one row for `COPY`: `columns` from the row, except the key column when `key`
/// gives the value the inserter made for it (a reserved or generated key).
#[cfg(feature = "postgres")]
fn copy_row<R: RowSource>(
    enc: &mut crate::postgres::CopyEncoder<'_>,
    meta: &'static EntityMeta,
    types: &[crate::SqlType],
    columns: &[usize],
    row: &R,
    key: Option<&ValueRef<'_>>,
) -> Result<()> {
    enc.row(columns.len());
    for (position, &col) in columns.iter().enumerate() {
        let own;
        let v = match key {
            Some(k) if col == meta.primary_key => k,
            _ => {
                own = row.value_at(position, col);
                &own
            }
        };
        enc.value(v, types[col])
            .map_err(|found| Error::type_mismatch(meta, col, found))?;
    }
    Ok(())
}

/// The error of a one-value result of the ORM's own query that is not of its type.
fn scalar_error(sql: &str, e: &crate::FromSqlError) -> Error {
    Error::InvalidState {
        message: format!("the result of `{sql}` is not of the expected type: {e}"),
    }
}

/// Parameters as the backends bind them.
fn refs(params: &[Value]) -> Vec<ValueRef<'_>> {
    params.iter().map(Value::as_ref).collect()
}

fn open_error(target: &str, e: rusqlite::Error) -> Error {
    Error::Open {
        target: target.to_owned(),
        source: Box::new(e),
    }
}

/// A cheap per-thread pseudo-random number, to spread retries of contending writers.
fn jitter(attempt: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static SEED: u64 = {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x6a69_7474_6572);
            h.finish()
        };
    }
    let x = SEED.with(|s| *s) ^ u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let x = (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    u32::try_from(x >> 40).unwrap_or(0)
}
