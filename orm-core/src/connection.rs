//! `Connection`: one database connection and every statement the ORM sends.

use std::any::TypeId;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::OpenFlags;
use rusqlite::limits::Limit;

use crate::entity::{AsEntity, Entity, EntityMeta, Generated};
use crate::error::{Error, Result};
use crate::filter::{Condition, SelectSpec};
use crate::sql::{self, Backend, Kind, Shape};
use crate::sqlite;
use crate::value::{Key, Value, ValueRef};

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
}

impl Default for InsertOptions {
    fn default() -> Self {
        InsertOptions { batch_rows: 100 }
    }
}

impl InsertOptions {
    /// Options with the given batch size.
    pub fn batch_rows(batch_rows: usize) -> Self {
        InsertOptions {
            batch_rows: batch_rows.max(1),
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
    conn: rusqlite::Connection,
    options: SqliteOptions,
    target: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl From<i64> for Key {
    fn from(v: i64) -> Self {
        Key::Int(v)
    }
}
impl From<i32> for Key {
    fn from(v: i32) -> Self {
        Key::Int(i64::from(v))
    }
}
impl From<&str> for Key {
    fn from(v: &str) -> Self {
        Key::Text(v.into())
    }
}
impl From<String> for Key {
    fn from(v: String) -> Self {
        Key::Text(v.into_boxed_str())
    }
}
impl From<uuid::Uuid> for Key {
    fn from(v: uuid::Uuid) -> Self {
        Key::Uuid(v)
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
        Ok(Connection {
            conn,
            options,
            target,
        })
    }

    /// The SQL dialect.
    pub fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    /// What this connection was opened on (a path or URI).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The largest number of bound parameters one statement may carry, as the linked
    /// library reports it now (SQLite's `SQLITE_LIMIT_VARIABLE_NUMBER`).
    pub fn max_bind_parameters(&self) -> usize {
        self.conn
            .limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER)
            .ok()
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l > 0)
            .unwrap_or(999)
    }

    /// The underlying rusqlite connection, for what the ORM does not cover (setting limits,
    /// user functions). Statements sent through it bypass the ORM's log.
    pub fn as_rusqlite(&self) -> &rusqlite::Connection {
        &self.conn
    }

    /// The single place every statement goes through: one `tracing` event (target
    /// `orm::sql`: placeholder SQL, rows, elapsed) and driver errors mapped with context.
    #[inline]
    fn run<T>(
        &self,
        ctx: Ctx<'_>,
        sql: &str,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<(T, usize)>,
    ) -> Result<T> {
        let log = tracing::enabled!(target: "orm::sql", tracing::Level::DEBUG);
        let start = log.then(Instant::now);
        let result = f(&self.conn);
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
            .map_err(|e| sqlite::map_error(e, ctx.entity, ctx.table, sql))
    }

    /// Executes raw SQL with bound parameters; returns the number of rows changed.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        self.run(Ctx::RAW, sql, |c| {
            let n = c.execute(sql, rusqlite::params_from_iter(params.iter()))?;
            Ok((n as u64, n))
        })
    }

    /// Runs a raw query; each row comes back as values decoded by their storage class
    /// (integers as `I64`, reals as `F64`, …).
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn query_values(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        self.run(Ctx::RAW, sql, |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let n = stmt.column_count();
            let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(
                    (0..n)
                        .map(|i| row.get_ref(i).map(sqlite::decode_any))
                        .collect::<rusqlite::Result<_>>()?,
                );
            }
            let len = out.len();
            Ok((out, len))
        })
    }

    /// Runs a raw query that returns one integer (`SELECT count(*) …`).
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::NotFound`] for no row or a non-integer.
    pub fn query_i64(&self, sql: &str, params: &[Value]) -> Result<i64> {
        match self
            .query_values(sql, params)?
            .first()
            .and_then(|r| r.first())
        {
            Some(Value::I64(v)) => Ok(*v),
            _ => Err(Error::NotFound {
                entity: "-",
                table: "-",
                key: sql.to_owned(),
            }),
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` for `E`, with its indexes.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn create_table<E: Entity>(&self) -> Result<()> {
        for stmt in sql::create_table(E::META, self.backend()) {
            self.run(Ctx::of(E::META), &stmt, |c| {
                c.execute(&stmt, []).map(|n| ((), n))
            })?;
        }
        Ok(())
    }

    /// `DROP TABLE IF EXISTS` for `E`.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn drop_table<E: Entity>(&self) -> Result<()> {
        let stmt = sql::drop_table(E::META, self.backend());
        self.run(Ctx::of(E::META), &stmt, |c| {
            c.execute(&stmt, []).map(|n| ((), n))
        })
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Begins a transaction (`BEGIN IMMEDIATE` unless the options say otherwise).
    ///
    /// # Errors
    /// [`Error::Database`]: already in a transaction, or busy past the timeout.
    pub fn begin(&self) -> Result<()> {
        let sql = if self.options.begin_immediate {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        self.batch(sql)
    }

    /// Commits the open transaction.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn commit(&self) -> Result<()> {
        self.batch("COMMIT")
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
        self.run(Ctx::RAW, sql, |c| c.execute_batch(sql).map(|()| ((), 0)))
    }

    /// Runs `f` so that either all it wrote stays or none of it: inside a savepoint when a
    /// transaction is open, else in a transaction of its own.
    ///
    /// # Errors
    /// The error of `f` (after rolling back), or of the transaction statements.
    pub fn atomic<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        const SP: &str = "orm_atomic";
        let nested = self.in_transaction();
        if nested {
            self.savepoint(SP)?
        } else {
            self.begin()?
        }
        match f(self) {
            Ok(v) => {
                if nested {
                    self.release(SP)?
                } else {
                    self.commit()?
                }
                Ok(v)
            }
            Err(e) => {
                let undo = if nested {
                    self.rollback_to(SP)
                } else {
                    self.rollback()
                };
                if let Err(undo) = undo {
                    tracing::warn!(target: "orm::sql", error = %undo, "rollback after a failed call failed");
                }
                Err(e)
            }
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
    /// prepared once per shape, in chunks that respect the bound-parameter limit. All rows
    /// or none are written. Returns the number of rows inserted.
    ///
    /// Database-generated keys are not read back (the session's paths do that); a UUIDv7
    /// key that is nil or `None` is generated for the row.
    ///
    /// # Errors
    /// [`Error::Database`] (e.g. [`ErrorKind::UniqueViolation`](crate::ErrorKind)): nothing of
    /// the call is written.
    pub fn insert_many<R: AsEntity>(&self, rows: impl IntoIterator<Item = R>) -> Result<u64> {
        self.insert_many_with(rows, &InsertOptions::default())
    }

    /// [`insert_many`](Self::insert_many) with options.
    ///
    /// # Errors
    /// As `insert_many`.
    pub fn insert_many_with<R: AsEntity>(
        &self,
        rows: impl IntoIterator<Item = R>,
        options: &InsertOptions,
    ) -> Result<u64> {
        let plan = InsertPlan::new::<R::Entity>(self, options.batch_rows);
        self.atomic(|conn| {
            let mut total = 0u64;
            let mut buf: Vec<R> = Vec::with_capacity(plan.rows_per_stmt(plan.with_key.len()));
            let mut buf_keyed = true;
            for row in rows {
                let keyed = plan.has_key(row.as_entity());
                if keyed != buf_keyed && !buf.is_empty() {
                    total += conn.insert_batch(&plan, &buf, buf_keyed)?;
                    buf.clear();
                }
                buf_keyed = keyed;
                buf.push(row);
                if buf.len() >= plan.rows_per_stmt(plan.columns(keyed).len()) {
                    total += conn.insert_batch(&plan, &buf, keyed)?;
                    buf.clear();
                }
            }
            if !buf.is_empty() {
                total += conn.insert_batch(&plan, &buf, buf_keyed)?;
            }
            Ok(total)
        })
    }

    fn insert_batch<R: AsEntity>(&self, plan: &InsertPlan, rows: &[R], keyed: bool) -> Result<u64> {
        let cols = plan.columns(keyed);
        let sql = self.shape::<R::Entity>(Kind::Insert, cols, rows.len(), false);
        self.run(Ctx::of(R::Entity::META), &sql, |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut i = 1;
            for row in rows {
                let row = row.as_entity();
                for &col in cols {
                    if Some(col) == plan.uuid_key && plan.needs_uuid(row) {
                        stmt.raw_bind_parameter(i, ValueRef::Uuid(uuid::Uuid::now_v7()))?;
                    } else {
                        stmt.raw_bind_parameter(i, row.column(col))?;
                    }
                    i += 1;
                }
            }
            let n = stmt.raw_execute()?;
            Ok((n as u64, n))
        })
    }

    /// Inserts rows one statement each on a statement prepared once, and returns the key of
    /// every row in input order: the database-generated key (`last_insert_rowid()`, free on
    /// SQLite), a generated UUIDv7, or the key the row carries. Each key is that row's own,
    /// by construction. All rows or none are written.
    ///
    /// # Errors
    /// [`Error::Database`]: nothing of the call is written.
    pub fn insert_returning_keys<R: AsEntity>(
        &self,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<Vec<Key>> {
        let plan = InsertPlan::new::<R::Entity>(self, 1);
        self.atomic(|conn| {
            let mut keys = Vec::new();
            for row in rows {
                keys.push(conn.insert_one(&plan, row.as_entity())?);
            }
            Ok(keys)
        })
    }

    /// Inserts one row and returns its key (see
    /// [`insert_returning_keys`](Self::insert_returning_keys)). Not atomic on its own: call
    /// it inside a transaction or [`atomic`](Self::atomic).
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn insert_one_returning_key<E: Entity>(&self, row: &E) -> Result<Key> {
        let plan = InsertPlan::new::<E>(self, 1);
        self.insert_one(&plan, row)
    }

    fn insert_one<E: Entity>(&self, plan: &InsertPlan, row: &E) -> Result<Key> {
        let keyed = plan.has_key(row);
        let cols = plan.columns(keyed);
        let sql = self.shape::<E>(Kind::Insert, cols, 1, false);
        let meta = E::META;
        self.run(Ctx::of(meta), &sql, |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut generated = None;
            for (i, &col) in cols.iter().enumerate() {
                if Some(col) == plan.uuid_key && plan.needs_uuid(row) {
                    let id = uuid::Uuid::now_v7();
                    generated = Some(Key::Uuid(id));
                    stmt.raw_bind_parameter(i + 1, ValueRef::Uuid(id))?;
                } else {
                    stmt.raw_bind_parameter(i + 1, row.column(col))?;
                }
            }
            let n = stmt.raw_execute()?;
            let key = match generated {
                Some(k) => Some(k),
                None if keyed => row.key(),
                None => Some(Key::Int(c.last_insert_rowid())),
            };
            Ok((key, n))
        })?
        .ok_or_else(|| Error::InvalidState {
            message: format!(
                "{} (table `{}`): the primary key `{}` has no value and is not generated; \
                 assign it, or mark it `#[orm(auto_increment)]` or `#[orm(uuid_v7)]`",
                meta.name,
                meta.table,
                meta.key_column().name
            ),
        })
    }

    /// The row of `E` with this key.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::Conversion`] when a column does not fit.
    pub fn find<E: Entity>(&self, key: &Key) -> Result<Option<E>> {
        let sql = self.shape::<E>(Kind::SelectByKey, &[], 0, false);
        let k = key.to_value(E::META.key_column().sql_type);
        self.run(Ctx::of(E::META), &sql, |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query([&k])?;
            match rows.next()? {
                Some(row) => Ok((Some(E::from_row(row)), 1)),
                None => Ok((None, 0)),
            }
        })?
        .transpose()
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
        self.run(Ctx::of(meta), &sql, |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query([&k])?;
            let Some(row) = rows.next()? else {
                return Ok((Ok(false), 0));
            };
            for (i, &col) in columns.iter().enumerate() {
                let ty = meta.columns[col].sql_type;
                let r = crate::entity::RowValues::value(row, i, ty)
                    .and_then(|v| target.set_column(col, v))
                    .map_err(|source| Error::conversion(meta, col, source));
                if let Err(e) = r {
                    return Ok((Err(e), 1));
                }
            }
            Ok((Ok(true), 1))
        })?
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

    /// Streams rows of `E` matching `spec` into `f`.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver; [`Error::Conversion`]; the first error of `f`.
    pub fn select_each<E: Entity>(
        &self,
        spec: &SelectSpec,
        mut f: impl FnMut(E) -> Result<()>,
    ) -> Result<()> {
        let (sql, params) = sql::select(E::META, spec, self.backend());
        self.run(Ctx::of(E::META), &sql, |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
            let mut n = 0;
            while let Some(row) = rows.next()? {
                n += 1;
                if let Err(e) = E::from_row(row).and_then(&mut f) {
                    return Ok((Err(e), n));
                }
            }
            Ok((Ok(()), n))
        })?
    }

    /// `SELECT COUNT(*)` of `E` with an optional filter.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn count<E: Entity>(&self, filter: Option<crate::Filter<E>>) -> Result<u64> {
        self.count_where::<E>(filter.as_ref().map(crate::Filter::condition))
    }

    /// `SELECT COUNT(*)` of `E` with an untyped condition.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn count_where<E: Entity>(&self, filter: Option<&Condition>) -> Result<u64> {
        let (sql, params) = sql::count(E::META, filter, self.backend());
        let n: i64 = self.run(Ctx::of(E::META), &sql, |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            stmt.query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0))
                .map(|n| (n, 1))
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
        self.run(Ctx::of(meta), &sql, |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut i = 1;
            for &col in columns {
                stmt.raw_bind_parameter(i, row.column(col))?;
                i += 1;
            }
            stmt.raw_bind_parameter(i, row.column(meta.primary_key))?;
            if let Some(v) = expected_version {
                stmt.raw_bind_parameter(i + 1, v)?;
            }
            let n = stmt.raw_execute()?;
            Ok((n as u64, n))
        })
    }

    /// `UPDATE` from explicit values: `values` pairs column positions with values, `key` picks
    /// the row. Returns the number of rows matched.
    ///
    /// # Errors
    /// [`Error::Database`] from the driver.
    pub fn update_values<E: Entity>(&self, key: &Value, values: &[(usize, Value)]) -> Result<u64> {
        let cols: Vec<usize> = values.iter().map(|(c, _)| *c).collect();
        let sql = self.shape::<E>(Kind::UpdateByKey, &cols, 0, false);
        self.run(Ctx::of(E::META), &sql, |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            for (i, (_, v)) in values.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, v)?;
            }
            stmt.raw_bind_parameter(values.len() + 1, key)?;
            let n = stmt.raw_execute()?;
            Ok((n as u64, n))
        })
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
        self.run(Ctx::of(meta), &sql, |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            stmt.raw_bind_parameter(1, &k)?;
            if let Some(v) = expected_version {
                stmt.raw_bind_parameter(2, v)?;
            }
            let n = stmt.raw_execute()?;
            Ok((n as u64, n))
        })
    }
}

/// Which columns an insert carries, worked out once per call.
struct InsertPlan {
    with_key: Vec<usize>,
    without_key: Vec<usize>,
    auto_key: Option<usize>,
    uuid_key: Option<usize>,
    max_params: usize,
    batch_rows: usize,
}

impl InsertPlan {
    fn new<E: Entity>(conn: &Connection, batch_rows: usize) -> Self {
        let meta = E::META;
        let pk = meta.primary_key;
        let generated = meta.key_column().generated;
        InsertPlan {
            with_key: (0..meta.columns.len()).collect(),
            without_key: (0..meta.columns.len()).filter(|&c| c != pk).collect(),
            auto_key: (generated == Generated::AutoIncrement).then_some(pk),
            uuid_key: (generated == Generated::UuidV7).then_some(pk),
            max_params: conn.max_bind_parameters(),
            batch_rows: batch_rows.max(1),
        }
    }

    fn has_key<E: Entity>(&self, row: &E) -> bool {
        self.auto_key.is_none_or(|pk| !row.column(pk).is_null())
    }

    fn needs_uuid<E: Entity>(&self, row: &E) -> bool {
        self.uuid_key.is_some_and(|pk| match row.column(pk) {
            ValueRef::Null => true,
            ValueRef::Uuid(u) => u.is_nil(),
            _ => false,
        })
    }

    fn columns(&self, keyed: bool) -> &[usize] {
        if keyed {
            &self.with_key
        } else {
            &self.without_key
        }
    }

    fn rows_per_stmt(&self, ncols: usize) -> usize {
        self.batch_rows.min(self.max_params / ncols.max(1)).max(1)
    }
}

fn open_error(target: &str, e: rusqlite::Error) -> Error {
    Error::Open {
        target: target.to_owned(),
        source: Box::new(e),
    }
}
