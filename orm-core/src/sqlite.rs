//! SQLite through rusqlite: value binding and decoding, error mapping.

use std::borrow::Cow;

use rusqlite::ffi;
use rusqlite::types::{ToSqlOutput, ValueRef as RValueRef};

use crate::entity::RowValues;
use crate::error::{BoxError, Error, ErrorKind};
use crate::value::{FromSqlError, SqlType, Value, ValueRef};

/// SQLite stores NaN as NULL. Refuse it rather than lose the value silently.
#[derive(Debug)]
struct NanError;

impl std::fmt::Display for NanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NaN cannot be stored in SQLite (it would become NULL)")
    }
}
impl std::error::Error for NanError {}

#[inline]
fn real(v: f64) -> rusqlite::Result<RValueRef<'static>> {
    if v.is_nan() {
        Err(rusqlite::Error::ToSqlConversionFailure(Box::new(NanError)))
    } else {
        Ok(RValueRef::Real(v))
    }
}

/// Dates and times go to SQLite as ISO 8601 text.
fn temporal(v: &ValueRef<'_>) -> Option<ToSqlOutput<'static>> {
    use crate::temporal::{format_date, format_datetime, format_time};
    let text = match v {
        ValueRef::Date(d) => format_date(*d),
        ValueRef::Time(t) => format_time(*t),
        ValueRef::DateTime(t) => format_datetime(*t),
        ValueRef::Timestamp(t) => format!("{}+00:00", format_datetime(*t)),
        _ => return None,
    };
    Some(ToSqlOutput::Owned(rusqlite::types::Value::Text(text)))
}

impl rusqlite::ToSql for ValueRef<'_> {
    #[inline]
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        if let Some(t) = temporal(self) {
            return Ok(t);
        }
        Ok(ToSqlOutput::Borrowed(match self {
            ValueRef::Null => RValueRef::Null,
            ValueRef::I16(v) => RValueRef::Integer(i64::from(*v)),
            ValueRef::F32(v) => real(f64::from(*v))?,
            ValueRef::I32(v) => RValueRef::Integer(i64::from(*v)),
            ValueRef::I64(v) => RValueRef::Integer(*v),
            ValueRef::F64(v) => real(*v)?,
            ValueRef::Bool(v) => RValueRef::Integer(i64::from(*v)),
            ValueRef::Text(v) => RValueRef::Text(v.as_bytes()),
            ValueRef::Blob(v) => RValueRef::Blob(v),
            ValueRef::Uuid(v) => RValueRef::Blob(v.as_bytes()),
            ValueRef::Date(_)
            | ValueRef::Time(_)
            | ValueRef::DateTime(_)
            | ValueRef::Timestamp(_) => {
                return Ok(ToSqlOutput::Borrowed(RValueRef::Null));
            }
        }))
    }
}

impl rusqlite::ToSql for Value {
    #[inline]
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        if let Some(t) = temporal(&self.as_ref()) {
            return Ok(t);
        }
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => RValueRef::Null,
            Value::I16(v) => RValueRef::Integer(i64::from(*v)),
            Value::F32(v) => real(f64::from(*v))?,
            Value::I32(v) => RValueRef::Integer(i64::from(*v)),
            Value::I64(v) => RValueRef::Integer(*v),
            Value::F64(v) => real(*v)?,
            Value::Bool(v) => RValueRef::Integer(i64::from(*v)),
            Value::Text(v) => RValueRef::Text(v.as_bytes()),
            Value::Blob(v) => RValueRef::Blob(v),
            Value::Uuid(v) => RValueRef::Blob(v.as_bytes()),
            Value::Date(_) | Value::Time(_) | Value::DateTime(_) | Value::Timestamp(_) => {
                return Ok(ToSqlOutput::Borrowed(RValueRef::Null));
            }
        }))
    }
}

fn found(v: RValueRef<'_>) -> String {
    match v {
        RValueRef::Null => "NULL".into(),
        RValueRef::Integer(i) => format!("integer {i}"),
        RValueRef::Real(r) => format!("real {r}"),
        RValueRef::Text(t) => format!("text of {} bytes", t.len()),
        RValueRef::Blob(b) => format!("blob of {} bytes", b.len()),
    }
}

/// Decodes a SQLite value as the column type the entity declares.
pub(crate) fn decode(v: RValueRef<'_>, ty: SqlType) -> Result<ValueRef<'_>, FromSqlError> {
    let wrong = || FromSqlError::WrongType {
        expected: ty,
        found: found(v),
    };
    Ok(match (ty, v) {
        (_, RValueRef::Null) => ValueRef::Null,
        (SqlType::I64, RValueRef::Integer(i)) => ValueRef::I64(i),
        (SqlType::I32, RValueRef::Integer(i)) => {
            ValueRef::I32(i32::try_from(i).map_err(|_| FromSqlError::Invalid {
                message: format!("{i} does not fit in i32"),
            })?)
        }
        (SqlType::I16, RValueRef::Integer(i)) => {
            ValueRef::I16(i16::try_from(i).map_err(|_| FromSqlError::Invalid {
                message: format!("{i} does not fit in i16"),
            })?)
        }
        // SQLite keeps reals as doubles: an f32 written comes back exactly; another double
        // must convert exactly too.
        #[allow(clippy::cast_possible_truncation)]
        (SqlType::F32, RValueRef::Real(r)) if r.is_nan() || f64::from(r as f32) == r => {
            ValueRef::F32(r as f32)
        }
        (SqlType::F32, RValueRef::Real(r)) => {
            return Err(FromSqlError::Invalid {
                message: format!("{r} is not exactly representable as f32"),
            });
        }
        #[allow(clippy::cast_precision_loss)]
        (SqlType::F32, RValueRef::Integer(i)) => ValueRef::F32(i as f32),
        (SqlType::F64, RValueRef::Real(r)) => ValueRef::F64(r),
        #[allow(clippy::cast_precision_loss)]
        (SqlType::F64, RValueRef::Integer(i)) => ValueRef::F64(i as f64),
        (SqlType::Bool, RValueRef::Integer(0)) => ValueRef::Bool(false),
        (SqlType::Bool, RValueRef::Integer(1)) => ValueRef::Bool(true),
        (SqlType::Text, RValueRef::Text(t)) => {
            ValueRef::Text(Cow::Borrowed(std::str::from_utf8(t).map_err(|e| {
                FromSqlError::Invalid {
                    message: format!("invalid UTF-8: {e}"),
                }
            })?))
        }
        (SqlType::Json | SqlType::Decimal, RValueRef::Text(t)) => {
            ValueRef::Text(Cow::Borrowed(std::str::from_utf8(t).map_err(|e| {
                FromSqlError::Invalid {
                    message: format!("invalid UTF-8: {e}"),
                }
            })?))
        }
        (
            SqlType::Date | SqlType::Time | SqlType::DateTime | SqlType::Timestamp,
            RValueRef::Text(t),
        ) => {
            use crate::temporal::{parse_date, parse_datetime, parse_time};
            let text = std::str::from_utf8(t).map_err(|_| wrong())?;
            let bad = || FromSqlError::Invalid {
                message: format!("`{text}` is not a {ty} in ISO 8601 form"),
            };
            match ty {
                SqlType::Date => ValueRef::Date(parse_date(text).ok_or_else(bad)?),
                SqlType::Time => ValueRef::Time(parse_time(text).ok_or_else(bad)?),
                SqlType::DateTime => ValueRef::DateTime(parse_datetime(text).ok_or_else(bad)?),
                _ => ValueRef::Timestamp(parse_datetime(text).ok_or_else(bad)?),
            }
        }
        (SqlType::Blob, RValueRef::Blob(b)) => ValueRef::Blob(Cow::Borrowed(b)),
        (SqlType::Uuid, RValueRef::Blob(b)) => ValueRef::Uuid(uuid::Uuid::from_slice(b).map_err(
            |e| FromSqlError::Invalid {
                message: format!("not a UUID: {e}"),
            },
        )?),
        (SqlType::Uuid, RValueRef::Text(t)) => ValueRef::Uuid(
            std::str::from_utf8(t)
                .ok()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .ok_or_else(wrong)?,
        ),
        _ => return Err(wrong()),
    })
}

/// Decodes a SQLite value by its storage class, for raw queries.
pub(crate) fn decode_any(v: RValueRef<'_>) -> Value {
    match v {
        RValueRef::Null => Value::Null,
        RValueRef::Integer(i) => Value::I64(i),
        RValueRef::Real(r) => Value::F64(r),
        RValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        RValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl RowValues for rusqlite::Row<'_> {
    #[inline]
    fn value(&self, index: usize, ty: SqlType) -> Result<ValueRef<'_>, FromSqlError> {
        let v = self.get_ref(index).map_err(|e| FromSqlError::Invalid {
            message: e.to_string(),
        })?;
        decode(v, ty)
    }

    fn width(&self) -> usize {
        self.as_ref().column_count()
    }

    fn column_name(&self, index: usize) -> &str {
        self.as_ref().column_name(index).unwrap_or("")
    }

    fn any_value(&self, index: usize) -> Result<Value, FromSqlError> {
        self.get_ref(index)
            .map(decode_any)
            .map_err(|e| FromSqlError::Invalid {
                message: e.to_string(),
            })
    }
}

/// Classifies a rusqlite error.
pub(crate) fn kind_of(e: &rusqlite::Error) -> ErrorKind {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ if f.code == rusqlite::ErrorCode::DatabaseBusy
                || f.code == rusqlite::ErrorCode::DatabaseLocked =>
            {
                ErrorKind::Busy
            }
            _ if f.code == rusqlite::ErrorCode::CannotOpen => ErrorKind::Connection,
            _ => ErrorKind::Database,
        },
        rusqlite::Error::ToSqlConversionFailure(_) => ErrorKind::TypeMismatch,
        _ => ErrorKind::Database,
    }
}

pub(crate) fn map_error(
    e: rusqlite::Error,
    entity: Option<&'static str>,
    table: &str,
    sql: &str,
) -> Error {
    Error::Database {
        kind: kind_of(&e),
        entity,
        table: table.to_owned(),
        sql: sql.to_owned(),
        message: e.to_string(),
        source: BoxError::from(e),
    }
}
