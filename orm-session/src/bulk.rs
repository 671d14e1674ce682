//! The bulk paths (B2–B4): no identity map, no dirty tracking, statements prepared once,
//! rows streamed in batches.

use orm_core::{
    Entity, Error, Generated, InsertOptions, Key, Mapping, Result, Value, ValueRef, VersionRule,
};

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::session::Session;

/// Options of the bulk paths.
///
/// ```
/// use orm_session::BulkOptions;
/// let opts = BulkOptions::default().return_defaults(true).batch_rows(500);
/// assert!(opts.return_defaults);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BulkOptions {
    /// Read generated keys back: into the objects (`bulk_save`) or as the result's `keys`
    /// (`bulk_insert_mappings`). Default off.
    pub return_defaults: bool,
    /// Rows per statement (capped by the backend's parameter limit). Default 50, as
    /// [`InsertOptions`]'s.
    pub batch_rows: usize,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            return_defaults: false,
            batch_rows: InsertOptions::default().batch_rows,
        }
    }
}

impl BulkOptions {
    /// Sets `return_defaults`.
    #[must_use]
    pub fn return_defaults(mut self, on: bool) -> Self {
        self.return_defaults = on;
        self
    }

    /// Sets the rows per statement.
    #[must_use]
    pub fn batch_rows(mut self, n: usize) -> Self {
        self.batch_rows = n.max(1);
        self
    }
}

/// What a bulk call did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct BulkResult {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// With `return_defaults`: the key of every inserted row, in input order.
    pub keys: Vec<Key>,
}

/// What `bulk_save` keeps until every row is written.
struct Saved<'a, E: Entity> {
    result: BulkResult,
    /// The inserter of objects inserted without keys back, between chunks.
    plain: Option<orm_core::InsertState<&'a E>>,
    /// Inserted objects and their generated keys, written back at the end.
    keyed: Vec<(&'a mut E, Key)>,
    /// Updated objects whose version is bumped at the end.
    bumps: Vec<&'a mut E>,
}

impl<E: Entity> Default for Saved<'_, E> {
    fn default() -> Self {
        Saved {
            result: BulkResult::default(),
            plain: None,
            keyed: Vec::new(),
            bumps: Vec::new(),
        }
    }
}

/// A value a bulk call writes back into one of the caller's objects (a generated key, a
/// bumped version).
struct WriteBack<'o, E> {
    obj: &'o mut E,
    column: usize,
    /// The value to write; once written, the value it replaced.
    value: Value,
    what: &'static str,
}

/// Writes every value back, or none: on an error or a panic (a user's conversion) the
/// objects written already get their old values back.
fn write_back_all<E: Entity>(writes: &mut [WriteBack<'_, E>]) -> Result<()> {
    let mut done = 0;
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<()> {
        for w in writes.iter_mut() {
            let old = w.obj.column(w.column).to_owned_value();
            w.obj
                .set_column(w.column, w.value.as_ref())
                .map_err(|source| Error::InvalidState {
                    message: format!(
                        "{} (table `{}`): {} {:?} does not fit the field `{}`: {source}",
                        E::META.name,
                        E::META.table,
                        w.what,
                        w.value,
                        E::META.columns[w.column].field
                    ),
                })?;
            w.value = old;
            done += 1;
        }
        Ok(())
    }));
    if matches!(outcome, Ok(Ok(()))) {
        return Ok(());
    }
    for w in writes[..done].iter_mut().rev() {
        if let Err(e) = w.obj.set_column(w.column, w.value.as_ref()) {
            tracing::warn!(target: "orm::session", "{}: an old value could not be put back: {e}", E::META.name);
        }
    }
    match outcome {
        Ok(r) => r,
        Err(panic) => resume_unwind(panic),
    }
}

/// UPDATE of a versioned object's row at the version it holds.
///
/// # Errors
/// [`Error::StaleData`] when no row has that key and version (another writer changed or
/// deleted it).
fn update_versioned<E: Entity>(
    conn: &orm_core::Connection,
    obj: &E,
    columns: &[usize],
) -> Result<u64> {
    let meta = E::META;
    let version = meta
        .version_column()
        .map(|v| obj.column(v).to_owned_value());
    let n = conn.update_columns(obj, columns, version.as_ref())?;
    if n == 0 {
        return Err(stale(obj));
    }
    Ok(n)
}

fn stale<E: Entity>(obj: &E) -> Error {
    Error::StaleData {
        entity: E::META.name,
        table: E::META.table,
        key: obj.key().map_or_else(|| "?".into(), |k| k.to_string()),
        operation: "UPDATE",
    }
}

fn needs_insert<E: Entity>(obj: &E) -> bool {
    let pk = E::META.primary_key;
    match (E::META.key_column().generated, obj.column(pk)) {
        (_, ValueRef::Null) => true,
        (Generated::UuidV7, ValueRef::Uuid(u)) => u.is_nil(),
        _ => false,
    }
}

impl Session {
    /// Rows pulled from the caller's iterator per locked write: one statement's worth on
    /// SQLite (the inserter is suspended between chunks, so rows of several column sets still
    /// fill whole batches, and the rows the caller made are sent while the allocator can
    /// reuse their memory; chunks of 1,000 measured 10% more instructions); on PostgreSQL
    /// enough for a `COPY` to amortize its round trip.
    fn chunk_rows(&self, options: &BulkOptions) -> usize {
        match self.engine().backend() {
            orm_core::Backend::Postgres | orm_core::Backend::MySql => 10_000,
            _ => options.batch_rows,
        }
    }

    /// Saves plain objects without tracking them (SQLAlchemy's `bulk_save_objects`, B2):
    /// objects without a key are inserted in batches, objects with a key update all their
    /// columns by key — or, when no row has that key, are inserted with it (F5; a versioned
    /// object whose row exists at another version fails with `StaleData`). For an entity whose key the user assigns (neither `auto_increment`
    /// nor `uuid_v7`) there is no telling new from existing, so every object is upserted
    /// (`INSERT … ON CONFLICT (key) DO UPDATE`); with a `#[orm(version)]` column it is
    /// inserted if its key is free, else updated only at the version it holds (R4).
    ///
    /// With `return_defaults`, generated keys are written back into the objects (after the
    /// whole call succeeded). A `#[orm(version)]` column is checked and bumped by updates.
    /// The identity map is not touched: objects it holds for these rows may now be stale.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct C { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<C>()?;
    /// let s = engine.session();
    /// let mut rows: Vec<C> = (0..3).map(|i| C { id: None, name: format!("c{i}") }).collect();
    /// s.bulk_save(rows.iter_mut(), BulkOptions::default().return_defaults(true))?;
    /// assert_eq!(rows[2].id, Some(3));
    /// rows[0].name = "renamed".into();
    /// let r = s.bulk_save(rows.iter_mut().take(1), BulkOptions::default())?;
    /// assert_eq!(r.updated, 1);
    /// s.commit()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Database errors, [`Error::StaleData`]: nothing of the call is written.
    pub fn bulk_save<'a, E: Entity>(
        &self,
        objects: impl IntoIterator<Item = &'a mut E>,
        options: BulkOptions,
    ) -> Result<BulkResult> {
        let meta = E::META;
        let upsert = meta.key_column().generated == Generated::No;
        let non_key: Vec<usize> = (0..meta.columns.len())
            .filter(|&c| c != meta.primary_key && !meta.columns[c].version)
            .collect();
        let ins_opts = InsertOptions::batch_rows(options.batch_rows).grouped();
        let chunk = self.chunk_rows(&options);
        let done = self.shared.bulk_write(
            E::META,
            objects.into_iter(),
            chunk,
            Saved::<E>::default(),
            |conn, objs, acc| {
                let mut inserter = match acc.plain.take() {
                    Some(s) => conn.resume_inserter(s),
                    None => conn.inserter::<&E>(&ins_opts, false)?,
                };
                let mut to_insert: Vec<&'a mut E> = Vec::new();
                for obj in objs.drain(..) {
                    if upsert && meta.version_column().is_some() {
                        // A versioned row is never overwritten blindly: inserted when its key
                        // is free, else updated only at the version the object holds.
                        if conn.insert_if_absent(&*obj)? == 1 {
                            acc.result.inserted += 1;
                            continue;
                        }
                        acc.result.updated += update_versioned(conn, &*obj, &non_key)?;
                        acc.bumps.push(obj);
                    } else if upsert {
                        acc.result.updated += conn.upsert(&*obj)?;
                    } else if needs_insert(&*obj) {
                        if options.return_defaults {
                            to_insert.push(obj);
                        } else {
                            let obj: &'a E = obj;
                            inserter.push(obj)?;
                        }
                    } else {
                        // A key does not make an object persistent: SQLAlchemy inserts the
                        // objects that are not (F5). An UPDATE that matches no row becomes
                        // an INSERT with that key; nothing is dropped silently.
                        let version = meta
                            .version_column()
                            .map(|v| obj.column(v).to_owned_value());
                        let n = conn.update_columns(&*obj, &non_key, version.as_ref())?;
                        if n > 0 {
                            acc.result.updated += n;
                            if version.is_some() {
                                acc.bumps.push(obj);
                            }
                        } else if conn.insert_if_absent(&*obj)? == 1 {
                            acc.result.inserted += 1;
                        } else {
                            // The row is there but the UPDATE did not match it: another
                            // writer changed its version (or it appeared meanwhile).
                            return Err(stale(&*obj));
                        }
                    }
                }
                acc.plain = Some(inserter.suspend());
                if !to_insert.is_empty() {
                    let mut keyed = conn.inserter::<&E>(&ins_opts, true)?;
                    for obj in &to_insert {
                        keyed.push(&**obj)?;
                    }
                    let outcome = keyed.finish()?;
                    acc.result.inserted += outcome.rows;
                    acc.keyed.extend(to_insert.into_iter().zip(outcome.keys));
                }
                Ok(())
            },
            |conn, acc| {
                if let Some(s) = acc.plain.take() {
                    acc.result.inserted += conn.resume_inserter(s).finish()?.rows;
                }
                // Keys and versions go into the caller's objects only once every row is
                // written, and before the call's savepoint is released: a key that does not
                // fit its field fails the call with nothing written, and the objects that got
                // theirs already get their old values back.
                let key_type = meta.key_column().sql_type;
                let mut writes: Vec<WriteBack<'_, E>> = Vec::new();
                for (obj, key) in &mut acc.keyed {
                    writes.push(WriteBack {
                        value: key.to_value(key_type),
                        obj,
                        column: meta.primary_key,
                        what: "the generated key",
                    });
                }
                if let Some(vc) = meta.version_column() {
                    for obj in &mut acc.bumps {
                        let next = match obj.column(vc) {
                            ValueRef::I64(v) => Value::I64(v.wrapping_add(1)),
                            ValueRef::I32(v) => Value::I32(v.wrapping_add(1)),
                            other => other.to_owned_value(),
                        };
                        writes.push(WriteBack {
                            obj,
                            column: vc,
                            value: next,
                            what: "the bumped version",
                        });
                    }
                }
                write_back_all(&mut writes)
            },
        );
        match done {
            Ok(mut saved) => {
                saved.result.keys = saved.keyed.into_iter().map(|(_, k)| k).collect();
                Ok(saved.result)
            }
            Err(e) => Err(e),
        }
    }

    /// Inserts rows given as column → value [`Mapping`]s (SQLAlchemy's
    /// `bulk_insert_mappings`, B3). Rows are grouped by the set of columns they carry and
    /// each group is sent in batches; memory is bounded by the batch (B7). Each row is
    /// checked before its batch is sent (NULL or a missing value for a NOT NULL column); a
    /// bad row anywhere fails the call, and nothing of it is written.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct C { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String, note: Option<String> }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<C>()?;
    /// let s = engine.session();
    /// let rows = (0..3).map(|i| Mapping::from([C::NAME.to(format!("c{i}"))]));
    /// let r = s.bulk_insert_mappings(rows, BulkOptions::default().return_defaults(true))?;
    /// assert_eq!(r.keys, [Key::Int(1), Key::Int(2), Key::Int(3)]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] for a row the table would reject; database errors. Nothing of
    /// the call is written.
    pub fn bulk_insert_mappings<E: Entity>(
        &self,
        rows: impl IntoIterator<Item = Mapping<E>>,
        options: BulkOptions,
    ) -> Result<BulkResult> {
        self.insert_mapping_results(rows.into_iter().map(Ok), options)
    }

    /// [`bulk_insert_mappings`](Self::bulk_insert_mappings) with rows keyed by column name,
    /// for data whose shape is known only at run time (CSV, JSON). Unknown columns and values
    /// of the wrong type are rejected before the row's batch is sent, and nothing of the call
    /// is written.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct C { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<C>()?;
    /// let s = engine.session();
    /// let err = s.bulk_insert_dynamic::<C, _, _>(
    ///     [vec![("name", Value::from("ok"))], vec![("nmae", Value::from("typo"))]],
    ///     BulkOptions::default(),
    /// ).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::UnknownColumn);
    /// assert_eq!(s.query::<C>().count()?, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownColumn`], [`Error::TypeMismatch`], database errors: nothing of the
    /// call is written.
    pub fn bulk_insert_dynamic<E: Entity, K: AsRef<str>, P: IntoIterator<Item = (K, Value)>>(
        &self,
        rows: impl IntoIterator<Item = P>,
        options: BulkOptions,
    ) -> Result<BulkResult> {
        self.insert_mapping_results(rows.into_iter().map(Mapping::<E>::from_names), options)
    }

    fn insert_mapping_results<E: Entity>(
        &self,
        rows: impl Iterator<Item = Result<Mapping<E>>>,
        options: BulkOptions,
    ) -> Result<BulkResult> {
        let ins_opts = InsertOptions::batch_rows(options.batch_rows).grouped();
        let chunk = self.chunk_rows(&options);
        let state = self.shared.bulk_write(
            E::META,
            rows,
            chunk,
            (None, BulkResult::default()),
            |conn, chunk, (state, _)| {
                let mut inserter = match state.take() {
                    Some(s) => conn.resume_inserter(s),
                    None => conn.inserter::<Mapping<E>>(&ins_opts, options.return_defaults)?,
                };
                inserter.push_all(chunk.drain(..))?;
                *state = Some(inserter.suspend());
                Ok(())
            },
            |conn, (state, result)| {
                if let Some(s) = state.take() {
                    let outcome = conn.resume_inserter(s).finish()?;
                    result.inserted = outcome.rows;
                    result.keys = outcome.keys;
                }
                Ok(())
            },
        )?;
        Ok(state.1)
    }

    /// Updates rows given as column → value [`Mapping`]s keyed by primary key (SQLAlchemy's
    /// `bulk_update_mappings`, B4). Consecutive rows that set the same columns go in batched
    /// statements (`UPDATE … FROM unnest(…)` on PostgreSQL, `UPDATE … FROM (VALUES …)` on
    /// SQLite); a key given twice is written twice, in order. A row that carries the
    /// `#[orm(version)]` column is checked against it and bumps it; one without it still bumps
    /// it. Returns the number of rows updated; keys that match no row are skipped (unless
    /// versioned, which is a stale-data error naming every such row).
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] for a row without its key; [`Error::StaleData`]; database
    /// errors. Nothing of the call is written.
    pub fn bulk_update_mappings<E: Entity>(
        &self,
        rows: impl IntoIterator<Item = Mapping<E>>,
    ) -> Result<u64> {
        let meta = E::META;
        let pk = meta.primary_key;
        let version = meta.version_column();
        let chunk = self.chunk_rows(&BulkOptions::default());
        self.shared
            .bulk_write(
                E::META,
                rows.into_iter(),
                chunk,
                (0u64, Vec::new()),
                |conn, chunk, (updated, stale)| {
                    // (columns set, whether the row carries its version) of each row.
                    let mut shapes = Vec::with_capacity(chunk.len());
                    for row in chunk.iter() {
                        row.check(true)?;
                        let cols: Vec<usize> = row
                            .columns()
                            .filter(|&c| c != pk && Some(c) != version)
                            .collect();
                        let expected = version.is_some_and(|v| row.get(v).is_some());
                        shapes.push((cols, expected));
                    }
                    let mut start = 0;
                    while start < chunk.len() {
                        let end = start
                            + shapes[start..]
                                .iter()
                                .take_while(|s| **s == shapes[start])
                                .count();
                        let (cols, expected) = &shapes[start];
                        let run = &chunk[start..end];
                        start = end;
                        if cols.is_empty() && !expected {
                            continue;
                        }
                        let null = Value::Null;
                        let mut flat = Vec::with_capacity(run.len() * (cols.len() + 2));
                        for row in run {
                            flat.push(row.get(pk).unwrap_or(&null).as_ref());
                            flat.extend(cols.iter().map(|&c| row.get(c).unwrap_or(&null).as_ref()));
                            if let (true, Some(v)) = (expected, version) {
                                flat.push(row.get(v).unwrap_or(&null).as_ref());
                            }
                        }
                        let rule = match (expected, version) {
                            (true, _) => VersionRule::Check,
                            (false, Some(_)) => VersionRule::Bump,
                            (false, None) => VersionRule::Ignore,
                        };
                        let matched = conn.update_many::<E>(cols, rule, &flat)?;
                        if *expected {
                            stale.extend(matched.missing.iter().map(|&i| {
                                run[i]
                                    .get(pk)
                                    .and_then(|k| Key::from_value(&k.as_ref()))
                                    .map_or_else(|| "?".into(), |k| k.to_string())
                            }));
                        }
                        *updated += matched.rows;
                    }
                    chunk.clear();
                    Ok(())
                },
                // Every statement of the call ran, so that all its stale rows are named.
                |_, (_, stale)| match stale.is_empty() {
                    true => Ok(()),
                    false => Err(crate::handle::stale_keys(meta, stale, "UPDATE")),
                },
            )
            .map(|(updated, _)| updated)
    }
}
