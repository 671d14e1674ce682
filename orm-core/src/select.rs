//! Selecting typed columns and aggregates instead of whole entities.

use std::marker::PhantomData;

use crate::entity::{Column, Entity, RowValues};
use crate::error::{Error, Result};
use crate::filter::{CmpOp, Condition, Filter};
use crate::value::{Bind, Field, SqlType};

/// An aggregate function of a column query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AggregateFn {
    /// `COUNT(column)`: the rows where the column is not NULL.
    Count,
    /// `SUM(column)`.
    Sum,
    /// `AVG(column)`.
    Avg,
    /// `MIN(column)`.
    Min,
    /// `MAX(column)`.
    Max,
}

/// One expression of a query as the statement builder takes it: a column of the queried
/// entity `E`, or of an entity `E` references (through a many-to-one relation, joined with
/// `LEFT JOIN`), optionally aggregated. Built from column constants, aggregates and
/// [`Via`] columns; plain positions serve code that builds a [`SelectSpec`] itself.
///
/// [`SelectSpec`]: crate::SelectSpec
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectExpr {
    /// Position of the column in `E::META.columns`, or, with `via`, in the referenced
    /// entity's columns.
    pub column: usize,
    /// The aggregate applied to it, if any.
    pub aggregate: Option<AggregateFn>,
    /// The position in `E::META.columns` of the foreign key through which the column is
    /// reached, if it is another entity's.
    pub via: Option<usize>,
}

impl SelectExpr {
    /// Column `column` of the queried entity.
    pub fn column(column: usize) -> Self {
        SelectExpr {
            column,
            aggregate: None,
            via: None,
        }
    }
}

impl From<usize> for SelectExpr {
    fn from(column: usize) -> Self {
        SelectExpr::column(column)
    }
}

/// A column of the parent `P` seen from the child `C` through the many-to-one relation of
/// one of `C`'s foreign keys (`Order::CUSTOMER.col(Customer::NAME)`,
/// [`ManyToOne::col`](crate::ManyToOne::col)): the query joins `P`'s table with
/// `LEFT JOIN … ON p.key = c.foreign_key`, so a row whose foreign key is NULL is kept, and
/// the column reads as `Option<T>` (for a nullable column, `Option<Option<U>>`, where a NULL
/// is the outer `None` whether the parent is missing or its column is NULL). Select it,
/// order by it, group by it; filter through the relation with
/// [`ManyToOne::has`](crate::ManyToOne::has).
pub struct Via<C, P, T> {
    foreign_key: usize,
    column: usize,
    _marker: ViaMarker<C, P, T>,
}

/// Child, parent and field type of a [`Via`], carried without owning any.
type ViaMarker<C, P, T> = PhantomData<fn() -> (C, P, T)>;

impl<C, P, T> Clone for Via<C, P, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C, P, T> Copy for Via<C, P, T> {}

impl<C, P, T> std::fmt::Debug for Via<C, P, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Via(foreign key {}, column {})",
            self.foreign_key, self.column
        )
    }
}

impl<C, P, T> Via<C, P, T> {
    /// Used by [`ManyToOne::col`](crate::ManyToOne::col).
    pub(crate) fn new(foreign_key: usize, column: usize) -> Self {
        Via {
            foreign_key,
            column,
            _marker: PhantomData,
        }
    }
}

/// A plain column expression of `E`'s queries, for `order_by` and `group_by`: a column
/// constant of `E`, or a [`Via`] column of an entity `E` references.
pub trait ColumnExpr<E>: Copy {
    /// The expression.
    #[doc(hidden)]
    fn column_expr(&self) -> SelectExpr;
}

impl<E, T> ColumnExpr<E> for Column<E, T> {
    fn column_expr(&self) -> SelectExpr {
        SelectExpr::column(self.index())
    }
}

impl<C, P, T> From<Via<C, P, T>> for SelectExpr {
    fn from(v: Via<C, P, T>) -> Self {
        v.column_expr()
    }
}

impl<E, T> From<Column<E, T>> for SelectExpr {
    fn from(c: Column<E, T>) -> Self {
        SelectExpr::column(c.index())
    }
}

impl<C, P, T> ColumnExpr<C> for Via<C, P, T> {
    fn column_expr(&self) -> SelectExpr {
        SelectExpr {
            column: self.column,
            aggregate: None,
            via: Some(self.foreign_key),
        }
    }
}

/// An aggregate of a column of `E` whose result reads as `T` (built by [`Column::count`],
/// [`sum`](Column::sum), [`avg`](Column::avg), [`min`](Column::min), [`max`](Column::max)).
pub struct Aggregate<E, T> {
    function: AggregateFn,
    column: usize,
    _marker: PhantomData<fn() -> (E, T)>,
}

impl<E, T> Clone for Aggregate<E, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E, T> Copy for Aggregate<E, T> {}

impl<E, T> std::fmt::Debug for Aggregate<E, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}(column {})", self.function, self.column)
    }
}

impl<E, T> Aggregate<E, T> {
    fn compare(self, op: CmpOp, value: impl Bind<T>) -> Filter<E> {
        Filter::new(Condition::Aggregate {
            function: self.function,
            column: self.column,
            op,
            value: value.into_value(),
        })
    }

    /// `aggregate = value`, a condition on groups for [`having`] (a value of the aggregate's
    /// type: `i64` for a count or an integer sum).
    ///
    /// [`having`]: ../orm_session/struct.Select.html#method.having
    pub fn eq(self, value: impl Bind<T>) -> Filter<E> {
        self.compare(CmpOp::Eq, value)
    }
    /// `aggregate <> value`.
    pub fn ne(self, value: impl Bind<T>) -> Filter<E> {
        self.compare(CmpOp::Ne, value)
    }
    /// `aggregate < value`.
    pub fn lt(self, value: impl Bind<T>) -> Filter<E> {
        self.compare(CmpOp::Lt, value)
    }
    /// `aggregate <= value`.
    pub fn le(self, value: impl Bind<T>) -> Filter<E> {
        self.compare(CmpOp::Le, value)
    }
    /// `aggregate > value`.
    pub fn gt(self, value: impl Bind<T>) -> Filter<E> {
        self.compare(CmpOp::Gt, value)
    }
    /// `aggregate >= value`.
    pub fn ge(self, value: impl Bind<T>) -> Filter<E> {
        self.compare(CmpOp::Ge, value)
    }
}

fn aggregate<E, T>(function: AggregateFn, column: usize) -> Aggregate<E, T> {
    Aggregate {
        function,
        column,
        _marker: PhantomData,
    }
}

/// Field types that sum: integers to `i64`, floats to `f64` (NULL when no row counts).
pub trait Summable: Field {
    /// The type of the sum.
    type Sum: Field;
}

/// Field types whose minimum and maximum read as `Option` of the column's own type.
pub trait Ordered: Field {
    /// The type of the minimum or maximum.
    type Extreme: Field;
}

macro_rules! numeric {
    ($($t:ty => $sum:ty),+) => {$(
        impl Summable for $t {
            type Sum = Option<$sum>;
        }
        impl Summable for Option<$t> {
            type Sum = Option<$sum>;
        }
    )+};
}
numeric!(i16 => i64, i32 => i64, i64 => i64, f32 => f64, f64 => f64);

macro_rules! ordered {
    ($($t:ty),+) => {$(
        impl Ordered for $t {
            type Extreme = Option<$t>;
        }
        impl Ordered for Option<$t> {
            type Extreme = Option<$t>;
        }
    )+};
}
ordered!(i16, i32, i64, f32, f64, bool, String, uuid::Uuid);

impl<E, T: Field> Column<E, T> {
    /// `COUNT(column)`: the rows where the column is not NULL.
    pub fn count(self) -> Aggregate<E, i64> {
        aggregate(AggregateFn::Count, self.index())
    }

    /// `SUM(column)`: `i64` for integer columns, `f64` for floats; `None` without rows.
    pub fn sum(self) -> Aggregate<E, T::Sum>
    where
        T: Summable,
    {
        aggregate(AggregateFn::Sum, self.index())
    }

    /// `AVG(column)` as `f64`; `None` without rows.
    pub fn avg(self) -> Aggregate<E, Option<f64>>
    where
        T: Summable,
    {
        aggregate(AggregateFn::Avg, self.index())
    }

    /// `MIN(column)`; `None` without rows.
    pub fn min(self) -> Aggregate<E, T::Extreme>
    where
        T: Ordered,
    {
        aggregate(AggregateFn::Min, self.index())
    }

    /// `MAX(column)`; `None` without rows.
    pub fn max(self) -> Aggregate<E, T::Extreme>
    where
        T: Ordered,
    {
        aggregate(AggregateFn::Max, self.index())
    }
}

/// One item of a column query: a column constant of `E` or an aggregate of one.
pub trait SelectItem<E>: Copy {
    /// What the item reads as.
    type Out;
    /// The expression.
    #[doc(hidden)]
    fn expr(&self) -> SelectExpr;
    /// Decodes the item at `position` of a result row.
    ///
    /// # Errors
    /// [`Error::Conversion`] naming the column.
    fn decode_at<R: RowValues + ?Sized>(&self, row: &R, position: usize) -> Result<Self::Out>;
}

fn decode_as<E: Entity, T: Field, R: RowValues + ?Sized>(
    row: &R,
    position: usize,
    column: usize,
    ty: SqlType,
) -> Result<T> {
    row.value(position, ty)
        .and_then(T::from_sql)
        .map_err(|e| Error::conversion(E::META, column, e))
}

impl<E: Entity, T: Field> SelectItem<E> for Column<E, T> {
    type Out = T;
    fn expr(&self) -> SelectExpr {
        SelectExpr::column(self.index())
    }
    fn decode_at<R: RowValues + ?Sized>(&self, row: &R, position: usize) -> Result<T> {
        let ty = E::META.columns[self.index()].sql_type;
        decode_as::<E, T, R>(row, position, self.index(), ty)
    }
}

impl<C: Entity, P: Entity, T: Field> SelectItem<C> for Via<C, P, T> {
    type Out = Option<T>;
    fn expr(&self) -> SelectExpr {
        self.column_expr()
    }
    fn decode_at<R: RowValues + ?Sized>(&self, row: &R, position: usize) -> Result<Option<T>> {
        let ty = P::META.columns[self.column].sql_type;
        decode_as::<P, Option<T>, R>(row, position, self.column, ty)
    }
}

impl<C: Entity, P: Entity, T: Field> Selection<C> for Via<C, P, T> {
    type Row = Option<T>;
    fn exprs(&self) -> Vec<SelectExpr> {
        vec![SelectItem::<C>::expr(self)]
    }
    fn decode<R: RowValues + ?Sized>(&self, row: &R) -> Result<Option<T>> {
        self.decode_at(row, 0)
    }
}

impl<E: Entity, T: Field> SelectItem<E> for Aggregate<E, T> {
    type Out = T;
    fn expr(&self) -> SelectExpr {
        SelectExpr {
            column: self.column,
            aggregate: Some(self.function),
            via: None,
        }
    }
    fn decode_at<R: RowValues + ?Sized>(&self, row: &R, position: usize) -> Result<T> {
        let column_type = E::META.columns[self.column].sql_type;
        let ty = match self.function {
            AggregateFn::Count => SqlType::I64,
            AggregateFn::Min | AggregateFn::Max => column_type,
            AggregateFn::Avg => SqlType::F64,
            AggregateFn::Sum => match column_type {
                SqlType::I16 | SqlType::I32 | SqlType::I64 => SqlType::I64,
                _ => SqlType::F64,
            },
        };
        decode_as::<E, T, R>(row, position, self.column, ty)
    }
}

/// What a column query selects: one item (a column constant of `E`, or an aggregate of
/// one) or a tuple of up to eight, and the Rust type of each result row. Types are checked
/// at compile time: a column of another entity does not compile.
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
/// let totals: Vec<(i64, Option<i64>)> =
///     conn.select_columns::<Item, _>(&(Item::ID.count(), Item::QTY.sum()), &SelectSpec::default(), false)?;
/// assert_eq!(totals, [(1, None)]);
/// # Ok(()) }
/// ```
pub trait Selection<E>: Copy {
    /// One result row.
    type Row;
    /// The selected expressions, in order.
    #[doc(hidden)]
    fn exprs(&self) -> Vec<SelectExpr>;
    /// Decodes one result row whose columns are the selection's, in order.
    ///
    /// # Errors
    /// [`Error::Conversion`] naming the column whose value the field type cannot take.
    fn decode<R: RowValues + ?Sized>(&self, row: &R) -> Result<Self::Row>;
}

impl<E: Entity, T: Field> Selection<E> for Column<E, T> {
    type Row = T;
    fn exprs(&self) -> Vec<SelectExpr> {
        vec![SelectItem::<E>::expr(self)]
    }
    fn decode<R: RowValues + ?Sized>(&self, row: &R) -> Result<T> {
        self.decode_at(row, 0)
    }
}

impl<E: Entity, T: Field> Selection<E> for Aggregate<E, T> {
    type Row = T;
    fn exprs(&self) -> Vec<SelectExpr> {
        vec![SelectItem::<E>::expr(self)]
    }
    fn decode<R: RowValues + ?Sized>(&self, row: &R) -> Result<T> {
        self.decode_at(row, 0)
    }
}

macro_rules! tuple_selection {
    ($($t:ident $n:tt),+) => {
        impl<E: Entity, $($t: SelectItem<E>),+> Selection<E> for ($($t,)+) {
            type Row = ($($t::Out,)+);
            fn exprs(&self) -> Vec<SelectExpr> {
                vec![$(self.$n.expr()),+]
            }
            fn decode<R: RowValues + ?Sized>(&self, row: &R) -> Result<Self::Row> {
                Ok(($(self.$n.decode_at(row, $n)?,)+))
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
