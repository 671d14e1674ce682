//! Relations through the session: linking objects before their keys exist, cascades, lazy
//! and select-in loading.

use std::sync::Arc;

use orm_core::{
    Cascade, CmpOp, Condition, Connection, Entity, EntityMeta, Error, ErrorKind, Key, ManyToMany,
    ManyToOne, OnDelete, OneToMany, OneToOne, RelationKind, Result, SelectSpec, TypeVisitor, Value,
};

use crate::handle::{Doomed, Erased, Handle, Joining, Link, Maps, Object, ObjectState};
use crate::session::{Session, merge};

/// The position of `P`'s relation that is the other side of `C`'s foreign key `column`.
fn reverse<C: Entity, P: Entity>(column: usize) -> Option<usize> {
    P::META.relations.iter().position(|r| {
        r.kind != RelationKind::ManyToMany && r.target().is(C::META) && r.remote_column == column
    })
}

/// The cascade along `C`'s foreign key `column` to `P`: the one declared on `P`'s side,
/// else SQLAlchemy's default, save-update.
fn cascade_of<C: Entity, P: Entity>(column: usize) -> Cascade {
    reverse::<C, P>(column).map_or(Cascade::SAVE_UPDATE, |r| P::META.relations[r].cascade)
}

fn erased<E: Entity>(h: &Handle<E>) -> Arc<dyn Erased> {
    Arc::clone(&h.obj) as Arc<dyn Erased>
}

fn typed<E: Entity>(o: &Arc<dyn Erased>) -> Option<Handle<E>> {
    Arc::clone(o)
        .as_any()
        .downcast::<Object<E>>()
        .ok()
        .map(|obj| Handle { obj })
}

/// The rows of a parent's relation, as keys for `IN` lists, chunked under the driver's limit
/// of bound parameters.
fn chunks(conn_limit: usize) -> usize {
    conn_limit.saturating_sub(16).clamp(1, 10_000)
}

/// A relation a session can load for an object of `E` ([`Session::related`]) or for every
/// result of a query ([`Query::selectin`](crate::Query::selectin)): the relation constants
/// of the derive.
pub trait Relation<E: Entity>: Copy {
    /// `Option<Handle<_>>` for a many-to-one or one-to-one, `Vec<Handle<_>>` for a
    /// one-to-many or many-to-many.
    type Output;

    /// Loads the relation of one object (lazily: what is loaded is kept until the object is
    /// expired).
    #[doc(hidden)]
    fn load(self, session: &Session, h: &Handle<E>) -> Result<Self::Output>;

    /// Loads the relation of many objects with one statement per chunk of them.
    #[doc(hidden)]
    fn load_all(self, session: &Session, objects: &[Handle<E>]) -> Result<()>;
}

impl<C: Entity, P: Entity> Relation<C> for ManyToOne<C, P> {
    type Output = Option<Handle<P>>;

    fn load(self, session: &Session, h: &Handle<C>) -> Result<Option<Handle<P>>> {
        let linked = h
            .obj
            .meta
            .lock()
            .links()
            .iter()
            .find(|l| l.column == self.column())
            .map(|l| Arc::clone(&l.parent));
        if let Some(p) = linked {
            return Ok(typed::<P>(&p));
        }
        let Some(key) = Key::from_value(&h.read()?.column(self.column())) else {
            return Ok(None);
        };
        let parent = session.get_by_key::<P>(key)?;
        if let Some(p) = &parent {
            session.shared.lock()?.held.push(erased(p));
        }
        Ok(parent)
    }

    fn load_all(self, session: &Session, objects: &[Handle<C>]) -> Result<()> {
        let mut keys: Vec<Key> = Vec::new();
        for h in objects {
            if let Some(k) = Key::from_value(&h.read()?.column(self.column()))
                && !keys.contains(&k)
            {
                keys.push(k);
            }
        }
        let mut st = session.shared.lock()?;
        st.ready()?;
        let r = (|| {
            // Parents already loaded (and not expired) cost nothing.
            let mut missing = Vec::new();
            for k in keys {
                match st.maps.get::<P>(&k) {
                    Some(p) if !p.meta.lock().is_expired() => st.held.push(p),
                    _ => missing.push(k.to_value(P::META.key_column().sql_type)),
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if st.autoflushes() {
                session.shared.flush_now(&mut st)?;
            }
            let per = chunks(st.conn(session.engine())?.max_bind_parameters());
            for part in missing.chunks(per) {
                let spec = in_list(P::META.primary_key, part);
                let found = session.load_rows::<P>(&mut st, &spec, false)?;
                st.held.extend(found.iter().map(erased));
            }
            Ok(())
        })();
        st.settle(r)
    }
}

fn in_list(column: usize, values: &[Value]) -> SelectSpec {
    SelectSpec {
        filter: Some(Condition::In {
            column,
            values: values.to_vec(),
        }),
        ..SelectSpec::default()
    }
}

/// Loads the children of `parent` through `C`'s column `column` (relation `relation` of
/// `P`): the loaded collection when there is one, the objects linked to it while it has no
/// row, else one SELECT whose result becomes the loaded collection.
fn children<P: Entity, C: Entity>(
    session: &Session,
    parent: &Handle<P>,
    relation: usize,
    column: usize,
) -> Result<Vec<Handle<C>>> {
    let (cached, key) = {
        let m = parent.obj.meta.lock();
        (m.collection(relation).cloned(), m.key.clone())
    };
    if let Some(c) = cached {
        return Ok(c.iter().filter_map(typed::<C>).collect());
    }
    let Some(key) = key else {
        // No row yet: the children are the objects linked to it, pending, or persistent ones
        // linked since the last flush (written, so in the modified list).
        let st = session.shared.lock()?;
        let me = erased(parent);
        let modified = session.shared.modified_objects();
        return Ok(st
            .pending_objects()
            .iter()
            .chain(&modified)
            .filter(|o| {
                o.meta()
                    .links()
                    .iter()
                    .any(|l| l.column == column && Arc::ptr_eq(&l.parent, &me))
            })
            .filter_map(typed::<C>)
            .collect());
    };
    let spec = SelectSpec {
        filter: Some(Condition::Compare {
            column,
            op: CmpOp::Eq,
            value: key.to_value(C::META.columns[column].sql_type),
        }),
        ..SelectSpec::default()
    };
    let found = session.load::<C>(&spec, false)?;
    parent
        .obj
        .meta
        .lock()
        .set_collection(relation, found.iter().map(erased).collect());
    Ok(found)
}

/// Sets the collection `relation` of every parent from one SELECT of children per chunk.
fn children_of_all<P: Entity, C: Entity>(
    session: &Session,
    parents: &[Handle<P>],
    relation: usize,
    column: usize,
) -> Result<()> {
    let keyed: Vec<(Key, &Handle<P>)> = parents
        .iter()
        .filter_map(|p| Some((p.obj.meta.lock().key.clone()?, p)))
        .collect();
    if keyed.is_empty() {
        return Ok(());
    }
    let per =
        session.with_state(|st, engine| Ok(chunks(st.conn(engine)?.max_bind_parameters())))?;
    let mut by_parent: std::collections::HashMap<
        Key,
        Vec<Arc<dyn Erased>>,
        orm_core::KeyHashState,
    > = std::collections::HashMap::default();
    for part in keyed.chunks(per) {
        let ty = C::META.columns[column].sql_type;
        let values: Vec<Value> = part.iter().map(|(k, _)| k.to_value(ty)).collect();
        for child in session.load::<C>(&in_list(column, &values), false)? {
            let k = Key::from_value(&child.read()?.column(column));
            if let Some(k) = k {
                by_parent.entry(k).or_default().push(erased(&child));
            }
        }
    }
    for (k, p) in keyed {
        let found = by_parent.remove(&k).unwrap_or_default();
        p.obj.meta.lock().set_collection(relation, found);
    }
    Ok(())
}

impl<P: Entity, C: Entity> Relation<P> for OneToMany<P, C> {
    type Output = Vec<Handle<C>>;

    fn load(self, session: &Session, h: &Handle<P>) -> Result<Vec<Handle<C>>> {
        children::<P, C>(session, h, self.relation(), self.via().column())
    }

    fn load_all(self, session: &Session, objects: &[Handle<P>]) -> Result<()> {
        children_of_all::<P, C>(session, objects, self.relation(), self.via().column())
    }
}

impl<P: Entity, C: Entity> Relation<P> for OneToOne<P, C> {
    type Output = Option<Handle<C>>;

    fn load(self, session: &Session, h: &Handle<P>) -> Result<Option<Handle<C>>> {
        let mut found = children::<P, C>(session, h, self.relation(), self.via().column())?;
        if found.len() > 1 {
            return Err(Error::MultipleRows {
                entity: C::META.name,
                table: C::META.table,
            });
        }
        Ok(found.pop())
    }

    fn load_all(self, session: &Session, objects: &[Handle<P>]) -> Result<()> {
        children_of_all::<P, C>(session, objects, self.relation(), self.via().column())
    }
}

impl<A: Entity, B: Entity> Relation<A> for ManyToMany<A, B> {
    type Output = Vec<Handle<B>>;

    fn load(self, session: &Session, h: &Handle<A>) -> Result<Vec<Handle<B>>> {
        let (cached, key) = {
            let m = h.obj.meta.lock();
            (m.collection(self.relation()).cloned(), m.key.clone())
        };
        if let Some(c) = cached {
            return Ok(c.iter().filter_map(typed::<B>).collect());
        }
        let Some(key) = key else {
            return Ok(Vec::new());
        };
        let (left, right) = self.columns();
        // Targets with an association row pointing at this object.
        let spec = SelectSpec {
            filter: Some(Condition::Related {
                target: self.through(),
                outer: B::META.primary_key,
                inner: right,
                through: None,
                condition: Some(Box::new(Condition::Compare {
                    column: left,
                    op: CmpOp::Eq,
                    value: key.to_value(self.through().columns[left].sql_type),
                })),
            }),
            ..SelectSpec::default()
        };
        let found = session.load::<B>(&spec, false)?;
        h.obj
            .meta
            .lock()
            .set_collection(self.relation(), found.iter().map(erased).collect());
        Ok(found)
    }

    fn load_all(self, session: &Session, objects: &[Handle<A>]) -> Result<()> {
        // Per chunk of objects: one SELECT of the association rows, one of the targets.
        let keyed: Vec<(Key, &Handle<A>)> = objects
            .iter()
            .filter_map(|h| Some((h.obj.meta.lock().key.clone()?, h)))
            .collect();
        let (left, _) = self.columns();
        let left_type = self.through().columns[left].sql_type;
        let per =
            session.with_state(|st, engine| Ok(chunks(st.conn(engine)?.max_bind_parameters())))?;
        let mut pairs: Vec<(Key, Key)> = Vec::new();
        for part in keyed.chunks(per) {
            let values: Vec<Value> = part.iter().map(|(k, _)| k.to_value(left_type)).collect();
            pairs.extend(session.with_state(|st, engine| self.pairs(st.conn(engine)?, &values))?);
        }
        let mut wanted: Vec<Key> = Vec::new();
        let mut seen = std::collections::HashSet::<Key, orm_core::KeyHashState>::default();
        for (_, b) in &pairs {
            if seen.insert(b.clone()) {
                wanted.push(b.clone());
            }
        }
        let mut targets: std::collections::HashMap<Key, Arc<dyn Erased>, orm_core::KeyHashState> =
            std::collections::HashMap::default();
        let key_type = B::META.key_column().sql_type;
        for part in wanted.chunks(per) {
            let values: Vec<Value> = part.iter().map(|k| k.to_value(key_type)).collect();
            for t in session.load::<B>(&in_list(B::META.primary_key, &values), false)? {
                if let Some(k) = t.obj.meta.lock().key.clone() {
                    targets.insert(k, erased(&t));
                }
            }
        }
        let mut by_parent: std::collections::HashMap<
            Key,
            Vec<Arc<dyn Erased>>,
            orm_core::KeyHashState,
        > = std::collections::HashMap::default();
        for (a, b) in pairs {
            if let Some(t) = targets.get(&b) {
                by_parent.entry(a).or_default().push(Arc::clone(t));
            }
        }
        for (k, h) in keyed {
            let found = by_parent.remove(&k).unwrap_or_default();
            h.obj.meta.lock().set_collection(self.relation(), found);
        }
        Ok(())
    }
}

impl Session {
    /// Loads an object's relation through the session (SQLAlchemy's lazy load): a
    /// many-to-one returns the parent (no SQL when it is in the identity map and not
    /// expired; a parent linked but not flushed is returned as it is); a one-to-many or
    /// many-to-many returns the collection, loaded with one SELECT at first use and kept
    /// until the object is expired; a one-to-one returns the child, if any.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// #[orm(has_many(books = Book::AUTHOR))]
    /// struct Author { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String }
    /// #[derive(Entity, Debug, Clone)]
    /// struct Book { #[orm(primary_key, auto_increment)] id: Option<i64>,
    ///               #[orm(references = Author)] author_id: Option<i64>, title: String }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_all(&[Author::META, Book::META])?;
    /// let s = engine.session();
    /// let le_guin = s.add(Author { id: None, name: "Le Guin".into() })?;
    /// let book = s.add(Book { id: None, author_id: None, title: "Earthsea".into() })?;
    /// s.link(&book, Book::AUTHOR, &le_guin)?;   // neither has a key yet
    /// s.commit()?;
    /// assert_eq!(book.read()?.author_id, le_guin.read()?.id);
    /// assert!(s.related(&book, Book::AUTHOR)?.unwrap() == le_guin);
    /// assert_eq!(s.related(&le_guin, Author::BOOKS)?.len(), 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Database and conversion errors; as [`Handle::read`].
    pub fn related<E: Entity, R: Relation<E>>(
        &self,
        h: &Handle<E>,
        relation: R,
    ) -> Result<R::Output> {
        relation.load(self, h)
    }

    /// Links `child` to `parent` through the foreign key of `relation` ("this order belongs
    /// to that customer"), whether or not either has a key yet: with the parent's key known,
    /// the foreign-key field is set now; otherwise the flush inserts the parent first and
    /// writes its generated key into the field before the child's batch is sent. A child or
    /// parent not in the session yet (transient) is added, as SQLAlchemy's save-update
    /// cascade does, unless the relation's declared cascade leaves save-update out. The
    /// parent's loaded collection (if loaded) gains the child; the old parent's loses it.
    ///
    /// A rollback forgets links: objects that go back to transient get their foreign keys
    /// back as they were, and are linked again after being added again.
    ///
    /// # Errors
    /// [`Error::NotInSession`] when an object is in another session, detached, or not in
    /// this one without a save-update cascade; as [`Handle::write`].
    pub fn link<C: Entity, P: Entity>(
        &self,
        child: &Handle<C>,
        relation: ManyToOne<C, P>,
        parent: &Handle<P>,
    ) -> Result<()> {
        let column = relation.column();
        let reverse = reverse::<C, P>(column);
        let cascade = reverse.map_or(Cascade::SAVE_UPDATE, |r| P::META.relations[r].cascade);
        // Both in this session (the usual case costs one look at each), else enlisted.
        let (in_session, key) = {
            let m = parent.obj.meta.lock();
            (self.holds(&m), m.key.clone())
        };
        if !in_session {
            self.enlist(parent, cascade, "link")?;
        }
        // A one-to-one holds one child: linking another one unlinks the child it has (its
        // foreign key becomes NULL, or it is deleted with delete-orphan), as SQLAlchemy does.
        if let Some(r) = reverse
            && P::META.relations[r].kind == RelationKind::OneToOne
            && let Some(current) = self.related(parent, OneToOne::new(r, relation))?
            && current != *child
        {
            self.unlink(&current, relation)?;
        }
        let (in_session, expired, linked_to, mut pending) = {
            let m = child.obj.meta.lock();
            let linked_to = m
                .links()
                .iter()
                .find(|l| l.column == column)
                .map(|l| Arc::clone(&l.parent));
            (
                self.holds(&m),
                m.is_expired(),
                linked_to,
                m.state == ObjectState::Pending,
            )
        };
        if !in_session {
            // A transient child becomes pending here; anything else fails.
            self.enlist(child, cascade, "link")?;
            pending = true;
        }
        // The old parent loses the child from its loaded collection (only a declared
        // one-to-many has collections).
        let old_parent = match (reverse, linked_to) {
            (None, _) => None,
            (Some(_), Some(p)) => typed::<P>(&p),
            (Some(_), None) if expired => self.current_parent::<C, P>(child, column)?,
            (Some(_), None) => {
                let old = child
                    .obj
                    .value
                    .try_read()
                    .ok_or_else(|| crate::handle::borrowed(C::META, "link"))?
                    .column(column)
                    .to_owned_value();
                match Key::from_value(&old.as_ref()) {
                    Some(k) => self
                        .shared
                        .lock()?
                        .maps
                        .get::<P>(&k)
                        .map(|obj| Handle { obj }),
                    None => None,
                }
            }
        };
        let key = match key {
            Some(k) => Some(k),
            // A pending parent whose key the user assigned.
            None if P::META.key_column().generated == orm_core::Generated::No => {
                parent.read()?.key()
            }
            None => None,
        };
        if key.is_some() || !pending {
            // Takes the snapshot of a persistent child and registers it as written.
            let mut g = child.write()?;
            if let Some(k) = &key {
                g.set_column(
                    column,
                    k.to_value(C::META.columns[column].sql_type).as_ref(),
                )
                .map_err(|source| Error::TypeMismatch {
                    entity: C::META.name,
                    table: C::META.table,
                    column: C::META.columns[column].name,
                    expected: C::META.columns[column].sql_type.to_string(),
                    found: format!("the key {k} of {}: {source}", P::META.name),
                })?;
            }
        }
        {
            let mut st = self.shared.lock()?;
            let mut m = child.obj.meta.lock();
            m.retain_links(|l| l.column != column);
            if key.is_none() {
                m.push_link(Link {
                    column,
                    parent: erased(parent),
                    done: 0,
                    old: Value::Null,
                });
                drop(m);
                st.linked = true;
            }
        }
        if let Some(r) = reverse {
            let me = erased(child);
            if let Some(old) = old_parent
                && old != *parent
            {
                let mut m = old.obj.meta.lock();
                if let Some(c) = m.collection_mut(r) {
                    c.retain(|o| !Arc::ptr_eq(o, &me));
                }
            }
            let mut m = parent.obj.meta.lock();
            if let Some(c) = m.collection_mut(r)
                && !c.iter().any(|o| Arc::ptr_eq(o, &me))
            {
                c.push(me);
            }
        }
        Ok(())
    }

    /// [`link`](Self::link) from the parent's side: `parent.orders.append(order)`.
    ///
    /// # Errors
    /// As [`link`](Self::link).
    pub fn append<P: Entity, C: Entity>(
        &self,
        parent: &Handle<P>,
        relation: OneToMany<P, C>,
        child: &Handle<C>,
    ) -> Result<()> {
        self.link(child, relation.via(), parent)
    }

    /// Unlinks `child` from its parent through the foreign key of `relation`. With the
    /// parent's relation declared `delete-orphan`, the child is deleted (a pending one leaves
    /// the session); otherwise its foreign key is set to NULL.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when the foreign key is NOT NULL and the relation is not
    /// `delete-orphan`; as [`delete`](Self::delete) and [`Handle::write`].
    pub fn unlink<C: Entity, P: Entity>(
        &self,
        child: &Handle<C>,
        relation: ManyToOne<C, P>,
    ) -> Result<()> {
        let column = relation.column();
        let cascade = cascade_of::<C, P>(column);
        let old_parent = self.current_parent::<C, P>(child, column)?;
        let orphan = cascade.contains(Cascade::DELETE_ORPHAN);
        if !orphan && !C::META.columns[column].nullable {
            return Err(Error::InvalidState {
                message: format!(
                    "cannot unlink {} from its {}: `{}`.`{}` is NOT NULL; delete it instead, or \
                     declare the relation on {} with `cascade = \"all, delete-orphan\"`",
                    C::META.name,
                    P::META.name,
                    C::META.table,
                    C::META.columns[column].name,
                    P::META.name
                ),
            });
        }
        child.obj.meta.lock().retain_links(|l| l.column != column);
        if let (Some(old), Some(r)) = (old_parent, reverse::<C, P>(column)) {
            let me = erased(child);
            let mut m = old.obj.meta.lock();
            if let Some(c) = m.collection_mut(r) {
                c.retain(|o| !Arc::ptr_eq(o, &me));
            }
        }
        if orphan {
            return self.delete(child);
        }
        child
            .write()?
            .set_column(column, orm_core::ValueRef::Null)
            .map_err(|source| Error::InvalidState {
                message: format!(
                    "cannot set {}::{} to NULL: {source}",
                    C::META.name,
                    C::META.columns[column].field
                ),
            })
    }

    /// [`unlink`](Self::unlink) from the parent's side: `parent.orders.remove(order)`.
    ///
    /// # Errors
    /// As [`unlink`](Self::unlink).
    pub fn remove<P: Entity, C: Entity>(
        &self,
        parent: &Handle<P>,
        relation: OneToMany<P, C>,
        child: &Handle<C>,
    ) -> Result<()> {
        let _ = parent;
        self.unlink(child, relation.via())
    }

    /// The parent `child` is linked or points to now, if it is loaded or linked.
    fn current_parent<C: Entity, P: Entity>(
        &self,
        child: &Handle<C>,
        column: usize,
    ) -> Result<Option<Handle<P>>> {
        let linked = child
            .obj
            .meta
            .lock()
            .links()
            .iter()
            .find(|l| l.column == column)
            .map(|l| Arc::clone(&l.parent));
        if let Some(p) = linked {
            return Ok(typed::<P>(&p));
        }
        let state = child.obj.meta.lock().state;
        if state == ObjectState::Transient {
            return Ok(None);
        }
        let key = Key::from_value(&child.read()?.column(column));
        let st = self.shared.lock()?;
        Ok(key
            .and_then(|k| st.maps.get::<P>(&k))
            .map(|obj| Handle { obj }))
    }

    /// Whether an object with this bookkeeping is pending or persistent in this session.
    fn holds(&self, m: &crate::handle::Meta) -> bool {
        matches!(m.state, ObjectState::Pending | ObjectState::Persistent)
            && m.belongs_to(&self.shared)
    }

    /// Makes sure `h` is in this session for `operation`: a transient object is added when
    /// the cascade has save-update.
    fn enlist<E: Entity>(
        &self,
        h: &Handle<E>,
        cascade: Cascade,
        operation: &'static str,
    ) -> Result<()> {
        let (state, mine) = {
            let m = h.obj.meta.lock();
            (m.state, m.belongs_to(&self.shared))
        };
        match state {
            ObjectState::Transient if cascade.contains(Cascade::SAVE_UPDATE) => self.add_handle(h),
            ObjectState::Pending | ObjectState::Persistent if mine => Ok(()),
            ObjectState::Transient => Err(Error::NotInSession {
                entity: E::META.name,
                operation,
                state: "transient, and the relation's cascade leaves save-update out".into(),
            }),
            _ => Err(Error::NotInSession {
                entity: E::META.name,
                operation,
                state: format!("{:?}", h.state()),
            }),
        }
    }

    /// The delete cascade of `delete(h)`: children of relations declared with `delete` are
    /// marked for deletion too (loaded first when needed).
    pub(crate) fn cascade_delete<E: Entity>(&self, h: &Handle<E>) -> Result<()> {
        for (i, r) in E::META.relations.iter().enumerate() {
            if !cascades(r) {
                continue;
            }
            let visitor = CascadeDelete {
                session: self,
                parent: h,
                relation: i,
                column: r.remote_column,
            };
            E::visit_relation(i, visitor).unwrap_or(Ok(()))?;
        }
        Ok(())
    }
}

/// Whether deleting an object of `meta` deletes children too (a relation declared with a
/// delete cascade).
pub(crate) fn cascades_delete(meta: &EntityMeta) -> bool {
    meta.relations.iter().any(cascades)
}

fn cascades(r: &orm_core::RelationMeta) -> bool {
    r.kind != RelationKind::ManyToMany && r.cascade.contains(Cascade::DELETE)
}

struct CascadeDelete<'a, P> {
    session: &'a Session,
    parent: &'a Handle<P>,
    relation: usize,
    column: usize,
}

impl<P: Entity> TypeVisitor for CascadeDelete<'_, P> {
    type Output = Result<()>;
    fn visit<C: Entity>(self) -> Result<()> {
        let mut doomed = children::<P, C>(self.session, self.parent, self.relation, self.column)?;
        // Pending children given the parent's key (not in the database yet).
        if let Some(key) = self.parent.key() {
            let st = self.session.shared.lock()?;
            for o in &st.pending_objects() {
                if let Some(c) = typed::<C>(o)
                    && !doomed.contains(&c)
                    && c.obj.value.try_read().is_some_and(|v| {
                        Key::from_value(&v.column(self.column)).as_ref() == Some(&key)
                    })
                {
                    doomed.push(c);
                }
            }
        }
        for child in doomed {
            self.session.delete(&child)?;
        }
        Ok(())
    }
}

/// Loads, into the identity map, the rows of relation `relation`'s target whose column
/// `column` holds one of `keys`, without autoflush (inside a flush).
pub(crate) struct LoadReferencing<'a> {
    pub conn: &'a Connection,
    pub maps: &'a mut Maps,
    pub joining: &'a Joining,
    pub column: usize,
    pub keys: &'a [Value],
}

impl TypeVisitor for LoadReferencing<'_> {
    type Output = Result<Vec<Arc<dyn Erased>>>;
    fn visit<C: Entity>(self) -> Result<Vec<Arc<dyn Erased>>> {
        let map = self.maps.typed::<C>();
        let mut out = Vec::new();
        let per = chunks(self.conn.max_bind_parameters());
        for part in self.keys.chunks(per) {
            self.conn
                .select_each::<C>(&in_list(self.column, part), |row| {
                    out.push(erased(&merge(map, row, false, self.joining)?));
                    Ok(())
                })?;
        }
        Ok(out)
    }
}

/// The children that the deletes of a flush leave behind, for relations declared without a
/// delete cascade: each gets NULL in its foreign key (an UPDATE before the DELETEs), or the
/// flush fails when the column is NOT NULL. Relations whose foreign key has an `ON DELETE`
/// action of its own are the database's to handle.
pub(crate) fn orphans(
    conn: &Connection,
    maps: &mut Maps,
    joining: &Joining,
    deleted: &[Doomed],
) -> Result<Vec<(Arc<dyn Erased>, usize)>> {
    let mut out = Vec::new();
    let mut entities: Vec<&'static EntityMeta> = Vec::new();
    for o in deleted {
        if !entities.iter().any(|e| e.is(o.entity())) {
            entities.push(o.entity());
        }
    }
    for meta in entities {
        for (ri, r) in meta.relations.iter().enumerate() {
            if r.kind == RelationKind::ManyToMany || r.cascade.contains(Cascade::DELETE) {
                continue;
            }
            let target = r.target();
            let fk = &target.columns[r.remote_column];
            if fk
                .references
                .is_some_and(|f| matches!(f.on_delete, OnDelete::Cascade | OnDelete::SetNull))
            {
                continue;
            }
            let keys: Vec<Value> = deleted
                .iter()
                .filter(|d| d.entity().is(meta))
                .filter_map(|d| d.key.as_ref().map(|k| k.to_value(fk.sql_type)))
                .collect();
            let Some(first) = deleted.iter().find(|d| d.entity().is(meta)) else {
                continue;
            };
            if keys.is_empty() {
                continue;
            }
            let visitor = LoadReferencing {
                conn,
                maps,
                joining,
                column: r.remote_column,
                keys: &keys,
            };
            let Some(found) = first.load_referencing(ri, visitor) else {
                continue;
            };
            for child in found? {
                let gone = child.meta().marked_delete
                    || deleted.iter().any(|d| Arc::ptr_eq(&d.obj, &child));
                if gone {
                    continue;
                }
                if !fk.nullable {
                    return Err(Error::InvalidState {
                        message: format!(
                            "cannot delete {} (table `{}`): rows of `{}` reference it through \
                             `{}`, which is NOT NULL; delete them first, or declare \
                             `cascade = \"all\"` on {}::{}",
                            meta.name, meta.table, target.table, fk.name, meta.name, r.name
                        ),
                    });
                }
                out.push((child, r.remote_column));
            }
        }
    }
    Ok(out)
}

/// Adds to a foreign-key violation's message the tables on both sides.
pub(crate) fn name_references(mut e: Error, meta: &'static EntityMeta, deleting: bool) -> Error {
    if e.kind() != ErrorKind::ForeignKeyViolation {
        return e;
    }
    if let Error::Database { message, .. } = &mut e {
        let sides: Vec<String> = if deleting {
            meta.relations
                .iter()
                .filter(|r| r.kind != RelationKind::ManyToMany)
                .map(|r| {
                    let t = r.target();
                    format!(
                        "`{}`.`{}` references `{}`",
                        t.table, t.columns[r.remote_column].name, meta.table
                    )
                })
                .collect()
        } else {
            meta.foreign_keys()
                .map(|(c, fk)| {
                    format!(
                        "`{}`.`{}` references `{}`",
                        meta.table,
                        meta.columns[c].name,
                        fk.target().table
                    )
                })
                .collect()
        };
        if sides.is_empty() {
            message.push_str(&format!(
                " (a row of another table references `{}`)",
                meta.table
            ));
        } else {
            message.push_str(&format!(" ({})", sides.join("; ")));
        }
    }
    e
}
