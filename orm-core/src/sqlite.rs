//! The SQLite backend, through rusqlite: the connection behind the backend interface, how
//! tables' keys are proven, value binding and decoding, error mapping.

use std::borrow::Cow;

use rusqlite::ffi;
use rusqlite::types::{ToSqlOutput, ValueRef as RValueRef};

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::connection::batch::{BatchWrite, Sent};
use crate::connection::db::{
    Assigned, Db, GeneratedKeys, InsertBatch, Inserted, KeyPlan, KeyState, Reserved,
};
use crate::connection::{Connection, DResult, DriverError, SqliteOptions, TxStatus};
use crate::entity::{EntityMeta, RowValues};
use crate::error::{BoxError, Error, ErrorKind, Result as OrmResult};
use crate::sql::{Backend, Kind};
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

/// Dates and times go to SQLite as ISO 8601 text (any other value as NULL: not called for
/// them).
#[cold]
fn temporal(v: &ValueRef<'_>) -> ToSqlOutput<'static> {
    use crate::temporal::{format_date, format_datetime, format_time};
    let text = match v {
        ValueRef::Date(d) => format_date(*d),
        ValueRef::Time(t) => format_time(*t),
        ValueRef::DateTime(t) => format_datetime(*t),
        ValueRef::Timestamp(t) => format!("{}+00:00", format_datetime(*t)),
        _ => return ToSqlOutput::Borrowed(RValueRef::Null),
    };
    ToSqlOutput::Owned(rusqlite::types::Value::Text(text))
}

impl rusqlite::ToSql for ValueRef<'_> {
    #[inline]
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
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
            | ValueRef::Timestamp(_) => return Ok(temporal(self)),
        }))
    }
}

impl rusqlite::ToSql for Value {
    #[inline]
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
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
                return Ok(temporal(&self.as_ref()));
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
        decode(raw_value(self, index)?, ty)
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

    #[inline]
    fn plain_int(&self, index: usize) -> Option<i64> {
        match self.get_ref(index) {
            Ok(RValueRef::Integer(i)) => Some(i),
            _ => None,
        }
    }

    #[inline]
    fn plain_text(&self, index: usize) -> Option<Box<str>> {
        match self.get_ref(index) {
            Ok(RValueRef::Text(t)) => std::str::from_utf8(t).ok().map(Box::from),
            _ => None,
        }
    }
}

fn raw_value<'a>(row: &'a rusqlite::Row<'_>, index: usize) -> Result<RValueRef<'a>, FromSqlError> {
    row.get_ref(index).map_err(|e| FromSqlError::Invalid {
        message: e.to_string(),
    })
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

/// A SQLite connection and the options it was opened with.
pub(crate) struct SqliteDriver {
    pub(crate) conn: rusqlite::Connection,
    options: SqliteOptions,
    /// How each table's key gets its values, with the transaction it was read in. While that
    /// write transaction lasts no other connection can change the schema, and this one
    /// changes it only through DDL or raw SQL, which forget it.
    key_info: RefCell<HashMap<&'static str, (u64, KeyPlan)>>,
}

impl SqliteDriver {
    /// Applies `options` to a newly opened connection (`file`: not an in-memory database).
    pub(crate) fn configure(
        conn: rusqlite::Connection,
        options: SqliteOptions,
        file: bool,
    ) -> rusqlite::Result<Self> {
        conn.busy_timeout(options.busy_timeout)?;
        conn.pragma_update(None, "foreign_keys", options.foreign_keys)?;
        if options.wal && file {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.set_prepared_statement_cache_capacity(128);
        Ok(SqliteDriver {
            conn,
            options,
            key_info: RefCell::default(),
        })
    }

    /// Forgets what was read of the tables' keys (after DDL or raw SQL).
    pub(crate) fn forget_keys(&self) {
        self.key_info.borrow_mut().clear();
    }

    /// The first of `n` consecutive keys nobody uses: what SQLite would assign next. Sound
    /// only while this connection holds the write lock.
    fn next_free_key(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        n: usize,
        sequence_table: &mut Option<bool>,
    ) -> OrmResult<i64> {
        let sql = format!(
            "SELECT max({}) FROM {}",
            quote(meta.key_column().name),
            quote(meta.table)
        );
        let max = match conn
            .catalog_values(&sql, &[])?
            .first()
            .and_then(|r| r.first())
        {
            Some(Value::I64(v)) => Some(*v),
            _ => None,
        };
        let has_sequence = match *sequence_table {
            Some(v) => v,
            None => {
                let v = conn.query_i64(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
                    &[],
                )? > 0;
                *sequence_table = Some(v);
                v
            }
        };
        let mut last = max.unwrap_or(0);
        if has_sequence {
            let seq = conn.catalog_values(
                "SELECT seq FROM sqlite_sequence WHERE name = ?",
                &[Value::Text(meta.table.into())],
            )?;
            if let Some(Value::I64(s)) = seq.first().and_then(|r| r.first()) {
                last = last.max(*s);
            }
        }
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        // The keys are last + 1 ..= last + n: they must fit, the last one may be i64::MAX.
        last.checked_add(n)
            .map(|_| last + 1)
            .ok_or_else(|| Error::InvalidState {
                message: format!(
                    "{} (table `{}`): the integer key space is exhausted",
                    meta.name, meta.table
                ),
            })
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How SQLite gives values to the integer key of `meta`'s table: two catalogue reads.
fn read_key_plan(conn: &Connection, meta: &'static EntityMeta) -> OrmResult<KeyPlan> {
    let table = Value::Text(meta.table.into());
    let key = Value::Text(meta.key_column().name.into());
    // A rowid alias: the only key column, declared exactly `INTEGER`, in a rowid table.
    let alias = conn.query_i64(
        "SELECT (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1 \
           AND (SELECT upper(type) FROM pragma_table_info(?1) WHERE name = ?2 AND pk > 0) \
               = 'INTEGER' \
           AND coalesce((SELECT upper(sql) NOT LIKE '%WITHOUT%ROWID%' FROM sqlite_master \
               WHERE type = 'table' AND name = ?1 COLLATE NOCASE), 1)",
        &[table.clone(), key],
    )? == 1;
    let triggers = conn.query_i64(
        "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'trigger' \
                 AND tbl_name = ?1 COLLATE NOCASE) \
              + (SELECT count(*) FROM sqlite_temp_master WHERE type = 'trigger' \
                 AND tbl_name = ?1 COLLATE NOCASE)",
        &[table],
    )? > 0;
    Ok(match (alias, triggers) {
        // Not a rowid alias (`id BIGINT PRIMARY KEY`, `WITHOUT ROWID`): SQLite generates
        // nothing, so the inserter sends keys it computed under the write lock.
        (false, _) => KeyPlan::Assign,
        // A rowid alias and no trigger: SQLite gives a multi-row VALUES the keys `max + 1`
        // onwards, in order, and nothing else writes during the statement.
        (true, false) => KeyPlan::Consecutive,
        // Triggers may write to the table between our rows: rows go one by one and each key
        // is read back with `last_insert_rowid()` (which SQLite restores after a trigger).
        (true, true) => KeyPlan::PerRow,
    })
}

impl Db for SqliteDriver {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn is_usable(&self) -> bool {
        true
    }

    fn max_bind_parameters(&self) -> usize {
        self.conn
            .limit(rusqlite::limits::Limit::SQLITE_LIMIT_VARIABLE_NUMBER)
            .ok()
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l > 0)
            .unwrap_or(999)
    }

    fn execute(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        for (i, v) in params.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, v)?;
        }
        Ok(stmt.raw_execute()? as u64)
    }

    fn query(
        &self,
        sql: &str,
        params: &[ValueRef<'_>],
        each: &mut dyn FnMut(&dyn RowValues) -> OrmResult<()>,
    ) -> DResult<usize> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            n += 1;
            each(row)?;
        }
        Ok(n)
    }

    fn execute_once(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        Ok(self
            .conn
            .execute(sql, rusqlite::params_from_iter(params.iter()))? as u64)
    }

    fn batch(&self, sql: &str) -> DResult<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn server_cursors(&self) -> bool {
        false
    }

    fn forget_tables(&self) {
        self.forget_keys();
    }

    fn forget_prepared(&self) {
        self.conn.flush_prepared_statement_cache();
    }

    fn transaction_status(&self) -> TxStatus {
        // SQLite sets autocommit again itself when it rolls a transaction back (a full
        // disk, an I/O error).
        if self.conn.is_autocommit() {
            TxStatus::Idle
        } else {
            TxStatus::Active
        }
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    fn begin(&self, batch: &dyn Fn(&str) -> OrmResult<()>) -> OrmResult<()> {
        if !self.options.begin_immediate {
            return batch("BEGIN");
        }
        // SQLite's busy handler backs off to sleeps of 100 ms, so under contention a waiting
        // writer keeps missing the short moments between other writers' transactions and can
        // starve past the timeout. Taking the write lock is retried here instead, with short
        // jittered sleeps, until the busy timeout runs out.
        let deadline = Instant::now() + self.options.busy_timeout;
        let _ = self.conn.busy_timeout(Duration::from_millis(2));
        let mut attempt = 0u32;
        let result = loop {
            match batch("BEGIN IMMEDIATE") {
                Err(e) if e.kind() == crate::ErrorKind::Busy && Instant::now() < deadline => {
                    attempt = attempt.wrapping_add(1);
                    std::thread::sleep(Duration::from_micros(
                        200 + u64::from(crate::connection::jitter(attempt) % 1800),
                    ));
                }
                other => break other,
            }
        };
        let _ = self.conn.busy_timeout(self.options.busy_timeout);
        result
    }

    fn commit_refused(&self) -> Option<Error> {
        self.conn.is_autocommit().then(|| Error::PendingRollback {
            reason: "no transaction is open to commit: SQLite rolled it back after a failure, \
                     or none was begun"
                .into(),
        })
    }

    fn commit(&self) -> DResult<()> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }

    fn reset_sql(&self) -> Option<String> {
        None
    }

    fn batch_rows(
        &self,
        _conn: &Connection,
        _meta: &'static EntityMeta,
        _write: &BatchWrite<'_>,
        _rows: usize,
        stride: usize,
    ) -> OrmResult<usize> {
        Ok(crate::connection::batch::SQLITE_ROWS
            .min(self.max_bind_parameters() / stride)
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
        crate::connection::batch::sqlite_side::write(conn, meta, write, batch, returning)
    }

    fn write_statements_per_call(&self) -> usize {
        // As for inserts (see `insert_statements_per_batch`): ten statements through one
        // prepared statement.
        10
    }

    fn write_batches(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batches: &[&[ValueRef<'_>]],
        returning: bool,
    ) -> OrmResult<Vec<Sent>> {
        let mut sent = Vec::with_capacity(batches.len());
        let stride = write.stride();
        let mut rest = batches;
        while let Some(first) = rest.first() {
            // A run of batches of one size shares its statement.
            let rows = first.len() / stride;
            let run = rest.iter().take_while(|b| b.len() / stride == rows).count();
            let (these, after) = rest.split_at(run);
            rest = after;
            if returning {
                for b in these {
                    sent.push(crate::connection::batch::sqlite_side::write(
                        conn, meta, write, b, true,
                    )?);
                }
                continue;
            }
            let sql = crate::connection::batch::sqlite_side::sql(meta, write, rows);
            let mut stmt = self
                .conn
                .prepare_cached(&sql)
                .map_err(|e| self.map_error(e.into(), Some(meta.name), meta.table, &sql))?;
            for b in these {
                let n = conn.run(crate::connection::Ctx::of(meta), &sql, || {
                    for (i, v) in b.iter().enumerate() {
                        stmt.raw_bind_parameter(i + 1, v)?;
                    }
                    let n = stmt.raw_execute()?;
                    Ok((n as u64, n))
                })?;
                sent.push(Sent::Count(n));
            }
        }
        Ok(sent)
    }

    fn key_plan(&self, conn: &Connection, meta: &'static EntityMeta) -> OrmResult<KeyPlan> {
        let serial = conn.tx_serial();
        let in_tx = !self.conn.is_autocommit();
        if in_tx
            && let Some(&(seen, plan)) = self.key_info.borrow().get(meta.table)
            && seen == serial
        {
            return Ok(plan);
        }
        let plan = read_key_plan(conn, meta)?;
        if in_tx {
            self.key_info
                .borrow_mut()
                .insert(meta.table, (serial, plan));
        }
        Ok(plan)
    }

    fn insert_statements_per_batch(&self) -> usize {
        // Ten statements bound through one prepared statement (see `insert_batch`); the
        // values of 1,000 rows in hand at a time.
        10
    }

    fn insert_rows_per_statement(&self, requested: usize, width: usize) -> usize {
        // No columns: `DEFAULT VALUES` inserts one row.
        self.max_bind_parameters()
            .checked_div(width)
            .map_or(1, |most| requested.min(most))
    }

    fn reserve_keys(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        n: usize,
        _sent: bool,
        state: &mut KeyState,
    ) -> OrmResult<Option<Reserved>> {
        // Sent or not, the keys are `max + 1` onwards: SQLite's own rule for a rowid key,
        // which the write lock keeps to this connection.
        let first = match state.next_key {
            Some(next) => crate::connection::keys_from(meta, next, n)?,
            None => self.next_free_key(conn, meta, n, &mut state.sequence_table)?,
        };
        Ok(Some(Reserved::From(first)))
    }

    fn insert_batch(&self, conn: &Connection, batch: &InsertBatch<'_>) -> OrmResult<Inserted> {
        let rows = batch.rows;
        let n = rows.len();
        let bind = |stmt: &mut rusqlite::CachedStatement<'_>,
                    row: usize,
                    at: &mut usize|
         -> rusqlite::Result<()> {
            for p in 0..rows.width() {
                stmt.raw_bind_parameter(*at, rows.value(row, p))?;
                *at += 1;
            }
            Ok(())
        };
        let ctx = crate::connection::Ctx::of(batch.meta);
        if batch.generated == GeneratedKeys::Each {
            // One row per statement, each key read back: correct whatever triggers do.
            let sql = conn.shape_of(batch.entity, batch.meta, Kind::Insert, batch.columns, 1);
            let keys = conn.run(ctx, &sql, || {
                let mut stmt = self.conn.prepare_cached(&sql)?;
                let mut keys = Vec::with_capacity(n);
                for j in 0..n {
                    bind(&mut stmt, j, &mut 1)?;
                    stmt.raw_execute()?;
                    keys.push(self.conn.last_insert_rowid());
                }
                Ok((keys, n))
            })?;
            return Ok(Inserted {
                rows: n as u64,
                keys: Assigned::Each(keys),
            });
        }
        // Whole statements of `per_statement` rows, then one of the rows left. Each statement
        // is prepared once for the batch and bound again for each of its runs: SQLite frees a
        // parameter's text as the next value is bound to it, and the allocator hands the
        // memory straight back, where a statement returned to the cache frees every
        // parameter's at once.
        let per = batch.per_statement.clamp(1, n.max(1));
        let consecutive = batch.generated == GeneratedKeys::Consecutive;
        // The first key of each statement, when keys are wanted.
        let mut firsts: Vec<(i64, usize)> = Vec::new();
        let mut written = 0u64;
        let mut start = 0;
        while start < n {
            let k = per.min(n - start);
            let sql = conn.shape_of(batch.entity, batch.meta, Kind::Insert, batch.columns, k);
            let runs = if k == per { (n - start) / per } else { 1 };
            let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| {
                self.map_error(e.into(), Some(batch.meta.name), batch.meta.table, &sql)
            })?;
            for r in 0..runs {
                let first_row = start + r * k;
                conn.run(ctx, &sql, || {
                    let before = self.conn.total_changes();
                    let mut at = 1;
                    for j in first_row..first_row + k {
                        bind(&mut stmt, j, &mut at)?;
                    }
                    let done = stmt.raw_execute()?;
                    written += done as u64;
                    if consecutive {
                        // SQLite gave the rows consecutive keys up to `last`, in VALUES
                        // order, when nothing else was written meanwhile: the count of rows
                        // changed (triggers included) shows it.
                        let changed = self.conn.total_changes().wrapping_sub(before);
                        firsts.push((
                            self.conn
                                .last_insert_rowid()
                                .wrapping_sub(i64::try_from(k).unwrap_or(i64::MAX) - 1),
                            usize::try_from(changed).unwrap_or(usize::MAX),
                        ));
                    }
                    Ok(((), done))
                })?;
            }
            start += runs * k;
        }
        if !consecutive {
            return Ok(Inserted {
                rows: written,
                keys: Assigned::None,
            });
        }
        // The statements' keys follow on from one another too, as nothing else wrote between
        // them: checked all the same, since a key handed out is never a guess.
        let mut start = 0;
        let mut next = None;
        for &(first, changed) in &firsts {
            let k = per.min(n - start);
            let wrong = if changed != k {
                Some(format!("inserting {k} rows changed {changed}"))
            } else {
                next.filter(|&next| next != first).map(|next| {
                    format!("a statement's keys start at {first} where {next} was next")
                })
            };
            if let Some(wrong) = wrong {
                return Err(Error::InvalidState {
                    message: format!(
                        "{} (table `{}`): {wrong}; the call is rolled back rather than hand out \
                         wrong keys",
                        batch.meta.name, batch.meta.table
                    ),
                });
            }
            next = first.checked_add(i64::try_from(k).unwrap_or(i64::MAX));
            start += k;
        }
        Ok(Inserted {
            rows: written,
            keys: firsts
                .first()
                .map_or(Assigned::None, |&(first, _)| Assigned::First(first)),
        })
    }

    fn map_error(
        &self,
        e: DriverError,
        entity: Option<&'static str>,
        table: &str,
        sql: &str,
    ) -> Error {
        match e {
            DriverError::Sqlite(e) => map_error(e, entity, table, sql),
            other => other.into_error(entity, table, sql),
        }
    }
}
