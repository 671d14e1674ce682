//! `UPDATE` and `DELETE` by filter through the session (SQLAlchemy 2.0's ORM-enabled
//! `update()` and `delete()`), and how the objects in the identity map are kept in step
//! with what the statement changed (`synchronize_session`).

use std::cmp::Ordering;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use orm_core::{
    CmpOp, Condition, Entity, EntityMeta, Error, Key, Result, SqlType, Value, ValueRef,
};

use crate::handle::{Erased, Expired, Object, ObjectState};
use crate::session::{Session, State};

/// How an `UPDATE` or `DELETE` by filter brings the session's objects in line with the rows
/// it changed (SQLAlchemy's `synchronize_session`).
///
/// ```
/// use orm_session::Synchronize;
/// assert_eq!(Synchronize::default(), Synchronize::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronize {
    /// [`Evaluate`](Self::Evaluate) when the filter can be evaluated exactly in memory, else
    /// [`Fetch`](Self::Fetch): SQLAlchemy's default (`"auto"`).
    #[default]
    Auto,
    /// The filter is evaluated on the objects of the identity map: those it matches take the
    /// new values (update) or are deleted (delete). Refused before any SQL when the filter
    /// cannot be evaluated exactly in memory: `LIKE` (case rules differ between databases),
    /// ordering of text (collations), decimals and JSON, filters across relations. Objects
    /// whose columns in the filter are expired are left to their reload.
    Evaluate,
    /// The statement returns the keys of the rows it changed (`RETURNING`); those objects
    /// have the changed columns expired, so their next access loads them (update), or are
    /// deleted (delete).
    Fetch,
    /// The objects are left as they are: loaded ones may show what the rows held before,
    /// until they are expired (SQLAlchemy's `False`).
    None,
}

/// What a statement by filter does.
pub(crate) enum Write {
    /// `UPDATE … SET` these columns.
    Update(Vec<(usize, Value)>),
    Delete,
}

impl Session {
    /// Runs an `UPDATE` or `DELETE` of the rows of `E` that `filter` matches, inside the
    /// session's transaction (begun if need be, after an autoflush), then synchronizes the
    /// identity map. Returns the number of rows changed.
    pub(crate) fn write_where<E: Entity>(
        &self,
        filter: Option<&Condition>,
        write: &Write,
        sync: Synchronize,
    ) -> Result<u64> {
        let meta = E::META;
        if let Write::Update(values) = write {
            if values.is_empty() {
                return Err(Error::InvalidState {
                    message: format!(
                        "{} (table `{}`): an UPDATE that sets nothing",
                        meta.name, meta.table
                    ),
                });
            }
            if values.iter().any(|(c, _)| *c == meta.primary_key) {
                return Err(Error::InvalidState {
                    message: format!(
                        "{} (table `{}`): an UPDATE by filter cannot change the primary key (the \
                         objects of the identity map are known by it); change the key of one \
                         object at a time, or use `Session::execute`",
                        meta.name, meta.table
                    ),
                });
            }
        }
        let evaluable = filter.is_none_or(|c| can_evaluate(meta, c));
        let mode = match sync {
            Synchronize::Auto if evaluable => Synchronize::Evaluate,
            Synchronize::Auto => Synchronize::Fetch,
            Synchronize::Evaluate if !evaluable => {
                return Err(Error::InvalidState {
                    message: format!(
                        "{} (table `{}`): the filter cannot be evaluated in memory exactly (LIKE, \
                         ordering of text, decimals, JSON or a relation); use Synchronize::Fetch \
                         or Synchronize::Auto",
                        meta.name, meta.table
                    ),
                });
            }
            other => other,
        };
        let mut st = self.shared.lock()?;
        st.ready()?;
        let r = (|| {
            if st.autoflushes() {
                self.shared.flush_now(&mut st)?;
            }
            let conn = st.conn(self.engine())?;
            self.engine().ensure_checked(meta, conn)?;
            if !conn.in_transaction() {
                conn.begin()?;
            }
            let fetch = mode == Synchronize::Fetch;
            conn.write_atomically(|c| match write {
                Write::Update(values) => c.update_where::<E>(values, filter, fetch),
                Write::Delete => c.delete_where::<E>(filter, fetch),
            })
        })();
        let (n, keys) = st.settle(r)?;
        // The statement stands; bringing the loaded objects in step runs users' conversions
        // (reading and setting fields), which may panic. Then which objects it changed is
        // not known: every loaded object of `E` reloads what the statement may have written.
        let synced = catch_unwind(AssertUnwindSafe(|| {
            synchronize::<E>(&mut st, filter, write, mode, &keys)
        }));
        if let Err(panic) = synced {
            let mut cols: Vec<usize> = match write {
                Write::Update(values) => values.iter().map(|(c, _)| *c).collect(),
                Write::Delete => (0..meta.columns.len()).collect(),
            };
            cols.extend(meta.version_column());
            for obj in live::<E>(&mut st) {
                let mut m = obj.meta.lock();
                m.expired = m.expired.with(&cols);
                if m.expired == Expired::ALL {
                    m.snapshot = None;
                }
            }
            resume_unwind(panic);
        }
        Ok(n)
    }
}

/// Brings the loaded objects in step with an UPDATE or DELETE by filter that is done
/// (see [`Session::write_where`]).
fn synchronize<E: Entity>(
    st: &mut State,
    filter: Option<&Condition>,
    write: &Write,
    mode: Synchronize,
    keys: &[Key],
) {
    let meta = E::META;
    match (mode, write) {
        (Synchronize::Evaluate, Write::Update(values)) => {
            evaluate_update::<E>(st, filter, values);
        }
        (Synchronize::Evaluate, Write::Delete) => {
            let matched: Vec<Arc<Object<E>>> = live::<E>(st)
                .into_iter()
                .filter(|o| {
                    let Some(value) = o.value.try_read() else {
                        return false;
                    };
                    let m = o.meta.lock();
                    usable(&m, filter, meta.columns.len())
                        && filter.is_none_or(|c| eval(c, &*value) == Some(true))
                })
                .collect();
            for obj in matched {
                deleted(st, obj);
            }
        }
        (Synchronize::Fetch, Write::Update(values)) => {
            let mut cols: Vec<usize> = values.iter().map(|(c, _)| *c).collect();
            cols.extend(meta.version_column());
            for key in keys {
                if let Some(obj) = st.maps.get::<E>(key) {
                    let mut m = obj.meta.lock();
                    m.expired = m.expired.with(&cols);
                    if m.expired == Expired::ALL {
                        m.snapshot = None;
                    }
                }
            }
        }
        (Synchronize::Fetch, Write::Delete) => {
            let found: Vec<Arc<Object<E>>> = keys
                .iter()
                .filter_map(|k: &Key| st.maps.get::<E>(k))
                .collect();
            for obj in found {
                deleted(st, obj);
            }
        }
        _ => {}
    }
}

/// The live objects of `E` in the identity map.
fn live<E: Entity>(st: &mut State) -> Vec<Arc<Object<E>>> {
    st.maps.typed::<E>().live().collect()
}

/// Whether an object takes part in evaluation: persistent, not marked for deletion, and
/// with every column of the filter loaded.
fn usable(m: &crate::handle::Meta, filter: Option<&Condition>, ncols: usize) -> bool {
    if m.state != ObjectState::Persistent || m.marked_delete {
        return false;
    }
    if m.expired == Expired::NO {
        return true;
    }
    if m.expired == Expired::ALL {
        return false;
    }
    let mut cols = Vec::new();
    if let Some(c) = filter {
        columns(c, &mut cols);
    }
    let expired = m.expired.columns(ncols);
    !cols.iter().any(|c| expired.contains(c))
}

/// An object the statement deleted: out of the identity map, `Deleted` until the
/// transaction ends (a rollback makes it persistent again, as a flushed delete).
fn deleted<E: Entity>(st: &mut State, obj: Arc<Object<E>>) {
    let erased: Arc<dyn Erased> = obj;
    erased.remove_from(&mut st.maps);
    st.deleted.retain(|d| !Arc::ptr_eq(&d.obj, &erased));
    {
        let mut m = erased.meta();
        m.state = ObjectState::Deleted;
        m.marked_delete = false;
    }
    st.deleted_in_tx.push(erased);
}

/// `Evaluate` for an UPDATE: the matching objects take the new values, as if loaded with
/// them (the snapshot too, so that the flush sees no change), and a bumped version. An object
/// whose value is borrowed by a guard has the columns expired instead.
fn evaluate_update<E: Entity>(
    st: &mut State,
    filter: Option<&Condition>,
    values: &[(usize, Value)],
) {
    let meta = E::META;
    let bump = meta
        .version_column()
        .filter(|v| !values.iter().any(|(c, _)| c == v));
    let mut cols: Vec<usize> = values.iter().map(|(c, _)| *c).collect();
    cols.extend(bump);
    for obj in live::<E>(st) {
        // Lock order everywhere: value before meta; never block on a value here.
        let value = obj.value.try_write();
        let mut m = obj.meta.lock();
        if !usable(&m, filter, meta.columns.len()) {
            continue;
        }
        let Some(mut value) = value else {
            // Borrowed: whether it matches cannot be read safely now; its reload will tell.
            m.expired = m.expired.with(&cols);
            continue;
        };
        if filter.is_some_and(|c| eval(c, &*value) != Some(true)) {
            continue;
        }
        let mut ok = true;
        for (c, v) in values {
            ok &= value.set_column(*c, v.as_ref()).is_ok();
        }
        if let Some(vc) = bump {
            let next = match value.column(vc) {
                ValueRef::I64(v) => Some(Value::I64(v.wrapping_add(1))),
                ValueRef::I32(v) => Some(Value::I32(v.wrapping_add(1))),
                ValueRef::I16(v) => Some(Value::I16(v.wrapping_add(1))),
                _ => None,
            };
            ok &= next.is_some_and(|n| value.set_column(vc, n.as_ref()).is_ok());
        }
        if !ok {
            m.expired = m.expired.with(&cols);
            continue;
        }
        if let Some(snapshot) = m.snapshot.as_mut() {
            for &c in &cols {
                snapshot.set(c, value.column(c));
            }
        }
    }
}

/// The columns a condition reads.
fn columns(c: &Condition, out: &mut Vec<usize>) {
    match c {
        Condition::Compare { column, .. }
        | Condition::Like { column, .. }
        | Condition::In { column, .. }
        | Condition::IsNull { column } => out.push(*column),
        Condition::And(all) | Condition::Or(all) => all.iter().for_each(|c| columns(c, out)),
        Condition::Not(inner) => columns(inner, out),
        _ => {}
    }
}

/// Whether `c` gives in memory exactly what the database would: comparisons of numbers,
/// booleans, UUIDs, bytes, dates and times, and equality of text, with SQL's rules for
/// NULL; not `LIKE` (SQLite's is case-insensitive, PostgreSQL's is not), ordering of text
/// (collations), decimals and JSON (the database compares them as numbers and documents),
/// nor relations.
pub(crate) fn can_evaluate(meta: &EntityMeta, c: &Condition) -> bool {
    let fits = |column: usize, op: CmpOp, v: &Value| {
        let ty = meta.columns[column].sql_type;
        v.is_null()
            || match ty {
                SqlType::I16 | SqlType::I32 | SqlType::I64 | SqlType::F32 | SqlType::F64 => {
                    matches!(
                        v,
                        Value::I16(_)
                            | Value::I32(_)
                            | Value::I64(_)
                            | Value::F32(_)
                            | Value::F64(_)
                    )
                }
                SqlType::Bool => matches!(v, Value::Bool(_)),
                SqlType::Text => matches!(op, CmpOp::Eq | CmpOp::Ne) && matches!(v, Value::Text(_)),
                SqlType::Uuid => matches!(v, Value::Uuid(_)),
                SqlType::Blob => matches!(v, Value::Blob(_)),
                SqlType::Date => matches!(v, Value::Date(_)),
                SqlType::Time => matches!(v, Value::Time(_)),
                SqlType::DateTime | SqlType::Timestamp => {
                    matches!(v, Value::DateTime(_) | Value::Timestamp(_))
                }
                _ => false,
            }
    };
    match c {
        Condition::Compare { column, op, value } => {
            matches!(
                op,
                CmpOp::Eq | CmpOp::Ne | CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge
            ) && fits(*column, *op, value)
        }
        Condition::In { column, values } => values.iter().all(|v| fits(*column, CmpOp::Eq, v)),
        Condition::IsNull { .. } => true,
        Condition::And(all) | Condition::Or(all) => all.iter().all(|c| can_evaluate(meta, c)),
        Condition::Not(inner) => can_evaluate(meta, inner),
        _ => false,
    }
}

/// SQL's three-valued result of `c` on a row: `None` is unknown (a NULL was compared).
pub(crate) fn eval<E: Entity>(c: &Condition, row: &E) -> Option<bool> {
    match c {
        Condition::Compare { column, op, value } => {
            let ord = compare(row.column(*column), value.as_ref())?;
            Some(match op {
                CmpOp::Eq => ord == Ordering::Equal,
                CmpOp::Ne => ord != Ordering::Equal,
                CmpOp::Lt => ord == Ordering::Less,
                CmpOp::Le => ord != Ordering::Greater,
                CmpOp::Gt => ord == Ordering::Greater,
                CmpOp::Ge => ord != Ordering::Less,
                // An operator added later is not evaluable (`can_evaluate`).
                _ => return None,
            })
        }
        Condition::In { column, values } => {
            let v = row.column(*column);
            let mut unknown = false;
            for operand in values {
                match compare(v.clone(), operand.as_ref()) {
                    Some(Ordering::Equal) => return Some(true),
                    Some(_) => {}
                    None => unknown = true,
                }
            }
            if unknown { None } else { Some(false) }
        }
        Condition::IsNull { column } => Some(row.column(*column).is_null()),
        Condition::And(all) => {
            let mut unknown = false;
            for c in all {
                match eval(c, row) {
                    Some(false) => return Some(false),
                    None => unknown = true,
                    Some(true) => {}
                }
            }
            if unknown { None } else { Some(true) }
        }
        Condition::Or(any) => {
            let mut unknown = false;
            for c in any {
                match eval(c, row) {
                    Some(true) => return Some(true),
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            if unknown { None } else { Some(false) }
        }
        Condition::Not(inner) => eval(inner, row).map(|b| !b),
        // Not evaluable (`can_evaluate` says so before any SQL): never a match.
        _ => Some(false),
    }
}

/// How two values compare as the database compares them; `None` when either is NULL (or
/// they are not comparable).
fn compare(a: ValueRef<'_>, b: ValueRef<'_>) -> Option<Ordering> {
    fn int(v: &ValueRef<'_>) -> Option<i64> {
        match v {
            ValueRef::I16(i) => Some(i64::from(*i)),
            ValueRef::I32(i) => Some(i64::from(*i)),
            ValueRef::I64(i) => Some(*i),
            _ => None,
        }
    }
    #[allow(clippy::cast_precision_loss)]
    fn float(v: &ValueRef<'_>) -> Option<f64> {
        match v {
            ValueRef::F32(f) => Some(f64::from(*f)),
            ValueRef::F64(f) => Some(*f),
            other => int(other).map(|i| i as f64),
        }
    }
    if let (Some(x), Some(y)) = (int(&a), int(&b)) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (float(&a), float(&b)) {
        return x.partial_cmp(&y);
    }
    match (&a, &b) {
        (ValueRef::Bool(x), ValueRef::Bool(y)) => Some(x.cmp(y)),
        (ValueRef::Text(x), ValueRef::Text(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (ValueRef::Uuid(x), ValueRef::Uuid(y)) => Some(x.cmp(y)),
        (ValueRef::Blob(x), ValueRef::Blob(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (ValueRef::Date(x), ValueRef::Date(y)) => Some(x.cmp(y)),
        (ValueRef::Time(x), ValueRef::Time(y)) => Some(x.cmp(y)),
        (
            ValueRef::DateTime(x) | ValueRef::Timestamp(x),
            ValueRef::DateTime(y) | ValueRef::Timestamp(y),
        ) => Some(x.cmp(y)),
        _ => None,
    }
}
