//! Reads and writes of single rows by key, and the queries and set-based writes of whole
//! entities: written once over the backend interface, for every backend.

use super::{Connection, Ctx, refs, scalar_error};
use crate::entity::{Entity, EntityMeta};
use crate::error::{Error, Result};
use crate::filter::{Condition, SelectSpec};
use crate::sql::{self, Kind};
use crate::value::{Key, SqlType, Value, ValueRef};

impl Connection {
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
        if returning && !self.db().writes_return_rows() {
            return self
                .locked_write::<E>(filter, || self.update_where::<E>(values, filter, false));
        }
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
        if returning && !self.db().writes_return_rows() {
            return self.locked_write::<E>(filter, || self.delete_where::<E>(filter, false));
        }
        let (sql, params) = sql::delete_where(E::META, filter, returning, self.backend());
        self.write_returning::<E>(&sql, &params, returning)
    }

    /// A write by filter whose keys are needed, on a database whose `UPDATE` returns no rows
    /// (MySQL): the keys the filter matches are read and locked first (`SELECT … FOR
    /// UPDATE`, which in a transaction also keeps new rows from matching), then `write`
    /// changes the same rows. A count that differs from the keys read fails the call.
    fn locked_write<E: Entity>(
        &self,
        filter: Option<&Condition>,
        write: impl FnOnce() -> Result<(u64, Vec<Key>)>,
    ) -> Result<(u64, Vec<Key>)> {
        let meta = E::META;
        let spec = SelectSpec {
            filter: filter.cloned(),
            ..SelectSpec::default()
        };
        let key = [crate::SelectExpr::column(meta.primary_key)];
        let (select, params) = sql::select_columns(meta, &key, false, &spec, self.backend());
        let sql = format!("{select} FOR UPDATE");
        let ty = meta.key_column().sql_type;
        let mut keys = Vec::new();
        self.query_rows(Ctx::of(meta), &sql, &refs(&params), |row| {
            let v = row
                .value(0, ty)
                .map_err(|e| Error::type_mismatch(meta, meta.primary_key, e.to_string()))?;
            keys.extend(Key::from_value(&v));
            Ok(())
        })?;
        let (n, _) = write()?;
        if n != keys.len() as u64 {
            return Err(Error::InvalidState {
                message: format!(
                    "{} (table `{}`): {} rows were locked for the write and {n} written",
                    meta.name,
                    meta.table,
                    keys.len()
                ),
            });
        }
        Ok((n, keys))
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
        // One row, inserted or updated (MySQL counts an update as 2).
        self.insert_whole_row(row, Kind::Upsert).map(|n| n.min(1))
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
        match self.insert_whole_row(row, Kind::InsertIfAbsent) {
            Err(e) if self.db().key_taken(&e) => Ok(0),
            other => other,
        }
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

/// Whether `key` can be a value of `meta`'s key column (an integer key of an `i32` column
/// must fit in 32 bits).
fn key_fits(meta: &EntityMeta, key: &Key) -> bool {
    match (meta.key_column().sql_type, key) {
        (crate::SqlType::I32, Key::Int(v)) => i32::try_from(*v).is_ok(),
        _ => true,
    }
}
