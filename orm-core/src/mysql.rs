//! The MySQL and MariaDB backend, through the synchronous `mysql` crate: the connection
//! behind the backend interface, how generated keys are proven, value binding and decoding,
//! and error mapping by the server's error codes.
//!
//! The session is set up so that the ORM's SQL means the same as on the other backends:
//! `ANSI_QUOTES` (identifiers in double quotes), strict mode for every table (a value that
//! does not fit fails instead of being cut), `utf8mb4`, and the `CLIENT_FOUND_ROWS` flag, so
//! that an `UPDATE` reports the rows it matched, not only those whose values changed (a
//! versioned update that writes the same values must not look stale).

use std::borrow::Cow;
use std::cell::{Cell, RefCell, RefMut};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Params, Value as MyValue};

use crate::connection::batch::{BatchWrite, Sent};
use crate::connection::db::{
    Assigned, Db, GeneratedKeys, InsertBatch, Inserted, KeyPlan, KeyState, Reserved, TempKeys,
};
use crate::connection::{Connection, Ctx, DResult, DriverError, TxStatus};
use crate::entity::{EntityMeta, RowValues};
use crate::error::{BoxError, Error, ErrorKind, Result as OrmResult};
use crate::sql::{Backend, Kind};
use crate::temporal::{civil_from_days, days_from_civil};
use crate::value::{FromSqlError, SqlType, Value, ValueRef};

/// How many prepared statements a connection keeps (the driver closes the least recently
/// used one beyond that).
const STATEMENT_CACHE: usize = 256;

/// The placeholder limit of the protocol: a statement's parameter count is 16 bits.
const MAX_PARAMS: usize = 65_535;

/// Rows per multi-row `INSERT`, at most (fewer when the parameters or the packet would
/// pass their limits).
const INSERT_ROWS: usize = 2_000;

/// The session's SQL mode: identifiers in double quotes, strict for every table, and a key
/// of 0 written as given (by default MySQL takes it as "generate one", as it does NULL).
const SESSION_SQL_MODE: &str = "SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES,\
     NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,\
     NO_AUTO_VALUE_ON_ZERO'";

/// The collation of text the ORM creates and sends: binary, without trailing-space padding,
/// so that text compares, sorts and is unique as on the other backends.
fn collation(mariadb: bool) -> &'static str {
    if mariadb {
        "utf8mb4_nopad_bin"
    } else {
        "utf8mb4_0900_bin"
    }
}

/// `SET NAMES` with the ORM's collation: bound text compares as the ORM's columns do.
fn names_sql(mariadb: bool) -> String {
    format!("SET NAMES utf8mb4 COLLATE {}", collation(mariadb))
}

/// Options for opening MySQL or MariaDB.
///
/// ```
/// use orm_core::MySqlOptions;
/// let opts = MySqlOptions::default().database("orm_test_1");
/// assert_eq!(opts.database.as_deref(), Some("orm_test_1"));
/// assert!(opts.create_database);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MySqlOptions {
    /// Use this database (schema) instead of the URL's: one per tenant, or per test run.
    pub database: Option<String>,
    /// Create [`database`](Self::database) if it does not exist. Default on with
    /// [`database`](Self::database).
    pub create_database: bool,
    /// Whether a multi-row `INSERT` may be trusted to get consecutive keys. `None` (the
    /// default) decides from the server's settings, read at connect time:
    /// `innodb_autoinc_lock_mode` 0 or 1 and `auto_increment_increment` 1. `Some(false)`
    /// inserts rows whose keys must be read back one per statement, whatever the settings.
    pub consecutive_keys: Option<bool>,
}

impl MySqlOptions {
    /// These options with `database` used, created if missing.
    #[must_use]
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self.create_database = true;
        self
    }

    /// These options with consecutive keys trusted or not ([`consecutive_keys`](Self::consecutive_keys)).
    #[must_use]
    pub fn consecutive_keys(mut self, trust: bool) -> Self {
        self.consecutive_keys = Some(trust);
        self
    }
}

/// One MySQL or MariaDB session.
pub(crate) struct MyConn {
    conn: RefCell<Conn>,
    /// Whether a transaction is open, as this side followed it; [`MyConn::status`] asks the
    /// server after anything that may have ended one behind its back.
    in_transaction: Cell<bool>,
    /// A statement failed (a deadlock rolls the whole transaction back) or ran that may
    /// commit implicitly (DDL) since the server last confirmed the transaction.
    suspect: Cell<bool>,
    /// The connection was lost: never reuse it.
    broken: Cell<bool>,
    /// MariaDB rather than MySQL.
    mariadb: bool,
    /// A multi-row `INSERT` gets consecutive keys (see [`MySqlOptions::consecutive_keys`]).
    consecutive_keys: bool,
    /// The server's `max_allowed_packet`.
    max_packet: usize,
    /// The database chosen at connect time.
    database: Option<String>,
}

/// A MySQL URL for messages and logs: user, host, port and database, built from the parsed
/// URL, so that the password never appears.
///
/// ```
/// let shown = orm_core::display_mysql_url("mysql://app:s3cret@db.example:3306/shop");
/// assert_eq!(shown, "mysql://app@db.example:3306/shop");
/// ```
pub fn display_mysql_url(url: &str) -> String {
    redact(url)
}

pub(crate) fn redact(url: &str) -> String {
    match Opts::from_url(url) {
        Ok(o) => format!(
            "mysql://{}@{}:{}/{}",
            o.get_user().unwrap_or(""),
            o.get_ip_or_hostname(),
            o.get_tcp_port(),
            o.get_db_name().unwrap_or("")
        ),
        Err(_) => "mysql://(an invalid URL)".to_owned(),
    }
}

/// An identifier in double quotes (the session runs with `ANSI_QUOTES`).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl MyConn {
    pub(crate) fn connect(url: &str, options: &MySqlOptions) -> OrmResult<Self> {
        let open_error = |e: mysql::Error| Error::Open {
            target: redact(url),
            source: Box::new(e),
        };
        let opts = Opts::from_url(url).map_err(|e| open_error(e.into()))?;
        let builder = OptsBuilder::from_opts(opts)
            .stmt_cache_size(STATEMENT_CACHE)
            .additional_capabilities(mysql::consts::CapabilityFlags::CLIENT_FOUND_ROWS)
            .init(vec![SESSION_SQL_MODE, "SET SESSION time_zone = '+00:00'"]);
        let mut conn = Conn::new(builder).map_err(open_error)?;
        if let Some(db) = &options.database {
            let q = quote_ident(db);
            if options.create_database {
                conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {q}"))
                    .map_err(open_error)?;
            }
            conn.query_drop(format!("USE {q}")).map_err(open_error)?;
        }
        let settings: Option<(String, Option<i64>, i64, i64)> = conn
            .query_first(
                "SELECT @@version, @@innodb_autoinc_lock_mode, @@auto_increment_increment, \
                 @@max_allowed_packet",
            )
            .map_err(open_error)?;
        let (version, lock_mode, increment, packet) =
            settings.unwrap_or_else(|| (String::new(), None, 1, 4 << 20));
        let mariadb = version.contains("MariaDB");
        conn.query_drop(names_sql(mariadb)).map_err(open_error)?;
        let by_settings = matches!(lock_mode, Some(0 | 1)) && increment == 1;
        Ok(MyConn {
            conn: RefCell::new(conn),
            in_transaction: Cell::new(false),
            suspect: Cell::new(false),
            broken: Cell::new(false),
            mariadb,
            consecutive_keys: options.consecutive_keys.unwrap_or(true) && by_settings,
            max_packet: usize::try_from(packet).unwrap_or(4 << 20),
            database: options.database.clone(),
        })
    }

    /// The `mysql` connection, for what the ORM does not cover.
    pub(crate) fn client(&self) -> RefMut<'_, Conn> {
        self.conn.borrow_mut()
    }

    fn mark_broken(&self) {
        self.broken.set(true);
        self.in_transaction.set(false);
    }

    /// Follows transaction control sent as text.
    fn track(&self, sql: &str) {
        let head: String = sql
            .trim_start()
            .chars()
            .take(20)
            .collect::<String>()
            .to_ascii_uppercase();
        if head.starts_with("BEGIN") || head.starts_with("START TRANSACTION") {
            self.in_transaction.set(true);
            self.suspect.set(false);
        } else if head.starts_with("COMMIT")
            || (head.starts_with("ROLLBACK") && !head.starts_with("ROLLBACK TO"))
        {
            self.in_transaction.set(false);
            self.suspect.set(false);
        } else if self.in_transaction.get()
            && !head.starts_with("SAVEPOINT")
            && !head.starts_with("RELEASE")
            && !head.starts_with("ROLLBACK TO")
        {
            // DDL commits implicitly; other text statements may too.
            self.suspect.set(true);
        }
    }

    fn params(params: &[ValueRef<'_>]) -> DResult<Params> {
        if params.is_empty() {
            return Ok(Params::Empty);
        }
        params
            .iter()
            .map(bind)
            .collect::<Result<Vec<_>, _>>()
            .map(Params::Positional)
            .map_err(DriverError::Orm)
    }

    /// Runs a prepared statement: rows changed (matched) and the first generated key.
    fn exec(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<(u64, u64)> {
        let params = Self::params(params)?;
        let mut conn = self.conn.borrow_mut();
        let stmt = conn.prep(sql)?;
        let result = conn.exec_iter(&stmt, params)?;
        let out = (result.affected_rows(), result.last_insert_id().unwrap_or(0));
        drop(result);
        Ok(out)
    }
}

/// A value as the `mysql` crate sends it.
fn bind(v: &ValueRef<'_>) -> OrmResult<MyValue> {
    Ok(match v {
        ValueRef::Null => MyValue::NULL,
        ValueRef::I16(i) => MyValue::Int(i64::from(*i)),
        ValueRef::I32(i) => MyValue::Int(i64::from(*i)),
        ValueRef::I64(i) => MyValue::Int(*i),
        ValueRef::F32(f) => MyValue::Float(*f),
        ValueRef::F64(f) => MyValue::Double(*f),
        ValueRef::Bool(b) => MyValue::Int(i64::from(*b)),
        ValueRef::Text(s) => MyValue::Bytes(s.as_bytes().to_vec()),
        ValueRef::Blob(b) => MyValue::Bytes(b.to_vec()),
        ValueRef::Uuid(u) => MyValue::Bytes(u.as_bytes().to_vec()),
        ValueRef::Date(d) => {
            let (y, m, d) = civil_from_days(i64::from(*d));
            date_value(y, m, d, 0)?
        }
        ValueRef::Time(t) => {
            let us = *t;
            let negative = us < 0;
            let a = us.unsigned_abs();
            let secs = a / 1_000_000;
            MyValue::Time(
                negative,
                u32::try_from(secs / 86_400).unwrap_or(u32::MAX),
                u8::try_from(secs / 3600 % 24).unwrap_or(0),
                u8::try_from(secs / 60 % 60).unwrap_or(0),
                u8::try_from(secs % 60).unwrap_or(0),
                u32::try_from(a % 1_000_000).unwrap_or(0),
            )
        }
        ValueRef::DateTime(t) | ValueRef::Timestamp(t) => {
            let days = t.div_euclid(86_400_000_000);
            let rest = t.rem_euclid(86_400_000_000);
            let (y, m, d) = civil_from_days(days);
            date_value(y, m, d, rest)?
        }
    })
}

fn date_value(y: i64, m: u32, d: u32, micros: i64) -> OrmResult<MyValue> {
    let year = u16::try_from(y)
        .ok()
        .filter(|y| *y <= 9999)
        .ok_or_else(|| Error::InvalidState {
            message: format!("the year {y} is outside what MySQL stores (0 to 9999)"),
        })?;
    let secs = micros / 1_000_000;
    Ok(MyValue::Date(
        year,
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
        u8::try_from(secs / 3600).unwrap_or(0),
        u8::try_from(secs / 60 % 60).unwrap_or(0),
        u8::try_from(secs % 60).unwrap_or(0),
        u32::try_from(micros % 1_000_000).unwrap_or(0),
    ))
}

fn found(v: &MyValue) -> String {
    match v {
        MyValue::NULL => "NULL".into(),
        MyValue::Bytes(_) => "bytes".into(),
        MyValue::Int(_) | MyValue::UInt(_) => "an integer".into(),
        MyValue::Float(_) | MyValue::Double(_) => "a float".into(),
        MyValue::Date(..) => "a date".into(),
        MyValue::Time(..) => "a time".into(),
    }
}

fn text(b: &[u8]) -> Result<&str, FromSqlError> {
    std::str::from_utf8(b).map_err(|e| FromSqlError::Invalid {
        message: format!("invalid UTF-8: {e}"),
    })
}

fn int_of(v: &MyValue) -> Option<Result<i64, FromSqlError>> {
    match v {
        MyValue::Int(i) => Some(Ok(*i)),
        MyValue::UInt(u) => Some(i64::try_from(*u).map_err(|_| FromSqlError::Invalid {
            message: format!("{u} does not fit in i64"),
        })),
        // The text protocol sends every value as text.
        MyValue::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .map(Ok),
        _ => None,
    }
}

fn float_of(v: &MyValue) -> Option<f64> {
    match v {
        MyValue::Float(f) => Some(f64::from(*f)),
        MyValue::Double(d) => Some(*d),
        #[allow(clippy::cast_precision_loss)]
        MyValue::Int(i) => Some(*i as f64),
        #[allow(clippy::cast_precision_loss)]
        MyValue::UInt(u) => Some(*u as f64),
        MyValue::Bytes(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
        _ => None,
    }
}

fn micros_of_date(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> i64 {
    let days = days_from_civil(i64::from(y), u32::from(mo), u32::from(d));
    days * 86_400_000_000
        + (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)) * 1_000_000
        + i64::from(us)
}

/// Decodes a value as the mapping's type.
fn decode(v: &MyValue, ty: SqlType) -> Result<ValueRef<'_>, FromSqlError> {
    let wrong = || FromSqlError::WrongType {
        expected: ty,
        found: found(v),
    };
    let narrow = |i: i64| FromSqlError::Invalid {
        message: format!("{i} does not fit in {ty}"),
    };
    Ok(match (ty, v) {
        (_, MyValue::NULL) => ValueRef::Null,
        (SqlType::I64, v) => ValueRef::I64(int_of(v).ok_or_else(wrong)??),
        (SqlType::I32, v) => {
            let i = int_of(v).ok_or_else(wrong)??;
            ValueRef::I32(i32::try_from(i).map_err(|_| narrow(i))?)
        }
        (SqlType::I16, v) => {
            let i = int_of(v).ok_or_else(wrong)??;
            ValueRef::I16(i16::try_from(i).map_err(|_| narrow(i))?)
        }
        (SqlType::Bool, v) => match int_of(v).ok_or_else(wrong)?? {
            0 => ValueRef::Bool(false),
            1 => ValueRef::Bool(true),
            i => return Err(narrow(i)),
        },
        (SqlType::F32, MyValue::Float(f)) => ValueRef::F32(*f),
        #[allow(clippy::cast_possible_truncation)]
        (SqlType::F32, v) => {
            let f = float_of(v).ok_or_else(wrong)?;
            if f.is_nan() || f64::from(f as f32) == f {
                ValueRef::F32(f as f32)
            } else {
                return Err(FromSqlError::Invalid {
                    message: format!("{f} is not exactly representable as f32"),
                });
            }
        }
        (SqlType::F64, v) => ValueRef::F64(float_of(v).ok_or_else(wrong)?),
        (SqlType::Text | SqlType::Json, MyValue::Bytes(b)) => {
            ValueRef::Text(Cow::Borrowed(text(b)?))
        }
        // A `DECIMAL(65, 28)` pads every value to 28 places: the zeros are dropped, so that
        // a value with 29 digits before the point still reads (rust_decimal holds 28 or 29
        // significant digits in all).
        (SqlType::Decimal, MyValue::Bytes(b)) => {
            let t = text(b)?;
            let t = if t.contains('.') {
                t.trim_end_matches('0').trim_end_matches('.')
            } else {
                t
            };
            ValueRef::Text(Cow::Borrowed(t))
        }
        (SqlType::Decimal, v) => match (int_of(v), float_of(v)) {
            (Some(i), _) => ValueRef::Text(Cow::Owned(i?.to_string())),
            _ => return Err(wrong()),
        },
        (SqlType::Blob, MyValue::Bytes(b)) => ValueRef::Blob(Cow::Borrowed(b)),
        (SqlType::Uuid, MyValue::Bytes(b)) => match <[u8; 16]>::try_from(b.as_slice()) {
            Ok(raw) => ValueRef::Uuid(uuid::Uuid::from_bytes(raw)),
            Err(_) => match std::str::from_utf8(b)
                .ok()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
            {
                Some(u) => ValueRef::Uuid(u),
                None => {
                    return Err(FromSqlError::Invalid {
                        message: format!("{} bytes are not a UUID", b.len()),
                    });
                }
            },
        },
        (SqlType::Date, MyValue::Date(y, m, d, ..)) => ValueRef::Date(
            i32::try_from(days_from_civil(i64::from(*y), u32::from(*m), u32::from(*d)))
                .map_err(|_| wrong())?,
        ),
        (SqlType::DateTime | SqlType::Timestamp, MyValue::Date(y, mo, d, h, mi, s, us)) => {
            let t = micros_of_date(*y, *mo, *d, *h, *mi, *s, *us);
            if ty == SqlType::DateTime {
                ValueRef::DateTime(t)
            } else {
                ValueRef::Timestamp(t)
            }
        }
        (SqlType::Time, MyValue::Time(neg, days, h, m, s, us)) => {
            let t = ((i64::from(*days) * 24 + i64::from(*h)) * 3600
                + i64::from(*m) * 60
                + i64::from(*s))
                * 1_000_000
                + i64::from(*us);
            ValueRef::Time(if *neg { -t } else { t })
        }
        (
            SqlType::Date | SqlType::Time | SqlType::DateTime | SqlType::Timestamp,
            MyValue::Bytes(b),
        ) => {
            use crate::temporal::{parse_date, parse_datetime, parse_time};
            let s = text(b)?;
            let bad = || FromSqlError::Invalid {
                message: format!("`{s}` is not a {ty}"),
            };
            match ty {
                SqlType::Date => ValueRef::Date(parse_date(s).ok_or_else(bad)?),
                SqlType::Time => ValueRef::Time(parse_time(s).ok_or_else(bad)?),
                SqlType::DateTime => ValueRef::DateTime(parse_datetime(s).ok_or_else(bad)?),
                _ => ValueRef::Timestamp(parse_datetime(s).ok_or_else(bad)?),
            }
        }
        _ => return Err(wrong()),
    })
}

/// A value as the server sent it, for raw queries.
fn decode_any(v: &MyValue, binary: bool) -> Value {
    match v {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) => Value::I64(*i),
        MyValue::UInt(u) => i64::try_from(*u).map_or(Value::Text(u.to_string()), Value::I64),
        MyValue::Float(f) => Value::F64(f64::from(*f)),
        MyValue::Double(d) => Value::F64(*d),
        MyValue::Bytes(b) if binary => Value::Blob(b.clone()),
        MyValue::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Blob(b.clone()),
        },
        MyValue::Date(y, mo, d, h, mi, s, us) => {
            if (*h, *mi, *s, *us) == (0, 0, 0, 0) {
                Value::Date(
                    i32::try_from(days_from_civil(
                        i64::from(*y),
                        u32::from(*mo),
                        u32::from(*d),
                    ))
                    .unwrap_or(0),
                )
            } else {
                Value::DateTime(micros_of_date(*y, *mo, *d, *h, *mi, *s, *us))
            }
        }
        MyValue::Time(neg, days, h, m, s, us) => {
            let t = ((i64::from(*days) * 24 + i64::from(*h)) * 3600
                + i64::from(*m) * 60
                + i64::from(*s))
                * 1_000_000
                + i64::from(*us);
            Value::Time(if *neg { -t } else { t })
        }
    }
}

/// A row of a result, read by the fields of an entity. A text field takes the row's own
/// bytes over ([`RowValues::plain_text`]) rather than copying them, as the driver's
/// `FromRow` does for a `String`: a load of 100,000 rows of two text columns then makes no
/// copy of 200,000 strings (and no allocation and free of each).
struct Row<'a> {
    values: RefCell<mysql::Row>,
    /// The result's columns, shared by its rows.
    columns: &'a [mysql::Column],
}

impl Row<'_> {
    fn missing(index: usize) -> FromSqlError {
        FromSqlError::Invalid {
            message: format!("no column {index} in the row, or it was read already"),
        }
    }
}

/// A value read from a row, holding no borrow of it.
fn detached(v: ValueRef<'_>) -> ValueRef<'static> {
    match v {
        ValueRef::Text(t) => ValueRef::Text(Cow::Owned(t.into_owned())),
        ValueRef::Blob(b) => ValueRef::Blob(Cow::Owned(b.into_owned())),
        ValueRef::Null => ValueRef::Null,
        ValueRef::I16(i) => ValueRef::I16(i),
        ValueRef::I32(i) => ValueRef::I32(i),
        ValueRef::I64(i) => ValueRef::I64(i),
        ValueRef::F32(f) => ValueRef::F32(f),
        ValueRef::F64(f) => ValueRef::F64(f),
        ValueRef::Bool(b) => ValueRef::Bool(b),
        ValueRef::Uuid(u) => ValueRef::Uuid(u),
        ValueRef::Date(d) => ValueRef::Date(d),
        ValueRef::Time(t) => ValueRef::Time(t),
        ValueRef::DateTime(t) => ValueRef::DateTime(t),
        ValueRef::Timestamp(t) => ValueRef::Timestamp(t),
    }
}

impl RowValues for Row<'_> {
    fn value(&self, index: usize, ty: SqlType) -> Result<ValueRef<'_>, FromSqlError> {
        // The row may give its text away (`plain_text`), so it lends nothing: text and
        // bytes read here are copies, as every field's `from_sql` would make of a borrow.
        let row = self.values.borrow();
        decode(row.as_ref(index).ok_or_else(|| Self::missing(index))?, ty).map(detached)
    }

    fn width(&self) -> usize {
        self.columns.len()
    }

    fn column_name(&self, index: usize) -> &str {
        self.columns
            .get(index)
            .and_then(|c| std::str::from_utf8(c.name_ref()).ok())
            .unwrap_or("")
    }

    fn any_value(&self, index: usize) -> Result<Value, FromSqlError> {
        // Character set 63 is `binary`: bytes, not text.
        let binary = self
            .columns
            .get(index)
            .is_some_and(|c| c.character_set() == 63 && is_string_type(c.column_type()));
        self.values
            .borrow()
            .as_ref(index)
            .map(|v| decode_any(v, binary))
            .ok_or_else(|| Self::missing(index))
    }

    fn plain_int(&self, index: usize) -> Option<i64> {
        match self.values.borrow().as_ref(index)? {
            MyValue::Int(i) => Some(*i),
            MyValue::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    fn plain_text(&self, index: usize) -> Option<Box<str>> {
        let mut row = self.values.borrow_mut();
        // Only valid text is taken: anything else stays for `value` to read (and report).
        match row.as_ref(index)? {
            MyValue::Bytes(b) if std::str::from_utf8(b).is_ok() => {}
            _ => return None,
        }
        match row.take::<MyValue, _>(index)? {
            MyValue::Bytes(b) => String::from_utf8(b).ok().map(String::into_boxed_str),
            _ => None,
        }
    }
}

fn is_string_type(t: mysql::consts::ColumnType) -> bool {
    use mysql::consts::ColumnType as T;
    matches!(
        t,
        T::MYSQL_TYPE_BLOB
            | T::MYSQL_TYPE_TINY_BLOB
            | T::MYSQL_TYPE_MEDIUM_BLOB
            | T::MYSQL_TYPE_LONG_BLOB
            | T::MYSQL_TYPE_STRING
            | T::MYSQL_TYPE_VAR_STRING
            | T::MYSQL_TYPE_VARCHAR
    )
}

/// The server's error code, if the error is the server's.
fn code_of(e: &mysql::Error) -> Option<u16> {
    match e {
        mysql::Error::MySqlError(m) => Some(m.code),
        _ => None,
    }
}

/// Classifies a driver error by the server's error code.
pub(crate) fn kind_of(e: &mysql::Error) -> ErrorKind {
    match e {
        mysql::Error::MySqlError(m) => match m.code {
            1062 | 1586 => ErrorKind::UniqueViolation,
            1451 | 1452 | 1216 | 1217 => ErrorKind::ForeignKeyViolation,
            1048 | 1364 => ErrorKind::NotNullViolation,
            3819 | 4025 => ErrorKind::CheckViolation,
            // A deadlock: the server rolled the whole transaction back.
            1213 => ErrorKind::PendingRollback,
            1205 => ErrorKind::Busy,
            2006 | 2013 | 1053 | 1927 => ErrorKind::Connection,
            1264 | 1265 | 1366 | 1406 | 1292 => ErrorKind::TypeMismatch,
            _ => ErrorKind::Database,
        },
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) => ErrorKind::Connection,
        mysql::Error::DriverError(
            mysql::DriverError::ConnectTimeout | mysql::DriverError::CouldNotConnect(_),
        ) => ErrorKind::Connection,
        _ => ErrorKind::Database,
    }
}

/// The server's message without the values it quotes (`Duplicate entry 'ada' for key
/// 'name'`): bound values stay out of messages, and the whole text is kept behind
/// [`Error::server_detail`].
fn message_of(e: &mysql::Error) -> String {
    let mysql::Error::MySqlError(m) = e else {
        return e.to_string();
    };
    let text = &m.message;
    let redacted = match m.code {
        1062 | 1586 => match text.rfind(" for key ") {
            Some(i) => format!("Duplicate entry{}", &text[i..]),
            None => "Duplicate entry".to_owned(),
        },
        _ => match (text.find("value: '"), text.rfind("' for column")) {
            (Some(a), Some(b)) if a + 7 <= b => {
                format!("{}value{}", &text[..a], &text[b + 1..])
            }
            _ => text.clone(),
        },
    };
    format!("{redacted} (error {}, SQLSTATE {})", m.code, m.state)
}

/// The whole message of a server error, values included.
pub(crate) fn detail_of(e: &mysql::Error) -> Option<String> {
    match e {
        mysql::Error::MySqlError(m) => Some(m.message.clone()),
        _ => None,
    }
}

pub(crate) fn map_error(
    e: mysql::Error,
    entity: Option<&'static str>,
    table: &str,
    sql: &str,
) -> Error {
    Error::Database {
        kind: kind_of(&e),
        entity,
        table: table.to_owned(),
        sql: sql.to_owned(),
        message: message_of(&e),
        source: BoxError::from(e),
    }
}

impl MyConn {
    /// The transaction's state as the server reports it, asked only when something may have
    /// ended it behind this side's back (a deadlock rolls it back; DDL commits it).
    pub(crate) fn status(&self) -> TxStatus {
        if self.broken.get() {
            return TxStatus::Lost;
        }
        if !self.suspect.get() {
            return if self.in_transaction.get() {
                TxStatus::Active
            } else {
                TxStatus::Idle
            };
        }
        let probe = if self.mariadb {
            "SELECT @@in_transaction"
        } else {
            "SELECT count(*) FROM information_schema.innodb_trx \
             WHERE trx_mysql_thread_id = CONNECTION_ID()"
        };
        let answer: Result<Option<i64>, mysql::Error> = self.conn.borrow_mut().query_first(probe);
        match answer {
            Ok(Some(open)) => {
                self.suspect.set(false);
                self.in_transaction.set(open > 0);
                if open > 0 {
                    TxStatus::Active
                } else {
                    TxStatus::Idle
                }
            }
            Ok(None) => TxStatus::Failed,
            Err(e) => {
                if kind_of(&e) == ErrorKind::Connection {
                    self.mark_broken();
                    TxStatus::Lost
                } else {
                    TxStatus::Failed
                }
            }
        }
    }

    /// Rows per multi-row `INSERT` of `width` columns: under the placeholder limit, and
    /// under a quarter of the packet limit at an estimated 64 bytes a value.
    fn rows_fitting(&self, width: usize) -> usize {
        let width = width.max(1);
        let by_params = MAX_PARAMS / width;
        let by_packet = (self.max_packet / 4) / (width * 64);
        INSERT_ROWS.min(by_params).min(by_packet.max(1))
    }
}

impl Db for MyConn {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn backend(&self) -> Backend {
        Backend::MySql
    }

    /// The table options every `CREATE TABLE` gets: InnoDB (transactions, foreign keys) and
    /// a binary collation without trailing-space padding, so that text compares, sorts and
    /// is unique as on the other backends.
    fn table_options(&self) -> &'static str {
        if self.mariadb {
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin"
        } else {
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_bin"
        }
    }

    fn is_usable(&self) -> bool {
        !self.broken.get()
    }

    fn writes_return_rows(&self) -> bool {
        // MariaDB has `DELETE … RETURNING` but no `UPDATE … RETURNING`; MySQL has neither.
        false
    }

    fn key_taken(&self, e: &Error) -> bool {
        matches!(e, Error::Database { kind: ErrorKind::UniqueViolation, message, .. }
            if message.starts_with("Duplicate entry for key 'PRIMARY'"))
    }

    fn max_bind_parameters(&self) -> usize {
        MAX_PARAMS
    }

    fn execute(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        Ok(self.exec(sql, params)?.0)
    }

    fn query(
        &self,
        sql: &str,
        params: &[ValueRef<'_>],
        each: &mut dyn FnMut(&dyn RowValues) -> OrmResult<()>,
    ) -> DResult<usize> {
        let params = Self::params(params)?;
        let mut conn = self.conn.borrow_mut();
        let stmt = conn.prep(sql)?;
        let mut result = conn.exec_iter(&stmt, params)?;
        let mut n = 0;
        let mut failed = None;
        // Every row of a result holds the same columns: taken from the first.
        let mut columns: Option<std::sync::Arc<[mysql::Column]>> = None;
        for row in result.by_ref() {
            let row = row?;
            n += 1;
            let columns = columns.get_or_insert_with(|| row.columns());
            let row = Row {
                values: RefCell::new(row),
                columns,
            };
            if let Err(e) = each(&row) {
                failed = Some(e);
                break;
            }
        }
        // Dropping the result reads what is left of it off the wire.
        drop(result);
        match failed {
            Some(e) => Err(DriverError::Orm(e)),
            None => Ok(n),
        }
    }

    fn execute_once(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        if params.is_empty() {
            // Unprepared: DDL, triggers and the like, which not every server prepares.
            self.track(sql);
            let mut conn = self.conn.borrow_mut();
            let result = conn.query_iter(sql)?;
            let n = result.affected_rows();
            drop(result);
            return Ok(n);
        }
        let params = Self::params(params)?;
        let mut conn = self.conn.borrow_mut();
        let stmt = conn.prep(sql)?;
        let result = conn.exec_iter(&stmt, params)?;
        let n = result.affected_rows();
        drop(result);
        conn.close(stmt)?;
        Ok(n)
    }

    fn batch(&self, sql: &str) -> DResult<()> {
        self.track(sql);
        Ok(self.conn.borrow_mut().query_drop(sql)?)
    }

    fn server_cursors(&self) -> bool {
        false
    }

    fn temp_keys(&self) -> TempKeys {
        // Rows of `CREATE … SELECT … ORDER BY` are inserted in the query's order, and the
        // auto-increment column numbers them so. A temporary table outlives a rollback here.
        TempKeys {
            create: "CREATE TEMPORARY TABLE {} (orm_pos BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY)",
            schema: "",
            position: "orm_pos",
            drop: "DROP TEMPORARY TABLE IF EXISTS {}",
            exists: None,
        }
    }

    fn forget_prepared(&self) {
        // The server re-prepares a statement whose tables changed; nothing to forget.
    }

    fn forget_tables(&self) {
        // Raw SQL or DDL is about to run: either may end the transaction (`ROLLBACK`, the
        // implicit commit of DDL), so the server is asked before it is trusted again.
        if self.in_transaction.get() {
            self.suspect.set(true);
        }
    }

    fn transaction_status(&self) -> TxStatus {
        self.status()
    }

    fn in_transaction(&self) -> bool {
        self.in_transaction.get()
    }

    fn begin(&self, batch: &dyn Fn(&str) -> OrmResult<()>) -> OrmResult<()> {
        batch("BEGIN")
    }

    fn commit_refused(&self) -> Option<Error> {
        match self.status() {
            TxStatus::Active => None,
            TxStatus::Lost => Some(Error::PendingRollback {
                reason: "the connection was lost: its transaction is gone".into(),
            }),
            _ => Some(Error::PendingRollback {
                reason: "no transaction is open to commit: the server rolled it back (a \
                         deadlock or a lock wait timeout), DDL committed it, or none was begun"
                    .into(),
            }),
        }
    }

    fn commit(&self) -> DResult<()> {
        let r = self.conn.borrow_mut().query_drop("COMMIT");
        self.in_transaction.set(false);
        self.suspect.set(false);
        Ok(r?)
    }

    fn reset_sql(&self) -> Option<String> {
        // Session variables and temporary tables a user made; the ORM's own settings again.
        let mut sql = format!(
            "{SESSION_SQL_MODE}; {}; SET SESSION time_zone = '+00:00'",
            names_sql(self.mariadb)
        );
        if let Some(db) = &self.database {
            sql.push_str(&format!("; USE {}", quote_ident(db)));
        }
        Some(sql)
    }

    fn batch_rows(
        &self,
        _conn: &Connection,
        _meta: &'static EntityMeta,
        _write: &BatchWrite<'_>,
        _rows: usize,
        stride: usize,
    ) -> OrmResult<usize> {
        Ok(crate::connection::batch::my_side::MY_ROWS
            .min(MAX_PARAMS / stride.max(1))
            .max(1))
    }

    fn write_batch(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batch: &[ValueRef<'_>],
        returning: bool,
    ) -> OrmResult<Sent> {
        crate::connection::batch::my_side::write(conn, meta, write, batch, returning)
    }

    fn key_plan(&self, _conn: &Connection, _meta: &'static EntityMeta) -> OrmResult<KeyPlan> {
        Ok(if self.consecutive_keys {
            KeyPlan::Consecutive
        } else {
            KeyPlan::PerRow
        })
    }

    fn insert_rows_per_statement(&self, requested: usize, width: usize) -> usize {
        // A round trip costs more than binding: statements as large as the limits allow.
        requested.max(INSERT_ROWS).min(self.rows_fitting(width))
    }

    fn reserve_keys(
        &self,
        _conn: &Connection,
        _meta: &'static EntityMeta,
        _n: usize,
        _sent: bool,
        _state: &mut KeyState,
    ) -> OrmResult<Option<Reserved>> {
        // Keys come from the server: the first of a batch is its `LAST_INSERT_ID()`.
        Ok(None)
    }

    fn insert_batch(&self, conn: &Connection, batch: &InsertBatch<'_>) -> OrmResult<Inserted> {
        let rows = batch.rows;
        let n = rows.len();
        let ctx = Ctx::of(batch.meta);
        let row_values = |j: usize| (0..rows.width()).map(move |p| rows.value(j, p));
        if batch.generated == GeneratedKeys::Each {
            // One row per statement, each key from its own OK packet: correct whatever the
            // server's lock mode.
            let sql = conn.shape_of(batch.entity, batch.meta, Kind::Insert, batch.columns, 1);
            let keys = conn.run(ctx, &sql, || {
                let mut keys = Vec::with_capacity(n);
                for j in 0..n {
                    let values: Vec<ValueRef<'_>> = row_values(j).collect();
                    let (changed, id) = self.exec(&sql, &values)?;
                    if changed != 1 || id == 0 {
                        return Err(DriverError::Orm(Error::InvalidState {
                            message: format!(
                                "{} (table `{}`): a one-row INSERT reported {changed} rows and \
                                 key {id}",
                                batch.meta.name, batch.meta.table
                            ),
                        }));
                    }
                    keys.push(i64::try_from(id).unwrap_or(i64::MAX));
                }
                Ok((keys, n))
            })?;
            return Ok(Inserted {
                rows: n as u64,
                keys: Assigned::Each(keys),
            });
        }
        let sql = conn.shape_of(batch.entity, batch.meta, Kind::Insert, batch.columns, n);
        let mut values: Vec<ValueRef<'_>> = Vec::with_capacity(n * rows.width());
        for j in 0..n {
            values.extend(row_values(j));
        }
        let (written, first) = conn.run(ctx, &sql, || {
            let out = self.exec(&sql, &values)?;
            Ok((out, usize::try_from(out.0).unwrap_or(usize::MAX)))
        })?;
        if batch.generated != GeneratedKeys::Consecutive {
            return Ok(Inserted {
                rows: written,
                keys: Assigned::None,
            });
        }
        // InnoDB, lock mode 0 or 1, increment 1: a multi-row INSERT whose row count is known
        // in advance gets one block of consecutive keys, and `LAST_INSERT_ID()` is its first.
        if first == 0 {
            return Err(Error::InvalidState {
                message: format!(
                    "{} (table `{}`): the server reported no generated key for {n} rows",
                    batch.meta.name, batch.meta.table
                ),
            });
        }
        Ok(Inserted {
            rows: written,
            keys: Assigned::First(i64::try_from(first).unwrap_or(i64::MAX)),
        })
    }

    fn map_error(
        &self,
        e: DriverError,
        entity: Option<&'static str>,
        table: &str,
        sql: &str,
    ) -> Error {
        let e = match e {
            DriverError::My(e) => {
                let code = code_of(&e);
                let mapped = map_error(e, entity, table, sql);
                // A deadlock rolls the whole transaction back; so may a lock wait timeout.
                if matches!(code, Some(1213 | 1205)) {
                    self.suspect.set(true);
                }
                mapped
            }
            other => other.into_error(entity, table, sql),
        };
        if e.kind() == ErrorKind::Connection {
            self.mark_broken();
        } else if self.in_transaction.get() {
            self.suspect.set(true);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: u16, message: &str) -> mysql::Error {
        mysql::Error::MySqlError(mysql::MySqlError {
            state: "23000".into(),
            message: message.into(),
            code,
        })
    }

    #[test]
    fn messages_leave_out_the_values_the_server_quotes() {
        let dup = server_error(1062, "Duplicate entry 'secret-1' for key 'name'");
        assert_eq!(kind_of(&dup), ErrorKind::UniqueViolation);
        let msg = message_of(&dup);
        assert!(
            !msg.contains("secret-1") && msg.contains("for key 'name'"),
            "{msg}"
        );
        assert_eq!(
            detail_of(&dup).as_deref(),
            Some("Duplicate entry 'secret-1' for key 'name'")
        );
        let bad = server_error(
            1366,
            "Incorrect integer value: 'x42' for column `t`.`age` at row 1",
        );
        assert_eq!(kind_of(&bad), ErrorKind::TypeMismatch);
        let msg = message_of(&bad);
        assert!(
            !msg.contains("x42") && msg.contains("column `t`.`age`"),
            "{msg}"
        );
    }

    #[test]
    fn error_numbers_map_to_kinds() {
        for (code, kind) in [
            (1452, ErrorKind::ForeignKeyViolation),
            (1048, ErrorKind::NotNullViolation),
            (1213, ErrorKind::PendingRollback),
            (1205, ErrorKind::Busy),
            (2006, ErrorKind::Connection),
            (2013, ErrorKind::Connection),
            (1146, ErrorKind::Database),
        ] {
            assert_eq!(kind_of(&server_error(code, "m")), kind, "{code}");
        }
    }

    #[test]
    fn dates_and_times_bind_and_decode_back() {
        for micros in [0_i64, 1_700_000_000_123_456, -86_400_000_000 * 365] {
            let v = bind(&ValueRef::DateTime(micros)).expect("binds");
            assert_eq!(
                decode(&v, SqlType::DateTime).expect("decodes"),
                ValueRef::DateTime(micros)
            );
        }
        let t = bind(&ValueRef::Time(49_530_250_000)).expect("binds");
        assert_eq!(
            decode(&t, SqlType::Time).expect("decodes"),
            ValueRef::Time(49_530_250_000)
        );
        let d = bind(&ValueRef::Date(19_782)).expect("binds");
        assert_eq!(
            decode(&d, SqlType::Date).expect("decodes"),
            ValueRef::Date(19_782)
        );
        let padded = MyValue::Bytes(b"1.5000000000000000000000000000".to_vec());
        assert_eq!(
            decode(&padded, SqlType::Decimal).expect("decodes"),
            ValueRef::Text("1.5".into())
        );
    }
}
