//! PostgreSQL through the synchronous `postgres` crate: value binding by the server's
//! parameter types, decoding by the entity's declared types, binary `COPY` encoding, key
//! reservation from the identity sequence, and SQLSTATE mapping.

use std::borrow::Cow;
use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use std::sync::Arc;

use crate::connection::batch::{BatchWrite, HashSet, Sent};
use crate::connection::db::{
    Assigned, BatchRows, Db, InsertBatch, Inserted, KeyPlan, KeyState, Reserved, RowWriter,
};
use crate::connection::{Connection, Ctx, DResult, DriverError, TxStatus};
use crate::entity::{EntityMeta, RowValues};
use crate::error::{BoxError, Error, ErrorKind, Result as OrmResult};
use crate::sql::{Backend, Kind};
use crate::value::{FromSqlError, Key, SqlType, Value, ValueRef};

type ConvResult<T> = std::result::Result<T, Box<dyn StdError + Sync + Send>>;

/// The identity (or serial) sequence of table `$1`, column `$2`, by object id, looked up by name
/// through the current `search_path` every time keys are reserved: no id is kept that a table
/// dropped and made again (or another search path) would make stale.
pub(crate) const KEY_SEQUENCE: &str = "SELECT pg_get_serial_sequence($1, $2)::regclass::oid::int8";

/// Reserves `$2` keys from the sequence with object id `$1`, each from its own `nextval`.
/// (By id: a name, or a lookup in the same statement, is resolved again for every key, which
/// measured 7 times slower for 10,000 keys.)
pub(crate) const RESERVE_KEYS: &str =
    "SELECT array_agg(nextval($1::oid::regclass)) FROM generate_series(1, $2::int8)";

/// Bytes of `COPY` data encoded before they are sent.
pub(crate) const COPY_CHUNK: usize = 64 * 1024;

/// How many prepared statements a connection keeps before starting over.
const STATEMENT_CACHE: usize = 256;

/// Options for opening PostgreSQL.
///
/// ```
/// use orm_core::PgOptions;
/// let opts = PgOptions::default().schema("orm_test_1");
/// assert_eq!(opts.schema.as_deref(), Some("orm_test_1"));
/// assert!(opts.create_schema);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PgOptions {
    /// Put this schema first on the connection's `search_path`, so that unqualified table
    /// names resolve there (one schema per tenant, or per test run). Default: the server's.
    pub schema: Option<String>,
    /// Create [`schema`](Self::schema) if it does not exist. Default on.
    pub create_schema: bool,
}

impl PgOptions {
    /// These options with `schema` first on the `search_path`, created if missing.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self.create_schema = true;
        self
    }
}

/// One PostgreSQL session: the client, its prepared statements, and whether a transaction
/// is open (the `postgres` crate does not report it, so `BEGIN`/`COMMIT` go through here).
pub(crate) struct PgConn {
    client: RefCell<Client>,
    statements: RefCell<HashMap<Box<str>, Statement>>,
    in_transaction: Cell<bool>,
    /// A statement failed inside the transaction since the server last said it was healthy:
    /// the transaction may be aborted, and [`PgConn::status`] asks the server.
    suspect: Cell<bool>,
    /// A statement failed because the connection was lost: never reuse it.
    broken: Cell<bool>,
    /// The schema put first on the `search_path` at connect time.
    schema: Option<String>,
    /// The id of each table's key sequence, with the transaction it was looked up in (valid
    /// only within it).
    sequences: RefCell<HashMap<&'static str, (u64, i64)>>,
    /// The type each column of a table is sent as by `COPY` (the live column's, where the
    /// mapping's field converts into it without loss), checked once per mapping: by its
    /// [`identity`](EntityMeta::identity), not the table's name, as two entities may map
    /// different columns of one table.
    wire_types: RefCell<HashMap<MappingId, Arc<[SqlType]>>>,
}

/// A mapping's [`identity`](EntityMeta::identity): its table, type name and columns.
type MappingId = (&'static str, &'static str, u64);

/// What a connection string points at, for messages, logs and `Debug`: built from the parsed
/// configuration (user, hosts, ports, database), never by editing the text, so no password
/// can appear whatever its form (`user:pw@`, `?password=`, `password='a b'`).
pub(crate) fn redact(url: &str) -> String {
    display_url(url)
}

/// A PostgreSQL connection string as it may be shown in messages, logs and `Debug`: built from
/// the parsed configuration (user, hosts, ports, database), never by editing the text, so no
/// password appears whatever its form (`user:pw@`, `?password=`, `password='a b'`).
///
/// ```
/// assert_eq!(
///     orm_core::display_url("postgres://ada:secret@db:5432/app"),
///     "postgres://ada@db:5432/app"
/// );
/// ```
pub fn display_url(url: &str) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else {
        return "<a PostgreSQL connection string that does not parse>".into();
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, port)| match h {
            postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            #[cfg(unix)]
            postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PgConn {
    pub(crate) fn connect(url: &str, options: &PgOptions) -> Result<Self, Error> {
        let open_error = |e: postgres::Error| Error::Open {
            target: redact(url),
            source: Box::new(e),
        };
        let mut client = Client::connect(url, NoTls).map_err(open_error)?;
        if let Some(schema) = &options.schema {
            let q = quote_ident(schema);
            // Created only when missing: `CREATE SCHEMA IF NOT EXISTS` needs the CREATE
            // privilege on the database even when the schema is there.
            if options.create_schema
                && client
                    .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[schema])
                    .map_err(open_error)?
                    .is_none()
            {
                client
                    .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {q}"))
                    .map_err(open_error)?;
            }
            client
                .batch_execute(&format!("SET search_path TO {q}"))
                .map_err(open_error)?;
        }
        Ok(PgConn {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            in_transaction: Cell::new(false),
            suspect: Cell::new(false),
            broken: Cell::new(false),
            schema: options.schema.clone(),
            sequences: RefCell::default(),
            wire_types: RefCell::default(),
        })
    }

    pub(crate) fn client(&self) -> RefMut<'_, Client> {
        self.client.borrow_mut()
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction.get()
    }

    /// Whether the connection is lost: the driver saw it close, or a statement failed
    /// because of it (the server may have ended the session before the socket says so).
    pub(crate) fn is_closed(&self) -> bool {
        self.broken.get() || self.client.borrow().is_closed()
    }

    pub(crate) fn mark_broken(&self) {
        self.broken.set(true);
        self.in_transaction.set(false);
    }

    /// Notes that a statement failed: inside a transaction, the server may have aborted it.
    pub(crate) fn note_failure(&self) {
        if self.in_transaction.get() {
            self.suspect.set(true);
        }
    }

    /// The transaction's state as the server reports it. Without a failure since the server
    /// last confirmed it, the answer needs no round trip; otherwise a savepoint probe asks:
    /// it fails with SQLSTATE 25P02 in an aborted transaction and 25P01 outside one.
    pub(crate) fn status(&self) -> crate::TxStatus {
        use crate::TxStatus;
        if self.is_closed() {
            return TxStatus::Lost;
        }
        if !self.suspect.get() {
            return if self.in_transaction.get() {
                TxStatus::Active
            } else {
                TxStatus::Idle
            };
        }
        let probe = self
            .client
            .borrow_mut()
            .batch_execute("SAVEPOINT orm_probe; RELEASE SAVEPOINT orm_probe");
        match probe {
            Ok(()) => {
                self.suspect.set(false);
                self.in_transaction.set(true);
                TxStatus::Active
            }
            Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
                self.in_transaction.set(true);
                TxStatus::Failed
            }
            Err(e) if e.code() == Some(&SqlState::NO_ACTIVE_SQL_TRANSACTION) => {
                self.suspect.set(false);
                self.in_transaction.set(false);
                TxStatus::Idle
            }
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

    /// `COMMIT`, but only of a healthy transaction: the server answers `COMMIT` of an
    /// aborted one with a `ROLLBACK` tag and no error, which the driver does not show. A
    /// savepoint sent in the same message fails first in that case (25P02), and outside a
    /// transaction (25P01), so an `Ok` here means the server committed.
    pub(crate) fn commit(&self) -> Result<(), postgres::Error> {
        let r = self
            .client
            .borrow_mut()
            .batch_execute("SAVEPOINT orm_commit; COMMIT");
        match &r {
            Ok(()) => {
                self.in_transaction.set(false);
                self.suspect.set(false);
            }
            // The transaction is still there, aborted: only ROLLBACK ends it.
            Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
                self.in_transaction.set(true);
            }
            // A failed COMMIT (a deferred constraint, a serialization failure) ends the
            // transaction; so does the loss of the connection.
            Err(_) => {
                self.in_transaction.set(false);
                self.suspect.set(false);
            }
        }
        r
    }

    /// The prepared statement for `sql`, prepared on first use.
    pub(crate) fn prepare(&self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.borrow_mut().prepare(sql)?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.into(), stmt.clone());
        Ok(stmt)
    }

    /// Forgets prepared statements, after DDL changed what they refer to.
    pub(crate) fn forget(&self) {
        self.statements.borrow_mut().clear();
    }

    /// What undoes a user's changes to the session's state, and puts the engine's schema
    /// back first on the `search_path`.
    pub(crate) fn reset_sql(&self) -> String {
        let mut sql = String::from(
            "CLOSE ALL; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; \
             DISCARD SEQUENCES",
        );
        if let Some(schema) = &self.schema {
            sql.push_str(&format!("; SET search_path TO {}", quote_ident(schema)));
        }
        sql
    }

    /// Runs statements without parameters.
    pub(crate) fn batch(&self, sql: &str) -> Result<(), postgres::Error> {
        let r = self.client.borrow_mut().batch_execute(sql);
        self.track(sql, r.is_ok());
        r
    }

    pub(crate) fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> PgResult<u64> {
        let r = self
            .prepare(sql)
            .and_then(|stmt| self.client.borrow_mut().execute(&stmt, params));
        self.track(sql, r.is_ok());
        Ok(r?)
    }

    /// Follows transaction control statements, which the driver does not report on.
    fn track(&self, sql: &str, ok: bool) {
        let head: String = sql
            .trim_start()
            .chars()
            .take(17)
            .collect::<String>()
            .to_ascii_uppercase();
        let word = head.split_whitespace().next().unwrap_or("");
        match word {
            "BEGIN" | "START" if ok => self.in_transaction.set(true),
            // A failed COMMIT ends the transaction too (PostgreSQL rolls it back).
            "COMMIT" | "END" | "ABORT" => {
                self.in_transaction.set(false);
                self.suspect.set(false);
            }
            // Rolling back to a savepoint leaves the transaction healthy again.
            "ROLLBACK" if head.starts_with("ROLLBACK TO") && ok => self.suspect.set(false),
            "ROLLBACK" if head.starts_with("ROLLBACK TO") => {}
            "ROLLBACK" => {
                self.in_transaction.set(false);
                self.suspect.set(false);
            }
            _ => {}
        }
    }

    /// [`execute`](Self::execute) of a statement used once (a cursor's own name in it):
    /// not kept among the prepared statements.
    pub(crate) fn execute_once(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> PgResult<u64> {
        Ok(self.client.borrow_mut().execute(sql, params)?)
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> PgResult<Vec<postgres::Row>> {
        let stmt = self.prepare(sql)?;
        Ok(self.client.borrow_mut().query(&stmt, params)?)
    }

    /// Sends one binary `COPY … FROM STDIN` whose data `fill` produces chunk by chunk:
    /// `fill(buf)` appends the next chunk (header first, trailer last) and says whether more
    /// follows. Each chunk goes out before the next is encoded, so the server works on one
    /// while this side encodes the next. An error from `fill` abandons the `COPY` (the
    /// server then discards all of it).
    pub(crate) fn copy_in(
        &self,
        sql: &str,
        mut fill: impl FnMut(&mut Vec<u8>) -> Result<bool, Error>,
    ) -> PgResult<u64> {
        use std::io::Write;
        let mut client = self.client.borrow_mut();
        let mut writer = client.copy_in(sql)?;
        let mut buf = Vec::with_capacity(COPY_CHUNK + 4096);
        loop {
            buf.clear();
            let more = fill(&mut buf)?;
            writer
                .write_all(&buf)
                .and_then(|()| writer.flush())
                .map_err(|e| DriverError::Orm(copy_io_error(sql, &e)))?;
            if !more {
                break;
            }
        }
        Ok(writer.finish()?)
    }

    /// `n` fresh keys from the identity (or serial) sequence of `table.column`: each one
    /// handed out by `nextval`, so no other session can ever receive it.
    /// `sequence` is the sequence's id when the caller knows it still holds (looked up in
    /// this same transaction); otherwise it is looked up. Returns the keys and the id.
    pub(crate) fn reserve_keys(
        &self,
        meta: &'static EntityMeta,
        n: usize,
        sequence: Option<i64>,
    ) -> Result<(Vec<i64>, i64), DriverError> {
        let column = meta.key_column().name;
        let sequence = match sequence {
            Some(s) => Some(s),
            None => {
                let rows = self.query(KEY_SEQUENCE, &[&quote_ident(meta.table), &column])?;
                rows.first().and_then(|r| r.get(0))
            }
        };
        let Some(sequence) = sequence else {
            return Err(DriverError::Orm(Error::InvalidState {
                message: format!(
                    "{} (table `{}`): the key column `{column}` has no identity sequence; \
                     declare it `GENERATED BY DEFAULT AS IDENTITY` (as `create_table` does) or \
                     give every row its key",
                    meta.name, meta.table
                ),
            }));
        };
        let count = i64::try_from(n).unwrap_or(i64::MAX);
        // One array rather than n rows: the keys cost 12 bytes each on the wire and no row
        // objects on this side.
        let rows = self.query(RESERVE_KEYS, &[&ValueRef::I64(sequence), &count])?;
        let keys: Option<Vec<i64>> = rows.first().and_then(|r| r.get(0));
        Ok((keys.unwrap_or_default(), sequence))
    }
}

fn copy_io_error(sql: &str, e: &std::io::Error) -> Error {
    Error::InvalidState {
        message: format!("sending COPY data failed ({sql}): {e}"),
    }
}

pub(crate) type PgResult<T> = Result<T, DriverError>;

/// Whether a statement failed because something cached on this side (a prepared statement, a
/// sequence's id) refers to a table that was dropped and made again.
pub(crate) fn is_stale_cache(e: &Error) -> bool {
    let Error::Database { source, .. } = e else {
        return false;
    };
    let Some(db) = source
        .downcast_ref::<postgres::Error>()
        .and_then(postgres::Error::as_db_error)
    else {
        return false;
    };
    match *db.code() {
        SqlState::UNDEFINED_TABLE | SqlState::INVALID_SQL_STATEMENT_NAME => true,
        SqlState::FEATURE_NOT_SUPPORTED => db.message().contains("cached plan"),
        SqlState::INTERNAL_ERROR => db.message().contains("could not open relation"),
        _ => false,
    }
}

/// Classifies a driver error by its SQLSTATE.
pub(crate) fn kind_of(e: &postgres::Error) -> ErrorKind {
    if e.is_closed() {
        return ErrorKind::Connection;
    }
    let Some(code) = e.code() else {
        return if e.source().is_some_and(|s| s.is::<std::io::Error>()) {
            ErrorKind::Connection
        } else {
            ErrorKind::Database
        };
    };
    match *code {
        SqlState::UNIQUE_VIOLATION => ErrorKind::UniqueViolation,
        SqlState::FOREIGN_KEY_VIOLATION => ErrorKind::ForeignKeyViolation,
        SqlState::NOT_NULL_VIOLATION => ErrorKind::NotNullViolation,
        SqlState::CHECK_VIOLATION => ErrorKind::CheckViolation,
        SqlState::IN_FAILED_SQL_TRANSACTION => ErrorKind::PendingRollback,
        SqlState::T_R_SERIALIZATION_FAILURE
        | SqlState::T_R_DEADLOCK_DETECTED
        | SqlState::LOCK_NOT_AVAILABLE => ErrorKind::Busy,
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE
        | SqlState::INVALID_TEXT_REPRESENTATION
        | SqlState::INVALID_BINARY_REPRESENTATION
        | SqlState::DATATYPE_MISMATCH
        | SqlState::STRING_DATA_RIGHT_TRUNCATION
        | SqlState::CHARACTER_NOT_IN_REPERTOIRE
        | SqlState::UNTRANSLATABLE_CHARACTER => ErrorKind::TypeMismatch,
        // 08: connection exceptions; 57P01–57P03: the server is shutting down or the session
        // was terminated.
        SqlState::ADMIN_SHUTDOWN | SqlState::CRASH_SHUTDOWN | SqlState::CANNOT_CONNECT_NOW => {
            ErrorKind::Connection
        }
        _ if code.code().starts_with("08") => ErrorKind::Connection,
        _ => ErrorKind::Database,
    }
}

pub(crate) fn map_error(
    e: postgres::Error,
    entity: Option<&'static str>,
    table: &str,
    sql: &str,
) -> Error {
    // The server's DETAIL (`Key (name)=(ada) already exists`, `Failing row contains (…)`)
    // quotes bound values: it stays out of the message, behind `Error::server_detail`.
    let message = match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => e.to_string(),
    };
    Error::Database {
        kind: kind_of(&e),
        entity,
        table: table.to_owned(),
        sql: sql.to_owned(),
        message,
        source: BoxError::from(e),
    }
}

// ---- binding ----------------------------------------------------------------------------

/// A value that does not fit the parameter the server expects.
#[derive(Debug)]
struct BindError(String);

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl StdError for BindError {}

fn mismatch(what: &str, ty: &Type) -> Box<dyn StdError + Sync + Send> {
    Box::new(BindError(format!(
        "cannot bind {what} to a parameter of type {ty}"
    )))
}

/// A decimal's text (`-123.4500`) in `numeric`'s binary form: digit count, weight (of the
/// first base-10000 digit), sign, display scale, then base-10000 digits.
fn numeric_from_text(text: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("`{text}` is not a decimal number");
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let dscale = u16::try_from(frac.len()).map_err(|_| bad())?;
    let int = int.trim_start_matches('0');
    let mut digits = String::new();
    digits.extend(std::iter::repeat_n('0', (4 - int.len() % 4) % 4));
    digits.push_str(int);
    let int_groups = digits.len() / 4;
    digits.push_str(frac);
    digits.extend(std::iter::repeat_n('0', (4 - frac.len() % 4) % 4));
    let mut groups: Vec<i16> = digits
        .as_bytes()
        .chunks(4)
        .map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    let mut weight = i16::try_from(int_groups).map_err(|_| bad())? - 1;
    let lead = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..lead);
    weight -= i16::try_from(lead).map_err(|_| bad())?;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let sign: u16 = if neg && !groups.is_empty() { 0x4000 } else { 0 };
    if groups.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(
        &i16::try_from(groups.len())
            .map_err(|_| bad())?
            .to_be_bytes(),
    );
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// `numeric`'s binary form back to its text.
fn numeric_to_text(raw: &[u8]) -> Result<String, FromSqlError> {
    let bad = || FromSqlError::Invalid {
        message: "a numeric value that is not a finite number".into(),
    };
    let word = |i: usize| -> Option<[u8; 2]> { raw.get(i..i + 2)?.try_into().ok() };
    let n = usize::try_from(i16::from_be_bytes(word(0).ok_or_else(bad)?)).map_err(|_| bad())?;
    let weight = i64::from(i16::from_be_bytes(word(2).ok_or_else(bad)?));
    let sign = u16::from_be_bytes(word(4).ok_or_else(bad)?);
    let dscale = usize::from(u16::from_be_bytes(word(6).ok_or_else(bad)?));
    if sign != 0 && sign != 0x4000 {
        return Err(bad());
    }
    let mut digits = String::with_capacity(4 * n);
    for i in 0..n {
        let g = i16::from_be_bytes(word(8 + 2 * i).ok_or_else(bad)?);
        digits.push_str(&format!("{g:04}"));
    }
    let point = (weight + 1) * 4;
    let len = i64::try_from(digits.len()).map_err(|_| bad())?;
    let (int, mut frac) = if point <= 0 {
        let zeros = usize::try_from(-point).map_err(|_| bad())?;
        (String::from("0"), "0".repeat(zeros) + &digits)
    } else if point >= len {
        let zeros = usize::try_from(point - len).map_err(|_| bad())?;
        (digits + &"0".repeat(zeros), String::new())
    } else {
        let p = usize::try_from(point).map_err(|_| bad())?;
        (digits[..p].to_owned(), digits[p..].to_owned())
    };
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if frac.len() < dscale {
        frac.extend(std::iter::repeat_n('0', dscale - frac.len()));
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Ok(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// PostgreSQL counts dates and timestamps from 2000-01-01; the ORM from 1970-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

fn put_int(v: i64, ty: &Type, out: &mut BytesMut) -> ConvResult<()> {
    let range = || Box::new(BindError(format!("an integer out of range for type {ty}")));
    match *ty {
        Type::INT8 => out.extend_from_slice(&v.to_be_bytes()),
        Type::INT4 => out.extend_from_slice(&i32::try_from(v).map_err(|_| range())?.to_be_bytes()),
        Type::INT2 => out.extend_from_slice(&i16::try_from(v).map_err(|_| range())?.to_be_bytes()),
        #[allow(clippy::cast_precision_loss)]
        Type::FLOAT8 => out.extend_from_slice(&(v as f64).to_be_bytes()),
        Type::OID => out.extend_from_slice(&u32::try_from(v).map_err(|_| range())?.to_be_bytes()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::UNKNOWN => {
            out.extend_from_slice(v.to_string().as_bytes());
        }
        _ => return Err(mismatch("an integer", ty)),
    }
    Ok(())
}

fn put_value(v: &ValueRef<'_>, ty: &Type, out: &mut BytesMut) -> ConvResult<IsNull> {
    match v {
        ValueRef::Null => return Ok(IsNull::Yes),
        ValueRef::I64(i) => put_int(*i, ty, out)?,
        ValueRef::I32(i) => put_int(i64::from(*i), ty, out)?,
        ValueRef::I16(i) => put_int(i64::from(*i), ty, out)?,
        ValueRef::Date(d) => match *ty {
            Type::DATE => out.extend_from_slice(&(d - PG_EPOCH_DAYS).to_be_bytes()),
            _ => return Err(mismatch("a date", ty)),
        },
        ValueRef::Time(t) => match *ty {
            Type::TIME => out.extend_from_slice(&t.to_be_bytes()),
            _ => return Err(mismatch("a time", ty)),
        },
        ValueRef::DateTime(t) | ValueRef::Timestamp(t) => match *ty {
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                out.extend_from_slice(&(t - PG_EPOCH_MICROS).to_be_bytes());
            }
            _ => return Err(mismatch("a timestamp", ty)),
        },
        ValueRef::F32(f) => match *ty {
            Type::FLOAT4 => out.extend_from_slice(&f.to_be_bytes()),
            Type::FLOAT8 => out.extend_from_slice(&f64::from(*f).to_be_bytes()),
            _ => return Err(mismatch("a float", ty)),
        },
        ValueRef::Bool(b) => match *ty {
            Type::BOOL => out.extend_from_slice(&[u8::from(*b)]),
            _ => put_int(i64::from(*b), ty, out)?,
        },
        ValueRef::F64(f) => match *ty {
            Type::FLOAT8 => out.extend_from_slice(&f.to_be_bytes()),
            #[allow(clippy::cast_possible_truncation)]
            Type::FLOAT4 => out.extend_from_slice(&(*f as f32).to_be_bytes()),
            _ => return Err(mismatch("a float", ty)),
        },
        ValueRef::Text(s) => match *ty {
            Type::UUID => {
                let u = uuid::Uuid::parse_str(s)
                    .map_err(|_| Box::new(BindError("text that is not a UUID".into())))?;
                out.extend_from_slice(u.as_bytes());
            }
            Type::BYTEA => out.extend_from_slice(s.as_bytes()),
            Type::NUMERIC => {
                out.extend_from_slice(&numeric_from_text(s).map_err(|e| Box::new(BindError(e)))?);
            }
            // jsonb's binary form is a version byte, then the text.
            Type::JSONB => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(s.as_bytes());
            }
            Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 | Type::BOOL => {
                return Err(mismatch("text", ty));
            }
            // text, varchar, name, json and the rest take their text form in binary too
            _ => out.extend_from_slice(s.as_bytes()),
        },
        ValueRef::Blob(b) => match *ty {
            Type::BYTEA => out.extend_from_slice(b),
            Type::UUID if b.len() == 16 => out.extend_from_slice(b),
            _ => return Err(mismatch("a blob", ty)),
        },
        ValueRef::Uuid(u) => match *ty {
            Type::UUID | Type::BYTEA => out.extend_from_slice(u.as_bytes()),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::UNKNOWN => {
                out.extend_from_slice(u.hyphenated().to_string().as_bytes());
            }
            _ => return Err(mismatch("a UUID", ty)),
        },
    }
    Ok(IsNull::No)
}

impl ToSql for ValueRef<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> ConvResult<IsNull> {
        put_value(self, ty, out)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> ConvResult<IsNull> {
        put_value(&self.as_ref(), ty, out)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

// ---- decoding ---------------------------------------------------------------------------

/// A column's binary bytes as the server sent them (`None` for NULL).
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> ConvResult<Self> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> ConvResult<Self> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn fixed<const N: usize>(raw: &[u8], ty: &Type) -> Result<[u8; N], FromSqlError> {
    raw.try_into().map_err(|_| FromSqlError::Invalid {
        message: format!("{} bytes for a value of type {ty}", raw.len()),
    })
}

fn int_of(raw: &[u8], ty: &Type) -> Option<Result<i64, FromSqlError>> {
    Some(match *ty {
        Type::INT8 => fixed::<8>(raw, ty).map(i64::from_be_bytes),
        Type::INT4 => fixed::<4>(raw, ty).map(|b| i64::from(i32::from_be_bytes(b))),
        Type::INT2 => fixed::<2>(raw, ty).map(|b| i64::from(i16::from_be_bytes(b))),
        Type::OID => fixed::<4>(raw, ty).map(|b| i64::from(u32::from_be_bytes(b))),
        _ => return None,
    })
}

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

fn utf8(raw: &[u8]) -> Result<&str, FromSqlError> {
    std::str::from_utf8(raw).map_err(|e| FromSqlError::Invalid {
        message: format!("invalid UTF-8: {e}"),
    })
}

/// Decodes a column as the type the entity declares.
fn decode<'a>(
    ty: &Type,
    raw: Option<&'a [u8]>,
    want: SqlType,
) -> Result<ValueRef<'a>, FromSqlError> {
    let Some(raw) = raw else {
        return Ok(ValueRef::Null);
    };
    let wrong = || FromSqlError::WrongType {
        expected: want,
        found: format!("a value of type {ty}"),
    };
    Ok(match want {
        SqlType::I64 => ValueRef::I64(int_of(raw, ty).ok_or_else(wrong)??),
        SqlType::I32 => {
            let v = int_of(raw, ty).ok_or_else(wrong)??;
            ValueRef::I32(i32::try_from(v).map_err(|_| FromSqlError::Invalid {
                message: format!("{v} does not fit in i32"),
            })?)
        }
        SqlType::I16 => {
            let v = int_of(raw, ty).ok_or_else(wrong)??;
            ValueRef::I16(i16::try_from(v).map_err(|_| FromSqlError::Invalid {
                message: format!("{v} does not fit in i16"),
            })?)
        }
        SqlType::F32 => match *ty {
            Type::FLOAT4 => ValueRef::F32(f32::from_be_bytes(fixed(raw, ty)?)),
            Type::FLOAT8 => {
                let v = f64::from_be_bytes(fixed(raw, ty)?);
                #[allow(clippy::cast_possible_truncation)]
                let narrow = v as f32;
                if v.is_nan() || f64::from(narrow) == v {
                    ValueRef::F32(narrow)
                } else {
                    return Err(FromSqlError::Invalid {
                        message: format!("{v} is not exactly representable as f32"),
                    });
                }
            }
            _ => return Err(wrong()),
        },
        SqlType::F64 => match *ty {
            Type::FLOAT8 => ValueRef::F64(f64::from_be_bytes(fixed(raw, ty)?)),
            Type::FLOAT4 => ValueRef::F64(f64::from(f32::from_be_bytes(fixed(raw, ty)?))),
            _ => return Err(wrong()),
        },
        SqlType::Bool => match *ty {
            Type::BOOL => ValueRef::Bool(fixed::<1>(raw, ty)?[0] != 0),
            _ => return Err(wrong()),
        },
        SqlType::Text if is_text(ty) => ValueRef::Text(Cow::Borrowed(utf8(raw)?)),
        SqlType::Date if *ty == Type::DATE => {
            ValueRef::Date(i32::from_be_bytes(fixed(raw, ty)?) + PG_EPOCH_DAYS)
        }
        SqlType::Time if *ty == Type::TIME => ValueRef::Time(i64::from_be_bytes(fixed(raw, ty)?)),
        SqlType::DateTime | SqlType::Timestamp
            if *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ =>
        {
            let t = i64::from_be_bytes(fixed(raw, ty)?) + PG_EPOCH_MICROS;
            if want == SqlType::DateTime {
                ValueRef::DateTime(t)
            } else {
                ValueRef::Timestamp(t)
            }
        }
        SqlType::Decimal => match *ty {
            Type::NUMERIC => ValueRef::Text(Cow::Owned(numeric_to_text(raw)?)),
            _ if is_text(ty) => ValueRef::Text(Cow::Borrowed(utf8(raw)?)),
            _ => return Err(wrong()),
        },
        SqlType::Json => match *ty {
            Type::JSONB => match raw.split_first() {
                Some((1, text)) => ValueRef::Text(Cow::Borrowed(utf8(text)?)),
                _ => {
                    return Err(FromSqlError::Invalid {
                        message: "a jsonb value of an unknown binary version".into(),
                    });
                }
            },
            Type::JSON => ValueRef::Text(Cow::Borrowed(utf8(raw)?)),
            _ if is_text(ty) => ValueRef::Text(Cow::Borrowed(utf8(raw)?)),
            _ => return Err(wrong()),
        },
        SqlType::Blob if *ty == Type::BYTEA => ValueRef::Blob(Cow::Borrowed(raw)),
        SqlType::Uuid => match *ty {
            Type::UUID | Type::BYTEA => ValueRef::Uuid(uuid::Uuid::from_slice(raw).map_err(
                |e| FromSqlError::Invalid {
                    message: format!("not a UUID: {e}"),
                },
            )?),
            _ if is_text(ty) => ValueRef::Uuid(uuid::Uuid::parse_str(utf8(raw)?).map_err(|e| {
                FromSqlError::Invalid {
                    message: format!("not a UUID: {e}"),
                }
            })?),
            _ => return Err(wrong()),
        },
        SqlType::Text
        | SqlType::Blob
        | SqlType::Date
        | SqlType::Time
        | SqlType::DateTime
        | SqlType::Timestamp => return Err(wrong()),
    })
}

fn raw_at(row: &postgres::Row, index: usize) -> Result<(&Type, Option<&[u8]>), FromSqlError> {
    let ty = row
        .columns()
        .get(index)
        .map(postgres::Column::type_)
        .ok_or_else(|| FromSqlError::Invalid {
            message: format!("the row has no column {index}"),
        })?;
    let Raw(raw) = row
        .try_get::<_, Raw<'_>>(index)
        .map_err(|e| FromSqlError::Invalid {
            message: e.to_string(),
        })?;
    Ok((ty, raw))
}

impl RowValues for postgres::Row {
    #[inline]
    fn value(&self, index: usize, ty: SqlType) -> Result<ValueRef<'_>, FromSqlError> {
        let (pg_type, raw) = raw_at(self, index)?;
        decode(pg_type, raw, ty)
    }

    fn width(&self) -> usize {
        self.len()
    }

    fn column_name(&self, index: usize) -> &str {
        self.columns().get(index).map_or("", |c| c.name())
    }

    fn any_value(&self, index: usize) -> Result<Value, FromSqlError> {
        decode_any(self, index).map_err(|e| FromSqlError::Invalid {
            message: e.to_string(),
        })
    }
}

/// Decodes a column by its server type, for raw queries.
pub(crate) fn decode_any(row: &postgres::Row, index: usize) -> Result<Value, Error> {
    let (ty, raw) = raw_at(row, index).map_err(|e| Error::InvalidState {
        message: e.to_string(),
    })?;
    let want = match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => SqlType::I64,
        Type::FLOAT4 | Type::FLOAT8 => SqlType::F64,
        Type::BOOL => SqlType::Bool,
        Type::BYTEA => SqlType::Blob,
        Type::UUID => SqlType::Uuid,
        Type::JSONB | Type::JSON => SqlType::Json,
        Type::NUMERIC => SqlType::Decimal,
        Type::DATE => SqlType::Date,
        Type::TIME => SqlType::Time,
        Type::TIMESTAMP => SqlType::DateTime,
        Type::TIMESTAMPTZ => SqlType::Timestamp,
        _ if is_text(ty) => SqlType::Text,
        _ => {
            return Err(Error::InvalidState {
                message: format!(
                    "column {index} of a raw query has type {ty}, which raw queries do not \
                     decode; cast it in SQL (for example `::text` or `::float8`)"
                ),
            });
        }
    };
    decode(ty, raw, want)
        .map(|v| v.to_owned_value())
        .map_err(|e| Error::InvalidState {
            message: format!("column {index} of a raw query: {e}"),
        })
}

// ---- the backend interface ----------------------------------------------------------------

/// Rows per binary `COPY` (at least; a caller's `batch_rows` if larger).
const COPY_ROWS: usize = 10_000;

/// Below this many rows, a multi-row `INSERT` costs fewer round trips than `COPY`.
const COPY_MIN_ROWS: usize = 32;

/// Below this many rows (and from [`COPY_MIN_ROWS`] on), a batch goes in as one `INSERT …
/// SELECT * FROM unnest(…)` of one binary array per column rather than a `COPY`: one round
/// trip where `COPY` takes two, and less work on the server for a small batch. 100,000 rows
/// in one transaction with the raw `postgres` crate, in batches of 1,000: 0.153–0.160 s
/// against 0.203–0.236 s by binary `COPY`; of 2,000, about even (0.154–0.204 against
/// 0.148–0.162); of 5,000 and 10,000, `COPY` is faster (0.111–0.123 against 0.152–0.171).
const UNNEST_MAX_ROWS: usize = 2_000;

impl PgConn {
    /// The types `meta`'s columns are sent as by `COPY`: checked against the live table once
    /// per connection and table ([`Connection::check_mapping`]); a mapping that does not fit
    /// fails here, before anything is sent.
    pub(crate) fn wire_types(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
    ) -> OrmResult<Arc<[SqlType]>> {
        if let Some(t) = self.wire_types.borrow().get(&meta.identity()) {
            return Ok(Arc::clone(t));
        }
        // The check remembers the types (`mapping_checked`).
        Ok(conn.check_mapping(meta)?.into())
    }

    /// Forgets what was learnt of the tables (after DDL or raw SQL).
    fn forget_wire_types(&self) {
        self.wire_types.borrow_mut().clear();
    }
}

/// Rows encoded for `COPY` into one chunk.
struct CopyRows<'a, 'b> {
    enc: CopyEncoder<'b>,
    meta: &'static EntityMeta,
    types: &'a [SqlType],
    columns: &'a [usize],
}

impl RowWriter for CopyRows<'_, '_> {
    fn full(&self) -> bool {
        self.enc.buf.len() >= COPY_CHUNK
    }

    fn write(&mut self, rows: &dyn BatchRows, row: usize) -> OrmResult<()> {
        self.enc.row(self.columns.len());
        for (position, &col) in self.columns.iter().enumerate() {
            self.enc
                .value(&rows.value(row, position), self.types[col])
                .map_err(|found| Error::type_mismatch(self.meta, col, found))?;
        }
        Ok(())
    }
}

impl Db for PgConn {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn is_usable(&self) -> bool {
        !self.is_closed()
    }

    fn max_bind_parameters(&self) -> usize {
        // The protocol's limit: a parameter count is an unsigned 16-bit number.
        65535
    }

    fn execute(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        PgConn::execute(self, sql, &pg_refs(params))
    }

    fn query(
        &self,
        sql: &str,
        params: &[ValueRef<'_>],
        each: &mut dyn FnMut(&dyn RowValues) -> OrmResult<()>,
    ) -> DResult<usize> {
        // All rows at once, as `Client::query` does: iterating a row stream costs a trip
        // through the driver's runtime per row.
        let rows = self.query(sql, &pg_refs(params))?;
        for row in &rows {
            each(row)?;
        }
        Ok(rows.len())
    }

    fn execute_once(&self, sql: &str, params: &[ValueRef<'_>]) -> DResult<u64> {
        PgConn::execute_once(self, sql, &pg_refs(params))
    }

    fn batch(&self, sql: &str) -> DResult<()> {
        Ok(self.batch(sql)?)
    }

    fn server_cursors(&self) -> bool {
        true
    }

    fn mapping_checked(&self, meta: &'static EntityMeta, types: &[SqlType]) {
        self.wire_types
            .borrow_mut()
            .insert(meta.identity(), types.into());
    }

    fn forget_tables(&self) {
        self.forget_wire_types();
        self.sequences.borrow_mut().clear();
    }

    fn forget_prepared(&self) {
        self.forget();
    }

    fn transaction_status(&self) -> TxStatus {
        self.status()
    }

    fn in_transaction(&self) -> bool {
        PgConn::in_transaction(self)
    }

    fn begin(&self, batch: &dyn Fn(&str) -> OrmResult<()>) -> OrmResult<()> {
        batch("BEGIN")
    }

    fn commit_refused(&self) -> Option<Error> {
        // The server's own answer decides: `PgConn::commit` refuses an aborted transaction.
        None
    }

    fn commit(&self) -> DResult<()> {
        Ok(PgConn::commit(self)?)
    }

    fn reset_sql(&self) -> Option<String> {
        Some(PgConn::reset_sql(self))
    }

    fn batch_rows(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        rows: usize,
        _stride: usize,
    ) -> OrmResult<usize> {
        crate::connection::batch::pg_side::batch_rows(self, conn, meta, write, rows)
    }

    fn write_batch(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batch: &[ValueRef<'_>],
        returning: bool,
    ) -> OrmResult<Sent> {
        crate::connection::batch::pg_side::write(self, conn, meta, write, batch, returning)
    }

    fn existing_keys(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        keys: &[ValueRef<'_>],
    ) -> OrmResult<HashSet<Key>> {
        crate::connection::batch::pg_side::existing(self, conn, meta, keys)
    }

    fn key_plan(&self, _conn: &Connection, _meta: &'static EntityMeta) -> OrmResult<KeyPlan> {
        Ok(KeyPlan::Reserve)
    }

    fn insert_rows_per_statement(&self, requested: usize, _width: usize) -> usize {
        // Binary `COPY`: a batch is bounded by memory, not parameters.
        requested.max(COPY_ROWS)
    }

    fn reserve_keys(
        &self,
        conn: &Connection,
        meta: &'static EntityMeta,
        n: usize,
        _sent: bool,
        _state: &mut KeyState,
    ) -> OrmResult<Option<Reserved>> {
        // The sequence's id is looked up once per transaction: while it lasts, the rows this
        // transaction wrote lock the table against being dropped and made again.
        let serial = conn.tx_serial();
        let known = self
            .sequences
            .borrow()
            .get(meta.table)
            .filter(|(s, _)| *s == serial)
            .map(|(_, id)| *id);
        let (keys, id) = conn.run(Ctx::of(meta), RESERVE_KEYS, || {
            Ok((PgConn::reserve_keys(self, meta, n, known)?, n))
        })?;
        self.sequences.borrow_mut().insert(meta.table, (serial, id));
        if keys.len() != n {
            return Err(Error::InvalidState {
                message: format!(
                    "{} (table `{}`): asked the sequence for {n} keys, got {}",
                    meta.name,
                    meta.table,
                    keys.len()
                ),
            });
        }
        Ok(Some(Reserved::List(keys)))
    }

    fn insert_batch(&self, conn: &Connection, batch: &InsertBatch<'_>) -> OrmResult<Inserted> {
        let rows = batch.rows;
        let n = rows.len();
        let written = if batch.columns.is_empty() || n < COPY_MIN_ROWS {
            conn.insert_values(batch)?
        } else if n < UNNEST_MAX_ROWS {
            crate::connection::batch::pg_side::insert(self, conn, batch.meta, batch.columns, rows)?
        } else {
            let mut next = 0;
            self.bulk_load(conn, batch.entity, batch.meta, batch.columns, &mut |out| {
                while next < n && !out.full() {
                    out.write(rows, next)?;
                    next += 1;
                }
                Ok(next < n)
            })?
        };
        Ok(Inserted {
            rows: written,
            keys: Assigned::None,
        })
    }

    fn bulk_load_min_rows(&self) -> Option<usize> {
        Some(COPY_MIN_ROWS)
    }

    fn bulk_load(
        &self,
        conn: &Connection,
        entity: std::any::TypeId,
        meta: &'static EntityMeta,
        columns: &[usize],
        next: &mut dyn FnMut(&mut dyn RowWriter) -> OrmResult<bool>,
    ) -> OrmResult<u64> {
        let types = self.wire_types(conn, meta)?;
        let sql = conn.shape_of(entity, meta, Kind::Copy, columns, 0);
        let mut started = false;
        conn.run(Ctx::of(meta), &sql, || {
            let written = self.copy_in(&sql, |buf| {
                let mut out = CopyRows {
                    enc: CopyEncoder { buf },
                    meta,
                    types: &types,
                    columns,
                };
                if !started {
                    out.enc.header();
                    started = true;
                }
                let more = next(&mut out)?;
                if !more {
                    out.enc.trailer();
                }
                Ok(more)
            })?;
            Ok((written, usize::try_from(written).unwrap_or(usize::MAX)))
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
            DriverError::Pg(e) => map_error(e, entity, table, sql),
            // An error of ours in the middle of a statement (a value that does not fit, an
            // abandoned COPY) fails the statement on the server too.
            DriverError::Orm(e) => {
                self.note_failure();
                return e;
            }
            other => other.into_error(entity, table, sql),
        };
        if e.kind() == crate::ErrorKind::Connection {
            self.mark_broken();
        }
        // A table dropped and made again by someone else: statements cached here describe
        // the old one.
        let stale = is_stale_cache(&e);
        if stale {
            self.forget();
            // Column types kept for `COPY` describe the old tables too.
            self.wire_types.borrow_mut().clear();
        }
        self.note_failure();
        e
    }
}

fn pg_refs<'a>(params: &'a [ValueRef<'_>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

// ---- binary COPY ------------------------------------------------------------------------

/// Encodes rows in PostgreSQL's binary `COPY` format into a buffer.
pub(crate) struct CopyEncoder<'b> {
    pub(crate) buf: &'b mut Vec<u8>,
}

impl CopyEncoder<'_> {
    /// The signature and header that open the data.
    pub(crate) fn header(&mut self) {
        self.buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        self.buf.extend_from_slice(&0_i32.to_be_bytes()); // flags
        self.buf.extend_from_slice(&0_i32.to_be_bytes()); // header extension length
    }

    pub(crate) fn row(&mut self, fields: usize) {
        let n = i16::try_from(fields).unwrap_or(i16::MAX);
        self.buf.extend_from_slice(&n.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) -> Result<(), String> {
        let len = i32::try_from(bytes.len()).map_err(|_| "a value over 2 GiB".to_owned())?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// One field, encoded as the column's declared type. The error says what did not fit.
    pub(crate) fn value(&mut self, v: &ValueRef<'_>, ty: SqlType) -> Result<(), String> {
        let int = |i: i64| -> Result<Vec<u8>, String> {
            match ty {
                SqlType::I64 => Ok(i.to_be_bytes().to_vec()),
                SqlType::I32 => i32::try_from(i)
                    .map(|v| v.to_be_bytes().to_vec())
                    .map_err(|_| "an i64 out of range for a 32-bit column".to_owned()),
                SqlType::I16 => i16::try_from(i)
                    .map(|v| v.to_be_bytes().to_vec())
                    .map_err(|_| "an integer out of range for a 16-bit column".to_owned()),
                #[allow(clippy::cast_precision_loss)]
                SqlType::F64 => Ok((i as f64).to_be_bytes().to_vec()),
                _ => Err("an integer".to_owned()),
            }
        };
        match (v, ty) {
            (ValueRef::Null, _) => {
                self.buf.extend_from_slice(&(-1_i32).to_be_bytes());
                Ok(())
            }
            (ValueRef::I64(i), SqlType::I64) => self.field(&i.to_be_bytes()),
            (ValueRef::I32(i), SqlType::I32) => self.field(&i.to_be_bytes()),
            (ValueRef::I64(i), _) => self.field(&int(*i)?),
            (ValueRef::I32(i), _) => self.field(&int(i64::from(*i))?),
            (ValueRef::I16(i), SqlType::I16) => self.field(&i.to_be_bytes()),
            (ValueRef::I16(i), _) => self.field(&int(i64::from(*i))?),
            (ValueRef::F32(f), SqlType::F32) => self.field(&f.to_be_bytes()),
            (ValueRef::Date(d), SqlType::Date) => self.field(&(d - PG_EPOCH_DAYS).to_be_bytes()),
            (ValueRef::Time(t), SqlType::Time) => self.field(&t.to_be_bytes()),
            (
                ValueRef::DateTime(t) | ValueRef::Timestamp(t),
                SqlType::DateTime | SqlType::Timestamp,
            ) => self.field(&(t - PG_EPOCH_MICROS).to_be_bytes()),
            (ValueRef::F32(f), SqlType::F64) => self.field(&f64::from(*f).to_be_bytes()),
            (ValueRef::F64(f), SqlType::F64) => self.field(&f.to_be_bytes()),
            (ValueRef::Bool(b), SqlType::Bool) => self.field(&[u8::from(*b)]),
            (ValueRef::Text(s), SqlType::Text) => self.field(s.as_bytes()),
            (ValueRef::Text(s), SqlType::Decimal) => self.field(&numeric_from_text(s)?),
            (ValueRef::Text(s), SqlType::Json) => {
                let mut bytes = Vec::with_capacity(s.len() + 1);
                bytes.push(1);
                bytes.extend_from_slice(s.as_bytes());
                self.field(&bytes)
            }
            (ValueRef::Text(s), SqlType::Uuid) => {
                let u =
                    uuid::Uuid::parse_str(s).map_err(|_| "text that is not a UUID".to_owned())?;
                self.field(u.as_bytes())
            }
            (ValueRef::Blob(b), SqlType::Blob) => self.field(b),
            (ValueRef::Uuid(u), SqlType::Uuid | SqlType::Blob) => self.field(u.as_bytes()),
            (other, _) => Err(other.describe()),
        }
    }

    /// The trailer that ends the data.
    pub(crate) fn trailer(&mut self) {
        self.buf.extend_from_slice(&(-1_i16).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_out_of_messages() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h:5432/db");
        assert_eq!(redact("host=h user=u"), "postgres://u@h:5432/");
        for url in [
            "host=h password=secret user=u",
            "host=h password='sec ret' user=u",
            "host=h password = secret user=u",
            "postgres://u:se%2Fcret@h/db",
            "postgres://u:se/cret@h/db",
            "postgres://u@h/db?password=secret",
            "postgresql://u:secret@h1:1,h2:2/db",
        ] {
            let shown = redact(url);
            assert!(
                !shown.contains("secret") && !shown.contains("cret"),
                "{url} → {shown}"
            );
            assert!(!shown.contains("sec ret"), "{url} → {shown}");
        }
        assert_eq!(
            redact("postgresql://u:secret@h1:1,h2:2/db"),
            "postgres://u@h1:1,h2:2/db"
        );
    }

    #[test]
    fn numeric_text_round_trips_through_the_binary_form() {
        for t in [
            "0",
            "1",
            "-1",
            "10000",
            "12345.6789",
            "-0.0001",
            "0.00000001",
            "100000000",
            "79228162514264337593543950335",
            "-0.0000000000000000000000000001",
            "1.50",
            "9999.9999",
            "123000",
            "0.10",
        ] {
            let bin = numeric_from_text(t).expect("encodes");
            assert_eq!(numeric_to_text(&bin).expect("decodes"), t, "{t}");
        }
        assert!(numeric_from_text("1e5").is_err());
        assert!(numeric_from_text("-").is_err());
    }

    #[test]
    fn copy_rows_are_framed() {
        let mut bytes = Vec::new();
        let mut enc = CopyEncoder { buf: &mut bytes };
        enc.header();
        enc.row(2);
        enc.value(&ValueRef::I64(7), SqlType::I64).unwrap();
        enc.value(&ValueRef::Null, SqlType::Text).unwrap();
        assert!(enc.value(&ValueRef::I64(1 << 40), SqlType::I32).is_err());
        enc.trailer();
        assert_eq!(&bytes[..11], b"PGCOPY\n\xff\r\n\0");
        let body = &bytes[19..];
        assert_eq!(&body[..2], &2_i16.to_be_bytes());
        assert_eq!(&body[2..6], &8_i32.to_be_bytes());
        assert_eq!(&body[6..14], &7_i64.to_be_bytes());
        assert_eq!(&body[14..18], &(-1_i32).to_be_bytes());
        assert_eq!(&body[18..], &(-1_i16).to_be_bytes());
    }
}
