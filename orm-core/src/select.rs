//! Selecting typed columns instead of whole entities.

use crate::entity::{Column, Entity, RowValues};
use crate::error::{Error, Result};
use crate::value::Field;

/// What a column query selects: one column constant of `E`, or a tuple of up to eight, and
/// the Rust type of each result row (the column's field type, or a tuple of them). Types are
/// checked at compile time: a column of another entity does not compile.
///
/// ```
/// use orm_core::{Connection, Entity, SelectSpec, Selection};
/// #[derive(Entity, Debug)]
/// struct Item { #[orm(primary_key)] id: i64, label: String, qty: Option<i32> }
/// # fn main() -> orm_core::Result<()> {
/// let conn = Connection::open_sqlite_memory()?;
/// conn.create_table::<Item>()?;
/// conn.insert_many([Item { id: 1, label: "a".into(), qty: None }])?;
/// let rows: Vec<(i64, Option<i32>)> =
///     conn.select_columns::<Item, _>(&(Item::ID, Item::QTY), &SelectSpec::default(), false)?;
/// assert_eq!(rows, [(1, None)]);
/// assert_eq!((Item::ID, Item::LABEL).indexes(), [0, 1]);
/// # Ok(()) }
/// ```
pub trait Selection<E>: Copy {
    /// One result row.
    type Row;
    /// Positions of the selected columns in `E::META.columns`, in order.
    fn indexes(&self) -> Vec<usize>;
    /// Decodes one result row whose columns are the selection's, in order.
    ///
    /// # Errors
    /// [`Error::Conversion`] naming the column whose value the field type cannot take.
    fn decode<R: RowValues>(&self, row: &R) -> Result<Self::Row>;
}

/// Decodes the `position`-th value of a row as column `column` of `E`.
fn decode_one<E: Entity, T: Field, R: RowValues>(
    row: &R,
    position: usize,
    column: &Column<E, T>,
) -> Result<T> {
    let index = column.index();
    let ty = E::META.columns[index].sql_type;
    row.value(position, ty)
        .and_then(T::from_sql)
        .map_err(|e| Error::conversion(E::META, index, e))
}

impl<E: Entity, T: Field> Selection<E> for Column<E, T> {
    type Row = T;
    fn indexes(&self) -> Vec<usize> {
        vec![self.index()]
    }
    fn decode<R: RowValues>(&self, row: &R) -> Result<T> {
        decode_one(row, 0, self)
    }
}

macro_rules! tuple_selection {
    ($($t:ident $n:tt),+) => {
        impl<E: Entity, $($t: Field),+> Selection<E> for ($(Column<E, $t>,)+) {
            type Row = ($($t,)+);
            fn indexes(&self) -> Vec<usize> {
                vec![$(self.$n.index()),+]
            }
            fn decode<R: RowValues>(&self, row: &R) -> Result<Self::Row> {
                Ok(($(decode_one(row, $n, &self.$n)?,)+))
            }
        }
    };
}

tuple_selection!(A 0);
tuple_selection!(A 0, B 1);
tuple_selection!(A 0, B 1, C 2);
tuple_selection!(A 0, B 1, C 2, D 3);
tuple_selection!(A 0, B 1, C 2, D 3, F 4);
tuple_selection!(A 0, B 1, C 2, D 3, F 4, G 5);
tuple_selection!(A 0, B 1, C 2, D 3, F 4, G 5, H 6);
tuple_selection!(A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7);
