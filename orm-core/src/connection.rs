//! `Connection`: one database connection and every statement the ORM sends.

use std::any::TypeId;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::OpenFlags;

use crate::entity::{Entity, EntityMeta, RowValues};
use crate::error::{Error, Result};
use crate::sql::{self, Backend, Kind, Shape};
use crate::value::{Value, ValueRef};

pub(crate) mod batch;
mod by_key;
mod cursor;
pub(crate) mod db;
mod insert;
mod raw;
pub use batch::{Matched, VersionRule};
pub use cursor::Cursor;
pub(crate) use insert::keys_from;
pub use insert::{InsertOptions, InsertOutcome, InsertState, Inserter};
pub use raw::RawRow;

use crate::sqlite;

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
    driver: Box<dyn db::Db + Send>,
    target: String,
    /// Counts the transactions this connection began.
    tx_serial: std::cell::Cell<u64>,
    /// Counts the cursors this connection opened (their names).
    cursors: std::cell::Cell<u64>,
    /// Raw SQL ran (or the driver was handed out): it may have changed session state
    /// (`SET`, temporary tables) that [`reset`](Connection::reset) undoes before reuse.
    raw_used: std::cell::Cell<bool>,
    /// When [`reset`](Connection::reset) last made it idle.
    idle_since: std::cell::Cell<Option<Instant>>,
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
    #[cfg(feature = "mysql")]
    My(mysql::Error),
    Orm(Error),
}

impl From<rusqlite::Error> for DriverError {
    fn from(e: rusqlite::Error) -> Self {
        DriverError::Sqlite(e)
    }
}

#[cfg(feature = "mysql")]
impl From<mysql::Error> for DriverError {
    fn from(e: mysql::Error) -> Self {
        DriverError::My(e)
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

impl DriverError {
    /// The ORM's error for a driver error that the backend at hand does not map itself.
    pub(crate) fn into_error(self, entity: Option<&'static str>, table: &str, sql: &str) -> Error {
        match self {
            DriverError::Sqlite(e) => sqlite::map_error(e, entity, table, sql),
            #[cfg(feature = "postgres")]
            DriverError::Pg(e) => crate::postgres::map_error(e, entity, table, sql),
            #[cfg(feature = "mysql")]
            DriverError::My(e) => crate::mysql::map_error(e, entity, table, sql),
            DriverError::Orm(e) => e,
        }
    }
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriverError::Sqlite(e) => e.fmt(f),
            #[cfg(feature = "postgres")]
            DriverError::Pg(e) => e.fmt(f),
            #[cfg(feature = "mysql")]
            DriverError::My(e) => e.fmt(f),
            DriverError::Orm(e) => e.fmt(f),
        }
    }
}

pub(crate) type DResult<T> = std::result::Result<T, DriverError>;

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Names the statement for logging and errors.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    entity: Option<&'static str>,
    table: &'a str,
}

impl Ctx<'static> {
    pub(crate) fn of(meta: &'static EntityMeta) -> Self {
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
        let driver = sqlite::SqliteDriver::configure(conn, options, file)
            .map_err(|e| open_error(&target, e))?;
        Ok(Self::with_driver(Box::new(driver), target))
    }

    fn with_driver(driver: Box<dyn db::Db + Send>, target: String) -> Self {
        Connection {
            driver,
            target,
            tx_serial: std::cell::Cell::new(0),
            cursors: std::cell::Cell::new(0),
            raw_used: std::cell::Cell::new(false),
            idle_since: std::cell::Cell::new(None),
        }
    }

    /// Counts the transactions this connection began: what a backend learns of a table
    /// inside one transaction holds until the serial changes.
    pub(crate) fn tx_serial(&self) -> u64 {
        self.tx_serial.get()
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
            Box::new(pg),
            crate::postgres::redact(url),
        ))
    }

    /// Opens a MySQL or MariaDB connection from a URL
    /// (`mysql://user:password@host:port/database`).
    ///
    /// ```no_run
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = orm_core::Connection::open_mysql("mysql://root@127.0.0.1:3306/test")?;
    /// assert_eq!(conn.backend(), orm_core::Backend::MySql);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Open`] when the server cannot be reached or refuses the login.
    #[cfg(feature = "mysql")]
    pub fn open_mysql(url: &str) -> Result<Self> {
        Self::open_mysql_with(url, &crate::MySqlOptions::default())
    }

    /// Opens a MySQL or MariaDB connection with options (a database of its own, …).
    ///
    /// # Errors
    /// [`Error::Open`] when the server cannot be reached, refuses the login, or the database
    /// cannot be created or used.
    #[cfg(feature = "mysql")]
    pub fn open_mysql_with(url: &str, options: &crate::MySqlOptions) -> Result<Self> {
        let my = crate::mysql::MyConn::connect(url, options)?;
        Ok(Self::with_driver(Box::new(my), crate::mysql::redact(url)))
    }

    /// The underlying `mysql` connection, for what the ORM does not cover; `None` on
    /// another backend. Statements sent through it bypass the ORM's log, and a transaction
    /// begun through it is not seen by [`in_transaction`](Self::in_transaction).
    #[cfg(feature = "mysql")]
    pub fn as_mysql(&self) -> Option<std::cell::RefMut<'_, mysql::Conn>> {
        self.raw_sql_ran();
        self.db()
            .as_any()
            .downcast_ref::<crate::mysql::MyConn>()
            .map(crate::mysql::MyConn::client)
    }

    /// The SQL dialect.
    pub fn backend(&self) -> Backend {
        self.db().backend()
    }

    /// The backend behind this connection, through the interface every backend implements.
    pub(crate) fn db(&self) -> &dyn db::Db {
        &*self.driver
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

    /// Whether the database keeps a query open between fetches (PostgreSQL's `DECLARE …
    /// CURSOR`, which lives in a transaction); without, a [`Cursor`] is the query's keys in a
    /// temporary table of the connection, which outlives transactions.
    ///
    /// ```
    /// let conn = orm_core::Connection::open_sqlite_memory().unwrap();
    /// assert!(!conn.has_server_cursors());
    /// ```
    pub fn has_server_cursors(&self) -> bool {
        self.db().server_cursors()
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
        self.db()
            .as_any()
            .downcast_ref::<sqlite::SqliteDriver>()
            .map(|s| &s.conn)
    }

    /// The underlying `postgres` client, for what the ORM does not cover; `None` on another
    /// backend. Statements sent through it bypass the ORM's log, and a transaction begun
    /// through it is not seen by [`in_transaction`](Self::in_transaction).
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<std::cell::RefMut<'_, postgres::Client>> {
        self.raw_sql_ran();
        self.db()
            .as_any()
            .downcast_ref::<crate::postgres::PgConn>()
            .map(crate::postgres::PgConn::client)
    }

    /// The single place every statement goes through: one `tracing` event (target
    /// `orm::sql`: placeholder SQL, rows, elapsed) and driver errors mapped with context.
    #[inline]
    pub(crate) fn run<T>(
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
        result
            .map(|(v, _)| v)
            .map_err(|e| self.db().map_error(e, ctx.entity, ctx.table, sql))
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

    /// Runs a raw query that returns one integer (`SELECT count(*) …`; an exact decimal
    /// without a fraction, as MySQL's `SUM` gives, reads too).
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
            // An exact decimal with no fraction: MySQL's `SUM` of integers.
            Some(Value::Text(t)) if t.parse::<i64>().is_ok() => Ok(t.parse().unwrap_or(0)),
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
        for mut stmt in sql::create_table(meta, self.backend(), later) {
            if stmt.starts_with("CREATE TABLE") {
                stmt.push_str(self.db().table_options());
            }
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
        self.db().forget_tables();
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
        self.db().forget_tables();
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
pub(crate) fn jitter(attempt: u32) -> u32 {
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
