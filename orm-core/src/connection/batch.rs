//! Batched `UPDATE` and `DELETE` by key: many rows per statement, with per-row accounting.
//!
//! PostgreSQL gets one statement per batch whose rows travel as arrays, one per column
//! (`UPDATE t SET c = v.c FROM unnest($1::int8[], $2::text[]) AS v(k, c) WHERE t.id = v.k`,
//! `DELETE FROM t WHERE id = ANY($1::int8[])`). SQLite gets `UPDATE … FROM (VALUES (?, ?),
//! …)` and `DELETE … WHERE id IN (…)` of up to 100 rows. Either way the caller learns which of
//! the rows it sent matched nothing, so that a stale row is named exactly and the caller
//! decides whether that is an error: with a version check, the statement names the rows it
//! changed (`RETURNING`); without one, a statement that changed fewer rows than it was sent
//! is followed by a `SELECT` of the keys that exist (a row matches its key alone exactly
//! when it exists). A delete without a version check only counts.
//!
//! A key may appear once per statement (a join that matches one row twice would update it
//! once, with either value): a batch ends before a key it already holds.

use std::collections::HashSet as StdHashSet;

/// Key sets of a batch, with the identity maps' fast hasher.
pub(crate) type HashSet<K> = StdHashSet<K, crate::KeyHashState>;

use super::{Connection, Ctx, DResult};
use crate::entity::{Entity, EntityMeta};
use crate::error::{Error, Result};
#[cfg(feature = "postgres")]
use crate::value::SqlType;
use crate::value::{Key, ValueRef};

/// What a batched `UPDATE` does with a versioned entity's `#[orm(version)]` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionRule {
    /// Nothing: the entity has no version column, or the caller sets it as any other.
    Ignore,
    /// The row's version is incremented, whatever it holds.
    Bump,
    /// The row must hold the version given with it (else it does not match), and is
    /// incremented.
    Check,
}

/// What a batched write matched ([`Connection::update_many`], [`Connection::delete_many`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Matched {
    /// Rows of the table the call changed.
    pub rows: u64,
    /// Positions, among the call's rows, of the rows that matched nothing, ascending. Empty
    /// for a delete without a version check: which of its rows were already gone is not
    /// asked.
    pub missing: Vec<usize>,
}

/// What one statement reports: how many rows it changed, or which (by key).
pub(crate) enum Sent {
    Count(u64),
    Keys(HashSet<Key>),
}

/// Rows per SQLite statement (fewer when the columns would pass the parameter limit):
/// measured against the prepared per-row statement, `UPDATE … FROM (VALUES …)` is fastest
/// from about 50 rows on and flat up to a few hundred.
pub(crate) const SQLITE_ROWS: usize = 100;

/// Rows per PostgreSQL statement: the arrays of one batch are built in memory.
#[cfg(feature = "postgres")]
pub(crate) const PG_ROWS: usize = 10_000;

/// Rows per PostgreSQL statement of a call that changes at least half of its table (by the
/// planner's estimate of the table's rows): see `pg_side::batch_rows`.
#[cfg(feature = "postgres")]
pub(crate) const PG_WHOLE_ROWS: usize = 250_000;

/// `sql` that returns the key of each row it changes.
fn returning_key(meta: &EntityMeta, sql: &str) -> String {
    format!(
        "{sql} RETURNING {}.{}",
        quote(meta.table),
        quote(meta.columns[meta.primary_key].name)
    )
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Connection {
    /// Updates the columns `columns` of many rows by key, batched (see the module's comment
    /// for the statements). `rows` is flat: for each row its key, then the values of
    /// `columns` in order, then, with [`VersionRule::Check`], the version the row must hold.
    /// Returns how many rows changed and which of those sent matched nothing.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, ValueRef, VersionRule};
    /// #[derive(Entity, Debug)]
    /// struct Item { #[orm(primary_key)] id: i64, name: String }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Item>()?;
    /// conn.insert_many([Item { id: 1, name: "a".into() }, Item { id: 2, name: "b".into() }])?;
    /// let rows = [
    ///     ValueRef::I64(1), ValueRef::Text("one".into()),
    ///     ValueRef::I64(3), ValueRef::Text("three".into()),
    /// ];
    /// let matched = conn.update_many::<Item>(&[1], VersionRule::Ignore, &rows)?;
    /// assert_eq!((matched.rows, matched.missing), (1, vec![1]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] for a value its column cannot take; the database's error.
    /// Rows of earlier statements of the call stay written: run it in a transaction.
    pub fn update_many<E: Entity>(
        &self,
        columns: &[usize],
        version: VersionRule,
        rows: &[ValueRef<'_>],
    ) -> Result<Matched> {
        let meta = E::META;
        let version_col = match version {
            VersionRule::Ignore => None,
            _ => Some(meta.version_column().ok_or_else(|| Error::InvalidState {
                message: format!(
                    "{} (table `{}`) has no version column to check or bump",
                    meta.name, meta.table
                ),
            })?),
        };
        let check = version == VersionRule::Check;
        let stride = 1 + columns.len() + usize::from(check);
        let write = BatchWrite::Update {
            columns,
            version: version_col,
            check,
        };
        self.batched(meta, &write, rows, stride, true, |batches| {
            self.db().write_batches(self, meta, &write, batches, check)
        })
    }

    /// Deletes many rows by key, batched (see the module's comment). `rows` is flat: for
    /// each row its key, then, with `check_version`, the version the row must hold.
    /// Returns how many rows were deleted and, with `check_version`, which of those sent
    /// matched nothing.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, ValueRef};
    /// #[derive(Entity, Debug)]
    /// struct Item { #[orm(primary_key)] id: i64, name: String }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<Item>()?;
    /// conn.insert_many([Item { id: 1, name: "a".into() }])?;
    /// let matched = conn.delete_many::<Item>(false, &[ValueRef::I64(1), ValueRef::I64(2)])?;
    /// assert_eq!(matched.rows, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] for a key or version its column cannot take; the database's
    /// error (a row still referenced by a foreign key). Rows of earlier statements of the
    /// call stay deleted: run it in a transaction.
    pub fn delete_many<E: Entity>(
        &self,
        check_version: bool,
        rows: &[ValueRef<'_>],
    ) -> Result<Matched> {
        let meta = E::META;
        let version_col = if check_version {
            Some(meta.version_column().ok_or_else(|| Error::InvalidState {
                message: format!(
                    "{} (table `{}`) has no version column to check",
                    meta.name, meta.table
                ),
            })?)
        } else {
            None
        };
        let stride = 1 + usize::from(check_version);
        let write = BatchWrite::Delete {
            version: version_col,
        };
        self.batched(meta, &write, rows, stride, false, |batches| {
            self.db()
                .write_batches(self, meta, &write, batches, check_version)
        })
    }

    /// Splits `rows` (of `stride` values each) into batches, each under the backend's size
    /// and without a key twice, and runs `send` on them, as many at a time as the backend
    /// takes ([`Db::write_statements_per_call`]). A batch that reports fewer rows than it
    /// holds has its missing rows found by a `SELECT` of its keys when `lookup`.
    fn batched<'v>(
        &self,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        rows: &'v [ValueRef<'v>],
        stride: usize,
        lookup: bool,
        mut send: impl FnMut(&[&'v [ValueRef<'v>]]) -> Result<Vec<Sent>>,
    ) -> Result<Matched> {
        if !rows.len().is_multiple_of(stride) {
            return Err(Error::InvalidState {
                message: format!(
                    "{} (table `{}`): {} values are not whole rows of {stride}",
                    meta.name,
                    meta.table,
                    rows.len()
                ),
            });
        }
        let per_batch = self
            .db()
            .batch_rows(self, meta, write, rows.len() / stride, stride)?;
        let per_call = self.db().write_statements_per_call().max(1);
        let mut matched = Matched::default();
        let mut keys = DistinctKeys::default();
        let mut batches: Vec<&'v [ValueRef<'v>]> = Vec::with_capacity(per_call);
        let mut start = 0;
        while start < rows.len() {
            // The next batches, up to `per_call` of them.
            let call_start = start;
            batches.clear();
            while start < rows.len() && batches.len() < per_call {
                keys.clear();
                let mut end = start;
                while end < rows.len() && (end - start) / stride < per_batch {
                    let key = Key::from_value(&rows[end]).ok_or_else(|| {
                        Error::type_mismatch(meta, meta.primary_key, rows[end].describe())
                    })?;
                    if !keys.insert(key) {
                        break;
                    }
                    end += stride;
                }
                batches.push(&rows[start..end]);
                start = end;
            }
            let sent = send(&batches)?;
            let mut first = call_start / stride;
            for (batch, sent) in batches.iter().zip(sent) {
                let at = first;
                first += batch.len() / stride;
                let found = match sent {
                    Sent::Count(n) => {
                        matched.rows += n;
                        if n == (batch.len() / stride) as u64 || !lookup {
                            continue;
                        }
                        self.existing(meta, batch, stride)?
                    }
                    Sent::Keys(found) => {
                        matched.rows += found.len() as u64;
                        found
                    }
                };
                matched.missing.extend(
                    batch
                        .chunks(stride)
                        .enumerate()
                        .filter(|(_, r)| {
                            !Key::from_value(&r[0]).is_some_and(|k| found.contains(&comparable(k)))
                        })
                        .map(|(i, _)| at + i),
                );
            }
        }
        Ok(matched)
    }

    /// Which keys of a batch have a row (`SELECT key FROM t WHERE key IN (…)`).
    fn existing(
        &self,
        meta: &'static EntityMeta,
        batch: &[ValueRef<'_>],
        stride: usize,
    ) -> Result<HashSet<Key>> {
        let keys: Vec<ValueRef<'_>> = batch.iter().step_by(stride).cloned().collect();
        self.db().existing_keys(self, meta, &keys)
    }

    /// Runs a statement that returns keys, logged as one.
    fn returned(
        &self,
        meta: &'static EntityMeta,
        sql: &str,
        f: impl FnOnce() -> DResult<Vec<Option<Key>>>,
    ) -> Result<Sent> {
        self.run(Ctx::of(meta), sql, || {
            let keys: HashSet<Key> = f()?.into_iter().flatten().map(comparable).collect();
            let n = keys.len();
            Ok((Sent::Keys(keys), n))
        })
    }
}

/// The keys of one batch, to end it before a key comes twice. Integer keys in ascending
/// order (objects loaded or added in key order) need no set: each is new when it is above
/// the last. The set is built the first time a key breaks the order.
struct DistinctKeys {
    /// The last key while the keys so far are ascending integers.
    ascending: Option<i64>,
    /// Whether `ascending` covers every key so far (false once `seen` is in use).
    ordered: bool,
    seen: HashSet<Key>,
    /// The keys taken while they were ascending, in case the order breaks.
    taken: Vec<i64>,
}

impl Default for DistinctKeys {
    fn default() -> Self {
        DistinctKeys {
            ascending: None,
            ordered: true,
            seen: HashSet::default(),
            taken: Vec::new(),
        }
    }
}

impl DistinctKeys {
    fn clear(&mut self) {
        self.ascending = None;
        self.ordered = true;
        self.seen.clear();
        self.taken.clear();
    }

    /// Takes `key`; false when the batch already holds it.
    fn insert(&mut self, key: Key) -> bool {
        if self.ordered {
            if let Key::Int(k) = key
                && self.ascending.is_none_or(|last| k > last)
            {
                self.ascending = Some(k);
                self.taken.push(k);
                return true;
            }
            self.ordered = false;
            self.seen.extend(self.taken.drain(..).map(Key::Int));
        }
        self.seen.insert(key)
    }
}

/// One batched write, as the backends build its statements.
pub(crate) enum BatchWrite<'a> {
    /// `UPDATE` of `columns` (and a bumped version) by key; with `check`, only where the
    /// version matches.
    Update {
        columns: &'a [usize],
        version: Option<usize>,
        check: bool,
    },
    /// `DELETE` by key; with a version column, only where it matches.
    Delete { version: Option<usize> },
}

impl BatchWrite<'_> {
    /// Values per row: the key, the columns set, the version checked.
    pub(crate) fn stride(&self) -> usize {
        match *self {
            BatchWrite::Update { columns, check, .. } => 1 + columns.len() + usize::from(check),
            BatchWrite::Delete { version } => 1 + usize::from(version.is_some()),
        }
    }
}

/// The batched writes of a database without array parameters (SQLite): `VALUES` rows and
/// `IN` lists of up to [`SQLITE_ROWS`] rows, bound as they are, through the backend
/// interface's plain statements.
pub(crate) mod sqlite_side {
    use super::*;

    /// The statement of a batch of `rows` rows.
    pub(crate) fn sql(meta: &'static EntityMeta, write: &BatchWrite<'_>, rows: usize) -> String {
        match *write {
            BatchWrite::Update {
                columns,
                version,
                check,
            } => sqlite_update(meta, columns, version, check, rows),
            BatchWrite::Delete { version } => sqlite_delete(meta, version, rows),
        }
    }

    pub(crate) fn write(
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batch: &[ValueRef<'_>],
        returning: bool,
    ) -> Result<Sent> {
        let sql = sql(meta, write, batch.len() / write.stride());
        if returning {
            let sql = returning_key(meta, &sql);
            return conn.returned(meta, &sql, || key_rows(conn, meta, &sql, batch));
        }
        conn.run(Ctx::of(meta), &sql, || {
            let n = conn.db().execute(&sql, batch)?;
            Ok((Sent::Count(n), usize::try_from(n).unwrap_or(usize::MAX)))
        })
    }

    pub(crate) fn existing(
        conn: &Connection,
        meta: &'static EntityMeta,
        keys: &[ValueRef<'_>],
    ) -> Result<HashSet<Key>> {
        let t = quote(meta.table);
        let pk = quote(meta.columns[meta.primary_key].name);
        let sql = format!(
            "SELECT {pk} FROM {t} WHERE {pk} IN ({})",
            vec!["?"; keys.len()].join(", ")
        );
        match conn.returned(meta, &sql, || key_rows(conn, meta, &sql, keys))? {
            Sent::Keys(k) => Ok(k),
            Sent::Count(_) => Ok(HashSet::default()),
        }
    }
}

/// MySQL's side of the batched writes: one statement per batch (`UPDATE t SET c = CASE id
/// WHEN ? THEN ? … END WHERE id IN (…)`, measured 1.4 times as fast as a join with a derived
/// table of the rows; `DELETE … WHERE id IN (…)`). MySQL has no `UPDATE … RETURNING`: where the
/// caller must learn which rows matched (a version check), the rows that match are read and
/// locked first (`SELECT id … WHERE (id, version) IN (…) FOR UPDATE`), so that the write then
/// changes exactly those.
#[cfg(feature = "mysql")]
pub(crate) mod my_side {
    use super::*;

    /// Rows per statement.
    pub(crate) const MY_ROWS: usize = 1_000;

    pub(crate) fn write(
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batch: &[ValueRef<'_>],
        _returning: bool,
    ) -> Result<Sent> {
        let t = quote(meta.table);
        let pk = quote(meta.columns[meta.primary_key].name);
        let (stride, version, check) = match *write {
            BatchWrite::Update {
                columns,
                version,
                check,
            } => (1 + columns.len() + usize::from(check), version, check),
            BatchWrite::Delete { version } => (
                1 + usize::from(version.is_some()),
                version,
                version.is_some(),
            ),
        };
        let rows = batch.len() / stride;
        // With a version check, the matching rows are found and locked first.
        let matched = match (check, version) {
            (true, Some(v)) => {
                let v = quote(meta.columns[v].name);
                let sql = format!(
                    "SELECT {pk} FROM {t} WHERE ({pk}, {v}) IN ({}) FOR UPDATE",
                    vec!["(?, ?)"; rows].join(", ")
                );
                let pairs: Vec<ValueRef<'_>> = batch
                    .chunks(stride)
                    .flat_map(|r| [r[0].clone(), r[stride - 1].clone()])
                    .collect();
                match conn.returned(meta, &sql, || key_rows(conn, meta, &sql, &pairs))? {
                    Sent::Keys(k) => Some(k),
                    Sent::Count(_) => None,
                }
            }
            _ => None,
        };
        let mut params: Vec<ValueRef<'_>> = Vec::new();
        let sql = match *write {
            BatchWrite::Update { columns, .. } => {
                // `SET c = CASE key WHEN ? THEN ? … END` for each column, over the rows that
                // `WHERE` selects by key (and version). Bytes are bound as strings: their
                // values are cast, or the server checks them as text.
                let mut sets: Vec<String> = Vec::with_capacity(columns.len() + 1);
                for (i, &c) in columns.iter().enumerate() {
                    let value = match meta.columns[c].sql_type {
                        crate::SqlType::Uuid | crate::SqlType::Blob => "CAST(? AS BINARY)",
                        _ => "?",
                    };
                    sets.push(format!(
                        "{} = CASE {pk}{} END",
                        quote(meta.columns[c].name),
                        format!(" WHEN ? THEN {value}").repeat(rows)
                    ));
                    for row in batch.chunks(stride) {
                        params.push(row[0].clone());
                        params.push(row[1 + i].clone());
                    }
                }
                if let Some(v) = version {
                    let v = quote(meta.columns[v].name);
                    sets.push(format!("{v} = {v} + 1"));
                }
                let filter = match (check, version) {
                    (true, Some(v)) => {
                        for row in batch.chunks(stride) {
                            params.push(row[0].clone());
                            params.push(row[stride - 1].clone());
                        }
                        format!(
                            "({pk}, {}) IN ({})",
                            quote(meta.columns[v].name),
                            vec!["(?, ?)"; rows].join(", ")
                        )
                    }
                    _ => {
                        params.extend(batch.chunks(stride).map(|row| row[0].clone()));
                        format!("{pk} IN ({})", vec!["?"; rows].join(", "))
                    }
                };
                format!("UPDATE {t} SET {} WHERE {filter}", sets.join(", "))
            }
            BatchWrite::Delete { version } => {
                params.extend(batch.iter().cloned());
                match (check, version) {
                    (true, Some(v)) => format!(
                        "DELETE FROM {t} WHERE ({pk}, {}) IN ({})",
                        quote(meta.columns[v].name),
                        vec!["(?, ?)"; rows].join(", ")
                    ),
                    _ => format!(
                        "DELETE FROM {t} WHERE {pk} IN ({})",
                        vec!["?"; rows].join(", ")
                    ),
                }
            }
        };
        let n = conn.run(Ctx::of(meta), &sql, || {
            let n = conn.db().execute(&sql, &params)?;
            Ok((n, usize::try_from(n).unwrap_or(usize::MAX)))
        })?;
        match matched {
            Some(keys) => {
                if n != keys.len() as u64 {
                    return Err(Error::InvalidState {
                        message: format!(
                            "{} (table `{}`): {} rows were locked for the write and {n} written",
                            meta.name,
                            meta.table,
                            keys.len()
                        ),
                    });
                }
                Ok(Sent::Keys(keys))
            }
            // Without a version check, a row matches exactly when its key exists: a short
            // count is followed by a lookup of the keys (`Connection::batched`).
            None => Ok(Sent::Count(n)),
        }
    }
}

/// PostgreSQL's side of the batched writes: one statement per [`PG_ROWS`] rows, whose
/// columns travel as arrays encoded in binary before they are sent.
#[cfg(feature = "postgres")]
pub(crate) mod pg_side {
    use super::*;

    pub(crate) fn write(
        pg: &crate::postgres::PgConn,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        batch: &[ValueRef<'_>],
        returning: bool,
    ) -> Result<Sent> {
        let types = pg.wire_types(conn, meta)?;
        let mut sent: Vec<(usize, SqlType)> = vec![(meta.primary_key, types[meta.primary_key])];
        let sql = match *write {
            BatchWrite::Update {
                columns,
                version,
                check,
            } => {
                sent.extend(columns.iter().map(|&c| (c, types[c])));
                if let (true, Some(v)) = (check, version) {
                    sent.push((v, types[v]));
                }
                pg_update(meta, columns, version, check, &sent)
            }
            BatchWrite::Delete { version } => {
                if let Some(v) = version {
                    sent.push((v, types[v]));
                }
                pg_delete(meta, version, &sent)
            }
        };
        let arrays = pg_arrays(meta, batch, &sent)?;
        if returning {
            let sql = returning_key(meta, &sql);
            return conn.returned(meta, &sql, || pg_rows(pg, &sql, &arrays));
        }
        conn.run(Ctx::of(meta), &sql, || {
            let n = pg.execute(&sql, &pg_params(&arrays))?;
            Ok((Sent::Count(n), usize::try_from(n).unwrap_or(usize::MAX)))
        })
    }

    /// Rows per statement for a call of `rows` rows to `meta`'s table: [`PG_ROWS`], unless
    /// the call changes at least half of the table, whose rows then go in as few statements
    /// as [`PG_WHOLE_ROWS`] allows. One large statement lets the planner join its rows with
    /// the table in one pass (a hash join over a scan of the table), where each batch of
    /// [`PG_ROWS`] would look its rows up or scan the table again. Measured on 100,000 rows of
    /// a 100,000-row table: `UPDATE … FROM unnest` 0.34–0.45 s in one statement against
    /// 0.43–0.51 s in ten; a smaller share is faster in batches (100,000 rows of a
    /// 1,000,000-row table: 0.42–0.57 s in ten against 0.46–1.05 s in one).
    ///
    /// A `DELETE … WHERE key = ANY($1)` (no version to match) takes [`PG_WHOLE_ROWS`]
    /// whatever the share: the planner either looks its keys up or scans the table once,
    /// and batches only repeat that. 100,000 keys of a 1,000,000-row table: 0.13–0.18 s in
    /// ten statements and 0.15–0.17 s in one once the table was counted (`ANALYZE`), but
    /// 0.82–0.89 s and 0.19–0.28 s before, when each batch of ten was planned as a scan of
    /// the whole table.
    pub(crate) fn batch_rows(
        pg: &crate::postgres::PgConn,
        conn: &Connection,
        meta: &'static EntityMeta,
        write: &BatchWrite<'_>,
        rows: usize,
    ) -> Result<usize> {
        if rows <= PG_ROWS {
            return Ok(PG_ROWS);
        }
        if let BatchWrite::Delete { version: None } = write {
            return Ok(PG_WHOLE_ROWS);
        }
        let table = conn.run(Ctx::of(meta), TABLE_SIZE, || {
            let found = pg.query(TABLE_SIZE, &[&quote(meta.table)])?;
            Ok((found.first().and_then(|r| estimated_rows(meta, r)), 1))
        })?;
        Ok(match table {
            Some(table) if rows as f64 * 2.0 >= table => rows.min(PG_WHOLE_ROWS),
            _ => PG_ROWS,
        })
    }

    /// What the planner knows of a table's size: rows and pages at its last `VACUUM` or
    /// `ANALYZE` (-1 and 0 before any), and its pages now. Reads only the catalog. Only an
    /// ordinary table answers: a partitioned table's rows are in its partitions, whose share
    /// is not known here (its batches stay as they are).
    const TABLE_SIZE: &str = "SELECT c.reltuples::float8, c.relpages::int8, \
         (pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 \
         FROM pg_catalog.pg_class c \
         WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind = 'r'";

    /// The table's rows as the planner estimates them: the density of its last count over
    /// its pages now, or, never counted, its pages filled with rows of the width the planner
    /// assumes without statistics (32 bytes for a value of varying length). None for a table
    /// without pages, which has no rows to change.
    fn estimated_rows(meta: &EntityMeta, row: &postgres::Row) -> Option<f64> {
        let tuples: f64 = row.get(0);
        let counted_pages: i64 = row.get(1);
        let pages: i64 = row.get(2);
        if pages <= 0 {
            return None;
        }
        let pages = pages as f64;
        if tuples >= 0.0 && counted_pages > 0 {
            return Some(tuples / counted_pages as f64 * pages);
        }
        // A page's 8,168 usable bytes over a row's header (24), line pointer (4) and values.
        let width: usize = meta
            .columns
            .iter()
            .map(|c| match c.sql_type {
                SqlType::Bool => 1,
                SqlType::I16 => 2,
                SqlType::I32 | SqlType::F32 | SqlType::Date => 4,
                SqlType::I64
                | SqlType::F64
                | SqlType::Time
                | SqlType::DateTime
                | SqlType::Timestamp => 8,
                SqlType::Uuid => 16,
                SqlType::Text | SqlType::Blob | SqlType::Json | SqlType::Decimal => 32,
            })
            .sum();
        Some(pages * (8168 / (28 + width).max(1)) as f64)
    }

    /// Inserts `rows` (their columns `columns`) in one statement, `INSERT INTO t (…) SELECT *
    /// FROM unnest($1::int8[], …)`, each column's values in one binary array: for batches of
    /// some hundreds of rows, faster than `COPY` (see the driver's `UNNEST_MAX_ROWS`).
    pub(crate) fn insert(
        pg: &crate::postgres::PgConn,
        conn: &Connection,
        meta: &'static EntityMeta,
        columns: &[usize],
        rows: &dyn crate::connection::db::BatchRows,
    ) -> Result<u64> {
        let types = pg.wire_types(conn, meta)?;
        let sent: Vec<(usize, SqlType)> = columns.iter().map(|&c| (c, types[c])).collect();
        let width = rows.width();
        let mut values = Vec::with_capacity(rows.len() * width);
        for j in 0..rows.len() {
            values.extend((0..width).map(|p| rows.value(j, p)));
        }
        let arrays = pg_arrays(meta, &values, &sent)?;
        let names: Vec<String> = columns
            .iter()
            .map(|&c| quote(meta.columns[c].name))
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}) SELECT * FROM {}",
            quote(meta.table),
            names.join(", "),
            pg_unnest(&sent)
        );
        conn.run(Ctx::of(meta), &sql, || {
            let n = pg.execute(&sql, &pg_params(&arrays))?;
            Ok((n, usize::try_from(n).unwrap_or(usize::MAX)))
        })
    }

    pub(crate) fn existing(
        pg: &crate::postgres::PgConn,
        conn: &Connection,
        meta: &'static EntityMeta,
        keys: &[ValueRef<'_>],
    ) -> Result<HashSet<Key>> {
        let types = pg.wire_types(conn, meta)?;
        let sent = [(meta.primary_key, types[meta.primary_key])];
        let t = quote(meta.table);
        let pk = quote(meta.columns[meta.primary_key].name);
        let sql = format!(
            "SELECT {pk} FROM {t} WHERE {pk} = ANY($1::{}[])",
            pg_type(sent[0].1)
        );
        let arrays = pg_arrays(meta, keys, &sent)?;
        match conn.returned(meta, &sql, || pg_rows(pg, &sql, &arrays))? {
            Sent::Keys(k) => Ok(k),
            Sent::Count(_) => Ok(HashSet::default()),
        }
    }
}

/// A key as both sides of a comparison see it: a UUID stored as bytes and a boolean stored
/// as an integer come back in their storage's form.
fn comparable(k: Key) -> Key {
    match k {
        Key::Uuid(u) => Key::Bytes(u.as_bytes().as_slice().into()),
        Key::Bool(b) => Key::Int(i64::from(b)),
        other => other,
    }
}

/// Runs a statement that returns keys (`RETURNING key`, `SELECT key`); the keys.
fn key_rows(
    conn: &Connection,
    meta: &'static EntityMeta,
    sql: &str,
    params: &[ValueRef<'_>],
) -> DResult<Vec<Option<Key>>> {
    let ty = meta.key_column().sql_type;
    let mut out = Vec::new();
    conn.db().query(sql, params, &mut |row| {
        let key = row
            .value(0, ty)
            .map_err(|e| Error::type_mismatch(meta, meta.primary_key, e.to_string()))?;
        out.push(Key::from_value(&key));
        Ok(())
    })?;
    Ok(out)
}

#[cfg(feature = "postgres")]
fn pg_params(arrays: &[PgArray]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    arrays
        .iter()
        .map(|a| a as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// Runs a PostgreSQL statement that returns keys; the keys.
#[cfg(feature = "postgres")]
fn pg_rows(
    pg: &crate::postgres::PgConn,
    sql: &str,
    arrays: &[PgArray],
) -> DResult<Vec<Option<Key>>> {
    pg.query(sql, &pg_params(arrays))?
        .iter()
        .map(|r| {
            crate::postgres::decode_any(r, 0)
                .map(|v| Key::from_value(&v.as_ref()))
                .map_err(Into::into)
        })
        .collect()
}

/// `UPDATE t SET c = v.columnN, … FROM (VALUES (?, …), …) AS v WHERE t.key = v.column1 …`.
fn sqlite_update(
    m: &EntityMeta,
    columns: &[usize],
    version: Option<usize>,
    check: bool,
    rows: usize,
) -> String {
    let t = quote(m.table);
    let mut sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            format!(
                "{} = \"orm_v\".\"column{}\"",
                quote(m.columns[c].name),
                i + 2
            )
        })
        .collect();
    if let Some(v) = version {
        let v = quote(m.columns[v].name);
        sets.push(format!("{v} = {t}.{v} + 1"));
    }
    let width = 1 + columns.len() + usize::from(check);
    let row = format!("({})", vec!["?"; width].join(", "));
    let pk = quote(m.columns[m.primary_key].name);
    let mut sql = format!(
        "UPDATE {t} SET {} FROM (VALUES {}) AS \"orm_v\" WHERE {t}.{pk} = \"orm_v\".\"column1\"",
        sets.join(", "),
        vec![row.as_str(); rows].join(", ")
    );
    if let (true, Some(v)) = (check, version) {
        sql.push_str(&format!(
            " AND {t}.{} = \"orm_v\".\"column{width}\"",
            quote(m.columns[v].name)
        ));
    }
    sql
}

/// `DELETE FROM t WHERE key IN (?, …)`, or with versions `WHERE (key, version) IN (VALUES
/// (?, ?), …)`.
fn sqlite_delete(m: &EntityMeta, version: Option<usize>, rows: usize) -> String {
    let t = quote(m.table);
    let pk = quote(m.columns[m.primary_key].name);
    match version {
        None => format!(
            "DELETE FROM {t} WHERE {pk} IN ({})",
            vec!["?"; rows].join(", ")
        ),
        Some(v) => format!(
            "DELETE FROM {t} WHERE ({pk}, {}) IN (VALUES {})",
            quote(m.columns[v].name),
            vec!["(?, ?)"; rows].join(", ")
        ),
    }
}

/// The name PostgreSQL knows a column type by, for the casts of the arrays.
#[cfg(feature = "postgres")]
fn pg_type(t: SqlType) -> &'static str {
    match t {
        SqlType::I16 => "int2",
        SqlType::I32 => "int4",
        SqlType::I64 => "int8",
        SqlType::F32 => "float4",
        SqlType::F64 => "float8",
        SqlType::Bool => "bool",
        SqlType::Text => "text",
        SqlType::Blob => "bytea",
        SqlType::Uuid => "uuid",
        SqlType::Json => "jsonb",
        SqlType::Decimal => "numeric",
        SqlType::Date => "date",
        SqlType::Time => "time",
        SqlType::DateTime => "timestamp",
        SqlType::Timestamp => "timestamptz",
    }
}

/// `unnest($1::int8[], …) AS v(c0, c1, …)`: one array per sent column.
#[cfg(feature = "postgres")]
fn pg_unnest(sent: &[(usize, SqlType)]) -> String {
    let arrays: Vec<String> = sent
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("${}::{}[]", i + 1, pg_type(*t)))
        .collect();
    let names: Vec<String> = (0..sent.len()).map(|i| format!("\"c{i}\"")).collect();
    format!(
        "unnest({}) AS \"orm_v\"({})",
        arrays.join(", "),
        names.join(", ")
    )
}

#[cfg(feature = "postgres")]
fn pg_update(
    m: &EntityMeta,
    columns: &[usize],
    version: Option<usize>,
    check: bool,
    sent: &[(usize, SqlType)],
) -> String {
    let t = quote(m.table);
    let mut sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, &c)| format!("{} = \"orm_v\".\"c{}\"", quote(m.columns[c].name), i + 1))
        .collect();
    if let Some(v) = version {
        let v = quote(m.columns[v].name);
        sets.push(format!("{v} = {t}.{v} + 1"));
    }
    let pk = quote(m.columns[m.primary_key].name);
    let mut sql = format!(
        "UPDATE {t} SET {} FROM {} WHERE {t}.{pk} = \"orm_v\".\"c0\"",
        sets.join(", "),
        pg_unnest(sent)
    );
    if let (true, Some(v)) = (check, version) {
        sql.push_str(&format!(
            " AND {t}.{} = \"orm_v\".\"c{}\"",
            quote(m.columns[v].name),
            sent.len() - 1
        ));
    }
    sql
}

#[cfg(feature = "postgres")]
fn pg_delete(m: &EntityMeta, version: Option<usize>, sent: &[(usize, SqlType)]) -> String {
    let t = quote(m.table);
    let pk = quote(m.columns[m.primary_key].name);
    match version {
        None => format!(
            "DELETE FROM {t} WHERE {pk} = ANY($1::{}[])",
            pg_type(sent[0].1)
        ),
        Some(v) => format!(
            "DELETE FROM {t} USING {} WHERE {t}.{pk} = \"orm_v\".\"c0\" AND {t}.{} = \"orm_v\".\"c1\"",
            pg_unnest(sent),
            quote(m.columns[v].name)
        ),
    }
}

/// One column of a batch as a binary PostgreSQL array, encoded before the statement is sent
/// so that a value that does not fit names its column.
#[cfg(feature = "postgres")]
#[derive(Debug)]
struct PgArray(Vec<u8>);

#[cfg(feature = "postgres")]
impl postgres::types::ToSql for PgArray {
    fn to_sql(
        &self,
        _: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        out.extend_from_slice(&self.0);
        Ok(postgres::types::IsNull::No)
    }
    fn accepts(ty: &postgres::types::Type) -> bool {
        matches!(ty.kind(), postgres::types::Kind::Array(_))
    }
    postgres::types::to_sql_checked!();
}

/// The arrays of a batch: for each sent column (position in the row, wire type), its
/// values in PostgreSQL's binary array format.
#[cfg(feature = "postgres")]
fn pg_arrays(
    meta: &'static EntityMeta,
    batch: &[ValueRef<'_>],
    sent: &[(usize, SqlType)],
) -> Result<Vec<PgArray>> {
    let stride = sent.len();
    let rows = batch.len() / stride;
    sent.iter()
        .enumerate()
        .map(|(position, &(column, ty))| {
            let values = batch.iter().skip(position).step_by(stride);
            let has_null = values.clone().any(|v| matches!(v, ValueRef::Null));
            let mut buf = Vec::with_capacity(20 + rows * 12);
            buf.extend_from_slice(&1_i32.to_be_bytes()); // dimensions
            buf.extend_from_slice(&i32::from(has_null).to_be_bytes());
            buf.extend_from_slice(&pg_element_oid(ty).to_be_bytes());
            let len = i32::try_from(rows).map_err(|_| Error::InvalidState {
                message: "a batch over 2^31 rows".into(),
            })?;
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&1_i32.to_be_bytes()); // lower bound
            let mut enc = crate::postgres::CopyEncoder { buf: &mut buf };
            for v in values {
                enc.value(v, ty)
                    .map_err(|found| Error::type_mismatch(meta, column, found))?;
            }
            Ok(PgArray(buf))
        })
        .collect()
}

#[cfg(feature = "postgres")]
fn pg_element_oid(t: SqlType) -> u32 {
    use postgres::types::Type;
    match t {
        SqlType::I16 => Type::INT2.oid(),
        SqlType::I32 => Type::INT4.oid(),
        SqlType::I64 => Type::INT8.oid(),
        SqlType::F32 => Type::FLOAT4.oid(),
        SqlType::F64 => Type::FLOAT8.oid(),
        SqlType::Bool => Type::BOOL.oid(),
        SqlType::Text => Type::TEXT.oid(),
        SqlType::Blob => Type::BYTEA.oid(),
        SqlType::Uuid => Type::UUID.oid(),
        SqlType::Json => Type::JSONB.oid(),
        SqlType::Decimal => Type::NUMERIC.oid(),
        SqlType::Date => Type::DATE.oid(),
        SqlType::Time => Type::TIME.oid(),
        SqlType::DateTime => Type::TIMESTAMP.oid(),
        SqlType::Timestamp => Type::TIMESTAMPTZ.oid(),
    }
}
