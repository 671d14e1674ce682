//! Rows as column → value pairs, for the bulk paths.

use std::fmt;
use std::marker::PhantomData;

use crate::entity::{AsEntity, Column, Entity, Generated};
use crate::error::{Error, Result};
use crate::value::{Bind, SqlType, Value, ValueRef};

/// One column's value for entity `E`, type-checked by the compiler:
/// `Customer::NAME.to("Ada")` is a `ColumnValue<Customer>`; `Customer::NAME.to(3)` does not
/// compile.
#[derive(Debug, Clone)]
pub struct ColumnValue<E> {
    column: usize,
    value: Value,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity, T: crate::Field> Column<E, T> {
    /// A `(column, value)` pair for bulk mappings, type-checked.
    ///
    /// ```
    /// use orm_core::{Entity, Mapping};
    /// #[derive(Entity)]
    /// struct C { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String }
    /// let row: Mapping<C> = [C::NAME.to("Ada")].into_iter().collect();
    /// assert_eq!(row.len(), 1);
    /// ```
    pub fn to(self, value: impl Bind<T>) -> ColumnValue<E> {
        ColumnValue {
            column: self.index(),
            value: value.into_value(),
            _entity: PhantomData,
        }
    }
}

/// A row of entity `E` as column → value pairs: the input of `bulk_insert_mappings` and
/// `bulk_update_mappings`. Columns are kept sorted; a column set twice keeps the last value.
///
/// Build it typed, from the derive's column constants, or from column names and values
/// checked at run time with [`Mapping::from_names`].
///
/// ```
/// use orm_core::{Entity, Mapping, Value, ErrorKind};
/// #[derive(Entity)]
/// struct C { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String, note: Option<String> }
///
/// let typed = Mapping::<C>::new().set(C::NAME, "Ada").set(C::NOTE, "hi");
/// let dynamic = Mapping::<C>::from_names([("name", Value::from("Ada")), ("note", Value::from("hi"))]).unwrap();
/// assert_eq!(typed, dynamic);
/// // From an array: in column order, or in any order, a column given twice keeping its last
/// // value.
/// assert_eq!(Mapping::from([C::NAME.to("Ada"), C::NOTE.to("hi")]), typed);
/// assert_eq!(Mapping::from([C::NOTE.to("x"), C::NAME.to("Ada"), C::NOTE.to("hi")]), typed);
/// assert_eq!(Mapping::from([C::NAME.to("Ada"), C::NOTE.to("x"), C::NOTE.to("hi")]), typed);
///
/// let err = Mapping::<C>::from_names([("nmae", Value::from("Ada"))]).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::UnknownColumn);
/// let err = Mapping::<C>::from_names([("name", Value::from(5))]).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TypeMismatch);
/// ```
#[derive(Clone)]
pub struct Mapping<E> {
    values: Vec<(usize, Value)>,
    _entity: PhantomData<fn() -> E>,
}

impl<E> PartialEq for Mapping<E> {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl<E> fmt::Debug for Mapping<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.values.iter().map(|(c, v)| (c, v)))
            .finish()
    }
}

impl<E: Entity> Default for Mapping<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Entity> Mapping<E> {
    /// An empty row.
    pub fn new() -> Self {
        Mapping {
            values: Vec::new(),
            _entity: PhantomData,
        }
    }

    fn put(&mut self, column: usize, value: Value) {
        match self.values.binary_search_by_key(&column, |(c, _)| *c) {
            Ok(i) => self.values[i].1 = value,
            Err(i) => self.values.insert(i, (column, value)),
        }
    }

    /// Sets a column, type-checked.
    #[must_use]
    pub fn set<T: crate::Field>(mut self, column: Column<E, T>, value: impl Bind<T>) -> Self {
        self.put(column.index(), value.into_value());
        self
    }

    /// Builds a row from column names and values, checking each name and value type.
    /// Integers convert between `i32` and `i64` (when they fit) and to `f64`.
    ///
    /// # Errors
    /// [`Error::UnknownColumn`] for a name `E` does not have; [`Error::TypeMismatch`] for a
    /// value of the wrong type or NULL for a NOT NULL column.
    pub fn from_names<K: AsRef<str>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Result<Self> {
        let meta = E::META;
        let mut m = Mapping::new();
        for (name, value) in pairs {
            let name = name.as_ref();
            let c = meta
                .column_index(name)
                .ok_or_else(|| Error::unknown_column(meta, name))?;
            m.put(c, coerce(meta, c, value)?);
        }
        Ok(m)
    }

    /// The row of an entity: every column.
    pub fn of(entity: &E) -> Self {
        Mapping {
            values: (0..E::META.columns.len())
                .map(|c| (c, entity.column(c).to_owned_value()))
                .collect(),
            _entity: PhantomData,
        }
    }

    /// Number of columns set.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no column is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of a column, if set.
    pub fn get(&self, column: usize) -> Option<&Value> {
        self.values
            .binary_search_by_key(&column, |(c, _)| *c)
            .ok()
            .map(|i| &self.values[i].1)
    }

    /// The columns set, ascending.
    pub fn columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.values.iter().map(|(c, _)| *c)
    }

    /// Checks what the database would otherwise reject: NULL or a missing value for a NOT
    /// NULL column (generated keys excepted), and, with `require_key`, a missing key.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] naming the column.
    pub fn check(&self, require_key: bool) -> Result<()> {
        let meta = E::META;
        for (i, c) in meta.columns.iter().enumerate() {
            let generated = c.primary_key && c.generated != Generated::No;
            let missing_key = c.primary_key && require_key;
            match self.get(i) {
                None if missing_key => {
                    return Err(Error::type_mismatch(
                        meta,
                        i,
                        "nothing (the key is required to find the row)".into(),
                    ));
                }
                None if !c.nullable && !generated && !require_key => {
                    return Err(Error::type_mismatch(
                        meta,
                        i,
                        "nothing (the column is missing)".into(),
                    ));
                }
                Some(Value::Null) if !c.nullable && !generated => {
                    return Err(Error::type_mismatch(meta, i, "NULL".into()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl<E: Entity> FromIterator<ColumnValue<E>> for Mapping<E> {
    fn from_iter<I: IntoIterator<Item = ColumnValue<E>>>(iter: I) -> Self {
        let mut m = Mapping::new();
        for cv in iter {
            m.put(cv.column, cv.value);
        }
        m
    }
}

impl<E: Entity, const N: usize> From<[ColumnValue<E>; N]> for Mapping<E> {
    fn from(values: [ColumnValue<E>; N]) -> Self {
        let mut v: Vec<(usize, Value)> = Vec::with_capacity(N);
        v.extend(values.into_iter().map(|cv| (cv.column, cv.value)));
        // Columns given in order, each once (the usual way), are left as they are: sorting
        // moves every value through memory even when nothing is out of place.
        if !v.windows(2).all(|w| w[0].0 < w[1].0) {
            v.sort_by_key(|(c, _)| *c);
            // A column given twice keeps its last value.
            v.reverse();
            v.dedup_by_key(|(c, _)| *c);
            v.reverse();
        }
        Mapping {
            values: v,
            _entity: PhantomData,
        }
    }
}

/// Converts a dynamic value to the column's type, or says why it cannot.
fn coerce(meta: &'static crate::EntityMeta, c: usize, value: Value) -> Result<Value> {
    let col = &meta.columns[c];
    let mismatch = |v: &Value| Error::type_mismatch(meta, c, v.as_ref().describe());
    Ok(match (col.sql_type, value) {
        (_, Value::Null) if col.nullable || (col.primary_key && col.generated != Generated::No) => {
            Value::Null
        }
        (SqlType::Date, Value::Date(v)) => Value::Date(v),
        (SqlType::Time, Value::Time(v)) => Value::Time(v),
        (SqlType::DateTime, Value::DateTime(v)) => Value::DateTime(v),
        (SqlType::Timestamp, Value::Timestamp(v)) => Value::Timestamp(v),
        (SqlType::Json | SqlType::Decimal, Value::Text(v)) => Value::Text(v),
        (SqlType::I16, Value::I16(v)) => Value::I16(v),
        (SqlType::I16, Value::I32(v)) => {
            Value::I16(i16::try_from(v).map_err(|_| mismatch(&Value::I32(v)))?)
        }
        (SqlType::I16, Value::I64(v)) => {
            Value::I16(i16::try_from(v).map_err(|_| mismatch(&Value::I64(v)))?)
        }
        (SqlType::I32, Value::I16(v)) => Value::I32(i32::from(v)),
        (SqlType::I64, Value::I16(v)) => Value::I64(i64::from(v)),
        (SqlType::F32, Value::F32(v)) => Value::F32(v),
        (SqlType::F64, Value::F32(v)) => Value::F64(f64::from(v)),
        (SqlType::I32, Value::I32(v)) => Value::I32(v),
        (SqlType::I32, Value::I64(v)) => {
            Value::I32(i32::try_from(v).map_err(|_| mismatch(&Value::I64(v)))?)
        }
        (SqlType::I64, Value::I64(v)) => Value::I64(v),
        (SqlType::I64, Value::I32(v)) => Value::I64(i64::from(v)),
        (SqlType::F64, Value::F64(v)) => Value::F64(v),
        (SqlType::F64, Value::I32(v)) => Value::F64(f64::from(v)),
        (SqlType::Bool, Value::Bool(v)) => Value::Bool(v),
        (SqlType::Text, Value::Text(v)) => Value::Text(v),
        (SqlType::Blob, Value::Blob(v)) => Value::Blob(v),
        (SqlType::Uuid, Value::Uuid(v)) => Value::Uuid(v),
        (_, other) => return Err(mismatch(&other)),
    })
}

/// A row the insert path binds column by column: an entity (through [`AsEntity`]) or a
/// [`Mapping`].
pub trait RowSource {
    /// The entity the row belongs to.
    type Entity: Entity;
    /// The value of column `column` (NULL when the row does not carry it).
    fn value(&self, column: usize) -> ValueRef<'_>;
    /// Appends the columns this row carries, ascending.
    fn carried(&self, out: &mut Vec<usize>);
    /// The value of `column`, which is the `position`-th column the row carries (the insert
    /// path binds columns in that order; a row may use the position to skip a lookup).
    #[inline]
    fn value_at(&self, position: usize, column: usize) -> ValueRef<'_> {
        let _ = position;
        self.value(column)
    }
    /// Rejects what the database would reject, before any SQL is sent.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`].
    fn check(&self) -> Result<()> {
        Ok(())
    }
    /// Every row of this type carries every column of its entity, so that rows differ only
    /// in whether their key is there: the inserter then groups a row by that alone.
    const CARRIES_EVERY_COLUMN: bool = false;
}

impl<R: AsEntity> RowSource for R {
    type Entity = R::Entity;
    #[inline]
    fn value(&self, column: usize) -> ValueRef<'_> {
        self.as_entity().column(column)
    }
    #[inline]
    fn carried(&self, out: &mut Vec<usize>) {
        out.extend(0..R::Entity::META.columns.len());
    }
    const CARRIES_EVERY_COLUMN: bool = true;
}

impl<E: Entity> RowSource for Mapping<E> {
    type Entity = E;
    #[inline]
    fn value(&self, column: usize) -> ValueRef<'_> {
        self.get(column).map_or(ValueRef::Null, Value::as_ref)
    }
    #[inline]
    fn carried(&self, out: &mut Vec<usize>) {
        out.extend(self.columns());
    }
    #[inline]
    fn value_at(&self, position: usize, column: usize) -> ValueRef<'_> {
        match self.values.get(position) {
            Some((c, v)) if *c == column => v.as_ref(),
            _ => self.value(column),
        }
    }
    /// NULL in a NOT NULL column; missing columns are checked once per column set by the
    /// inserter.
    fn check(&self) -> Result<()> {
        let meta = E::META;
        for (c, v) in &self.values {
            let col = &meta.columns[*c];
            if v.is_null() && col.required_on_insert() {
                return Err(Error::type_mismatch(meta, *c, "NULL".into()));
            }
        }
        Ok(())
    }
}

/// The first NOT NULL column, other than a generated key, that `columns` lacks: rows
/// carrying only `columns` would be rejected by the table.
pub(crate) fn missing_required(
    meta: &'static crate::EntityMeta,
    columns: &[usize],
) -> Option<usize> {
    meta.columns
        .iter()
        .enumerate()
        .position(|(i, c)| c.required_on_insert() && !columns.contains(&i))
}
