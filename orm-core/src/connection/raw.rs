//! Raw SQL whose rows come back as entities or as typed tuples; parameters always bound.

use super::{Connection, Ctx};
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
    fn from_raw<R: RowValues + ?Sized>(row: &R)
    -> std::result::Result<Self, (usize, FromSqlError)>;
}

fn at<T: Field, R: RowValues + ?Sized>(
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
            fn from_raw<R: RowValues + ?Sized>(row: &R) -> std::result::Result<Self, (usize, FromSqlError)> {
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
struct Remapped<'r, R: ?Sized> {
    row: &'r R,
    positions: &'r [usize],
}

impl<R: RowValues + ?Sized> RowValues for Remapped<'_, R> {
    fn value(&self, index: usize, ty: SqlType) -> std::result::Result<ValueRef<'_>, FromSqlError> {
        self.row.value(self.positions[index], ty)
    }

    fn width(&self) -> usize {
        self.positions.len()
    }

    fn column_name(&self, index: usize) -> &str {
        self.row.column_name(self.positions[index])
    }

    fn any_value(&self, index: usize) -> std::result::Result<Value, FromSqlError> {
        self.row.any_value(self.positions[index])
    }

    fn plain_int(&self, index: usize) -> Option<i64> {
        self.row.plain_int(self.positions[index])
    }

    fn plain_text(&self, index: usize) -> Option<Box<str>> {
        self.row.plain_text(self.positions[index])
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
        let mut at: Option<Vec<usize>> = None;
        self.query_rows(Ctx::of(meta), sql, &super::refs(params), |row| {
            if at.is_none() {
                let names: Vec<String> = (0..row.width())
                    .map(|i| row.column_name(i).to_owned())
                    .collect();
                at = Some(positions(meta, &names)?);
            }
            let positions = at.as_deref().unwrap_or_default();
            E::from_row(&Remapped { row, positions }).and_then(&mut f)
        })?;
        Ok(())
    }

    /// Runs raw SQL (parameters bound) whose rows are read by position into `T`, a tuple of
    /// field types (see [`RawRow`]).
    ///
    /// # Errors
    /// The database's error; [`Error::InvalidState`] naming the position of a value that does
    /// not fit its field type.
    pub fn query_as<T: RawRow>(&self, sql: &str, params: &[Value]) -> Result<Vec<T>> {
        self.raw_used.set(true);
        let mut out = Vec::new();
        self.query_rows(Ctx::RAW, sql, &super::refs(params), |row| {
            out.push(T::from_raw(row).map_err(|(i, e)| raw_conversion(i, &e))?);
            Ok(())
        })?;
        Ok(out)
    }
}
