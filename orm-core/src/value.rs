//! Values that cross the boundary between Rust fields and SQL columns.

use std::borrow::Cow;
use std::fmt;

use uuid::Uuid;

/// The SQL type family of a column, as the ORM understands it.
///
/// Every [`Field`] names one. The backend maps it to a concrete column type in DDL
/// (`INTEGER`, `BIGINT`, `TEXT`, …) and uses it to decode what the driver returns.
///
/// ```
/// use orm_core::{Field, SqlType};
/// assert_eq!(<Option<String> as Field>::SQL_TYPE, SqlType::Text);
/// assert_eq!(SqlType::I64.to_string(), "i64");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlType {
    /// 16-bit signed integer (`smallint`).
    I16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// 32-bit IEEE float (`real`).
    F32,
    /// 64-bit IEEE float.
    F64,
    /// Boolean (an integer 0/1 on SQLite).
    Bool,
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Blob,
    /// A UUID (16 bytes on SQLite, `uuid` on PostgreSQL).
    Uuid,
    /// A JSON document, as text (`TEXT` on SQLite, `jsonb` on PostgreSQL).
    Json,
    /// A calendar date (`date`; ISO text on SQLite).
    Date,
    /// A time of day to the microsecond (`time`; ISO text on SQLite).
    Time,
    /// A date and time without a zone (`timestamp`; ISO text on SQLite).
    DateTime,
    /// An instant, stored as UTC (`timestamptz`; ISO text with `+00:00` on SQLite).
    Timestamp,
    /// An exact decimal number, carried as its text (`numeric` on PostgreSQL, `TEXT` on
    /// SQLite).
    Decimal,
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SqlType::I16 => "i16",
            SqlType::I32 => "i32",
            SqlType::I64 => "i64",
            SqlType::F32 => "f32",
            SqlType::F64 => "f64",
            SqlType::Bool => "bool",
            SqlType::Text => "text",
            SqlType::Blob => "blob",
            SqlType::Uuid => "uuid",
            SqlType::Json => "json",
            SqlType::Date => "date",
            SqlType::Time => "time",
            SqlType::DateTime => "datetime",
            SqlType::Timestamp => "timestamp",
            SqlType::Decimal => "decimal",
        })
    }
}

/// An owned SQL value.
///
/// Used where a value must outlive the struct it came from: dirty-tracking snapshots, bulk
/// mappings, filter operands.
///
/// ```
/// use orm_core::Value;
/// let v = Value::from("hello");
/// assert_eq!(v, Value::Text("hello".into()));
/// assert!(Value::Null.is_null());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 16-bit integer.
    I16(i16),
    /// A 32-bit integer.
    I32(i32),
    /// A 64-bit integer.
    I64(i64),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// A UUID.
    Uuid(Uuid),
    /// A date: days since 1970-01-01.
    Date(i32),
    /// A time of day: microseconds since midnight.
    Time(i64),
    /// A date and time without a zone: microseconds since 1970-01-01 00:00.
    DateTime(i64),
    /// An instant: microseconds since 1970-01-01 00:00 UTC.
    Timestamp(i64),
}

impl Value {
    /// Borrows this value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::I16(v) => ValueRef::I16(*v),
            Value::F32(v) => ValueRef::F32(*v),
            Value::I32(v) => ValueRef::I32(*v),
            Value::I64(v) => ValueRef::I64(*v),
            Value::F64(v) => ValueRef::F64(*v),
            Value::Bool(v) => ValueRef::Bool(*v),
            Value::Text(v) => ValueRef::Text(Cow::Borrowed(v)),
            Value::Blob(v) => ValueRef::Blob(Cow::Borrowed(v)),
            Value::Uuid(v) => ValueRef::Uuid(*v),
            Value::Date(v) => ValueRef::Date(*v),
            Value::Time(v) => ValueRef::Time(*v),
            Value::DateTime(v) => ValueRef::DateTime(*v),
            Value::Timestamp(v) => ValueRef::Timestamp(*v),
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The SQL type of this value, or `None` for `NULL`.
    pub fn sql_type(&self) -> Option<SqlType> {
        self.as_ref().sql_type()
    }
}

/// A borrowed SQL value: what an entity hands out when it is bound into a statement.
///
/// Text and bytes borrow from the struct's fields, so binding a row copies nothing on the
/// way to the driver. A user [`Field`] type whose SQL form has to be computed can return
/// an owned `Cow`.
///
/// ```
/// use orm_core::{Field, ValueRef};
/// let name = String::from("Ada");
/// assert_eq!(name.to_sql(), ValueRef::Text("Ada".into()));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ValueRef<'a> {
    /// SQL `NULL`.
    Null,
    /// A 16-bit integer.
    I16(i16),
    /// A 32-bit integer.
    I32(i32),
    /// A 64-bit integer.
    I64(i64),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(Cow<'a, str>),
    /// Bytes.
    Blob(Cow<'a, [u8]>),
    /// A UUID.
    Uuid(Uuid),
    /// A date: days since 1970-01-01.
    Date(i32),
    /// A time of day: microseconds since midnight.
    Time(i64),
    /// A date and time without a zone: microseconds since 1970-01-01 00:00.
    DateTime(i64),
    /// An instant: microseconds since 1970-01-01 00:00 UTC.
    Timestamp(i64),
}

impl ValueRef<'_> {
    /// Copies this value into an owned [`Value`].
    pub fn to_owned_value(&self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::I16(v) => Value::I16(*v),
            ValueRef::F32(v) => Value::F32(*v),
            ValueRef::I32(v) => Value::I32(*v),
            ValueRef::I64(v) => Value::I64(*v),
            ValueRef::F64(v) => Value::F64(*v),
            ValueRef::Bool(v) => Value::Bool(*v),
            ValueRef::Text(v) => Value::Text(v.to_string()),
            ValueRef::Blob(v) => Value::Blob(v.to_vec()),
            ValueRef::Uuid(v) => Value::Uuid(*v),
            ValueRef::Date(v) => Value::Date(*v),
            ValueRef::Time(v) => Value::Time(*v),
            ValueRef::DateTime(v) => Value::DateTime(*v),
            ValueRef::Timestamp(v) => Value::Timestamp(*v),
        }
    }

    /// True for [`ValueRef::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, ValueRef::Null)
    }

    /// The SQL type of this value, or `None` for `NULL`.
    pub fn sql_type(&self) -> Option<SqlType> {
        Some(match self {
            ValueRef::Null => return None,
            ValueRef::I16(_) => SqlType::I16,
            ValueRef::F32(_) => SqlType::F32,
            ValueRef::I32(_) => SqlType::I32,
            ValueRef::I64(_) => SqlType::I64,
            ValueRef::F64(_) => SqlType::F64,
            ValueRef::Bool(_) => SqlType::Bool,
            ValueRef::Text(_) => SqlType::Text,
            ValueRef::Blob(_) => SqlType::Blob,
            ValueRef::Uuid(_) => SqlType::Uuid,
            ValueRef::Date(_) => SqlType::Date,
            ValueRef::Time(_) => SqlType::Time,
            ValueRef::DateTime(_) => SqlType::DateTime,
            ValueRef::Timestamp(_) => SqlType::Timestamp,
        })
    }

    /// Compares with an owned value without allocating. Floats compare bitwise, so a NaN
    /// that was loaded and not touched is not reported as a change.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (ValueRef::Null, Value::Null) => true,
            (ValueRef::I16(a), Value::I16(b)) => a == b,
            (ValueRef::F32(a), Value::F32(b)) => a.to_bits() == b.to_bits(),
            (ValueRef::I32(a), Value::I32(b)) => a == b,
            (ValueRef::I64(a), Value::I64(b)) => a == b,
            (ValueRef::F64(a), Value::F64(b)) => a.to_bits() == b.to_bits(),
            (ValueRef::Bool(a), Value::Bool(b)) => a == b,
            (ValueRef::Text(a), Value::Text(b)) => a.as_ref() == b.as_str(),
            (ValueRef::Blob(a), Value::Blob(b)) => a.as_ref() == b.as_slice(),
            (ValueRef::Uuid(a), Value::Uuid(b)) => a == b,
            (ValueRef::Date(a), Value::Date(b)) => a == b,
            (ValueRef::Time(a), Value::Time(b))
            | (ValueRef::DateTime(a), Value::DateTime(b))
            | (ValueRef::Timestamp(a), Value::Timestamp(b)) => a == b,
            _ => false,
        }
    }

    /// A short description of the value for error messages: its type and size, never the
    /// value itself (bound values stay out of messages and logs).
    pub fn describe(&self) -> String {
        match self {
            ValueRef::Null => "NULL".into(),
            ValueRef::I64(_) => "an i64".into(),
            ValueRef::I32(_) => "an i32".into(),
            ValueRef::I16(_) => "an i16".into(),
            ValueRef::F32(_) => "an f32".into(),
            ValueRef::F64(_) => "an f64".into(),
            ValueRef::Bool(_) => "a bool".into(),
            ValueRef::Text(t) => format!("text of {} bytes", t.len()),
            ValueRef::Blob(b) => format!("blob of {} bytes", b.len()),
            ValueRef::Uuid(_) => "a UUID".into(),
            ValueRef::Date(_) => "a date".into(),
            ValueRef::Time(_) => "a time".into(),
            ValueRef::DateTime(_) => "a date-time".into(),
            ValueRef::Timestamp(_) => "a timestamp".into(),
        }
    }
}

/// Why a SQL value could not become a Rust field.
///
/// Returned by [`Field::from_sql`]; the caller adds the entity and column and turns it
/// into [`Error::Conversion`](crate::Error::Conversion).
///
/// ```
/// use orm_core::{Field, FromSqlError, ValueRef};
/// assert!(matches!(i32::from_sql(ValueRef::Null), Err(FromSqlError::UnexpectedNull)));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FromSqlError {
    /// NULL where the field cannot hold one (use `Option<T>`).
    #[error("NULL found but the field is not an Option")]
    UnexpectedNull,
    /// The value has another type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// The type the field wants.
        expected: SqlType,
        /// What the database sent.
        found: String,
    },
    /// The value has the right type but does not fit (an integer out of range, invalid UTF-8,
    /// a UUID that is not 16 bytes, a user type rejecting it).
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
}

impl FromSqlError {
    fn wrong(expected: SqlType, found: &ValueRef<'_>) -> Self {
        FromSqlError::WrongType {
            expected,
            found: found.describe(),
        }
    }
}

/// A Rust type that can be stored in one column.
///
/// Implemented for `i16`, `i32`, `i64`, `f32`, `f64`, `bool`, `String`, `Vec<u8>`, `uuid::Uuid` and
/// `Option<T>` of each (`Option` makes the column nullable). Implement it for your own types
/// to map them onto one of those SQL types:
///
/// ```
/// use std::borrow::Cow;
/// use orm_core::{Field, FromSqlError, SqlType, ValueRef};
///
/// #[derive(Debug, PartialEq)]
/// struct Email(String);
///
/// impl Field for Email {
///     const SQL_TYPE: SqlType = SqlType::Text;
///     fn to_sql(&self) -> ValueRef<'_> {
///         ValueRef::Text(Cow::Borrowed(&self.0))
///     }
///     fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
///         let text = String::from_sql(value)?;
///         if text.contains('@') {
///             Ok(Email(text))
///         } else {
///             Err(FromSqlError::Invalid { message: format!("`{text}` is not an e-mail address") })
///         }
///     }
/// }
///
/// assert_eq!(Email::from_sql(ValueRef::Text("a@b".into())), Ok(Email("a@b".into())));
/// assert!(Email::from_sql(ValueRef::Text("nope".into())).is_err());
/// ```
///
/// `Option<Email>` then works too.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a column",
    label = "unsupported field type",
    note = "supported types: i16, i32, i64, f32, f64, bool, String, Vec<u8>, uuid::Uuid and Option of each",
    note = "for your own type, implement `orm_core::Field` (see its documentation)"
)]
pub trait Field: Sized {
    /// The SQL type of the column.
    const SQL_TYPE: SqlType;
    /// Whether the column accepts NULL (true only for `Option<T>`).
    const NULLABLE: bool = false;

    /// The value to bind for this field.
    fn to_sql(&self) -> ValueRef<'_>;

    /// The value to bind for this field, taken by value: what a [`Mapping`](crate::Mapping)
    /// or a filter operand keeps. By default a copy of [`to_sql`](Self::to_sql)'s; a field
    /// that owns its value's memory (`String`, `Vec<u8>`) hands it over instead, so that
    /// `Customer::NAME.to(name)` allocates nothing.
    ///
    /// ```
    /// use orm_core::{Field, Value};
    /// assert_eq!(String::from("Ada").into_sql(), Value::Text("Ada".into()));
    /// assert_eq!(Some(7_i64).into_sql(), Value::I64(7));
    /// assert_eq!(None::<String>.into_sql(), Value::Null);
    /// // The text is the string's own memory, not a copy.
    /// let name = String::from("Grace");
    /// let at = name.as_ptr();
    /// let Value::Text(text) = Some(name).into_sql() else { panic!() };
    /// assert_eq!(text.as_ptr(), at);
    /// ```
    #[inline]
    fn into_sql(self) -> Value {
        self.to_sql().to_owned_value()
    }

    /// Builds the field from a value read from the database.
    ///
    /// # Errors
    /// [`FromSqlError`] when the value is NULL, of another type, or out of range.
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError>;

    /// Reads the field from column `index` of a row, as [`from_sql`](Self::from_sql) of
    /// the row's value; a type with a faster read overrides
    /// [`read_nullable`](Self::read_nullable) instead.
    ///
    /// # Errors
    /// As [`from_sql`](Self::from_sql).
    #[inline]
    fn read(row: &dyn crate::RowValues, index: usize) -> Result<Self, FromSqlError> {
        Self::read_nullable(row, index)?.ok_or(FromSqlError::UnexpectedNull)
    }

    /// Reads the field from column `index` of a row, `None` for NULL: what `Option<Self>`
    /// reads.
    ///
    /// # Errors
    /// As [`from_sql`](Self::from_sql).
    #[inline]
    fn read_nullable(
        row: &dyn crate::RowValues,
        index: usize,
    ) -> Result<Option<Self>, FromSqlError> {
        match row.value(index, Self::SQL_TYPE)? {
            ValueRef::Null => Ok(None),
            v => Self::from_sql(v).map(Some),
        }
    }
}

macro_rules! copy_field {
    ($t:ty, $variant:ident, $sql:ident) => {
        impl Field for $t {
            const SQL_TYPE: SqlType = SqlType::$sql;
            #[inline]
            fn to_sql(&self) -> ValueRef<'_> {
                ValueRef::$variant(*self)
            }
            #[inline]
            fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
                match value {
                    ValueRef::$variant(v) => Ok(v),
                    ValueRef::Null => Err(FromSqlError::UnexpectedNull),
                    other => Err(FromSqlError::wrong(SqlType::$sql, &other)),
                }
            }
        }
    };
}

copy_field!(f64, F64, F64);

impl Field for i64 {
    const SQL_TYPE: SqlType = SqlType::I64;
    #[inline]
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::I64(*self)
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::I64(v) => Ok(v),
            ValueRef::Null => Err(FromSqlError::UnexpectedNull),
            other => Err(FromSqlError::wrong(SqlType::I64, &other)),
        }
    }
    #[inline]
    fn read_nullable(
        row: &dyn crate::RowValues,
        index: usize,
    ) -> Result<Option<Self>, FromSqlError> {
        match row.plain_int(index) {
            Some(i) => Ok(Some(i)),
            None => match row.value(index, SqlType::I64)? {
                ValueRef::Null => Ok(None),
                v => Self::from_sql(v).map(Some),
            },
        }
    }
}

/// A narrower integer read from a wider one must fit.
impl Field for i16 {
    const SQL_TYPE: SqlType = SqlType::I16;
    #[inline]
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::I16(*self)
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        let wide = match value {
            ValueRef::I16(v) => return Ok(v),
            ValueRef::I32(v) => i64::from(v),
            ValueRef::I64(v) => v,
            ValueRef::Null => return Err(FromSqlError::UnexpectedNull),
            other => return Err(FromSqlError::wrong(SqlType::I16, &other)),
        };
        i16::try_from(wide).map_err(|_| FromSqlError::Invalid {
            message: format!("{wide} does not fit in i16"),
        })
    }
}

/// Read from a `real` column, or from a double-precision one when the value converts
/// exactly (what an `f32` field wrote always does).
impl Field for f32 {
    const SQL_TYPE: SqlType = SqlType::F32;
    #[inline]
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::F32(*self)
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::F32(v) => Ok(v),
            #[allow(clippy::cast_possible_truncation)]
            ValueRef::F64(v) if v.is_nan() || f64::from(v as f32) == v => Ok(v as f32),
            ValueRef::F64(v) => Err(FromSqlError::Invalid {
                message: format!("{v} is not exactly representable as f32"),
            }),
            ValueRef::Null => Err(FromSqlError::UnexpectedNull),
            other => Err(FromSqlError::wrong(SqlType::F32, &other)),
        }
    }
}
copy_field!(bool, Bool, Bool);
copy_field!(Uuid, Uuid, Uuid);

impl Field for i32 {
    const SQL_TYPE: SqlType = SqlType::I32;
    #[inline]
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::I32(*self)
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::I32(v) => Ok(v),
            ValueRef::I16(v) => Ok(i32::from(v)),
            ValueRef::I64(v) => i32::try_from(v).map_err(|_| FromSqlError::Invalid {
                message: format!("{v} does not fit in i32"),
            }),
            ValueRef::Null => Err(FromSqlError::UnexpectedNull),
            other => Err(FromSqlError::wrong(SqlType::I32, &other)),
        }
    }
}

impl Field for String {
    const SQL_TYPE: SqlType = SqlType::Text;
    #[inline]
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Text(Cow::Borrowed(self))
    }
    #[inline]
    fn into_sql(self) -> Value {
        Value::Text(self)
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Text(v) => Ok(v.into_owned()),
            ValueRef::Null => Err(FromSqlError::UnexpectedNull),
            other => Err(FromSqlError::wrong(SqlType::Text, &other)),
        }
    }
    #[inline]
    fn read_nullable(
        row: &dyn crate::RowValues,
        index: usize,
    ) -> Result<Option<Self>, FromSqlError> {
        match row.plain_text(index) {
            Some(t) => Ok(Some(t.into_string())),
            None => match row.value(index, SqlType::Text)? {
                ValueRef::Null => Ok(None),
                v => Self::from_sql(v).map(Some),
            },
        }
    }
}

impl Field for Vec<u8> {
    const SQL_TYPE: SqlType = SqlType::Blob;
    #[inline]
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Blob(Cow::Borrowed(self))
    }
    #[inline]
    fn into_sql(self) -> Value {
        Value::Blob(self)
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Blob(v) => Ok(v.into_owned()),
            ValueRef::Null => Err(FromSqlError::UnexpectedNull),
            other => Err(FromSqlError::wrong(SqlType::Blob, &other)),
        }
    }
}

impl<T: Field> Field for Option<T> {
    const SQL_TYPE: SqlType = T::SQL_TYPE;
    const NULLABLE: bool = true;
    #[inline]
    fn to_sql(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.to_sql(),
            None => ValueRef::Null,
        }
    }
    #[inline]
    fn into_sql(self) -> Value {
        match self {
            Some(v) => v.into_sql(),
            None => Value::Null,
        }
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Null => Ok(None),
            v => T::from_sql(v).map(Some),
        }
    }
    #[inline]
    fn read(row: &dyn crate::RowValues, index: usize) -> Result<Self, FromSqlError> {
        T::read_nullable(row, index)
    }
    #[inline]
    fn read_nullable(
        row: &dyn crate::RowValues,
        index: usize,
    ) -> Result<Option<Self>, FromSqlError> {
        // As the provided method reads it: a NULL is the outer `None`.
        Ok(T::read_nullable(row, index)?.map(Some))
    }
}

/// A Rust value that may be compared with, or assigned to, a column whose field type is `T`.
///
/// This is what makes `Customer::NAME.eq("Ada")` compile while `Customer::NAME.eq(3)` does
/// not: `&str` binds to `String` columns, `T` binds to `T` and `Option<T>` columns.
///
/// ```
/// use orm_core::{Bind, Value};
/// assert_eq!(<&str as Bind<String>>::into_value("x"), Value::Text("x".into()));
/// assert_eq!(<i64 as Bind<Option<i64>>>::into_value(7), Value::I64(7));
/// ```
#[diagnostic::on_unimplemented(
    message = "a `{Self}` cannot be used as a value of a `{T}` column",
    label = "wrong value type for this column"
)]
pub trait Bind<T> {
    /// Converts into an owned SQL value.
    fn into_value(self) -> Value;
}

impl<T: Field> Bind<T> for T {
    fn into_value(self) -> Value {
        self.into_sql()
    }
}

impl<T: Field> Bind<Option<T>> for T {
    fn into_value(self) -> Value {
        self.into_sql()
    }
}

impl Bind<String> for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl Bind<Option<String>> for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl Bind<Vec<u8>> for &[u8] {
    fn into_value(self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl Bind<Option<Vec<u8>>> for &[u8] {
    fn into_value(self) -> Value {
        Value::Blob(self.to_vec())
    }
}

macro_rules! value_from {
    ($t:ty, $variant:ident) => {
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v.into())
            }
        }
    };
}
value_from!(i16, I16);
value_from!(f32, F32);
value_from!(i32, I32);
value_from!(i64, I64);
value_from!(f64, F64);
value_from!(bool, Bool);
value_from!(String, Text);
value_from!(&str, Text);
value_from!(Vec<u8>, Blob);
value_from!(&[u8], Blob);
value_from!(Uuid, Uuid);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A primary-key value, hashable so that it can index the identity map.
///
/// Floats cannot be keys.
///
/// ```
/// use orm_core::{Key, ValueRef};
/// assert_eq!(Key::from_value(&ValueRef::I32(5)), Some(Key::Int(5)));
/// assert_eq!(Key::from_value(&ValueRef::Null), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
// A word-sized tag puts every variant's value at offset 8: a key is then three aligned words,
// moved as such. With a one-byte tag the UUID (alignment 1) sat at offset 1, and every move of
// a key copied bytes 1 to 7 with two overlapping four-byte stores, which a load of the moved
// key right after cannot be forwarded from: `add_all` + `commit` of 100,000 objects, which
// moves each key a few times, took about 1.5 ms less of 50 with the wider tag. The size (24
// bytes, `Option<Key>` too) is the same.
#[repr(u64)]
pub enum Key {
    /// Any integer key (i32 keys widen to i64).
    Int(i64),
    /// A text key.
    Text(Box<str>),
    /// A byte-string key.
    Bytes(Box<[u8]>),
    /// A UUID key.
    Uuid(Uuid),
    /// A boolean key (unusual, but allowed).
    Bool(bool),
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // One word for the common integer key; a tag first for the others.
        match self {
            Key::Int(i) => state.write_u64(i.cast_unsigned()),
            Key::Uuid(u) => {
                state.write_u8(1);
                state.write_u128(u.as_u128());
            }
            Key::Text(t) => {
                state.write_u8(2);
                state.write(t.as_bytes());
            }
            Key::Bytes(b) => {
                state.write_u8(3);
                state.write(b);
            }
            Key::Bool(b) => {
                state.write_u8(4);
                state.write_u8(u8::from(*b));
            }
        }
    }
}

impl Key {
    /// The key of a value, or `None` if the value is NULL or a float.
    pub fn from_value(v: &ValueRef<'_>) -> Option<Key> {
        Some(match v {
            ValueRef::I16(i) => Key::Int(i64::from(*i)),
            ValueRef::I32(i) => Key::Int(i64::from(*i)),
            ValueRef::I64(i) => Key::Int(*i),
            ValueRef::Text(t) => Key::Text(t.as_ref().into()),
            ValueRef::Blob(b) => Key::Bytes(b.as_ref().into()),
            ValueRef::Uuid(u) => Key::Uuid(*u),
            ValueRef::Bool(b) => Key::Bool(*b),
            ValueRef::Null
            | ValueRef::F32(_)
            | ValueRef::F64(_)
            | ValueRef::Date(_)
            | ValueRef::Time(_)
            | ValueRef::DateTime(_)
            | ValueRef::Timestamp(_) => return None,
        })
    }

    /// The key as a value of the given column type, for binding.
    pub fn to_value(&self, ty: SqlType) -> Value {
        match (self, ty) {
            (Key::Int(i), SqlType::I32) => i32::try_from(*i).map_or(Value::I64(*i), Value::I32),
            (Key::Int(i), _) => Value::I64(*i),
            (Key::Text(t), _) => Value::Text(t.to_string()),
            (Key::Bytes(b), _) => Value::Blob(b.to_vec()),
            (Key::Uuid(u), _) => Value::Uuid(*u),
            (Key::Bool(b), _) => Value::Bool(*b),
        }
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
impl From<Uuid> for Key {
    fn from(v: Uuid) -> Self {
        Key::Uuid(v)
    }
}
impl From<Vec<u8>> for Key {
    fn from(v: Vec<u8>) -> Self {
        Key::Bytes(v.into_boxed_slice())
    }
}
impl From<bool> for Key {
    fn from(v: bool) -> Self {
        Key::Bool(v)
    }
}

/// The Rust type of a primary key (`Entity::Id`): what `Session::get` takes and
/// `Handle::id` returns, so that a key of the wrong type does not compile.
///
/// ```
/// use orm_core::{Entity, Key, KeyValue};
/// #[derive(Entity)]
/// struct Tag { #[orm(primary_key)] name: String }
/// #[derive(Entity)]
/// struct Item { #[orm(primary_key, auto_increment)] id: Option<i64> }
/// fn id_of<E: Entity>(k: &Key) -> Option<E::Id> { E::Id::from_key(k) }
/// assert_eq!(id_of::<Item>(&Key::Int(7)), Some(7_i64));
/// assert_eq!(id_of::<Tag>(&Key::Text("x".into())), Some("x".to_owned()));
/// assert_eq!(id_of::<Tag>(&Key::Int(7)), None);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a primary key",
    note = "primary keys are i64, i32, String, uuid::Uuid, Vec<u8> or bool (or an Option of one)"
)]
pub trait KeyValue: Into<Key> + Clone + fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The key's value, if `key` holds one of this type.
    fn from_key(key: &Key) -> Option<Self>;
}

impl KeyValue for i64 {
    fn from_key(key: &Key) -> Option<Self> {
        match key {
            Key::Int(v) => Some(*v),
            _ => None,
        }
    }
}
impl KeyValue for i32 {
    fn from_key(key: &Key) -> Option<Self> {
        match key {
            Key::Int(v) => i32::try_from(*v).ok(),
            _ => None,
        }
    }
}
impl KeyValue for String {
    fn from_key(key: &Key) -> Option<Self> {
        match key {
            Key::Text(v) => Some(v.to_string()),
            _ => None,
        }
    }
}
impl KeyValue for Uuid {
    fn from_key(key: &Key) -> Option<Self> {
        match key {
            Key::Uuid(v) => Some(*v),
            _ => None,
        }
    }
}
impl KeyValue for Vec<u8> {
    fn from_key(key: &Key) -> Option<Self> {
        match key {
            Key::Bytes(v) => Some(v.to_vec()),
            _ => None,
        }
    }
}
impl KeyValue for bool {
    fn from_key(key: &Key) -> Option<Self> {
        match key {
            Key::Bool(v) => Some(*v),
            _ => None,
        }
    }
}

/// The key type of a primary-key field's type: `Option<i64>` → `i64`. Used by the derive.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a primary key",
    note = "primary keys are i64, i32, String, uuid::Uuid, Vec<u8> or bool (or an Option of one)"
)]
pub trait KeyField {
    /// The key type.
    type Id: KeyValue;
}

macro_rules! key_fields {
    ($($t:ty),*) => {$(
        impl KeyField for $t {
            type Id = $t;
        }
    )*};
}
key_fields!(i64, i32, String, Uuid, Vec<u8>, bool);

impl<T: KeyValue> KeyField for Option<T> {
    type Id = T;
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Text(t) => write!(f, "{t:?}"),
            Key::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Key::Uuid(u) => write!(f, "{u}"),
            Key::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// JSON fields (feature `json`): `serde_json::Value` and [`Json<T>`] for any serde type.
#[cfg(feature = "json")]
mod json {
    use std::borrow::Cow;

    use super::{Field, FromSqlError, SqlType, ValueRef};

    fn text(value: ValueRef<'_>) -> Result<Cow<'_, str>, FromSqlError> {
        match value {
            ValueRef::Text(t) => Ok(t),
            ValueRef::Null => Err(FromSqlError::UnexpectedNull),
            other => Err(FromSqlError::WrongType {
                expected: SqlType::Json,
                found: other.describe(),
            }),
        }
    }

    fn invalid(e: &serde_json::Error) -> FromSqlError {
        FromSqlError::Invalid {
            message: format!("not the JSON the field takes: {e}"),
        }
    }

    /// A JSON document of any shape.
    impl Field for serde_json::Value {
        const SQL_TYPE: SqlType = SqlType::Json;
        fn to_sql(&self) -> ValueRef<'_> {
            ValueRef::Text(Cow::Owned(self.to_string()))
        }
        fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
            serde_json::from_str(&text(value)?).map_err(|e| invalid(&e))
        }
    }

    /// Any serde type stored as a JSON document: `Json<Settings>` for a field that is a
    /// struct of the application's own.
    ///
    /// A value whose `Serialize` fails (a map with keys that are not strings) panics when it
    /// is bound; the call it was part of writes nothing (R7).
    ///
    /// ```
    /// use orm_core::{Field, Json, ValueRef};
    /// let v = Json(vec![1, 2, 3]);
    /// assert_eq!(v.to_sql(), ValueRef::Text("[1,2,3]".into()));
    /// assert_eq!(Json::<Vec<i32>>::from_sql(ValueRef::Text("[4]".into())), Ok(Json(vec![4])));
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct Json<T>(pub T);

    impl<T: serde::Serialize + serde::de::DeserializeOwned> Field for Json<T> {
        const SQL_TYPE: SqlType = SqlType::Json;
        fn to_sql(&self) -> ValueRef<'_> {
            match serde_json::to_string(&self.0) {
                Ok(s) => ValueRef::Text(Cow::Owned(s)),
                Err(e) => panic!(
                    "a Json<{}> value cannot be serialized: {e}",
                    std::any::type_name::<T>()
                ),
            }
        }
        fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
            serde_json::from_str(&text(value)?)
                .map(Json)
                .map_err(|e| invalid(&e))
        }
    }
}

#[cfg(feature = "json")]
pub use json::Json;

/// `rust_decimal::Decimal` fields (feature `decimal`): exact, carried as text in canonical
/// form (no trailing zeros, so that equal numbers are equal text on SQLite).
#[cfg(feature = "decimal")]
mod decimal {
    use std::borrow::Cow;

    use rust_decimal::Decimal;

    use super::{Field, FromSqlError, SqlType, ValueRef};

    /// An exact decimal number, up to 28 digits (`numeric` on PostgreSQL; text on SQLite,
    /// where it compares for equality but does not order as a number).
    impl Field for Decimal {
        const SQL_TYPE: SqlType = SqlType::Decimal;
        fn to_sql(&self) -> ValueRef<'_> {
            ValueRef::Text(Cow::Owned(self.normalize().to_string()))
        }
        fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
            match value {
                ValueRef::Text(t) => {
                    Decimal::from_str_exact(&t).map_err(|e| FromSqlError::Invalid {
                        message: format!("`{t}` is not a decimal that fits: {e}"),
                    })
                }
                ValueRef::Null => Err(FromSqlError::UnexpectedNull),
                other => Err(FromSqlError::WrongType {
                    expected: SqlType::Decimal,
                    found: other.describe(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Key;

    /// A key is three aligned words, tag first (see `Key`'s layout note), and an absent key
    /// takes no more room than a key: identity-map slots and the session's bookkeeping hold
    /// one each.
    #[test]
    fn a_key_is_three_words_and_an_optional_key_too() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        assert_eq!(std::mem::align_of::<Key>(), 8);
        assert_eq!(std::mem::size_of::<Option<Key>>(), 24);
        let keys = [
            Key::Int(-7),
            Key::Text("k".into()),
            Key::Bytes(vec![1, 2].into()),
            Key::Uuid(uuid::Uuid::from_u128(
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            )),
            Key::Bool(true),
        ];
        let moved: Vec<Key> = keys.to_vec();
        assert_eq!(moved, keys, "every variant survives a move");
    }
}
