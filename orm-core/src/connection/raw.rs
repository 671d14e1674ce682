//! Raw SQL whose rows come back as entities or as typed tuples; parameters always bound.

use super::{Connection, Ctx, Driver, SqliteDriver};
use crate::entity::{Entity, EntityMeta, RowValues};
use crate::error::{Error, Result};
use crate::value::{Field, FromSqlError, SqlType, Value, ValueRef};

/// A row of a raw query read by position: a tuple of up to eight field types.
///
/// ```
/// use orm_core::{Connection, Value};
/// # fn main() -> orm_core::Result<()> {
/// let conn = Connection::open_sqlite_memory()?;
/// let rows: Vec<(i64, String, Option<f64>)> =
///     conn.query_as("SELECT ?, 'x', NULL", &[Value::I64(7)])?;
/// assert_eq!(rows, [(7, "x".to_owned(), None)]);
/// # Ok(()) }
/// ```
pub trait RawRow: Sized {
    /// Reads the row.
    ///
    /// # Errors
    /// The position and the reason when a value does not fit its field type.
    fn from_raw<R: RowValues>(row: &R) -> std::result::Result<Self, (usize, FromSqlError)>;
}

fn at<T: Field, R: RowValues>(
    row: &R,
    position: usize,
) -> std::result::Result<T, (usize, FromSqlError)> {
    row.value(position, T::SQL_TYPE)
        .and_then(T::from_sql)
        .map_err(|e| (position, e))
}

macro_rules! raw_row {
    ($($t:ident $n:tt),+) => {
        impl<$($t: Field),+> RawRow for ($($t,)+) {
            fn from_raw<R: RowValues>(row: &R) -> std::result::Result<Self, (usize, FromSqlError)> {
                Ok(($(at::<$t, R>(row, $n)?,)+))
            }
        }
    };
}

raw_row!(A 0);
raw_row!(A 0, B 1);
raw_row!(A 0, B 1, C 2);
raw_row!(A 0, B 1, C 2, D 3);
raw_row!(A 0, B 1, C 2, D 3, F 4);
raw_row!(A 0, B 1, C 2, D 3, F 4, G 5);
raw_row!(A 0, B 1, C 2, D 3, F 4, G 5, H 6);
raw_row!(A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7);

/// A result row seen with `E`'s column order: `positions[i]` is where column `i` of `E` is.
struct Remapped<'r, R> {
    row: &'r R,
    positions: &'r [usize],
}

impl<R: RowValues> RowValues for Remapped<'_, R> {
    fn value(&self, index: usize, ty: SqlType) -> std::result::Result<ValueRef<'_>, FromSqlError> {
        self.row.value(self.positions[index], ty)
    }
}

/// Where each column of `meta` is among a result's columns, matched by name; every column
/// must be there.
fn positions(meta: &'static EntityMeta, names: &[String]) -> Result<Vec<usize>> {
    meta.columns
        .iter()
        .map(|c| {
            names
                .iter()
                .position(|n| n == c.name)
                .ok_or_else(|| Error::InvalidState {
                    message: format!(
                        "{} (table `{}`): the raw query returns no column `{}` (it returns {}); \
                     select every column of the entity, by its name",
                        meta.name,
                        meta.table,
                        c.name,
                        names.join(", ")
                    ),
                })
        })
        .collect()
}

fn raw_conversion(position: usize, e: &FromSqlError) -> Error {
    Error::InvalidState {
        message: format!("column {position} of a raw query: {e}"),
    }
}

impl Connection {
    /// Runs raw SQL (parameters bound, never spliced) whose rows are entities of `E`: each
    /// column of `E` is found in the result by name (extra columns are ignored), and `f`
    /// gets each row as an `E`.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, Value};
    /// #[derive(Entity, Debug, PartialEq)]
    /// struct Item { #[orm(primary_key)] id: i64, label: String }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Item>()?;
    /// conn.insert_many([Item { id: 1, label: "a".into() }, Item { id: 2, label: "b".into() }])?;
    /// let mut got = Vec::new();
    /// conn.query_entities_each::<Item>(
    ///     "SELECT label, id, 'extra' AS note FROM item WHERE id > ?",
    ///     &[Value::I64(1)],
    ///     |item| { got.push(item); Ok(()) },
    /// )?;
    /// assert_eq!(got, [Item { id: 2, label: "b".into() }]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidState`] when a column of `E` is missing from the result; the
    /// database's error; [`Error::Conversion`]; the first error of `f`.
    pub fn query_entities_each<E: Entity>(
        &self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(E) -> Result<()>,
    ) -> Result<()> {
        let meta = E::META;
        self.raw_used.set(true);
        match &self.driver {
            Driver::Sqlite(SqliteDriver { conn, .. }) => self.run(Ctx::of(meta), sql, || {
                let mut stmt = conn.prepare(sql)?;
                let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
                let at = positions(meta, &names)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut n = 0;
                while let Some(row) = rows.next()? {
                    n += 1;
                    E::from_row(&Remapped {
                        row,
                        positions: &at,
                    })
                    .and_then(&mut f)?;
                }
                Ok(((), n))
            }),
            #[cfg(feature = "postgres")]
            Driver::Postgres(pg) => self.run(Ctx::of(meta), sql, || {
                let rows = pg.query(sql, &super::pg_params(params))?;
                let Some(first) = rows.first() else {
                    return Ok(((), 0));
                };
                let names: Vec<String> = first
                    .columns()
                    .iter()
                    .map(|c| c.name().to_owned())
                    .collect();
                let at = positions(meta, &names)?;
                for row in &rows {
                    E::from_row(&Remapped {
                        row,
                        positions: &at,
                    })
                    .and_then(&mut f)?;
                }
                Ok(((), rows.len()))
            }),
        }
    }

    /// Runs raw SQL (parameters bound) whose rows are read by position into `T`, a tuple of
    /// field types (see [`RawRow`]).
    ///
    /// # Errors
    /// The database's error; [`Error::InvalidState`] naming the position of a value that does
    /// not fit its field type.
    pub fn query_as<T: RawRow>(&self, sql: &str, params: &[Value]) -> Result<Vec<T>> {
        self.raw_used.set(true);
        match &self.driver {
            Driver::Sqlite(SqliteDriver { conn, .. }) => self.run(Ctx::RAW, sql, || {
                let mut stmt = conn.prepare(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(T::from_raw(row).map_err(|(i, e)| raw_conversion(i, &e))?);
                }
                let n = out.len();
                Ok((out, n))
            }),
            #[cfg(feature = "postgres")]
            Driver::Postgres(pg) => self.run(Ctx::RAW, sql, || {
                let rows = pg.query(sql, &super::pg_params(params))?;
                let out = rows
                    .iter()
                    .map(|r| T::from_raw(r).map_err(|(i, e)| raw_conversion(i, &e)))
                    .collect::<Result<Vec<T>>>()?;
                let n = out.len();
                Ok((out, n))
            }),
        }
    }
}
