//! `Session`: identity map, unit-of-work flush, transactions, expiry.

use std::collections::{HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use orm_core::{Connection, Entity, Error, ErrorKind, Key, Result, SelectSpec, TxStatus};
use parking_lot::{Mutex, MutexGuard};

use crate::engine::Engine;
use crate::handle::{
    AnyHandle, Columns, Doomed, Entry, Erased, Expired, FkWrite, Handle, IdentityMap, Joining,
    Maps, Meta, Object, ObjectState, Releasing, Tie, Written,
};
use crate::query::Query;

/// A list of tracked objects of any entity.
type Objects = Vec<Arc<dyn Erased>>;

/// What the session state lock protects.
pub(crate) struct State {
    /// Checked out of the engine's pool at the first statement, given back at commit,
    /// rollback and close (when no transaction is left open).
    conn: Option<crate::engine::PooledConnection>,
    pub(crate) maps: Maps,
    /// Added, not flushed, in `add` order.
    pending: Vec<Arc<dyn Erased>>,
    /// Marked by `delete`, not flushed, with the keys they were marked under. A queue, so
    /// that a row switch (F1) takes its object out in a step when it is near either end
    /// (replacements added in the order of the deletes, or in reverse).
    pub(crate) deleted: VecDeque<Doomed>,
    /// Deleted by a flush of the current transaction (restored by rollback).
    pub(crate) deleted_in_tx: Vec<Arc<dyn Erased>>,
    /// While `commit` flushes: the objects its flush deleted, still in their identity map,
    /// settled with the outcome of the COMMIT in one visit each (the commit's pass over the
    /// identity maps, or `Erased::deleted` when the COMMIT fails) rather than one after the
    /// flush and one after the COMMIT.
    deleted_by_commit: Option<Vec<Doomed>>,
    /// While `commit` flushes, when the COMMIT is to expire every object: the written
    /// objects of its flush, whose claims end in the commit's pass over the identity maps
    /// (one visit each) rather than in a pass of their own after the flush.
    written_by_commit: Option<WrittenByCommit>,
    autoflush: bool,
    /// `no_autoflush` scopes open now: autoflush is off while any is.
    no_autoflush: u32,
    expire_on_commit: bool,
    closed: bool,
    /// A flush of the current transaction inserted objects (rollback must find them).
    inserted_in_tx: bool,
    /// The objects a flush of the current transaction inserted, held strongly until the
    /// transaction ends (the identity map holds objects weakly), so that a rollback finds
    /// them and they stay the session's objects for their keys meanwhile.
    inserted: Objects,
    /// The session's work lives in an open transaction: the driver reported one after a
    /// call of this session. Before each call the driver is asked again, and a transaction
    /// that is gone or aborted meanwhile fails the session (see `ready`).
    in_tx: bool,
    /// Why the transaction failed. Until `rollback()`, every call but `rollback` and
    /// `close` fails with `PendingRollback`.
    failed: Option<String>,
    /// Bulk calls in progress: they pull the caller's rows with no lock held, and the
    /// transaction must not end under them.
    bulk: u32,
    /// Links were made (`Session::link`) in the current transaction: they are dropped when it
    /// ends.
    pub(crate) linked: bool,
    /// A pending object takes over a deleted object's row (F1) or may wait for a parent's
    /// key: the flush claims every pending object before it plans its inserts. Without
    /// one, each object is claimed by its own insert, in the pass that sends it.
    switching: bool,
    /// Parents loaded through many-to-one relations, held until the transaction ends or they
    /// are expired (the identity map alone holds objects weakly).
    pub(crate) held: Objects,
    /// Foreign keys set to NULL by flushes of the current transaction (children left by a
    /// delete), with their values before: a rollback puts them back.
    fk_log: Vec<FkWrite>,
    /// Objects whose primary key a flush of the current transaction changed, with the key
    /// they were known by before: a rollback makes them known by it again.
    rekeyed: Vec<(Arc<dyn Erased>, Key)>,
    /// Flushes so far (numbers the links each one writes).
    flushes: u64,
    /// Streaming queries open now ([`crate::Stream`]): their cursors live on the connection,
    /// which stays checked out until they close.
    pub(crate) streams: u32,
    /// Counts the ends of the session's transactions (commit, rollback, a lost
    /// connection): a stream opened before the last end has lost its cursor.
    pub(crate) epoch: u64,
}

impl State {
    /// The session's connection, checked out of the engine on first use.
    pub(crate) fn conn(&mut self, engine: &Engine) -> Result<&Connection> {
        match self.conn {
            Some(ref c) => Ok(c),
            None => Ok(self.conn.insert(engine.connect()?)),
        }
    }

    /// The objects added and not flushed.
    pub(crate) fn pending_objects(&self) -> Objects {
        self.pending.clone()
    }

    /// Whether a load that sends SQL flushes first now (S5, F3).
    pub(crate) fn autoflushes(&self) -> bool {
        self.autoflush && self.no_autoflush == 0
    }

    /// The connection, when the session holds one.
    pub(crate) fn connection(&self) -> Option<&Connection> {
        self.conn.as_deref()
    }

    /// The connection and the identity maps at once (rows read are merged as they come).
    pub(crate) fn connection_and_maps(&mut self) -> (Option<&Connection>, &mut Maps) {
        (self.conn.as_deref(), &mut self.maps)
    }

    /// Gives the connection back to the pool unless a transaction holds this session's work.
    pub(crate) fn release_idle(&mut self) {
        if !self.in_tx
            && self.bulk == 0
            && self.streams == 0
            && self.conn.as_ref().is_some_and(|c| !c.in_transaction())
        {
            self.conn = None;
            self.epoch += 1;
        }
    }

    /// Whether the session may send SQL: open, no failed transaction pending a rollback,
    /// and the transaction that holds its work still there as far as the driver says.
    pub(crate) fn ready(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::SessionClosed);
        }
        if let Some(reason) = &self.failed {
            return Err(Error::PendingRollback {
                reason: reason.clone(),
            });
        }
        if self.in_tx {
            let status = self
                .conn
                .as_ref()
                .map_or(TxStatus::Lost, |c| c.transaction_status());
            if status != TxStatus::Active {
                return Err(self.fail(lost_reason(status)));
            }
        }
        Ok(())
    }

    fn fail(&mut self, reason: String) -> Error {
        tracing::warn!(target: "orm::session", reason = %reason, "the session's transaction failed; rollback() required");
        self.failed = Some(reason.clone());
        Error::PendingRollback { reason }
    }

    /// Records what a call that used the connection did to the transaction, as the driver
    /// reports it. After an error the driver is asked whether the transaction survived: an
    /// aborted one, or one that held the session's work and is gone, fails the session.
    pub(crate) fn settle<T>(&mut self, result: Result<T>) -> Result<T> {
        let Some(conn) = &self.conn else {
            return result;
        };
        match &result {
            Ok(_) if conn.in_transaction() => self.in_tx = true,
            // The transaction that held the session's work ended inside a call that
            // succeeded (raw `COMMIT` or `ROLLBACK` through `with_connection`, or the database
            // rolled it back): whether that work is saved cannot be told.
            Ok(_) if self.in_tx => {
                self.fail(
                    "the transaction holding the session's flushed work ended outside \
                     commit() and rollback() (a raw COMMIT or ROLLBACK, or the database rolled \
                     it back)"
                        .into(),
                );
            }
            Ok(_) => {}
            Err(e) => match conn.transaction_status() {
                TxStatus::Active => self.in_tx = true,
                TxStatus::Idle if !self.in_tx => {}
                TxStatus::Lost if !self.in_tx => {
                    // Nothing of the session's was in it: a new connection serves the next call.
                    self.conn = None;
                    self.epoch += 1;
                }
                status => {
                    let reason = format!("{} after: {e}", lost_reason(status));
                    self.fail(reason);
                }
            },
        }
        result
    }

    fn refuse_in_bulk(&self, operation: &str) -> Result<()> {
        if self.bulk > 0 {
            return Err(Error::Reentrant {
                message: format!(
                    "cannot {operation} while a bulk call of this session is in progress (its \
                     rows' iterator called the session); do it after the bulk call"
                ),
            });
        }
        Ok(())
    }
}

/// What a successful flush's statements did, for the bookkeeping after it.
#[derive(Default)]
struct Flushed {
    /// Positions in the written list of the objects an UPDATE was sent for, ascending.
    updated: Vec<usize>,
    /// Children whose foreign key was set to NULL as their parent was deleted.
    orphans: Objects,
    /// Pending objects that took over a deleted object's row.
    switched: Objects,
    /// Positions in the written list of the objects whose primary key changed, with the new
    /// key.
    rekeyed: Vec<(usize, Key)>,
}

/// The written objects of a successful flush, whose claims have not ended yet.
#[derive(Default)]
struct WrittenByCommit {
    /// The flush's written objects.
    written: Vec<Arc<dyn Erased>>,
    /// Positions in `written` of the objects an UPDATE was sent for, ascending.
    updated: Vec<usize>,
    /// Children whose foreign key the flush set to NULL.
    orphans: Objects,
}

impl WrittenByCommit {
    fn len(&self) -> usize {
        self.written.len() + self.orphans.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends the claims, with what each object's UPDATE changed.
    fn settle(self) {
        let written = self.written.into_iter();
        Self::end(written, 0, self.updated, self.orphans, false);
    }

    /// Ends the claims that the commit's pass over the identity maps did not: those of
    /// objects out of the maps. `written` is what the pass left of the written objects (those
    /// from position `from` on: it takes them from the front); it took the others' references
    /// as it ended their claims.
    fn settle_rest(
        written: impl Iterator<Item = Arc<dyn Erased>>,
        from: usize,
        updated: Vec<usize>,
        orphans: Objects,
    ) {
        Self::end(written, from, updated, orphans, true);
    }

    fn end(
        written: impl Iterator<Item = Arc<dyn Erased>>,
        from: usize,
        updated: Vec<usize>,
        orphans: Objects,
        only_claimed: bool,
    ) {
        let mut updated = updated.into_iter().skip_while(|&i| i < from).peekable();
        let written = written
            .enumerate()
            .map(|(i, obj)| (obj, updated.next_if_eq(&(from + i)).is_some()));
        for (obj, was_updated) in written.chain(orphans.into_iter().map(|o| (o, true))) {
            if !only_claimed || obj.meta().flushing {
                obj.flushed(was_updated);
            }
        }
    }
}

fn lost_reason(status: TxStatus) -> String {
    match status {
        TxStatus::Idle => "the database rolled the transaction back (SQLite does so after a full \
                           disk, an I/O error or a failed COMMIT)"
            .into(),
        TxStatus::Failed => "a statement failed inside the transaction and the database aborted \
                             it"
        .into(),
        TxStatus::Lost => "the connection to the database was lost".into(),
        other => format!("the transaction is {other:?}"),
    }
}

/// A small number for the current thread, never 0 (which means "nobody").
fn thread_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static TAG: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    TAG.try_with(|t| *t).unwrap_or(u64::MAX)
}

/// The session state, locked. Knows which thread holds it, so that user code that runs
/// under it (a `with_connection` closure, a `Field` conversion) and calls the session again
/// gets an error instead of a deadlock.
pub(crate) struct StateGuard<'a> {
    guard: MutexGuard<'a, State>,
    holder: &'a AtomicU64,
}

impl Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.guard
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        self.holder.store(0, Ordering::Relaxed);
    }
}

/// The part of a session that its handles can reach (through a `Weak`) to reload
/// themselves and to report writes.
pub(crate) struct Shared {
    engine: Engine,
    state: Mutex<State>,
    /// The thread holding `state` (0: none).
    holder: AtomicU64,
    /// What the session's objects hold of it, its list of written objects among it.
    pub(crate) tie: Arc<Tie>,
    /// Work on the state that could not lock it when it was asked for (a stream dropped
    /// inside one of the session's own calls), done at the next lock.
    later: Mutex<Vec<Later>>,
    later_pending: std::sync::atomic::AtomicBool,
}

/// Deferred work on the session state.
pub(crate) type Later = Box<dyn FnOnce(&mut State) + Send>;

impl Shared {
    /// Locks the session state.
    ///
    /// # Errors
    /// [`Error::Reentrant`] when this thread holds it already: code that runs under the
    /// lock called the session again.
    pub(crate) fn lock(&self) -> Result<StateGuard<'_>> {
        let me = thread_tag();
        if self.holder.load(Ordering::Relaxed) == me {
            return Err(Error::Reentrant {
                message: "the session was called from code running inside one of its own calls \
                          (a with_connection closure or a Field conversion); use the \
                          Connection given to the closure instead"
                    .into(),
            });
        }
        let guard = self.state.lock();
        self.holder.store(me, Ordering::Relaxed);
        let mut guard = StateGuard {
            guard,
            holder: &self.holder,
        };
        if self.later_pending.swap(false, Ordering::Relaxed) {
            let work = std::mem::take(&mut *self.later.lock());
            for f in work {
                f(&mut guard);
            }
        }
        Ok(guard)
    }

    /// Runs `f` on the state now, or at the next lock when this thread holds it already.
    pub(crate) fn later(&self, f: Later) {
        match self.lock() {
            Ok(mut st) => f(&mut st),
            Err(_) => {
                self.later.lock().push(f);
                self.later_pending.store(true, Ordering::Relaxed);
            }
        }
    }

    /// [`lock`](Self::lock) for calls that return no `Result`: a re-entrant call panics with
    /// the same message rather than deadlock.
    fn lock_now(&self) -> StateGuard<'_> {
        match self.lock() {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// The objects written since their last flush.
    pub(crate) fn modified_objects(&self) -> Objects {
        self.tie.modified.lock().objects.clone()
    }

    /// Puts objects back on the list of written objects.
    fn relist(&self, objects: Objects) {
        self.tie.modified.lock().objects.extend(objects);
    }

    pub(crate) fn reload<E: Entity>(&self, obj: &Object<E>) -> Result<()> {
        let mut st = self.lock()?;
        st.ready()?;
        let r = (|| {
            // A reload sends SQL: pending changes (of any object) go first, so that it, and
            // any later expiry, sees them (F3).
            self.autoflush_before_reload(&mut st)?;
            obj.reload(st.conn(&self.engine)?)
        })();
        st.settle(r)
    }

    /// The written objects. An object is in the list at most once: `Meta::registered` says
    /// whether it is, and is cleared only where the list is cleared or drained.
    fn take_modified(&self) -> Vec<Arc<dyn Erased>> {
        std::mem::take(&mut self.tie.modified.lock().objects)
    }

    /// A pending object that was to take over a deleted object's row leaves the session
    /// unflushed: the replaced object is back in the identity map, marked for deletion again
    /// (or, after a rollback, simply persistent).
    fn restore_replaced(st: &mut State, obj: &dyn Erased, mark_delete: bool) {
        let Some(old) = obj.meta().take_replaces() else {
            return;
        };
        {
            let mut m = old.meta();
            m.marked_delete = mark_delete;
            m.state = ObjectState::Persistent;
        }
        Arc::clone(&old).attach(&mut st.maps);
        if mark_delete {
            st.deleted.push_back(Doomed::of(old));
        }
    }

    /// The autoflush before an expired object is reloaded (F3). Where a guard the caller
    /// holds on a pending or changed object keeps the flush from claiming it, the reload goes
    /// on without it (nothing is lost: those changes stay pending), as it did before reloads
    /// autoflushed.
    fn autoflush_before_reload(&self, st: &mut State) -> Result<()> {
        if !st.autoflushes() {
            return Ok(());
        }
        match self.flush_inner(st) {
            Err(e) if e.kind() == ErrorKind::Borrowed => {
                tracing::debug!(target: "orm::session", error = %e, "autoflush before a reload skipped");
                Ok(())
            }
            other => other,
        }
    }

    /// Flushes, then records in `st` what the flush did to the transaction.
    fn flush_locked(&self, st: &mut State) -> Result<()> {
        let r = self.flush_inner(st);
        st.settle(r)
    }

    /// A flush under a lock the caller holds (autoflush of the relation loaders).
    pub(crate) fn flush_now(&self, st: &mut State) -> Result<()> {
        self.flush_inner(st)
    }

    pub(crate) fn flush_inner(&self, st: &mut State) -> Result<()> {
        // The list may hold objects that left this session since they were written (expunged,
        // adopted by another session): their changes are no longer this session's to send.
        // The claims skip them (one visit of each written object).
        let mut modified = self.take_modified();
        if st.pending.is_empty() && st.deleted.is_empty() && modified.is_empty() {
            return Ok(());
        }
        if let Err(e) = st.refuse_in_bulk("flush") {
            modified.retain(|o| o.meta().belongs_to(self));
            if st.pending.is_empty() && st.deleted.is_empty() && modified.is_empty() {
                return Ok(());
            }
            self.relist(modified);
            return Err(e);
        }
        let pending = std::mem::take(&mut st.pending);
        let deleted = Vec::from(std::mem::take(&mut st.deleted));
        // The statements of the flush are logged inside this span; `dirty` counts written
        // objects, `updated` those that really changed.
        let span = tracing::debug_span!(
            target: "orm::session",
            "flush",
            new = pending.len(),
            dirty = modified.len(),
            deleted = deleted.len(),
            updated = tracing::field::Empty,
        );
        let _entered = span.enter();
        // A panic in user code (a `Field` conversion) is caught to put the bookkeeping back
        // as it was (the statements were rolled back by `write_atomically`), then goes on.
        let mut fk_log = Vec::new();
        st.flushes += 1;
        let flush_id = st.flushes;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.flush_statements(st, &pending, &mut modified, &deleted, &mut fk_log, flush_id)
        }));
        let failure = match outcome {
            Ok(Ok(Flushed {
                updated,
                orphans,
                switched,
                rekeyed,
            })) => {
                // Known by their new keys from now on; by their old ones again after a
                // rollback.
                for (i, key) in rekeyed {
                    let obj = Arc::clone(&modified[i]);
                    if let Some(old) = Arc::clone(&obj).rekey(&mut st.maps, key) {
                        st.rekeyed.push((obj, old));
                    }
                }
                span.record("updated", updated.len() + orphans.len());
                // Inserted objects were released by their insert, as it made them persistent;
                // the written objects' claims end here, with what their UPDATE changes (or,
                // in a commit that expires, in its pass over the identity maps).
                let written = WrittenByCommit {
                    written: std::mem::take(&mut modified),
                    updated,
                    orphans,
                };
                match st.written_by_commit.as_mut() {
                    Some(by_commit) if by_commit.is_empty() => *by_commit = written,
                    _ => written.settle(),
                }
                for obj in &switched {
                    obj.unclaim();
                }
                match st.deleted_by_commit.as_mut() {
                    Some(by_commit) => by_commit.extend(deleted),
                    None => {
                        for obj in &deleted {
                            obj.deleted(&mut st.maps);
                        }
                        st.deleted_in_tx.extend(deleted.into_iter().map(|d| d.obj));
                    }
                }
                for obj in switched {
                    if let Some(old) = obj.switched(&mut st.maps) {
                        old.meta().state = ObjectState::Deleted;
                        st.deleted_in_tx.push(old);
                    }
                }
                st.inserted_in_tx |= !pending.is_empty();
                st.switching = false;
                if st.inserted.is_empty() {
                    st.inserted = pending;
                } else {
                    st.inserted.extend(pending);
                }
                st.fk_log.extend(fk_log);
                return Ok(());
            }
            Ok(Err(e)) => Ok(e),
            Err(panic) => Err(panic),
        };
        for obj in pending.iter().chain(&modified) {
            obj.unclaim();
        }
        // Objects made persistent by inserts that were rolled back are pending again, with
        // the foreign keys the flush wrote put back and their links to be written again.
        for obj in &pending {
            obj.unpersist(&mut st.maps);
        }
        for obj in pending.iter().chain(&modified) {
            obj.unresolve_links(flush_id);
        }
        for w in fk_log.iter().rev() {
            w.object.restore_column(w.column, &w.old);
        }
        st.pending = pending;
        st.deleted = deleted.into();
        self.relist(modified);
        match failure {
            Ok(e) => Err(e),
            Err(panic) => resume_unwind(panic),
        }
    }

    /// Sends updates, then inserts, then deletes, all or nothing (see `write_atomically`).
    fn flush_statements(
        &self,
        st: &mut State,
        pending: &[Arc<dyn Erased>],
        modified: &mut Vec<Arc<dyn Erased>>,
        deleted: &[Doomed],
        fk_log: &mut Vec<FkWrite>,
        flush_id: u64,
    ) -> Result<Flushed> {
        // Whether a pending object takes over a deleted object's row: known from the claim,
        // which looks at every object anyway.
        let mut switching = false;
        let mut linked = Vec::new();
        // Without row switches or links, what a claim finds out is known: the inserts claim
        // their objects themselves, in the pass that sends them.
        let claim_first = st.switching || st.linked;
        if claim_first {
            for (i, obj) in pending.iter().enumerate() {
                crate::handle::warm(pending, i);
                let claim = obj.claim(i)?;
                switching |= claim.switch;
                if claim.linked {
                    linked.push(i);
                }
            }
        }
        let mut switched: Objects = Vec::new();
        // The written objects' UPDATEs (by position in `modified`), and the positions of
        // persistent objects linked to a parent that has no key yet: updated once the
        // parent's insert has given it one. One visit of each object claims it and finds
        // its changes.
        let mut updates: Vec<(usize, Columns)> = Vec::new();
        let mut rekeys: Vec<(usize, Columns)> = Vec::new();
        let mut relinked: Vec<usize> = Vec::new();
        // Objects that left the session leave the list here, unclaimed; after a failed
        // claim, the rest are only looked at for that, as the failed flush releases every
        // object of the list.
        let mut failed = None;
        let mut i = 0;
        let mut foreign = Vec::new();
        for (at, obj) in modified.iter().enumerate() {
            if failed.is_some() {
                if !obj.meta().belongs_to(self) {
                    foreign.push(at);
                }
                continue;
            }
            crate::handle::warm(modified, at);
            match obj.claim_written(self) {
                Ok(Written::Foreign) => {
                    foreign.push(at);
                    continue;
                }
                Ok(Written::Nothing) => {}
                Ok(Written::Update(cols)) => updates.push((i, cols)),
                Ok(Written::Rekey(cols)) => rekeys.push((i, cols)),
                Ok(Written::Relink) => relinked.push(i),
                Err(e) => failed = Some(e),
            }
            i += 1;
        }
        if !foreign.is_empty() {
            let mut at = 0;
            let mut next = foreign.into_iter().peekable();
            modified.retain(|_| {
                let keep = next.next_if_eq(&at).is_none();
                at += 1;
                keep
            });
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let modified: &[Arc<dyn Erased>] = modified;
        if pending.is_empty()
            && updates.is_empty()
            && rekeys.is_empty()
            && deleted.is_empty()
            && relinked.is_empty()
        {
            return Ok(Flushed::default());
        }
        st.conn(&self.engine)?;
        let State { conn, maps, .. } = st;
        let Some(conn) = conn.as_ref() else {
            return Err(Error::InvalidState {
                message: "the session has no connection to flush on".into(),
            });
        };
        // Row switches (F1) are UPDATEs; the rest of the pending objects are inserted, parents
        // before children (by the links and foreign keys among them).
        let inserts_owned: Objects;
        let groups = if switching {
            let (switches, inserts): (Objects, Objects) = pending
                .iter()
                .cloned()
                .partition(|o| o.meta().replaces().is_some());
            switched = switches;
            inserts_owned = inserts;
            crate::plan::insert_groups(&inserts_owned, None)?
        } else {
            // The claims put each object's position in `pending` on it.
            crate::plan::insert_groups(pending, Some(&linked))?
        };
        let deleted = crate::plan::delete_order(deleted);
        // Children that the deletes leave behind get NULL in their foreign key first.
        let joining = Joining::new(&self.tie);
        let orphans = if deleted.is_empty() {
            Vec::new()
        } else {
            crate::relations::orphans(conn, maps, &joining, &deleted)?
        };
        for (child, column) in &orphans {
            let old = child.column_value(*column)?;
            child.restore_column(*column, &orm_core::Value::Null);
            fk_log.push(FkWrite {
                object: Arc::clone(child),
                column: *column,
                old,
            });
        }
        let named = crate::relations::name_references;
        let mut new_keys: Vec<(usize, Key)> = Vec::new();
        conn.write_atomically(|conn| {
            // Each entity's mapping is checked against its live table before its first write
            // (once per run of objects of one entity), inside the transaction: on SQLite it
            // holds the write lock, so a busy writer elsewhere cannot starve the check.
            let mut last: Option<&'static orm_core::EntityMeta> = None;
            for meta in pending
                .iter()
                .chain(deleted.iter().map(|d| &d.obj))
                .map(|o| o.entity())
                .chain(
                    updates
                        .iter()
                        .chain(&rekeys)
                        .map(|(i, _)| modified[*i].entity()),
                )
            {
                if last.is_none_or(|l| !l.is(meta)) {
                    self.engine.ensure_checked(meta, conn)?;
                    last = Some(meta);
                }
            }
            // SQLAlchemy's order: UPDATEs before INSERTs, so that a unique value moved away
            // from one row can be given to a new one in the same flush (F4); DELETEs last.
            // A changed primary key goes first, one row at a time, found by the old key.
            for (i, cols) in &rekeys {
                let obj = &modified[*i];
                let key = obj
                    .update_rekey(conn, &cols.to_vec())
                    .map_err(|e| named(e, obj.entity(), false))?;
                new_keys.push((*i, key));
            }
            for group in crate::plan::update_batches(modified, &updates) {
                let (at, cols) = &updates[group[0]];
                let obj = &modified[*at];
                let cols = cols.to_vec();
                if group.len() == 1 {
                    obj.update(conn, &cols)
                } else {
                    let objs: Vec<&Arc<dyn Erased>> =
                        group.iter().map(|&i| &modified[updates[i].0]).collect();
                    obj.update_group(&objs, &cols, conn)
                }
                .map_err(|e| named(e, obj.entity(), false))?;
            }
            for obj in &switched {
                obj.switch_row(conn)?;
            }
            for group in groups.iter() {
                group[0]
                    .insert_group(group, conn, maps, flush_id, !claim_first)
                    .map_err(|e| named(e, group[0].entity(), false))?;
            }
            for &i in &relinked {
                let obj = &modified[i];
                obj.resolve_links(flush_id)?;
                let cols = obj.changes()?;
                if cols.contains(obj.entity().primary_key) {
                    let key = obj
                        .update_rekey(conn, &cols.to_vec())
                        .map_err(|e| named(e, obj.entity(), false))?;
                    new_keys.push((i, key));
                } else if !cols.is_empty() {
                    obj.update(conn, &cols.to_vec())
                        .map_err(|e| named(e, obj.entity(), false))?;
                }
            }
            for (child, column) in &orphans {
                child
                    .update(conn, &[*column])
                    .map_err(|e| named(e, child.entity(), false))?;
            }
            for group in crate::plan::delete_batches(&deleted) {
                let obj = group[0];
                if group.len() == 1 {
                    obj.delete(conn)
                } else {
                    obj.delete_group(&group, conn)
                }
                .map_err(|e| named(e, obj.entity(), true))?;
            }
            Ok(())
        })
        .map(|()| {
            let mut updated: Vec<usize> = updates.into_iter().map(|(i, _)| i).collect();
            if !relinked.is_empty() || !rekeys.is_empty() {
                updated.extend(relinked);
                updated.extend(rekeys.iter().map(|(i, _)| *i));
                updated.sort_unstable();
            }
            Flushed {
                updated,
                orphans: orphans.into_iter().map(|(o, _)| o).collect(),
                switched,
                rekeyed: new_keys,
            }
        })
    }

    /// ROLLBACK, then put the objects back as they were before the transaction. With
    /// `expire`, objects that stay persistent are expired (rollback); without, they keep
    /// their loaded values (close, which detaches them next).
    fn rollback_locked(&self, st: &mut State, expire: bool) -> Result<()> {
        st.epoch += 1;
        let mut result = match &st.conn {
            Some(conn) => conn.rollback(),
            None => Ok(()),
        };
        if st.conn.as_ref().is_some_and(|c| !c.is_usable()) {
            // The server ended the transaction with the connection: nothing is left to roll
            // back. The next call checks out a new connection.
            st.conn = None;
            result = Ok(());
        }
        match &result {
            Ok(()) => {
                st.failed = None;
                st.in_tx = false;
                st.release_idle();
            }
            Err(e) => {
                let reason = format!("ROLLBACK failed: {e}");
                st.fail(reason);
            }
        }
        // Objects whose key a flush changed are known by their old keys again: the rows have
        // them back.
        for (obj, old) in std::mem::take(&mut st.rekeyed).into_iter().rev() {
            if obj.meta().belongs_to(self) {
                obj.rekey(&mut st.maps, old);
            }
        }
        // Foreign keys written from links go back to what they were; links are forgotten.
        for w in std::mem::take(&mut st.fk_log).into_iter().rev() {
            w.object.restore_column(w.column, &w.old);
        }
        let linked = std::mem::take(&mut st.linked);
        st.held.clear();
        st.switching = false;
        for obj in std::mem::take(&mut st.pending) {
            if linked {
                obj.meta().clear_links();
            }
            Self::restore_replaced(st, &*obj, false);
            obj.meta().detach(ObjectState::Transient);
        }
        for d in std::mem::take(&mut st.deleted) {
            d.obj.meta().marked_delete = false;
        }
        // Objects inserted in the transaction must be found (they leave the identity map); a
        // plain rollback also expires every object. Otherwise (closing a session that inserted
        // nothing) there is no need to visit them.
        let inserted = std::mem::take(&mut st.inserted_in_tx);
        // Kept alive until the pass below has seen them.
        let _inserted = std::mem::take(&mut st.inserted);
        if expire || inserted || linked {
            st.maps.retain(&mut |obj| {
                if linked {
                    // The foreign keys its links wrote go back; the links are forgotten.
                    obj.unresolve_links(0);
                    obj.meta().clear_links();
                }
                let (new, generated) = {
                    let m = obj.meta();
                    (m.new_in_tx, m.key_generated)
                };
                if new {
                    if generated {
                        obj.clear_generated_key();
                    }
                    let mut m = obj.meta();
                    m.detach(ObjectState::Transient);
                    m.key = None;
                    m.key_generated = false;
                    false
                } else {
                    let mut m = obj.meta();
                    m.registered = false;
                    if expire {
                        m.expire_all();
                    }
                    true
                }
            });
        }
        for obj in std::mem::take(&mut st.deleted_in_tx) {
            if linked {
                obj.unresolve_links(0);
            }
            {
                let mut m = obj.meta();
                m.clear_links();
                m.state = ObjectState::Persistent;
                m.registered = false;
                if expire {
                    m.expire_all();
                }
            }
            obj.attach(&mut st.maps);
        }
        self.tie.modified.lock().objects.clear();
        result
    }

    fn shutdown(&self) -> Result<()> {
        // Close and drop are not re-entrant calls of user code; waiting is right here.
        let mut st = StateGuard {
            guard: self.state.lock(),
            holder: &self.holder,
        };
        if st.closed {
            return Ok(());
        }
        st.closed = true;
        let in_tx = st.in_tx || st.conn.as_ref().is_some_and(|c| c.in_transaction());
        let result = if in_tx
            || st.failed.is_some()
            || st.inserted_in_tx
            || !st.pending.is_empty()
            || !st.deleted.is_empty()
            || !st.deleted_in_tx.is_empty()
        {
            self.rollback_locked(&mut st, false)
        } else {
            Ok(())
        };
        // No pass over the objects: once the session's `Arc` is gone (right after this), every
        // handle reports `Detached` through its dead `Weak`. (Links live only in a
        // transaction, which the rollback above ended.)
        st.held.clear();
        st.maps.clear();
        // Back to the pool, which rolls back what is left and resets it.
        st.conn = None;
        result
    }

    fn check_open(st: &State) -> Result<()> {
        if st.closed {
            Err(Error::SessionClosed)
        } else {
            Ok(())
        }
    }

    /// Runs a bulk write of `rows` as one all-or-nothing step of the session's transaction,
    /// without running the caller's iterator under the session lock: rows are pulled in
    /// chunks with no lock held (so the iterator may read, and reload, this session's
    /// objects), and each chunk is written with `write` under the lock. The savepoint (or
    /// the transaction, outside one) is opened at the first row, so an empty call sends
    /// nothing. `finish` runs under the lock once every chunk is written, before the
    /// savepoint is released; an error or a panic anywhere rolls back all of the call.
    pub(crate) fn bulk_write<I: Iterator, A>(
        &self,
        meta: &'static orm_core::EntityMeta,
        rows: I,
        chunk: usize,
        mut acc: A,
        mut write: impl FnMut(&Connection, &mut Vec<I::Item>, &mut A) -> Result<()>,
        finish: impl FnOnce(&Connection, &mut A) -> Result<()>,
    ) -> Result<A> {
        const SP: &str = "orm_bulk";
        let mut rows = rows;
        // `Some(nested)` once the savepoint (nested) or the transaction is open.
        let mut open: Option<bool> = None;
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<()> {
            let mut buf = Vec::with_capacity(chunk);
            loop {
                buf.extend(rows.by_ref().take(chunk));
                let mut st = self.lock()?;
                st.ready()?;
                if buf.is_empty() {
                    if open.is_some() {
                        let conn = st.conn(&self.engine)?;
                        finish(conn, &mut acc)?;
                    }
                    return Ok(());
                }
                let conn = st.conn(&self.engine)?;
                if open.is_none() {
                    self.engine.ensure_checked(meta, conn)?;
                    let nested = conn.in_transaction();
                    if nested {
                        conn.savepoint(SP)?;
                    } else {
                        conn.begin()?;
                    }
                    open = Some(nested);
                    st.bulk += 1;
                }
                let conn = st.conn(&self.engine)?;
                write(conn, &mut buf, &mut acc)?;
                buf.clear();
            }
        }));
        let Some(nested) = open else {
            return match outcome {
                Ok(r) => r.map(|()| acc),
                Err(panic) => resume_unwind(panic),
            };
        };
        let mut st = StateGuard {
            guard: self.state.lock(),
            holder: &self.holder,
        };
        st.bulk -= 1;
        let Some(conn) = st.conn.as_ref() else {
            return Err(st.fail(lost_reason(TxStatus::Lost)));
        };
        let undo = || conn.undo_write(nested.then_some(SP));
        let result = match outcome {
            Ok(Ok(())) if nested => conn.release(SP),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                undo();
                Err(e)
            }
            Err(panic) => {
                undo();
                let r: Result<()> = Err(Error::InvalidState {
                    message: "a panic unwound through a bulk call".into(),
                });
                let _ = st.settle(r);
                drop(st);
                resume_unwind(panic)
            }
        };
        st.settle(result).map(|()| acc)
    }
}

/// A unit of work: an identity map of the objects it loaded or added, the changes made to
/// them, and a database transaction that it flushes them into.
///
/// Semantics follow SQLAlchemy's `Session` (DESIGN.md S1–S12):
///
/// - one object per row ([`get`](Self::get) and queries return pointer-equal handles);
/// - changes made through [`Handle::write`] are found at flush without any call;
/// - [`flush`](Self::flush) sends inserts, updates, deletes, all or nothing;
/// - [`commit`](Self::commit) flushes, commits and (by default) expires every object;
/// - [`rollback`](Self::rollback) undoes the transaction and puts objects back as they were;
/// - expired objects reload on their next access.
///
/// On SQLite the transaction begins at the session's first write (`BEGIN IMMEDIATE`, taking
/// the write lock); until then each read sees the latest committed data.
///
/// ```
/// use orm_session::prelude::*;
///
/// #[derive(Entity, Debug, Clone)]
/// struct Customer {
///     #[orm(primary_key, auto_increment)]
///     id: Option<i64>,
///     name: String,
/// }
///
/// # fn main() -> orm_session::Result<()> {
/// let engine = Engine::sqlite_memory()?;
/// engine.create_table::<Customer>()?;
/// let session = engine.session();
/// let ada = session.add(Customer { id: None, name: "Ada".into() })?;
/// session.commit()?;                       // INSERT, COMMIT; `ada` now has its key
/// let id = ada.read()?.id.expect("assigned");
///
/// let same = session.get::<Customer>(id)?.expect("row");
/// assert!(same == ada);                     // one object per row
/// same.write()?.name = "Ada Lovelace".into();
/// assert_eq!(session.dirty_objects()?.len(), 1);
/// session.commit()?;                       // UPDATE "customer" SET "name" = ? WHERE "id" = ?
///
/// let found = session.query::<Customer>().filter(Customer::NAME.like("Ada%")).one()?;
/// assert!(found == ada);
/// # Ok(()) }
/// ```
pub struct Session {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(st) = self.shared.state.try_lock() else {
            return f.debug_struct("Session").finish_non_exhaustive();
        };
        f.debug_struct("Session")
            .field("tracked", &st.maps.len())
            .field("pending", &st.pending.len())
            .field("deleted", &st.deleted.len())
            .field("failed", &st.failed)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(engine: Engine, expire_on_commit: bool, autoflush: bool) -> Self {
        Session {
            shared: Arc::new_cyclic(|me| Shared {
                engine,
                state: Mutex::new(State {
                    conn: None,
                    maps: Maps::default(),
                    pending: Vec::new(),
                    deleted: VecDeque::new(),
                    deleted_in_tx: Vec::new(),
                    deleted_by_commit: None,
                    written_by_commit: None,
                    autoflush,
                    no_autoflush: 0,
                    expire_on_commit,
                    closed: false,
                    inserted_in_tx: false,
                    inserted: Vec::new(),
                    in_tx: false,
                    failed: None,
                    bulk: 0,
                    linked: false,
                    switching: false,
                    held: Vec::new(),
                    fk_log: Vec::new(),
                    rekeyed: Vec::new(),
                    flushes: 0,
                    streams: 0,
                    epoch: 0,
                }),
                holder: AtomicU64::new(0),
                tie: Arc::new(Tie::new(me.clone())),
                later: Mutex::new(Vec::new()),
                later_pending: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The engine this session came from.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Whether commit expires every object.
    pub fn expire_on_commit(&self) -> bool {
        self.shared.lock_now().expire_on_commit
    }

    /// Changes `expire_on_commit` for this session.
    pub fn set_expire_on_commit(&self, on: bool) {
        self.shared.lock_now().expire_on_commit = on;
    }

    /// Whether queries flush pending changes first.
    pub fn autoflush(&self) -> bool {
        self.shared.lock_now().autoflush
    }

    /// Changes autoflush for this session.
    pub fn set_autoflush(&self, on: bool) {
        self.shared.lock_now().autoflush = on;
    }

    /// Runs `f` with autoflush off (SQLAlchemy's `no_autoflush`): loads and reloads inside it
    /// send no pending change first. Scopes nest; autoflush is back when the outermost ends,
    /// also when `f` panics.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct C { #[orm(primary_key, auto_increment)] id: Option<i64>, n: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<C>()?;
    /// let s = engine.session();
    /// s.add(C { id: None, n: 1 })?;
    /// let seen = s.no_autoflush(|| s.query::<C>().count())?;
    /// assert_eq!(seen, 0); // the pending object was not flushed
    /// assert_eq!(s.query::<C>().count()?, 1);
    /// # Ok(()) }
    /// ```
    pub fn no_autoflush<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Scope<'a>(&'a Shared);
        impl Drop for Scope<'_> {
            fn drop(&mut self) {
                let mut st = self.0.state.lock();
                st.no_autoflush = st.no_autoflush.saturating_sub(1);
            }
        }
        self.shared.lock_now().no_autoflush += 1;
        let _scope = Scope(&self.shared);
        f()
    }

    fn owned<E: Entity>(&self, h: &Handle<E>, operation: &'static str) -> Result<()> {
        if h.obj.meta.lock().belongs_to(&self.shared) {
            Ok(())
        } else {
            Err(Error::NotInSession {
                entity: E::META.name,
                operation,
                state: format!("{:?}", h.state()),
            })
        }
    }

    /// Adds a new object; it is inserted at the next flush. Returns its handle (pending).
    ///
    /// # Errors
    /// [`Error::DuplicateObject`] when an object with the same (user-assigned) key is already in
    /// the session, or the session is closed.
    pub fn add<E: Entity>(&self, value: E) -> Result<Handle<E>> {
        let key = value.key();
        let mut st = self.shared.lock()?;
        st.ready()?;
        self.add_locked(&mut st, value, key)
    }

    fn add_locked<E: Entity>(
        &self,
        st: &mut State,
        value: E,
        key: Option<Key>,
    ) -> Result<Handle<E>> {
        let old = match &key {
            Some(key) => Self::row_to_switch::<E>(st, key)?,
            None => None,
        };
        let mut meta = Meta::new(
            ObjectState::Pending,
            None,
            Some(Arc::clone(&self.shared.tie)),
        );
        st.switching |= old.is_some();
        meta.set_replaces(old.map(|old| Self::take_over_row(st, old)));
        let h = Handle::with_meta(value, meta);
        st.pending.push(Arc::clone(&h.obj) as Arc<dyn Erased>);
        Ok(h)
    }

    /// What a new object with the (user-assigned) key `key` does to the object the session
    /// holds for it: nothing without one; [`Error::DuplicateObject`] if that one stays; or,
    /// when it is marked for deletion, a row switch (F1) of it, which
    /// [`take_over_row`](Self::take_over_row) makes. Changes nothing.
    fn row_to_switch<E: Entity>(st: &State, key: &Key) -> Result<Option<Arc<dyn Erased>>> {
        match st.maps.get::<E>(key) {
            None => Ok(None),
            Some(old) if old.meta.lock().marked_delete => Ok(Some(old)),
            Some(_) => Err(duplicate::<E>(key)),
        }
    }

    /// A row switch (F1): the object marked for deletion leaves the identity map, and the
    /// flush turns its DELETE and the new object's INSERT into one UPDATE of the row.
    fn take_over_row(st: &mut State, old: Arc<dyn Erased>) -> Arc<dyn Erased> {
        // Looked for from both ends at once: a loop of `add`s that replaces deleted objects
        // in the order they were deleted (or in reverse) finds each in a step.
        let n = st.deleted.len();
        let is_old = |d: &Doomed| Arc::ptr_eq(&d.obj, &old);
        if let Some(at) = (0..n.div_ceil(2)).find_map(|i| {
            match (is_old(&st.deleted[i]), is_old(&st.deleted[n - 1 - i])) {
                (true, _) => Some(i),
                (false, true) => Some(n - 1 - i),
                (false, false) => None,
            }
        }) {
            st.deleted.remove(at);
        }
        Self::unmark_for_switch(st, &old);
        old
    }

    /// What a row switch does to the object it replaces, once that object is out of the
    /// list of objects to delete.
    fn unmark_for_switch(st: &mut State, old: &Arc<dyn Erased>) {
        old.meta().marked_delete = false;
        old.remove_from(&mut st.maps);
    }

    /// Adds many new objects, in order (B1). Flush inserts them with statements prepared
    /// once and writes every generated key back into its own object.
    ///
    /// The iterator (and each value's key, which may go through a user's
    /// [`Field`](orm_core::Field) conversion) runs before the session is locked, so it may
    /// read this session's objects; if it panics, nothing is added.
    ///
    /// # Errors
    /// As [`add`](Self::add); on error none of them is added.
    pub fn add_all<E: Entity>(
        &self,
        values: impl IntoIterator<Item = E>,
    ) -> Result<Vec<Handle<E>>> {
        // Each value becomes its object as it comes, before the lock: no copy of all the
        // values is made first, and nothing is the session's until every one is made.
        // The session's own references are taken while each object is in cache.
        let joining = Joining::new(&self.shared.tie);
        let mut keyed: Vec<(usize, Key)> = Vec::new();
        let values = values.into_iter();
        let mut added: Vec<Arc<dyn Erased>> = Vec::with_capacity(values.size_hint().0);
        let handles: Vec<Handle<E>> = values
            .enumerate()
            .map(|(i, v)| {
                if let Some(key) = v.key() {
                    keyed.push((i, key));
                }
                let h = Handle::with_meta(v, joining.meta(ObjectState::Pending, None));
                added.push(Arc::clone(&h.obj) as Arc<dyn Erased>);
                h
            })
            .collect();
        let mut st = self.shared.lock()?;
        st.ready()?;
        // Every key is checked before the first row switch is made, so that an error leaves
        // the session as it was.
        let mut switches: Vec<(usize, Arc<dyn Erased>)> = Vec::new();
        let mut taken: HashSet<*const ()> = HashSet::new();
        for (i, key) in &keyed {
            if let Some(old) = Self::row_to_switch::<E>(&st, key)? {
                if !taken.insert(Arc::as_ptr(&old).cast::<()>()) {
                    // Another object of this call takes that row over already.
                    return Err(duplicate::<E>(key));
                }
                switches.push((*i, old));
            }
        }
        if !switches.is_empty() {
            st.switching = true;
            // One pass over the objects to delete, however many rows are switched.
            st.deleted
                .retain(|d| !taken.contains(&Arc::as_ptr(&d.obj).cast::<()>()));
            for (i, old) in switches {
                Self::unmark_for_switch(&mut st, &old);
                handles[i].obj.meta.lock().set_replaces(Some(old));
            }
        }
        if st.pending.is_empty() {
            st.pending = added;
        } else {
            st.pending.append(&mut added);
        }
        Ok(handles)
    }

    /// Copies the state of an object that is not this session's (a detached handle's value, a
    /// struct from a cache or a web request) onto the session's own object for its key, and
    /// returns that object's handle (SQLAlchemy's `merge`, F6): the persistent object is
    /// loaded if needed and its fields overwritten (the flush then updates the columns that
    /// differ); without a row for the key, or without a key, the value is added as new.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct User { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<User>()?;
    /// let s = engine.session();
    /// let ada = s.add(User { id: None, name: "Ada".into() })?;
    /// s.commit()?;
    /// let from_request = User { id: ada.read()?.id, name: "Ada L.".into() };
    /// let merged = s.merge(from_request)?;
    /// assert!(merged == ada);
    /// assert!(s.is_modified(&ada)?);
    /// s.commit()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`get`](Self::get) and [`add`](Self::add); [`Error::Borrowed`] when a guard on
    /// the session's object is alive.
    pub fn merge<E: Entity>(&self, value: E) -> Result<Handle<E>> {
        let Some(key) = value.key() else {
            return self.add(value);
        };
        match self.get_by_key::<E>(key)? {
            Some(h) => {
                *h.write()? = value;
                Ok(h)
            }
            None => self.add(value),
        }
    }

    /// [`merge`](Self::merge) of a handle's current value (a detached object, or one of
    /// another session); the handle itself is left as it is.
    ///
    /// # Errors
    /// As `merge`, and as [`Handle::read`].
    pub fn merge_handle<E: Entity + Clone>(&self, h: &Handle<E>) -> Result<Handle<E>> {
        if self.contains(h) {
            return Ok(h.clone());
        }
        let value = h.read()?.clone();
        self.merge(value)
    }

    /// Adds an existing handle: a transient one becomes pending; a detached one with a key
    /// becomes persistent in this session again (its values kept, to be reloaded when
    /// expired).
    ///
    /// # Errors
    /// [`Error::InvalidState`] when it belongs to another live session;
    /// [`Error::DuplicateObject`] when its key is taken here.
    pub fn add_handle<E: Entity>(&self, h: &Handle<E>) -> Result<()> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        // One lock of the object's bookkeeping for the check and the change, so that two
        // sessions adding it at once cannot both take it.
        let mut m = h.obj.meta.lock();
        let state = match m.state {
            ObjectState::Pending | ObjectState::Persistent | ObjectState::Deleted
                if !m.in_live_session() =>
            {
                ObjectState::Detached
            }
            s => s,
        };
        match (state, m.key.clone()) {
            // A detached object without a key never reached the database (it was pending in a
            // session that is gone): it is new again.
            (ObjectState::Transient, _) | (ObjectState::Detached, None) => {
                m.state = ObjectState::Pending;
                m.join(&self.shared.tie);
                st.switching |= m.replaces().is_some() || m.waits_for_parent();
                drop(m);
                st.pending.push(Arc::clone(&h.obj) as Arc<dyn Erased>);
                Ok(())
            }
            (ObjectState::Detached, Some(key)) => {
                if st.maps.get::<E>(&key).is_some() {
                    return Err(duplicate::<E>(&key));
                }
                m.state = ObjectState::Persistent;
                m.join(&self.shared.tie);
                m.marked_delete = false;
                m.new_in_tx = false;
                // A change made while it was away (or left unflushed in its last session) is
                // this session's to write: it is found by comparing with the snapshot.
                m.registered = m.snapshot.is_some();
                let changed = m.registered;
                drop(m);
                if changed {
                    self.shared
                        .relist(vec![Arc::clone(&h.obj) as Arc<dyn Erased>]);
                }
                st.maps.typed::<E>().insert(key, Arc::clone(&h.obj));
                Ok(())
            }
            (other, _) => Err(Error::InvalidState {
                message: format!(
                    "cannot add {} in state {other:?}: it belongs to a session",
                    E::META.name
                ),
            }),
        }
    }

    /// The object of `E` with this primary key: from the identity map without SQL when it is
    /// there and not expired, else loaded (after an autoflush). The key has `E`'s key type
    /// (`E::Id`, or what converts into it): a key of another type does not compile.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Tag { #[orm(primary_key)] name: String, uses: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Tag>()?;
    /// let s = engine.session();
    /// s.add(Tag { name: "rust".into(), uses: 1 })?;
    /// let tag = s.get::<Tag>("rust")?.expect("added");   // &str into the String key
    /// assert_eq!(tag.id(), Some("rust".to_owned()));
    /// assert!(s.get::<Tag>("go")?.is_none());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Database and conversion errors.
    pub fn get<E: Entity>(&self, key: impl Into<E::Id>) -> Result<Option<Handle<E>>> {
        self.get_by_key(key.into().into())
    }

    /// [`get`](Self::get) with an untyped [`Key`] (keys from `AnyHandle::key`, or built at run
    /// time). A key of another type than `E`'s finds nothing.
    ///
    /// # Errors
    /// Database and conversion errors.
    pub fn get_by_key<E: Entity>(&self, key: Key) -> Result<Option<Handle<E>>> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        let r = self.get_locked(&mut st, key);
        st.settle(r)
    }

    fn get_locked<E: Entity>(&self, st: &mut State, key: Key) -> Result<Option<Handle<E>>> {
        if let Some(obj) = st.maps.get::<E>(&key) {
            let (expired, marked) = {
                let m = obj.meta.lock();
                (m.expired, m.marked_delete)
            };
            if marked {
                // Marked for deletion but not flushed: still this session's object (F2), as
                // SQLAlchemy's `get` returns it until the flush.
                return Ok(Some(Handle { obj }));
            }
            if expired == Expired::NO {
                return Ok(Some(Handle { obj }));
            }
            self.shared.autoflush_before_reload(st)?;
            let conn = st.conn(&self.shared.engine)?;
            return match obj.reload(conn) {
                Ok(()) => Ok(Some(Handle { obj })),
                Err(e) if e.kind() == ErrorKind::ObjectDeleted => {
                    st.maps.typed::<E>().remove(&key);
                    obj.meta.lock().detach(ObjectState::Detached);
                    Ok(None)
                }
                Err(e) => Err(e),
            };
        }
        if st.autoflushes() {
            self.shared.flush_inner(st)?;
        }
        let row = st.conn(&self.shared.engine)?.find::<E>(&key)?;
        match row {
            Some(row) => merge(
                st.maps.typed::<E>(),
                row,
                false,
                &Joining::new(&self.shared.tie),
            )
            .map(Some),
            None => Ok(None),
        }
    }

    /// Loads rows of `E` matching `spec` and merges them into the identity map.
    pub(crate) fn load<E: Entity>(
        &self,
        spec: &SelectSpec,
        populate_existing: bool,
    ) -> Result<Vec<Handle<E>>> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        let r = self.load_locked(&mut st, spec, populate_existing);
        st.settle(r)
    }

    fn load_locked<E: Entity>(
        &self,
        st: &mut State,
        spec: &SelectSpec,
        populate_existing: bool,
    ) -> Result<Vec<Handle<E>>> {
        if st.autoflushes() {
            self.shared.flush_inner(st)?;
        }
        self.load_rows(st, spec, populate_existing)
    }

    /// Runs `f` on the locked state with the session at hand; the driver is asked after it
    /// what became of the transaction, as after any call.
    pub(crate) fn locked<R>(&self, f: impl FnOnce(&mut State, &Session) -> Result<R>) -> Result<R> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        let r = f(&mut st, self);
        st.settle(r)
    }

    /// Runs `f` on the locked state (for the relation loaders).
    pub(crate) fn with_state<R>(
        &self,
        f: impl FnOnce(&mut State, &Engine) -> Result<R>,
    ) -> Result<R> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        let r = f(&mut st, &self.shared.engine);
        st.settle(r)
    }

    /// [`load_locked`](Self::load_locked) without the autoflush.
    pub(crate) fn load_rows<E: Entity>(
        &self,
        st: &mut State,
        spec: &SelectSpec,
        populate_existing: bool,
    ) -> Result<Vec<Handle<E>>> {
        st.conn(&self.shared.engine)?;
        let State { conn, maps, .. } = st;
        let Some(conn) = conn.as_ref() else {
            return Ok(Vec::new());
        };
        let joining = Joining::new(&self.shared.tie);
        let mut out = Vec::new();
        // Every object made here is held by `out` until it is returned.
        let mut map = maps.typed::<E>().reading();
        conn.select_each::<E>(spec, |row| {
            out.push(merge(&mut map, row, populate_existing, &joining)?);
            Ok(())
        })?;
        drop(map);
        Ok(out)
    }

    /// Raw SQL whose rows are objects of `E` (SQLAlchemy's `select(E).from_statement(text(…))`):
    /// parameters are bound, never spliced; each column of `E` is found in the result by its
    /// name. The objects merge into the identity map as a query's do: one already there and
    /// not expired is returned as it is, with its unflushed changes. Autoflush first.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64, name: String }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// let rex = s.add(Pet { id: 1, name: "rex".into() })?;
    /// let found = s.from_statement::<Pet>(
    ///     "SELECT * FROM pet WHERE name = ? ORDER BY id",
    ///     &[Value::Text("rex".into())],
    /// )?;
    /// assert!(found[0] == rex, "the session's own object");
    /// let counts: Vec<(i64,)> = s.query_as("SELECT count(*) FROM pet", &[])?;
    /// assert_eq!(counts, [(1,)]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidState`] when a column of `E` is missing from the result; the
    /// database's error; [`Error::Conversion`].
    pub fn from_statement<E: Entity>(
        &self,
        sql: &str,
        params: &[orm_core::Value],
    ) -> Result<Vec<Handle<E>>> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        let r = (|| {
            if st.autoflushes() {
                self.shared.flush_inner(&mut st)?;
            }
            st.conn(&self.shared.engine)?;
            let State { conn, maps, .. } = &mut *st;
            let Some(conn) = conn.as_ref() else {
                return Ok(Vec::new());
            };
            let map = maps.typed::<E>();
            let joining = Joining::new(&self.shared.tie);
            let mut out = Vec::new();
            conn.query_entities_each::<E>(sql, params, |row| {
                out.push(merge(map, row, false, &joining)?);
                Ok(())
            })?;
            Ok(out)
        })();
        st.settle(r)
    }

    /// Raw SQL whose rows are read by position into a tuple of field types; parameters are
    /// bound. Autoflush first. See [`from_statement`](Self::from_statement).
    ///
    /// # Errors
    /// The database's error; [`Error::InvalidState`] naming the position of a value that does
    /// not fit its field type.
    pub fn query_as<T: orm_core::RawRow>(
        &self,
        sql: &str,
        params: &[orm_core::Value],
    ) -> Result<Vec<T>> {
        self.with_flushed(|conn| conn.query_as::<T>(sql, params))
    }

    /// `SELECT COUNT(*)` with autoflush.
    pub(crate) fn count<E: Entity>(&self, filter: Option<&orm_core::Condition>) -> Result<u64> {
        self.with_flushed(|conn| conn.count_where::<E>(filter))
    }

    /// Runs `f` on the session's connection after an autoflush (a read that must see the
    /// session's pending changes), with the outcome settled as any statement's.
    pub(crate) fn with_flushed<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        let r = (|| {
            if st.autoflushes() {
                self.shared.flush_inner(&mut st)?;
            }
            f(st.conn(&self.shared.engine)?)
        })();
        st.settle(r)
    }

    /// A query of `E`; see [`Query`].
    pub fn query<E: Entity>(&self) -> Query<'_, E> {
        Query::new(self)
    }

    /// Marks an object for deletion at the next flush (S11). A pending object is simply
    /// taken out of the session (it becomes transient).
    ///
    /// # Errors
    /// [`Error::NotInSession`] when the object is not in this session.
    pub fn delete<E: Entity>(&self, h: &Handle<E>) -> Result<()> {
        self.owned(h, "delete")?;
        let mut st = self.shared.lock()?;
        st.ready()?;
        let mut m = h.obj.meta.lock();
        match m.state {
            ObjectState::Pending => {
                drop(m);
                st.pending.retain(|o| {
                    !std::ptr::eq(Arc::as_ptr(o).cast::<()>(), Arc::as_ptr(&h.obj).cast())
                });
                Shared::restore_replaced(&mut st, &*h.obj, true);
                h.obj.meta.lock().detach(ObjectState::Transient);
            }
            ObjectState::Persistent => {
                if m.marked_delete {
                    return Ok(());
                }
                m.marked_delete = true;
                let key = m.key.clone();
                drop(m);
                st.deleted.push_back(Doomed {
                    obj: Arc::clone(&h.obj) as Arc<dyn Erased>,
                    key,
                });
            }
            _ => return Ok(()),
        }
        drop(st);
        // Children of relations declared with a delete cascade go too (loaded if needed,
        // without an autoflush, which would send this delete before theirs).
        if crate::relations::cascades_delete(E::META) {
            self.no_autoflush(|| self.cascade_delete(h))?;
        }
        Ok(())
    }

    /// Sends all pending work: updates of changed columns, then inserts (in `add` order),
    /// then deletes (SQLAlchemy's order), inside the session's transaction and a savepoint. On error nothing of
    /// the flush stays in the database and the session's objects are as before.
    ///
    /// # Errors
    /// The database error (naming entity, table and the placeholder SQL);
    /// [`Error::StaleData`] for a version mismatch; [`Error::Borrowed`] when a guard on a
    /// flushed object is alive.
    pub fn flush(&self) -> Result<()> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        self.shared.flush_locked(&mut st)
    }

    /// Flushes and commits. With `expire_on_commit`, every object is expired afterwards, so
    /// the next access reloads it. The session stays usable.
    ///
    /// `Ok` means the database confirmed the commit of everything this session flushed: a
    /// transaction that the database rolled back or aborted, or whose connection was lost,
    /// is never reported as committed (R6).
    ///
    /// # Errors
    /// As [`flush`](Self::flush); [`Error::PendingRollback`] when the transaction failed
    /// before the commit; the COMMIT's own error (a deferred constraint, a lost connection).
    /// After a failed COMMIT the session refuses work until [`rollback`](Self::rollback).
    pub fn commit(&self) -> Result<()> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        st.refuse_in_bulk("commit")?;
        let span = tracing::debug_span!(target: "orm::session", "commit", tracked = st.maps.len());
        let _entered = span.enter();
        st.deleted_by_commit = Some(Vec::new());
        let expire = st.expire_on_commit;
        if expire {
            st.written_by_commit = Some(WrittenByCommit::default());
        }
        let flushed = catch_unwind(AssertUnwindSafe(|| self.shared.flush_locked(&mut st)));
        // The objects the flush deleted and wrote; short of a COMMIT they are settled as any
        // flush's, for a rollback to restore. Taken even as a panic unwinds through the
        // flush, so that no later flush leaves its objects to this commit.
        let deleted_now = st.deleted_by_commit.take().unwrap_or_default();
        let written_now = st.written_by_commit.take().unwrap_or_default();
        let flushed = match flushed {
            Ok(r) => r,
            Err(panic) => {
                // A failed flush defers nothing: both lists are empty.
                written_now.settle();
                st.deleted.extend(deleted_now);
                drop(st);
                resume_unwind(panic)
            }
        };
        let uncommitted = |st: &mut State, deleted_now: Vec<Doomed>| {
            for obj in &deleted_now {
                obj.deleted(&mut st.maps);
            }
            st.deleted_in_tx
                .extend(deleted_now.into_iter().map(|d| d.obj));
        };
        if let Err(e) = flushed {
            written_now.settle();
            uncommitted(&mut st, deleted_now);
            return Err(e);
        }
        if let Some(conn) = &st.conn
            && (st.in_tx || conn.in_transaction())
            && let Err(e) = conn.commit()
        {
            // Whatever the COMMIT did, this transaction cannot be taken as committed, nor
            // go on: the database rolled it back, or (SQLite, busy) it is open and unusable
            // until the caller decides.
            written_now.settle();
            uncommitted(&mut st, deleted_now);
            st.fail(format!("COMMIT failed: {e}"));
            return Err(e);
        }
        st.in_tx = false;
        st.epoch += 1;
        // From here on, every object of the session that the commit did not settle below
        // settles itself at its next lock (`Tie`).
        self.shared.tie.committed(expire);
        st.release_idle();
        // Links are done with: every linked object was flushed. Dropping them with the pass
        // below breaks the references between parents and children.
        let linked = std::mem::take(&mut st.linked);
        for obj in std::mem::take(&mut st.deleted_in_tx) {
            let mut m = obj.meta();
            m.clear_links();
            m.detach(ObjectState::Detached);
        }
        st.inserted_in_tx = false;
        st.held.clear();
        st.fk_log.clear();
        st.rekeyed.clear();
        let WrittenByCommit {
            written,
            updated,
            orphans,
        } = written_now;
        if !linked && deleted_now.is_empty() && orphans.is_empty() {
            // Nothing but what each object does by itself at its next lock: the session
            // lets go of what it held, and the written objects' claims end then (expired,
            // they need neither the bumped version nor the snapshot that the end of a claim
            // otherwise takes care of).
            crate::handle::release(std::mem::take(&mut st.inserted));
            crate::handle::release(written);
            self.relist_written_since(expire);
            return Ok(());
        }
        // One visit of every object. The objects the flush deleted (the only ones marked for
        // deletion now) leave their identity map, detached. Each object's lock settles what
        // the commit did to it first (`Tie`): then the links go, and any claim left open is
        // ended.
        let (mut released, mut gone) = (0, 0);
        // The session's references to the objects inserted in the transaction and written
        // by this flush go with the pass, each as it meets its object (see `Releasing`).
        let written_len = written.len() + orphans.len();
        let mut releasing = Releasing::new([std::mem::take(&mut st.inserted), written]);
        st.maps.for_each_removing(&mut releasing, &mut |obj| {
            let mut m = obj.meta();
            m.new_in_tx = false;
            m.key_generated = false;
            if linked || m.marked_delete {
                m.clear_links();
            }
            if m.marked_delete {
                // Written, then deleted: claimed by the flush, which sent only the DELETE.
                released += usize::from(std::mem::take(&mut m.flushing));
                m.registered = false;
                m.detach(ObjectState::Detached);
                gone += 1;
                return true;
            }
            if !expire {
                return false;
            }
            if std::mem::take(&mut m.flushing) {
                released += 1;
            } else if m.registered {
                // Written on another thread since the flush took the list of written
                // objects: the change is for the next flush, and expiring the object would
                // discard it.
                return false;
            }
            m.expire_and_unregister();
            false
        });
        // Every deleted and written object is in its identity map, so all were settled
        // above; should one not be, it is settled on its own.
        if gone != deleted_now.len() {
            for obj in &deleted_now {
                obj.commit_delete(&mut st.maps);
            }
        }
        // Committed: the objects inserted are clean and held as weakly as any other.
        let [inserted_rest, written_rest] = releasing.into_rest();
        drop(inserted_rest);
        if released != written_len {
            let (rest, from) = written_rest;
            WrittenByCommit::settle_rest(rest, from, updated, orphans);
        }
        self.relist_written_since(expire);
        Ok(())
    }

    /// After a commit that expired its objects: what is left in the list of written objects
    /// was written on other threads since the flush took it, and stays for the next flush.
    /// Looked at out of the list's lock: a writer takes the list's lock under the object's.
    fn relist_written_since(&self, expire: bool) {
        if expire {
            let mut written = self.shared.take_modified();
            written.retain(|o| o.meta().registered);
            if !written.is_empty() {
                self.shared.relist(written);
            }
        }
    }

    /// Rolls back the transaction. Every persistent object is expired; objects added in the
    /// transaction (pending or flushed) go back to transient, losing generated keys; objects
    /// deleted in it are persistent again (S9).
    ///
    /// # Errors
    /// The ROLLBACK's error; the session's objects are reset all the same.
    pub fn rollback(&self) -> Result<()> {
        let mut st = self.shared.lock()?;
        Shared::check_open(&st)?;
        st.refuse_in_bulk("roll back")?;
        let span =
            tracing::debug_span!(target: "orm::session", "rollback", tracked = st.maps.len());
        let _entered = span.enter();
        self.shared.rollback_locked(&mut st, true)
    }

    /// Expires an object: its next access reloads it; unflushed changes to it are discarded.
    ///
    /// # Errors
    /// [`Error::NotInSession`] when it is not in this session; [`Error::InvalidState`] when
    /// it is pending (it has no row to reload).
    pub fn expire<E: Entity>(&self, h: &Handle<E>) -> Result<()> {
        self.persistent(h, "expire")?;
        h.obj.meta.lock().expire_all();
        Ok(())
    }

    /// Expires some columns of an object, given as typed column constants: one
    /// (`User::NAME`), a tuple (`(User::NAME, User::AGE)`) or an array. A misspelt column
    /// does not compile (F8). Unflushed changes to those columns are discarded by the reload;
    /// changes to the others are kept.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct User { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String, age: i32 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<User>()?;
    /// let s = engine.session();
    /// let u = s.add(User { id: None, name: "ada".into(), age: 36 })?;
    /// s.commit()?;
    /// u.write()?.age = 37;
    /// s.expire_attrs(&u, (User::AGE,))?;
    /// assert_eq!(u.read()?.age, 36);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`expire`](Self::expire).
    pub fn expire_attrs<E: Entity>(
        &self,
        h: &Handle<E>,
        columns: impl orm_core::ColumnSet<E>,
    ) -> Result<()> {
        self.expire_columns(h, &columns.indexes())
    }

    /// [`expire_attrs`](Self::expire_attrs) with column names known only at run time.
    ///
    /// # Errors
    /// [`Error::UnknownColumn`] for a name `E` does not have; as [`expire`](Self::expire).
    pub fn expire_attrs_by_name<E: Entity>(&self, h: &Handle<E>, columns: &[&str]) -> Result<()> {
        let mut cols = Vec::with_capacity(columns.len());
        for name in columns {
            cols.push(
                E::META
                    .column_index(name)
                    .ok_or_else(|| Error::unknown_column(E::META, name))?,
            );
        }
        self.expire_columns(h, &cols)
    }

    fn expire_columns<E: Entity>(&self, h: &Handle<E>, cols: &[usize]) -> Result<()> {
        self.persistent(h, "expire")?;
        let mut m = h.obj.meta.lock();
        m.expired = m.expired.with(cols);
        if m.expired == Expired::ALL {
            m.snapshot = None;
        }
        // Unflushed changes to those columns are discarded by the reload, which also brings
        // the snapshot up to date for them.
        Ok(())
    }

    /// Expires every persistent object of the session (S7, S10).
    pub fn expire_all(&self) {
        let mut st = self.shared.lock_now();
        st.held.clear();
        st.maps
            .for_each(&mut |obj| obj.meta().expire_and_unregister());
        self.shared.tie.modified.lock().objects.clear();
    }

    /// Reloads an object now (S8), discarding unflushed changes.
    ///
    /// # Errors
    /// [`Error::ObjectDeleted`] when its row is gone; as [`expire`](Self::expire).
    pub fn refresh<E: Entity>(&self, h: &Handle<E>) -> Result<()> {
        self.shared.lock()?.ready()?;
        self.expire(h)?;
        self.shared.reload(&h.obj)
    }

    fn persistent<E: Entity>(&self, h: &Handle<E>, operation: &'static str) -> Result<()> {
        self.owned(h, operation)?;
        let state = h.obj.meta.lock().state;
        if state == ObjectState::Persistent {
            Ok(())
        } else {
            Err(Error::InvalidState {
                message: format!(
                    "cannot {operation} {}: it is {state:?}, not persistent",
                    E::META.name
                ),
            })
        }
    }

    /// Takes an object out of the session: a pending one becomes transient, a persistent or
    /// deleted one detached. Its values stay readable.
    ///
    /// # Errors
    /// [`Error::NotInSession`] when it is not in this session.
    pub fn expunge<E: Entity>(&self, h: &Handle<E>) -> Result<()> {
        self.owned(h, "expunge")?;
        let mut st = self.shared.lock()?;
        let ptr = Arc::as_ptr(&h.obj).cast::<()>();
        let same = |o: &Arc<dyn Erased>| std::ptr::eq(Arc::as_ptr(o).cast::<()>(), ptr);
        let registered = std::mem::take(&mut h.obj.meta.lock().registered);
        h.obj.meta.lock().clear_links();
        if registered {
            self.shared.tie.modified.lock().objects.retain(|o| !same(o));
        }
        let state = h.obj.meta.lock().state;
        if state == ObjectState::Pending {
            st.pending.retain(|o| !same(o));
            Shared::restore_replaced(&mut st, &*h.obj, true);
            h.obj.meta.lock().detach(ObjectState::Transient);
        } else {
            (h.obj.as_ref() as &dyn Erased).remove_from(&mut st.maps);
            st.deleted.retain(|d| !same(&d.obj));
            st.deleted_in_tx.retain(|o| !same(o));
            h.obj.meta.lock().detach(ObjectState::Detached);
        }
        Ok(())
    }

    /// Takes every object out of the session.
    pub fn expunge_all(&self) {
        let mut st = self.shared.lock_now();
        let leave = |obj: &dyn Erased, state| {
            let mut m = obj.meta();
            m.detach(state);
            m.registered = false;
            m.clear_links();
        };
        st.switching = false;
        for obj in std::mem::take(&mut st.pending) {
            leave(&*obj, ObjectState::Transient);
        }
        st.maps
            .for_each(&mut |obj| leave(obj, ObjectState::Detached));
        st.maps.clear();
        for obj in std::mem::take(&mut st.deleted_in_tx) {
            leave(&*obj, ObjectState::Detached);
        }
        for d in std::mem::take(&mut st.deleted) {
            leave(&*d.obj, ObjectState::Detached);
        }
        self.shared.tie.modified.lock().objects.clear();
    }

    /// Rolls back what is not committed, detaches every object and gives the connection
    /// back to the engine.
    ///
    /// # Errors
    /// The ROLLBACK's error (the session is closed all the same).
    pub fn close(self) -> Result<()> {
        self.shared.shutdown()
    }

    /// Whether the object has changes a flush would send (pending objects always do).
    ///
    /// # Errors
    /// [`Error::Borrowed`] when a write guard on it is alive.
    pub fn is_modified<E: Entity>(&self, h: &Handle<E>) -> Result<bool> {
        match h.obj.meta.lock().state {
            ObjectState::Pending => return Ok(true),
            ObjectState::Persistent => {}
            _ => return Ok(false),
        }
        Ok(!(h.obj.as_ref() as &dyn Erased).changes()?.is_empty())
    }

    /// Objects added and not flushed yet, in `add` order.
    pub fn new_objects(&self) -> Vec<AnyHandle> {
        let st = self.shared.lock_now();
        st.pending
            .iter()
            .map(|o| AnyHandle { obj: Arc::clone(o) })
            .collect()
    }

    /// Persistent objects with changes a flush would send.
    ///
    /// # Errors
    /// [`Error::Borrowed`] when a write guard on one of them is alive.
    pub fn dirty_objects(&self) -> Result<Vec<AnyHandle>> {
        let candidates: Vec<Arc<dyn Erased>> = self.shared.modified_objects();
        let mut out = Vec::new();
        for obj in candidates {
            let persistent = obj.meta().state == ObjectState::Persistent;
            if persistent && !obj.changes()?.is_empty() {
                out.push(AnyHandle { obj });
            }
        }
        Ok(out)
    }

    /// Objects marked for deletion and not flushed yet.
    pub fn deleted_objects(&self) -> Vec<AnyHandle> {
        let st = self.shared.lock_now();
        st.deleted
            .iter()
            .map(|d| AnyHandle {
                obj: Arc::clone(&d.obj),
            })
            .collect()
    }

    /// Whether the handle's object is in this session (pending or persistent).
    pub fn contains<E: Entity>(&self, h: &Handle<E>) -> bool {
        let m = h.obj.meta.lock();
        m.belongs_to(&self.shared)
            && matches!(m.state, ObjectState::Pending | ObjectState::Persistent)
    }

    /// How many objects the identity map holds.
    pub fn identity_len(&self) -> usize {
        self.shared.lock_now().maps.len()
    }

    /// Executes raw SQL (bound parameters) as part of the session's unit of work: pending
    /// changes are flushed first (with autoflush), and the statement runs inside the
    /// session's transaction, begun now if needed (`BEGIN IMMEDIATE` on SQLite, so that the
    /// write lock is taken before anything else and concurrent writers wait for each other
    /// instead of failing with "database is locked"). Returns the rows changed.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct C { #[orm(primary_key, auto_increment)] id: Option<i64>, n: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<C>()?;
    /// let s = engine.session();
    /// s.add(C { id: None, n: 1 })?;
    /// assert_eq!(s.execute("UPDATE c SET n = n + ?", &[Value::I64(1)])?, 1); // sees the added row
    /// s.commit()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Autoflush errors; the statement's error (the transaction stays open: roll back).
    pub fn execute(&self, sql: &str, params: &[orm_core::Value]) -> Result<u64> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        let r = (|| {
            if st.autoflushes() {
                self.shared.flush_inner(&mut st)?;
            }
            let conn = st.conn(&self.shared.engine)?;
            if !conn.in_transaction() {
                conn.begin()?;
            }
            conn.execute(sql, params)
        })();
        st.settle(r)
    }

    /// Runs `f` on the session's connection, inside its transaction if one is open (raw SQL
    /// that should see the session's flushed changes). For writes, prefer
    /// [`execute`](Self::execute), which begins the session's transaction first: on SQLite a
    /// write sent outside a transaction while another connection writes can fail at once
    /// with "database is locked" (SQLite refuses to wait where waiting could deadlock).
    ///
    /// `f` runs with the session locked: calling the session from inside it fails with
    /// [`Error::Reentrant`] (use the connection it is given). If `f` fails or panics, the
    /// driver is asked what became of the transaction, as after any failed statement.
    ///
    /// # Errors
    /// The error of `f`; [`Error::Open`] if no connection can be had;
    /// [`Error::PendingRollback`] after a failed transaction.
    pub fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let mut st = self.shared.lock()?;
        st.ready()?;
        let r = match st.conn(&self.shared.engine) {
            Ok(conn) => match catch_unwind(AssertUnwindSafe(|| f(conn))) {
                Ok(r) => r,
                Err(panic) => {
                    let _ = st.settle::<()>(Err(Error::InvalidState {
                        message: "a panic unwound through with_connection".into(),
                    }));
                    drop(st);
                    resume_unwind(panic)
                }
            },
            Err(e) => Err(e),
        };
        st.settle(r)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The written objects left on the list hold the tie, which holds the list.
        self.tie.close();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let uncommitted = {
            let st = self.shared.state.lock();
            !st.closed
                && (!st.pending.is_empty()
                    || !st.deleted.is_empty()
                    || st.in_tx
                    || st.conn.as_ref().is_some_and(|c| c.in_transaction()))
        };
        if uncommitted {
            tracing::warn!(target: "orm::session", "session dropped with uncommitted work; rolling back");
        }
        if let Err(e) = self.shared.shutdown() {
            tracing::warn!(target: "orm::session", error = %e, "rollback while dropping a session failed");
        }
    }
}

fn duplicate<E: Entity>(key: &Key) -> Error {
    Error::DuplicateObject {
        entity: E::META.name,
        table: E::META.table,
        key: key.to_string(),
    }
}

/// Merges a loaded row into the identity map: an object already there is returned as it is
/// (its unflushed changes kept) unless it is expired or `populate_existing` asks for the
/// row's values.
///
/// Inlined into the loop over the rows, as are the identity map's `get_or_insert` and `push`
/// and `Handle::with_meta`: each row's value and key then go where they are kept with fewer
/// copies through memory, each of which a load soon after waits for (a load of 100,000 rows
/// took about 1.2 ms less, 5 %).
#[inline]
pub(crate) fn merge<E: Entity>(
    map: &mut IdentityMap<E>,
    row: E,
    populate_existing: bool,
    joining: &Joining,
) -> Result<Handle<E>> {
    let Some(key) = row.key() else {
        return Err(Error::InvalidState {
            message: format!("a row of {} has a NULL primary key", E::META.name),
        });
    };
    let made = |key: &Key, row: E| {
        let meta = joining.meta(ObjectState::Persistent, Some(key.clone()));
        Handle::with_meta(row, meta).obj
    };
    match map.get_or_insert(key, row, made) {
        Entry::Made(obj) => Ok(Handle { obj }),
        Entry::Found(obj, row) => {
            let expired = obj.meta.lock().expired;
            if populate_existing || expired == Expired::ALL {
                obj.overwrite(row, true)?;
            } else if expired != Expired::NO {
                obj.overwrite(row, false)?;
            }
            Ok(Handle { obj })
        }
    }
}
