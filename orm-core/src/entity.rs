//! The `Entity` trait and the metadata the derive generates.

use std::fmt;
use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::filter::{CmpOp, Condition, Filter};
use crate::value::{Bind, Field, FromSqlError, Key, SqlType, Value, ValueRef};

/// How the value of a primary key comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Generated {
    /// The user assigns it.
    No,
    /// The database assigns an integer (`INTEGER PRIMARY KEY` on SQLite, an identity
    /// column on PostgreSQL). The field is an `Option` that stays `None` until insert.
    AutoIncrement,
    /// The ORM assigns a UUIDv7 on insert when the field is `None` or the nil UUID.
    UuidV7,
}

/// One column of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnMeta {
    /// Column name in the database.
    pub name: &'static str,
    /// Field name in the struct.
    pub field: &'static str,
    /// SQL type family.
    pub sql_type: SqlType,
    /// Whether NULL is allowed (the field is an `Option`).
    pub nullable: bool,
    /// Whether this is the primary key.
    pub primary_key: bool,
    /// How the value is generated.
    pub generated: Generated,
    /// `UNIQUE` constraint.
    pub unique: bool,
    /// A non-unique index on this column.
    pub index: bool,
    /// An optimistic-concurrency version counter.
    pub version: bool,
    /// The entity this column references (`FOREIGN KEY … REFERENCES`), if any.
    pub references: Option<crate::relation::ForeignKey>,
}

impl ColumnMeta {
    /// Whether an insert must give this column a value: it is NOT NULL and not a key the
    /// database or the ORM generates.
    pub fn required_on_insert(&self) -> bool {
        !(self.nullable || (self.primary_key && self.generated != Generated::No))
    }
}

/// Everything the ORM knows about an entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityMeta {
    /// The Rust type name.
    pub name: &'static str,
    /// Table name.
    pub table: &'static str,
    /// Columns in field order.
    pub columns: &'static [ColumnMeta],
    /// Index of the primary-key column in `columns`.
    pub primary_key: usize,
    /// Relations declared on this entity (`has_many`, `has_one`, `many_to_many`).
    pub relations: &'static [crate::relation::RelationMeta],
}

impl EntityMeta {
    /// The primary-key column.
    pub fn key_column(&self) -> &'static ColumnMeta {
        &self.columns[self.primary_key]
    }

    /// Position of a column by its database name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Position of the version column, if the entity has one.
    pub fn version_column(&self) -> Option<usize> {
        self.columns.iter().position(|c| c.version)
    }

    /// Whether the key is assigned by the database.
    pub fn key_is_auto(&self) -> bool {
        self.key_column().generated == Generated::AutoIncrement
    }

    /// Whether `other` is this entity's metadata. A constant's address is not a reliable
    /// identity (each crate may hold its own copy), so the names are compared too.
    pub fn is(&self, other: &EntityMeta) -> bool {
        std::ptr::eq(self, other) || (self.table == other.table && self.name == other.name)
    }

    /// What identifies the mapping, for what is learnt of it (its check against the live
    /// table, the column types sent): its table, its type name, and a fingerprint of its
    /// columns (names and types), so that two mappings of one table that differ in their
    /// columns are never taken for one another. Its address is not an identity (see
    /// [`is`](Self::is)).
    ///
    /// ```
    /// use orm_core::Entity;
    /// #[derive(Entity, Debug)]
    /// struct Item { #[orm(primary_key)] id: i64, name: String }
    /// mod other {
    ///     #[derive(orm_core::Entity, Debug)]
    ///     pub struct Item { #[orm(primary_key)] pub id: i64, pub label: String }
    /// }
    /// let (table, name, _) = Item::META.identity();
    /// assert_eq!((table, name), ("item", "Item"));
    /// assert_ne!(Item::META.identity(), other::Item::META.identity());
    /// ```
    pub fn identity(&self) -> (&'static str, &'static str, u64) {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        for c in self.columns {
            (c.name, c.sql_type, c.nullable, c.primary_key).hash(&mut h);
        }
        (self.table, self.name, h.finish())
    }

    /// Positions of the columns that are foreign keys, with what they reference.
    pub fn foreign_keys(&self) -> impl Iterator<Item = (usize, crate::relation::ForeignKey)> + '_ {
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.references.map(|fk| (i, fk)))
    }
}

/// Read access to one result row, implemented by each backend. A hand-written
/// [`RawRow`](crate::RawRow) can read a raw query's row by column name with it:
///
/// ```
/// use orm_core::{Connection, FromSqlError, RawRow, RowValues, Value};
///
/// /// Every column of a row, by name, as the database sent it.
/// struct Named(Vec<(String, Value)>);
///
/// impl RawRow for Named {
///     fn from_raw<R: RowValues + ?Sized>(row: &R) -> Result<Self, (usize, FromSqlError)> {
///         (0..row.width())
///             .map(|i| Ok((row.column_name(i).to_owned(), row.any_value(i).map_err(|e| (i, e))?)))
///             .collect::<Result<_, _>>()
///             .map(Named)
///     }
/// }
///
/// # fn main() -> orm_core::Result<()> {
/// let conn = Connection::open_sqlite_memory()?;
/// let rows: Vec<Named> = conn.query_as("SELECT 7 AS n, 'x' AS s", &[])?;
/// assert_eq!(rows[0].0, [("n".to_owned(), Value::I64(7)), ("s".to_owned(), Value::Text("x".into()))]);
/// # Ok(()) }
/// ```
pub trait RowValues {
    /// The value at `index`, decoded as `ty`.
    ///
    /// # Errors
    /// [`FromSqlError`] when the stored value cannot be read as `ty`.
    fn value(&self, index: usize, ty: SqlType) -> std::result::Result<ValueRef<'_>, FromSqlError>;

    /// How many columns the row has.
    fn width(&self) -> usize;

    /// The name of column `index` in the result.
    fn column_name(&self, index: usize) -> &str;

    /// The value at `index` as the database sent it, for results whose types no mapping
    /// declares (raw SQL): integers as `I64`, floats as `F64`, text, bytes, and on
    /// PostgreSQL its other types by their own.
    ///
    /// # Errors
    /// [`FromSqlError`] for a value of a type the ORM cannot read.
    fn any_value(&self, index: usize) -> std::result::Result<crate::Value, FromSqlError>;

    /// The integer at `index` when the row holds a plain integer there, else `None` (NULL,
    /// another type, or no fast path: the caller then reads [`value`](Self::value)). The
    /// commonest read of a load, in a type that comes back in registers.
    fn plain_int(&self, index: usize) -> Option<i64> {
        let _ = index;
        None
    }

    /// The text at `index`, owned, when the row holds valid UTF-8 text there, else `None`
    /// (as [`plain_int`](Self::plain_int)). A row that owns its text may hand it over
    /// rather than copy it (MySQL's does): the column is then read, and a later read of it
    /// fails. A field reads its column once.
    fn plain_text(&self, index: usize) -> Option<Box<str>> {
        let _ = index;
        None
    }
}

/// A struct mapped to a table. Implement it with `#[derive(Entity)]`.
///
/// ```
/// use orm_core::{Entity, Connection};
///
/// #[derive(Entity, Debug, Clone, PartialEq)]
/// #[orm(table = "customer")]
/// struct Customer {
///     #[orm(primary_key, auto_increment)]
///     id: Option<i64>,
///     name: String,
/// }
///
/// # fn main() -> orm_core::Result<()> {
/// assert_eq!(Customer::META.table, "customer");
/// assert_eq!(Customer::NAME.name(), "name");
/// let conn = Connection::open_sqlite_memory()?;
/// conn.create_table::<Customer>()?;
/// conn.insert_many([&Customer { id: None, name: "Ada".into() }])?;
/// let all: Vec<Customer> = conn.select_all()?;
/// assert_eq!(all, vec![Customer { id: Some(1), name: "Ada".into() }]);
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an entity",
    label = "not mapped to a table",
    note = "add `#[derive(Entity)]` and `#[orm(table = \"...\")]` to the struct"
)]
pub trait Entity: Sized + Send + Sync + 'static {
    /// Table and column metadata.
    const META: &'static EntityMeta;

    /// The primary key's type: `i64` for an `Option<i64>` key field, `String` for a `String`
    /// one. `Session::get` takes it, and `Handle::id` returns it.
    type Id: crate::value::KeyValue;

    /// The value of column `index` (a position in `META.columns`), borrowed from the field.
    fn column(&self, index: usize) -> ValueRef<'_>;

    /// Sets column `index` from a database value.
    ///
    /// # Errors
    /// [`FromSqlError`] when the value does not fit the field.
    fn set_column(
        &mut self,
        index: usize,
        value: ValueRef<'_>,
    ) -> std::result::Result<(), FromSqlError>;

    /// Builds an entity from a row holding every column in `META.columns` order.
    ///
    /// # Errors
    /// [`Error::Conversion`] naming the column that could not be read.
    fn from_row(row: &dyn RowValues) -> Result<Self>;

    /// The primary key, or `None` while it is not assigned yet.
    fn key(&self) -> Option<Key> {
        Key::from_value(&self.column(Self::META.primary_key))
    }

    /// Calls `visitor.visit::<T>()` with the target type `T` of relation `relation` (a
    /// position in `META.relations`); `None` when there is no such relation. Generated.
    #[doc(hidden)]
    fn visit_relation<V: crate::relation::TypeVisitor>(
        relation: usize,
        visitor: V,
    ) -> Option<V::Output> {
        let _ = (relation, visitor);
        None
    }
}

/// Something that is, or points to, an entity: the item type of the bulk paths, so they
/// take `Vec<E>`, `&[E]` (as `iter()`), boxes and `Arc`s alike, and infer `E`.
///
/// The derive implements it for the entity itself; references and smart pointers are
/// covered here.
///
/// ```
/// use orm_core::{AsEntity, Entity};
/// #[derive(Entity)]
/// struct T { #[orm(primary_key)] id: i32 }
/// fn key_of<R: AsEntity>(r: R) -> Option<orm_core::Key> { r.as_entity().key() }
/// assert_eq!(key_of(&T { id: 4 }), key_of(T { id: 4 }));
/// ```
pub trait AsEntity {
    /// The entity type.
    type Entity: Entity;
    /// The entity.
    fn as_entity(&self) -> &Self::Entity;
}

impl<E: Entity> AsEntity for &E {
    type Entity = E;
    #[inline]
    fn as_entity(&self) -> &E {
        self
    }
}

impl<E: Entity> AsEntity for &mut E {
    type Entity = E;
    #[inline]
    fn as_entity(&self) -> &E {
        self
    }
}

impl<E: Entity> AsEntity for Box<E> {
    type Entity = E;
    #[inline]
    fn as_entity(&self) -> &E {
        self
    }
}

impl<E: Entity> AsEntity for std::sync::Arc<E> {
    type Entity = E;
    #[inline]
    fn as_entity(&self) -> &E {
        self
    }
}

/// Reads one column for generated `from_row` code, naming the column on failure.
///
/// # Errors
/// [`Error::Conversion`] naming entity and column.
///
/// Inlined into `from_row`, so that the value read goes into its field without first being
/// returned through memory: a `String` returned so was reloaded in wider parts than it was
/// stored in, and each column of each row waited for the stores (a load of 100,000 rows of
/// two text columns took about 1 ms less inlined).
#[doc(hidden)]
#[inline]
pub fn read_column<T: Field>(
    row: &dyn RowValues,
    meta: &'static EntityMeta,
    index: usize,
) -> Result<T> {
    T::read(row, index).map_err(|source| Error::conversion(meta, index, source))
}

/// Sets one column for generated `set_column` code.
///
/// # Errors
/// [`FromSqlError`] when the value does not fit.
#[doc(hidden)]
pub fn assign<T: Field>(
    slot: &mut T,
    value: ValueRef<'_>,
) -> std::result::Result<(), FromSqlError> {
    *slot = T::from_sql(value)?;
    Ok(())
}

/// A typed column of entity `E` whose field has type `T`, generated by the derive as an
/// associated constant (`Customer::NAME`). Filters and bulk mappings built from it are
/// checked by the compiler.
///
/// ```
/// use orm_core::Entity;
/// #[derive(Entity)]
/// struct Item { #[orm(primary_key)] id: i64, label: Option<String> }
///
/// let f = Item::LABEL.eq("x").or(Item::LABEL.is_null()).and(Item::ID.gt(3));
/// assert_eq!(Item::LABEL.name(), "label");
/// # let _ = f;
/// ```
pub struct Column<E, T> {
    index: usize,
    name: &'static str,
    _marker: PhantomData<fn() -> (E, T)>,
}

impl<E, T> Clone for Column<E, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E, T> Copy for Column<E, T> {}

impl<E, T> fmt::Debug for Column<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Column({})", self.name)
    }
}

impl<E, T> Column<E, T> {
    /// Used by generated code.
    #[doc(hidden)]
    pub const fn new(index: usize, name: &'static str) -> Self {
        Column {
            index,
            name,
            _marker: PhantomData,
        }
    }

    /// Position in `E::META.columns`.
    pub const fn index(&self) -> usize {
        self.index
    }

    /// Column name in the database.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

/// A typed list of `E`'s columns, for calls that take several (`Session::expire_attrs`): one
/// column constant, a tuple of them (of any field types, up to eight), or an array or slice
/// of constants of one type. A misspelt column does not compile.
///
/// ```
/// use orm_core::{ColumnSet, Entity};
/// #[derive(Entity, Debug)]
/// struct Item { #[orm(primary_key)] id: i64, label: String, qty: i32 }
/// assert_eq!(Item::QTY.indexes(), [2]);
/// assert_eq!((Item::LABEL, Item::QTY).indexes(), [1, 2]);
/// ```
pub trait ColumnSet<E> {
    /// Positions in `E::META.columns`.
    fn indexes(&self) -> Vec<usize>;
}

impl<E, T> ColumnSet<E> for Column<E, T> {
    fn indexes(&self) -> Vec<usize> {
        vec![self.index]
    }
}

impl<E, T, const N: usize> ColumnSet<E> for [Column<E, T>; N] {
    fn indexes(&self) -> Vec<usize> {
        self.iter().map(|c| c.index).collect()
    }
}

impl<E, T> ColumnSet<E> for &[Column<E, T>] {
    fn indexes(&self) -> Vec<usize> {
        self.iter().map(|c| c.index).collect()
    }
}

macro_rules! column_tuples {
    ($( ($($t:ident $i:tt),+) )*) => {$(
        impl<E, $($t),+> ColumnSet<E> for ($(Column<E, $t>,)+) {
            fn indexes(&self) -> Vec<usize> {
                vec![$(self.$i.index),+]
            }
        }
    )*};
}

column_tuples! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, F 4)
    (A 0, B 1, C 2, D 3, F 4, G 5)
    (A 0, B 1, C 2, D 3, F 4, G 5, H 6)
    (A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7)
}

impl<E: Entity, T: Field> Column<E, T> {
    fn cmp(self, op: CmpOp, value: Value) -> Filter<E> {
        Filter::new(Condition::Compare {
            column: self.index,
            op,
            value,
        })
    }

    /// `column = value`. Comparing with NULL matches nothing, as in SQL; use
    /// [`is_null`](Self::is_null).
    pub fn eq(self, value: impl Bind<T>) -> Filter<E> {
        self.cmp(CmpOp::Eq, value.into_value())
    }
    /// `column <> value`.
    pub fn ne(self, value: impl Bind<T>) -> Filter<E> {
        self.cmp(CmpOp::Ne, value.into_value())
    }
    /// `column < value`.
    pub fn lt(self, value: impl Bind<T>) -> Filter<E> {
        self.cmp(CmpOp::Lt, value.into_value())
    }
    /// `column <= value`.
    pub fn le(self, value: impl Bind<T>) -> Filter<E> {
        self.cmp(CmpOp::Le, value.into_value())
    }
    /// `column > value`.
    pub fn gt(self, value: impl Bind<T>) -> Filter<E> {
        self.cmp(CmpOp::Gt, value.into_value())
    }
    /// `column >= value`.
    pub fn ge(self, value: impl Bind<T>) -> Filter<E> {
        self.cmp(CmpOp::Ge, value.into_value())
    }
    /// `column LIKE pattern` (`%` and `_` are wildcards).
    pub fn like(self, pattern: impl Into<String>) -> Filter<E> {
        Filter::new(Condition::Like {
            column: self.index,
            pattern: pattern.into(),
        })
    }
    /// `column IN (values…)`; an empty list matches nothing.
    pub fn is_in<V: Bind<T>>(self, values: impl IntoIterator<Item = V>) -> Filter<E> {
        Filter::new(Condition::In {
            column: self.index,
            values: values.into_iter().map(Bind::into_value).collect(),
        })
    }
    /// `column IS NULL`.
    pub fn is_null(self) -> Filter<E> {
        Filter::new(Condition::IsNull { column: self.index })
    }
    /// `column IS NOT NULL`.
    pub fn is_not_null(self) -> Filter<E> {
        Filter::new(Condition::IsNull { column: self.index }).not()
    }
}
