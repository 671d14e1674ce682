//! The inserter: rows grouped by the columns they carry, sent as full batches, with the key
//! of every row known by construction. What is the same on every backend lives here
//! (grouping, input order, UUIDv7 keys, handing keys back, what is known of the table's next
//! key); how a batch reaches the database, and how its generated keys are proven, is the
//! backend's ([`Db::key_plan`], [`Db::reserve_keys`], [`Db::insert_batch`],
//! [`Db::bulk_load`]).

use std::any::TypeId;

use super::db::{
    Assigned, BatchRows, GeneratedKeys, InsertBatch, KeyPlan, KeyState, Reserved, RowWriter,
};
use super::{Connection, Ctx};
use crate::entity::{Entity, EntityMeta, Generated};
use crate::error::{Error, Result};
use crate::mapping::RowSource;
use crate::sql::Kind;
use crate::value::{Key, ValueRef};

/// Options for [`Connection::insert_many_with`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct InsertOptions {
    /// Rows per multi-row `INSERT` statement, lowered as needed to stay under the backend's
    /// bound-parameter limit. Default 50: on SQLite, statements of 25 to 64 rows run faster
    /// than statements of 100 (about 6 % for a 100,000-row insert of two text columns,
    /// BENCH.md's workload). PostgreSQL and MySQL take this as a least size: they make their
    /// batches as large as their limits allow.
    pub batch_rows: usize,
    /// Keep the input order exactly: a row carrying another column set than the previous row
    /// starts a new statement. Off, rows are grouped by column set and each group is sent
    /// when full (fewer, fuller statements). Default on.
    pub ordered: bool,
}

impl Default for InsertOptions {
    fn default() -> Self {
        InsertOptions {
            batch_rows: 50,
            ordered: true,
        }
    }
}

impl InsertOptions {
    /// Options with the given batch size.
    ///
    /// ```
    /// let opts = orm_core::InsertOptions::batch_rows(500).grouped();
    /// assert_eq!((opts.batch_rows, opts.ordered), (500, false));
    /// ```
    pub fn batch_rows(batch_rows: usize) -> Self {
        InsertOptions {
            batch_rows: batch_rows.max(1),
            ..InsertOptions::default()
        }
    }

    /// These options, grouping rows by column set instead of keeping their order.
    #[must_use]
    pub fn grouped(self) -> Self {
        InsertOptions {
            ordered: false,
            ..self
        }
    }
}

/// How the key column of a group of rows gets its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// From the row (or not sent at all, for a database key nobody asked back).
    Row,
    /// A generated integer key the caller needs, by the table's [`KeyPlan`]: reserved
    /// (then sent with the row) or assigned by the database consecutively and proven.
    Sequential,
    /// A UUIDv7 generated per row.
    Uuid,
    /// One row per statement, its generated key read back.
    PerRow,
}

struct Group<R> {
    columns: Vec<usize>,
    fill: Fill,
    per_statement: usize,
    /// Rows sent at once: whole statements, as many as the backend takes in one batch.
    per_batch: usize,
    rows: Vec<(usize, R)>,
}

/// What an [`Inserter`] did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct InsertOutcome {
    /// Rows inserted.
    pub rows: u64,
    /// The key of every row, in input order (empty unless keys were asked for).
    pub keys: Vec<Key>,
}

/// Streams rows into multi-row `INSERT`s: rows are grouped by the columns they carry and each
/// group is sent as soon as it holds a full statement's worth, so memory is bounded by the
/// batch, not the row count. Made by [`Connection::inserter`].
pub struct Inserter<'c, R: RowSource> {
    conn: &'c Connection,
    st: InsertState<R>,
}

/// An [`Inserter`] put aside between two uses of its connection ([`Inserter::suspend`],
/// [`Connection::resume_inserter`]): its buffered rows, the keys it handed out and what it
/// knows of the table's keys. A caller that must not hold its connection while it makes rows
/// (a session running the caller's iterator without its lock) suspends after each chunk and
/// resumes for the next, so batches stay full across chunks.
pub struct InsertState<R: RowSource> {
    /// The connection's transaction serial when this state was last used: what it knows of
    /// the table's keys holds only within that transaction.
    tx_serial: u64,
    meta: &'static EntityMeta,
    generated: Generated,
    return_keys: bool,
    ordered: bool,
    last_group: Option<usize>,
    batch_rows: usize,
    groups: Vec<Group<R>>,
    /// The key of every row so far, by row: those the rows carry, then those made or
    /// assigned as their batches are sent. Rows whose key is not known yet may have no entry:
    /// see [`keys_so_far`](Self::keys_so_far).
    keys: Vec<Option<Key>>,
    count: usize,
    written: u64,
    scratch: Vec<usize>,
    /// What the backend learnt of the table's keys (the next free one, …).
    key_state: KeyState,
    /// How the table's generated integer keys are proven, looked up at the first row that
    /// needs one.
    plan: Option<KeyPlan>,
    /// For rows that carry every column ([`RowSource::CARRIES_EVERY_COLUMN`]): the group of
    /// rows with a key, and of rows without one, once known.
    by_key: [Option<usize>; 2],
}

impl<R: RowSource> InsertState<R> {
    /// Records the key that row `index` carries. The rows before it that have no entry yet
    /// get one of `None`, filled in place: building each `None` apart and copying it into
    /// the list made every row of a flush wait on the copy (a load of a value just stored
    /// in parts cannot be forwarded from those stores).
    fn note_key(&mut self, index: usize, key: &ValueRef<'_>) {
        let key = Key::from_value(key);
        self.keys.resize_with(index, || None);
        self.keys.push(key);
    }

    /// The list of keys with an entry for every row so far.
    fn keys_so_far(&mut self) -> &mut Vec<Option<Key>> {
        let n = self.count;
        self.keys.resize_with(n, || None);
        &mut self.keys
    }
}

/// Values of a group's rows as sent: the row's own, but for a key the inserter made.
struct GroupRows<'a, R> {
    rows: &'a [(usize, R)],
    columns: &'a [usize],
    pk: usize,
    keys: KeyValues<'a>,
}

/// The keys an inserter made for the rows of a batch, in row order.
enum KeyValues<'a> {
    None,
    Uuids(&'a [uuid::Uuid]),
    Ints(&'a [i64]),
    From(i64),
}

impl<R: RowSource> BatchRows for GroupRows<'_, R> {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn width(&self) -> usize {
        self.columns.len()
    }

    fn value(&self, row: usize, position: usize) -> ValueRef<'_> {
        let col = self.columns[position];
        if col == self.pk {
            match self.keys {
                KeyValues::Uuids(u) => return ValueRef::Uuid(u[row]),
                KeyValues::Ints(k) => return ValueRef::I64(k[row]),
                KeyValues::From(first) => {
                    return ValueRef::I64(first + i64::try_from(row).unwrap_or(i64::MAX));
                }
                KeyValues::None => {}
            }
        }
        self.rows[row].1.value_at(position, col)
    }
}

impl Connection {
    /// Inserts rows through multi-row `INSERT … VALUES` statements of up to 50 rows,
    /// prepared once per shape, in chunks that respect the bound-parameter limit (B5, B6).
    /// All rows or none are written. Returns the number of rows inserted.
    ///
    /// Rows are entities (`E`, `&E`, `Box<E>`, …) or [`Mapping`](crate::Mapping)s; they are
    /// grouped by the set of columns they carry, so one call may mix rows with and without
    /// keys. Memory stays bounded by the batch, whatever the number of rows (B7).
    /// Database-generated keys are not read back: see
    /// [`insert_returning_keys`](Self::insert_returning_keys). A UUIDv7 key that is nil or
    /// missing is generated.
    ///
    /// # Errors
    /// [`Error::Database`] (e.g. [`ErrorKind::UniqueViolation`](crate::ErrorKind)), or a
    /// mapping's [`Error::TypeMismatch`]: nothing of the call is written.
    pub fn insert_many<R: RowSource>(&self, rows: impl IntoIterator<Item = R>) -> Result<u64> {
        self.insert_many_with(rows, &InsertOptions::default())
    }

    /// [`insert_many`](Self::insert_many) with options.
    ///
    /// # Errors
    /// As `insert_many`.
    pub fn insert_many_with<R: RowSource>(
        &self,
        rows: impl IntoIterator<Item = R>,
        options: &InsertOptions,
    ) -> Result<u64> {
        self.atomic(|conn| {
            let mut ins = conn.inserter::<R>(options, false)?;
            ins.push_all(rows.into_iter().map(Ok))?;
            Ok(ins.finish()?.rows)
        })
    }

    /// Inserts rows like [`insert_many`](Self::insert_many) and returns the key of every
    /// row, in input order. Each key is its row's own by construction, never by trusting the
    /// order of a multi-row `RETURNING`: user-given keys are the rows' own, UUIDv7 keys are
    /// generated here, and database keys come by the backend's rule for the table: on SQLite
    /// computed before the rows are sent (`max(key) + 1` onwards, read while the transaction
    /// holds the write lock) and checked afterwards against `last_insert_rowid()`; on
    /// PostgreSQL reserved from the key's sequence and sent with the rows; on MySQL the
    /// consecutive block InnoDB hands a multi-row `INSERT` (lock modes 0 and 1), else one row
    /// per statement.
    ///
    /// # Errors
    /// As `insert_many`: nothing of the call is written.
    pub fn insert_returning_keys<R: RowSource>(
        &self,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<Vec<Key>> {
        self.atomic(|conn| {
            let mut ins = conn.inserter::<R>(&InsertOptions::default(), true)?;
            ins.push_all(rows.into_iter().map(Ok))?;
            Ok(ins.finish()?.keys)
        })
    }

    /// A streaming inserter for rows of type `R`. It is not atomic on its own: use it inside
    /// a transaction or [`atomic`](Self::atomic). With `return_keys`, it needs the
    /// transaction to hold the write lock (the default `BEGIN IMMEDIATE` does).
    ///
    /// # Errors
    /// Database errors while inspecting the table.
    pub fn inserter<R: RowSource>(
        &self,
        options: &InsertOptions,
        return_keys: bool,
    ) -> Result<Inserter<'_, R>> {
        let meta = R::Entity::META;
        Ok(Inserter {
            conn: self,
            st: InsertState {
                tx_serial: self.tx_serial.get(),
                meta,
                generated: meta.key_column().generated,
                return_keys,
                ordered: options.ordered,
                last_group: None,
                batch_rows: options.batch_rows.max(1),
                groups: Vec::new(),
                keys: Vec::new(),
                count: 0,
                written: 0,
                scratch: Vec::new(),
                key_state: KeyState::default(),
                plan: None,
                by_key: [None; 2],
            },
        })
    }

    /// Takes up an inserter put aside with [`Inserter::suspend`]. What it knew of the table's
    /// keys is kept only within the transaction it was used in; in another it is read again.
    pub fn resume_inserter<R: RowSource>(&self, mut state: InsertState<R>) -> Inserter<'_, R> {
        let serial = self.tx_serial.get();
        if state.tx_serial != serial || !self.in_transaction() {
            state.key_state = KeyState::default();
            state.plan = None;
            // The groups of rows without a key were made by the plan just forgotten.
            state.by_key = [None; 2];
            state.tx_serial = serial;
        }
        Inserter {
            conn: self,
            st: state,
        }
    }
}

impl<R: RowSource> Inserter<'_, R> {
    /// Adds a row; sends its group's statement when the group is full.
    ///
    /// # Errors
    /// The row's own check ([`Error::TypeMismatch`]) or the database's error.
    pub fn push(&mut self, row: R) -> Result<()> {
        let (g, index) = self.classify(&row)?;
        self.place(g, index, row)?;
        if self.st.groups[g].rows.len() >= self.st.groups[g].per_batch {
            self.send(g)?;
        }
        Ok(())
    }

    /// Adds every row of `rows`, as [`push`](Self::push) would. Where the backend has a
    /// streamed load (`COPY` on PostgreSQL), once a group of rows that need no reserved keys
    /// is large enough, it is streamed: one load stays open while the iterator yields rows of
    /// that group, so the server inserts while the caller's rows are still being made.
    ///
    /// # Errors
    /// As `push`, and the first error the iterator yields.
    pub fn push_all(&mut self, rows: impl IntoIterator<Item = Result<R>>) -> Result<()> {
        let mut rows = rows.into_iter();
        let load_min = self.conn.db().bulk_load_min_rows();
        // Not a `for` loop: the streaming branch goes on pulling from `rows` itself.
        #[allow(clippy::while_let_on_iterator)]
        while let Some(row) = rows.next() {
            let row = row?;
            let (g, index) = self.classify(&row)?;
            self.place(g, index, row)?;
            let group = &self.st.groups[g];
            if let Some(min) = load_min
                && matches!(group.fill, Fill::Row | Fill::Uuid)
                && !group.columns.is_empty()
                && group.rows.len() >= min
            {
                if let Some((g2, index, row)) = self.stream(g, &mut rows)? {
                    self.place(g2, index, row)?;
                }
                continue;
            }
            if self.st.groups[g].rows.len() >= self.st.groups[g].per_batch {
                self.send(g)?;
            }
        }
        Ok(())
    }

    /// Puts a classified row into its group, first sending the previous group when the
    /// input order must be kept.
    fn place(&mut self, g: usize, index: usize, row: R) -> Result<()> {
        if self.st.ordered
            && let Some(last) = self.st.last_group
            && last != g
            && !self.st.groups[last].rows.is_empty()
        {
            self.send(last)?;
        }
        self.st.last_group = Some(g);
        self.st.groups[g].rows.push((index, row));
        Ok(())
    }

    /// Checks a row and finds (or makes) the group of rows it goes with; returns the group
    /// and the row's input index.
    fn classify(&mut self, row: &R) -> Result<(usize, usize)> {
        row.check()?;
        let index = self.st.count;
        self.st.count += 1;
        let pk = self.st.meta.primary_key;
        // Whether the key is to be made (by the database or here): with every column
        // carried, all a row's group depends on.
        let missing = |key: &ValueRef<'_>| match self.st.generated {
            Generated::AutoIncrement => key.is_null(),
            Generated::UuidV7 => {
                matches!(key, ValueRef::Null) || matches!(key, ValueRef::Uuid(u) if u.is_nil())
            }
            _ => false,
        };
        let by_key = if R::CARRIES_EVERY_COLUMN {
            let key = row.value(pk);
            let missing = missing(&key);
            if let Some(g) = self.st.by_key[usize::from(missing)] {
                if self.st.return_keys && !missing {
                    self.st.note_key(index, &key);
                }
                return Ok((g, index));
            }
            Some(usize::from(missing))
        } else {
            None
        };
        let mut cols = std::mem::take(&mut self.st.scratch);
        cols.clear();
        row.carried(&mut cols);
        let key_is_null = row.value(pk).is_null();
        if self.st.generated == Generated::AutoIncrement && key_is_null && self.st.plan.is_none() {
            self.st.plan = Some(self.conn.db().key_plan(self.conn, self.st.meta)?);
        }
        let key = row.value(pk);
        let fill = match self.st.generated {
            Generated::AutoIncrement if key.is_null() => {
                cols.retain(|&c| c != pk);
                match self.st.plan {
                    Some(KeyPlan::Assign) => {
                        cols.push(pk);
                        cols.sort_unstable();
                        Fill::Sequential
                    }
                    Some(KeyPlan::Reserve) if self.st.return_keys => {
                        cols.push(pk);
                        cols.sort_unstable();
                        Fill::Sequential
                    }
                    Some(KeyPlan::Consecutive) if self.st.return_keys => Fill::Sequential,
                    Some(KeyPlan::PerRow) if self.st.return_keys => Fill::PerRow,
                    _ => Fill::Row,
                }
            }
            Generated::UuidV7
                if matches!(key, ValueRef::Null)
                    || matches!(key, ValueRef::Uuid(u) if u.is_nil()) =>
            {
                if !cols.contains(&pk) {
                    cols.push(pk);
                    cols.sort_unstable();
                }
                Fill::Uuid
            }
            _ => Fill::Row,
        };
        if self.st.return_keys && fill == Fill::Row {
            self.st.note_key(index, &key);
        }
        drop(key);
        let g = match self
            .st
            .groups
            .iter()
            .position(|g| g.fill == fill && g.columns == cols)
        {
            Some(g) => {
                self.st.scratch = cols;
                g
            }
            None => {
                if let Some(c) = crate::mapping::missing_required(self.st.meta, &cols) {
                    return Err(Error::type_mismatch(
                        self.st.meta,
                        c,
                        "nothing (the column is missing from the row)".into(),
                    ));
                }
                let per_statement = if fill == Fill::PerRow {
                    1
                } else {
                    self.conn
                        .db()
                        .insert_rows_per_statement(self.st.batch_rows, cols.len())
                        .max(1)
                };
                let per_batch =
                    per_statement.saturating_mul(self.conn.db().insert_statements_per_batch());
                self.st.groups.push(Group {
                    columns: cols,
                    fill,
                    per_statement,
                    per_batch,
                    rows: Vec::with_capacity(per_batch.min(1024)),
                });
                self.st.groups.len() - 1
            }
        };
        if let Some(missing) = by_key {
            self.st.by_key[missing] = Some(g);
        }
        Ok((g, index))
    }

    /// Streams group `g` into one load of the backend's: its buffered rows, then rows from
    /// `rows` for as long as they belong to `g`. Returns the first row that does not,
    /// classified.
    fn stream(
        &mut self,
        g: usize,
        rows: &mut impl Iterator<Item = Result<R>>,
    ) -> Result<Option<(usize, usize, R)>> {
        let conn = self.conn;
        let meta = self.st.meta;
        // A copy: the group keeps its columns, so that rows classified meanwhile find it.
        let columns = self.st.groups[g].columns.clone();
        let fill = self.st.groups[g].fill;
        let pk = meta.primary_key;
        let mut buffered = std::mem::take(&mut self.st.groups[g].rows).into_iter();
        let mut other = None;
        let written = conn.db().bulk_load(
            conn,
            TypeId::of::<R::Entity>(),
            meta,
            &columns,
            &mut |out: &mut dyn RowWriter| {
                while !out.full() {
                    let (index, row) = match buffered.next() {
                        Some(r) => r,
                        None => match rows.next() {
                            None => return Ok(false),
                            Some(row) => {
                                let row = row?;
                                let (g2, index) = self.classify(&row)?;
                                if g2 != g {
                                    other = Some((g2, index, row));
                                    return Ok(false);
                                }
                                (index, row)
                            }
                        },
                    };
                    let id = [crate::uuid_v7()];
                    let keys = if fill == Fill::Uuid {
                        if self.st.return_keys {
                            self.st.keys_so_far()[index] = Some(Key::Uuid(id[0]));
                        }
                        KeyValues::Uuids(&id)
                    } else {
                        KeyValues::None
                    };
                    let one = [(index, row)];
                    out.write(
                        &GroupRows {
                            rows: &one,
                            columns: &columns,
                            pk,
                            keys,
                        },
                        0,
                    )?;
                }
                Ok(true)
            },
        )?;
        self.st.written += written;
        Ok(other)
    }

    /// Puts the inserter aside (its buffered rows kept, nothing sent), so that its connection
    /// can be used or given back meanwhile; [`Connection::resume_inserter`] takes it up again.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, InsertOptions};
    /// #[derive(Entity, Debug)]
    /// struct N { #[orm(primary_key, auto_increment)] id: Option<i64>, v: i64 }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_table::<N>()?;
    /// conn.begin()?;
    /// let mut ins = conn.inserter::<N>(&InsertOptions::default(), true)?;
    /// ins.push(N { id: None, v: 1 })?;
    /// let state = ins.suspend();
    /// let mut ins = conn.resume_inserter(state);
    /// ins.push(N { id: None, v: 2 })?;
    /// assert_eq!(ins.finish()?.keys.len(), 2);
    /// conn.commit()?;
    /// # Ok(()) }
    /// ```
    pub fn suspend(self) -> InsertState<R> {
        self.st
    }

    /// Sends what is left and reports what was done.
    ///
    /// # Errors
    /// The database's error.
    pub fn finish(mut self) -> Result<InsertOutcome> {
        for g in 0..self.st.groups.len() {
            if !self.st.groups[g].rows.is_empty() {
                self.send(g)?;
            }
        }
        let keys = if self.st.return_keys {
            let meta = self.st.meta;
            std::mem::take(self.st.keys_so_far())
                .into_iter()
                .map(|k| {
                    k.ok_or_else(|| Error::InvalidState {
                        message: format!(
                            "{} (table `{}`): a row has no value for the primary key `{}` and it \
                             is not generated",
                            meta.name,
                            meta.table,
                            meta.key_column().name
                        ),
                    })
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(InsertOutcome {
            rows: self.st.written,
            keys,
        })
    }

    /// Sends group `g`: its keys made or reserved first, then one batch through the
    /// backend, then every row's key handed back.
    fn send(&mut self, g: usize) -> Result<()> {
        let conn = self.conn;
        let db = conn.db();
        let meta = self.st.meta;
        let pk = meta.primary_key;
        let group = &mut self.st.groups[g];
        let n = group.rows.len();
        let fill = group.fill;
        let sent_keys = fill == Fill::Sequential && group.columns.contains(&pk);
        // Keys decided before sending: UUIDs made here, integer keys the backend reserves
        // (sent with the rows) or predicts (checked against what the database assigned).
        let uuids: Vec<uuid::Uuid> = if fill == Fill::Uuid {
            (0..n).map(|_| crate::uuid_v7()).collect()
        } else {
            Vec::new()
        };
        let reserved = if fill == Fill::Sequential {
            db.reserve_keys(conn, meta, n, sent_keys, &mut self.st.key_state)?
        } else {
            None
        };
        let keys = match (&reserved, fill) {
            (_, Fill::Uuid) => KeyValues::Uuids(&uuids),
            (Some(r), Fill::Sequential) if sent_keys => match r {
                Reserved::From(first) => KeyValues::From(*first),
                Reserved::List(list) => KeyValues::Ints(list),
            },
            _ => KeyValues::None,
        };
        let rows = GroupRows {
            rows: &group.rows,
            columns: &group.columns,
            pk,
            keys,
        };
        let inserted = db.insert_batch(
            conn,
            &InsertBatch {
                entity: TypeId::of::<R::Entity>(),
                meta,
                columns: &group.columns,
                rows: &rows,
                per_statement: group.per_statement,
                generated: match fill {
                    Fill::Sequential if !sent_keys => GeneratedKeys::Consecutive,
                    Fill::PerRow => GeneratedKeys::Each,
                    _ => GeneratedKeys::None,
                },
            },
        )?;
        if inserted.rows != n as u64 && matches!(fill, Fill::Sequential | Fill::PerRow) {
            return Err(Error::InvalidState {
                message: format!(
                    "{} (table `{}`): a batch of {n} rows inserted {}; the call is rolled back \
                     rather than hand out wrong keys",
                    meta.name, meta.table, inserted.rows
                ),
            });
        }
        // The first integer key of the batch, when its keys are consecutive.
        let first = match (fill, &reserved) {
            (Fill::Sequential, Some(Reserved::From(f))) if sent_keys => Some(*f),
            (Fill::Sequential, predicted) if !sent_keys => {
                let Assigned::First(got) = inserted.keys else {
                    return Err(Error::InvalidState {
                        message: format!(
                            "{} (table `{}`): the backend reported no key for a batch of {n}                              rows",
                            meta.name, meta.table
                        ),
                    });
                };
                if let Some(Reserved::From(p)) = predicted
                    && *p != got
                {
                    return Err(Error::InvalidState {
                        message: format!(
                            "{} (table `{}`): the database assigned keys from {got} where the \
                             keys {p}.. of {n} rows were computed; the call is rolled back \
                             rather than hand out wrong keys",
                            meta.name, meta.table
                        ),
                    });
                }
                Some(got)
            }
            _ => None,
        };
        if self.st.return_keys {
            // One loop for each way of getting the keys: a key put in its entry as it is made,
            // not chosen by a `match` into a value aside and copied from there (see
            // `InsertState::note_key`).
            let count = self.st.count;
            let keys = &mut self.st.keys;
            keys.resize_with(count, || None);
            let rows = group.rows.iter().map(|(index, _)| *index).enumerate();
            match (fill, &reserved, first) {
                (Fill::Uuid, _, _) => {
                    for (j, i) in rows {
                        keys[i] = uuids.get(j).copied().map(Key::Uuid);
                    }
                }
                (Fill::Sequential, Some(Reserved::List(list)), _) => {
                    for (j, i) in rows {
                        keys[i] = list.get(j).copied().map(Key::Int);
                    }
                }
                (Fill::Sequential, _, Some(f)) => {
                    for (j, i) in rows {
                        keys[i] = Some(Key::Int(f + i64::try_from(j).unwrap_or(i64::MAX)));
                    }
                }
                (Fill::Sequential, _, None) => {
                    for (index, _) in &group.rows {
                        keys[*index] = None;
                    }
                }
                (Fill::PerRow, _, _) => {
                    let each = match &inserted.keys {
                        Assigned::Each(k) => k.as_slice(),
                        _ => &[],
                    };
                    for (j, i) in rows {
                        keys[i] = each.get(j).copied().map(Key::Int);
                    }
                }
                // The rows carried their keys, noted as they came.
                (Fill::Row, _, _) => {}
            }
        }
        match fill {
            Fill::Sequential => {
                if let Some(f) = first {
                    self.st.key_state.next_key = Some(i128::from(f) + n as i128);
                }
            }
            Fill::Row if self.st.generated == Generated::AutoIncrement => {
                // Rows that carried their own key may sit above what was reserved so far.
                if let Some(next) = self.st.key_state.next_key {
                    let top = group
                        .rows
                        .iter()
                        .filter_map(|(_, r)| match r.value(pk) {
                            ValueRef::I64(k) => Some(k),
                            ValueRef::I32(k) => Some(i64::from(k)),
                            _ => None,
                        })
                        .max();
                    if let Some(top) = top {
                        self.st.key_state.next_key = Some(next.max(i128::from(top) + 1));
                    }
                }
            }
            _ => {}
        }
        group.rows.clear();
        self.st.written += inserted.rows;
        Ok(())
    }
}

impl Connection {
    /// The statement of `kind` for the entity with type id `entity` and metadata `meta`.
    pub(crate) fn shape_of(
        &self,
        entity: TypeId,
        meta: &'static EntityMeta,
        kind: Kind,
        columns: &[usize],
        batch: usize,
    ) -> std::sync::Arc<str> {
        crate::sql::Shape {
            backend: self.backend(),
            entity,
            meta,
            kind,
            columns,
            batch,
            check_version: false,
        }
        .sql()
    }

    /// Sends one multi-row statement of `batch`'s rows through the plain interface:
    /// every value bound, the rows changed returned.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn insert_values(&self, batch: &InsertBatch<'_>) -> Result<u64> {
        let rows = batch.rows;
        let n = rows.len();
        let sql = self.shape_of(batch.entity, batch.meta, Kind::Insert, batch.columns, n);
        let mut values: Vec<ValueRef<'_>> = Vec::with_capacity(n * rows.width());
        for j in 0..n {
            for p in 0..rows.width() {
                values.push(rows.value(j, p));
            }
        }
        self.run(Ctx::of(batch.meta), &sql, || {
            let n = self.db().execute(&sql, &values)?;
            Ok((n, usize::try_from(n).unwrap_or(usize::MAX)))
        })
    }
}

/// The first of `n` keys from `next` on, when all of them fit in an `i64`.
pub(crate) fn keys_from(meta: &EntityMeta, next: i128, n: usize) -> Result<i64> {
    let last = next + n as i128 - 1;
    match (i64::try_from(next), i64::try_from(last)) {
        (Ok(first), Ok(_)) => Ok(first),
        _ => Err(Error::InvalidState {
            message: format!(
                "{} (table `{}`): the integer key space is exhausted",
                meta.name, meta.table
            ),
        }),
    }
}
