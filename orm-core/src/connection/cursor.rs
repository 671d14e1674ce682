//! Cursors: a query's rows read a page at a time, with memory bounded by the page.
//!
//! PostgreSQL gets a server-side cursor (`DECLARE … NO SCROLL CURSOR FOR SELECT …`, then
//! `FETCH FORWARD n` per page); it lives in the transaction that declared it.
//!
//! SQLite cannot keep a statement stepping between calls here (the statement would borrow
//! the connection that the caller's session keeps behind its lock), so the cursor is the
//! query's keys, in the query's order, written to a temporary table when the cursor opens
//! (`CREATE TEMP TABLE … AS SELECT key FROM … WHERE … ORDER BY … LIMIT …`); each page then
//! reads the next rows of that table joined to the entity's table by key. The temporary
//! table is the connection's own (other connections never see it) and is dropped when the
//! cursor closes. The set of rows is fixed when the cursor opens, as PostgreSQL's is; a row
//! deleted meanwhile is skipped, and a row changed meanwhile is read as it is now.

use std::marker::PhantomData;

use super::{Connection, Ctx};
use crate::entity::Entity;
use crate::error::{Error, Result};
use crate::filter::SelectSpec;
use crate::select::SelectExpr;
use crate::sql::{self, Backend};
use crate::value::{SqlType, ValueRef};

/// An open cursor over rows of `E` ([`Connection::open_cursor`]): read it with
/// [`Connection::fetch`], close it with [`Connection::close_cursor`]. It belongs to the
/// connection that opened it; on PostgreSQL, to the transaction too.
///
/// ```
/// use orm_core::{Connection, Entity, SelectSpec};
/// #[derive(Entity, Debug, Clone)]
/// struct Reading { #[orm(primary_key)] id: i64, value: f64 }
/// # fn main() -> orm_core::Result<()> {
/// let conn = Connection::open_sqlite_memory()?;
/// conn.create_table::<Reading>()?;
/// conn.insert_many((1..=25).map(|id| Reading { id, value: id as f64 / 2.0 }))?;
/// let mut cursor = conn.open_cursor::<Reading>(&SelectSpec::default())?;
/// let mut pages = Vec::new();
/// loop {
///     let mut page = Vec::new();
///     if conn.fetch(&mut cursor, 10, |r| Ok(page.push(r.id)))? == 0 {
///         break;
///     }
///     pages.push(page.len());
/// }
/// assert_eq!(pages, [10, 10, 5]);
/// conn.close_cursor(cursor)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a cursor holds server or temporary storage until it is closed"]
pub struct Cursor<E> {
    name: String,
    backend: Backend,
    /// SQLite: the position (temporary table rowid) of the last row read, and of the last
    /// row; PostgreSQL: equal once the last page came back short.
    last: i64,
    end: i64,
    /// PostgreSQL: the connection's transaction when the cursor was declared.
    serial: u64,
    _entity: PhantomData<fn() -> E>,
}

impl<E> Cursor<E> {
    /// Whether every row has been read.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, SelectSpec};
    /// #[derive(Entity, Debug, Clone)]
    /// struct Reading { #[orm(primary_key)] id: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Reading>()?;
    /// conn.insert_many((1..=3).map(|id| Reading { id }))?;
    /// let mut cursor = conn.open_cursor::<Reading>(&SelectSpec::default())?;
    /// assert!(!cursor.is_done());
    /// assert_eq!(conn.fetch(&mut cursor, 5, |_| Ok(()))?, 3);
    /// assert!(cursor.is_done());
    /// # conn.close_cursor(cursor)?;
    /// # Ok(()) }
    /// ```
    pub fn is_done(&self) -> bool {
        self.last >= self.end
    }

    /// The cursor's name on its connection (a PostgreSQL cursor, or SQLite's temporary
    /// table), for logs.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, SelectSpec};
    /// #[derive(Entity, Debug, Clone)]
    /// struct Reading { #[orm(primary_key)] id: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Reading>()?;
    /// conn.insert_many((1..=3).map(|id| Reading { id }))?;
    /// let cursor = conn.open_cursor::<Reading>(&SelectSpec::default())?;
    /// assert!(cursor.name().starts_with("orm_cursor_"));
    /// conn.close_cursor(cursor)?;
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Connection {
    /// Opens a cursor over the rows of `E` that `spec` selects (filters, order, limit and
    /// offset apply; grouping does not), to be read a page at a time with
    /// [`fetch`](Self::fetch). On PostgreSQL the connection must be in a transaction, where
    /// the cursor lives; on SQLite the query's keys are written to a temporary table of
    /// this connection (see the module documentation).
    ///
    /// ```
    /// use orm_core::{Connection, Entity, Order, SelectSpec};
    /// #[derive(Entity, Debug, Clone)]
    /// struct Reading { #[orm(primary_key)] id: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Reading>()?;
    /// conn.insert_many((1..=5).map(|id| Reading { id }))?;
    /// let spec = SelectSpec { order: vec![(Reading::ID.into(), Order::Desc)], limit: Some(3), ..SelectSpec::default() };
    /// let mut cursor = conn.open_cursor::<Reading>(&spec)?;
    /// let mut ids = Vec::new();
    /// while conn.fetch(&mut cursor, 2, |r| Ok(ids.push(r.id)))? > 0 {}
    /// assert_eq!(ids, [5, 4, 3]);
    /// conn.close_cursor(cursor)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidState`] on PostgreSQL outside a transaction; the database's error.
    pub fn open_cursor<E: Entity>(&self, spec: &SelectSpec) -> Result<Cursor<E>> {
        let meta = E::META;
        // Numbered per connection, where cursors and temporary tables live: `orm_cursor_1`,
        // `orm_cursor_2`, …
        let n = self.cursors.get() + 1;
        self.cursors.set(n);
        let name = format!("orm_cursor_{n}");
        let backend = self.backend();
        let (last, end) = if self.db().server_cursors() {
            if !self.in_transaction() {
                return Err(Error::InvalidState {
                    message: format!(
                        "a server-side cursor over {} (table `{}`) lives in a transaction: \
                         begin one before opening it",
                        meta.name, meta.table
                    ),
                });
            }
            let (select, params) = sql::select(meta, spec, backend);
            let sql = format!("DECLARE {} NO SCROLL CURSOR FOR {select}", quote(&name));
            let params = super::refs(&params);
            self.run(Ctx::of(meta), &sql, || {
                self.db().execute_once(&sql, &params)?;
                Ok(((), 0))
            })?;
            (0, 1)
        } else {
            let key = [SelectExpr::column(meta.primary_key)];
            let (select, params) = sql::select_columns(meta, &key, false, spec, backend);
            let temp = self.db().temp_keys();
            let sql = format!("{} {select}", temp.create.replace("{}", &quote(&name)));
            let params = super::refs(&params);
            self.run(Ctx::of(meta), &sql, || {
                let n = self.db().execute_once(&sql, &params)?;
                Ok(((), usize::try_from(n).unwrap_or(0)))
            })?;
            let count = format!(
                "SELECT coalesce(max({}), 0) FROM {}{}",
                temp.position,
                temp.schema,
                quote(&name)
            );
            let mut end = 0;
            self.query_rows(Ctx::of(meta), &count, &[], |row| {
                if let ValueRef::I64(n) = row
                    .value(0, SqlType::I64)
                    .map_err(|e| super::scalar_error(&count, &e))?
                {
                    end = n;
                }
                Ok(())
            })?;
            (0, end)
        };
        Ok(Cursor {
            name,
            backend,
            last,
            end,
            serial: self.tx_serial.get(),
            _entity: PhantomData,
        })
    }

    /// Reads the cursor's next rows, up to `n` (at least one), calling `f` with each in
    /// order. Returns how many there were: 0 only once every row has been read (and from
    /// then on, without asking the database again). A page can be short before the end on
    /// SQLite, where rows deleted since the cursor opened are skipped.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, SelectSpec};
    /// #[derive(Entity, Debug, Clone)]
    /// struct Reading { #[orm(primary_key)] id: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Reading>()?;
    /// conn.insert_many((1..=3).map(|id| Reading { id }))?;
    /// let mut cursor = conn.open_cursor::<Reading>(&SelectSpec::default())?;
    /// let mut page = Vec::new();
    /// assert_eq!(conn.fetch(&mut cursor, 2, |r| Ok(page.push(r.id)))?, 2);
    /// assert_eq!(conn.fetch(&mut cursor, 2, |r| Ok(page.push(r.id)))?, 1);
    /// assert_eq!(conn.fetch(&mut cursor, 2, |r| Ok(page.push(r.id)))?, 0);
    /// assert_eq!(page, [1, 2, 3]);
    /// conn.close_cursor(cursor)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidState`] for a PostgreSQL cursor whose transaction ended, or a SQLite
    /// cursor whose temporary table a rollback undid; the database's error;
    /// [`Error::Conversion`] for a value a field cannot take; the error of `f`.
    pub fn fetch<E: Entity>(
        &self,
        cursor: &mut Cursor<E>,
        n: usize,
        mut f: impl FnMut(E) -> Result<()>,
    ) -> Result<usize> {
        let meta = E::META;
        // PostgreSQL's FETCH takes a count that fits an `int4`.
        let n = n.clamp(1, usize::try_from(i32::MAX).unwrap_or(usize::MAX));
        let gone = || Error::InvalidState {
            message: format!(
                "the cursor over {} (table `{}`) is gone: {}",
                meta.name,
                meta.table,
                match cursor.backend {
                    Backend::Sqlite | Backend::MySql => {
                        "a rollback undid the temporary table that held it"
                    }
                    Backend::Postgres => "the transaction it lived in ended",
                }
            ),
        };
        if self.db().server_cursors() {
            if cursor.last == cursor.end {
                return Ok(0);
            }
            // A cursor of an ended transaction is not asked for: the error would abort the
            // transaction that runs now.
            if !self.in_transaction() || self.tx_serial.get() != cursor.serial {
                return Err(gone());
            }
            let sql = format!("FETCH FORWARD {n} FROM {}", quote(&cursor.name));
            let read = self.query_rows(Ctx::of(meta), &sql, &[], |row| {
                E::from_row(row).and_then(&mut f)
            })?;
            if read < n {
                cursor.last = cursor.end; // the end
            }
            return Ok(read);
        }
        let columns: Vec<String> = meta
            .columns
            .iter()
            .map(|c| format!("t.{}", quote(c.name)))
            .collect();
        let key = quote(meta.columns[meta.primary_key].name);
        let temp = self.db().temp_keys();
        let pos = temp.position;
        let sql = format!(
            "SELECT {}, c.{pos} FROM {}{} AS c JOIN {} AS t ON t.{key} = c.{key} \
             WHERE c.{pos} > ? AND c.{pos} <= ? ORDER BY c.{pos}",
            columns.join(", "),
            temp.schema,
            quote(&cursor.name),
            quote(meta.table),
        );
        let step = i64::try_from(n).unwrap_or(i64::MAX);
        let mut read = 0;
        // Positions run 1..=end without gaps (the table was filled by one statement); a page
        // asks for the next `n` positions, and asks again while rows deleted since the
        // cursor opened leave it empty.
        while read == 0 && cursor.last < cursor.end {
            let (from, to) = (cursor.last, cursor.last.saturating_add(step));
            read = self
                .query_rows(
                    Ctx::of(meta),
                    &sql,
                    &[ValueRef::I64(from), ValueRef::I64(to)],
                    |row| E::from_row(row).and_then(&mut f),
                )
                .map_err(|e| {
                    // Asked of the database, not read from the message.
                    if self.temp_table_exists(&cursor.name) {
                        e
                    } else {
                        gone()
                    }
                })?;
            cursor.last = to.min(cursor.end);
        }
        Ok(read)
    }

    /// Whether this connection has a temporary table `name` (a cursor's).
    fn temp_table_exists(&self, name: &str) -> bool {
        let mut found = true;
        let Some(probe) = self.db().temp_keys().exists else {
            return true;
        };
        let asked = self.query_rows(Ctx::RAW, probe, &[ValueRef::Text(name.into())], |row| {
            let n = row
                .value(0, SqlType::I64)
                .map_err(|e| super::scalar_error(probe, &e))?;
            found = !matches!(n, ValueRef::I64(0));
            Ok(())
        });
        asked.is_err() || found
    }

    /// Closes a cursor: PostgreSQL's `CLOSE` (nothing to do once its transaction ended),
    /// SQLite's temporary table dropped.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, SelectSpec};
    /// #[derive(Entity, Debug, Clone)]
    /// struct Reading { #[orm(primary_key)] id: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Reading>()?;
    /// conn.insert_many((1..=3).map(|id| Reading { id }))?;
    /// let cursor = conn.open_cursor::<Reading>(&SelectSpec::default())?;
    /// conn.close_cursor(cursor)?;
    /// assert_eq!(conn.query_i64("SELECT count(*) FROM temp.sqlite_master", &[])?, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The database's error.
    pub fn close_cursor<E: Entity>(&self, cursor: Cursor<E>) -> Result<()> {
        let name = quote(&cursor.name);
        let sql = if self.db().server_cursors() {
            if !self.in_transaction() {
                return Ok(());
            }
            format!("CLOSE {name}")
        } else {
            self.db().temp_keys().drop.replace("{}", &name)
        };
        self.run(Ctx::of(E::META), &sql, || {
            self.db().execute_once(&sql, &[])?;
            Ok(((), 0))
        })
    }
}
