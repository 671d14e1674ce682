//! `session.query::<E>()`: filtered, ordered, limited loads merged into the identity map.

use std::marker::PhantomData;

use orm_core::{Column, Condition, Entity, Error, Filter, Order, Result, SelectSpec};

use crate::handle::Handle;
use crate::session::Session;

/// A query of entity `E` in a session. Results merge into the identity map: an object
/// already there and not expired is returned as it is, with its unflushed changes;
/// [`populate_existing`](Self::populate_existing) overwrites them with the rows' values.
/// Pending changes are flushed first when autoflush is on (S5).
///
/// ```
/// use orm_session::prelude::*;
/// #[derive(Entity, Debug, Clone)]
/// struct Pet { #[orm(primary_key)] id: i64, name: String, age: i32 }
///
/// # fn main() -> orm_session::Result<()> {
/// let engine = Engine::sqlite_memory()?;
/// engine.create_table::<Pet>()?;
/// let s = engine.session();
/// s.add_all((1..=5).map(|i| Pet { id: i, name: format!("pet{i}"), age: i as i32 }))?;
/// let old = s.query::<Pet>()
///     .filter(Pet::AGE.ge(3).and(Pet::NAME.ne("pet4")))
///     .order_by(Pet::AGE, Order::Desc)
///     .all()?;
/// let ids: Vec<i64> = old.iter().map(|p| p.read().map(|p| p.id)).collect::<Result<_>>()?;
/// assert_eq!(ids, [5, 3]);
/// assert_eq!(s.query::<Pet>().filter(Pet::NAME.like("pet%")).count()?, 5);
/// # Ok(()) }
/// ```
#[must_use = "a query does nothing until `all`, `first`, `one`, `one_or_none` or `count`"]
pub struct Query<'s, E> {
    session: &'s Session,
    spec: SelectSpec,
    populate_existing: bool,
    _entity: PhantomData<fn() -> E>,
}

impl<'s, E: Entity> Query<'s, E> {
    pub(crate) fn new(session: &'s Session) -> Self {
        Query {
            session,
            spec: SelectSpec::default(),
            populate_existing: false,
            _entity: PhantomData,
        }
    }

    /// Adds a filter; several filters are ANDed.
    pub fn filter(mut self, filter: Filter<E>) -> Self {
        let c = filter.into_condition();
        self.spec.filter = Some(match self.spec.filter.take() {
            Some(Condition::And(mut all)) => {
                all.push(c);
                Condition::And(all)
            }
            Some(prev) => Condition::And(vec![prev, c]),
            None => c,
        });
        self
    }

    /// Adds an `ORDER BY` column.
    pub fn order_by<T>(mut self, column: Column<E, T>, order: Order) -> Self {
        self.spec.order.push((column.index(), order));
        self
    }

    /// `LIMIT n`.
    pub fn limit(mut self, n: u64) -> Self {
        self.spec.limit = Some(n);
        self
    }

    /// `OFFSET n`.
    pub fn offset(mut self, n: u64) -> Self {
        self.spec.offset = Some(n);
        self
    }

    /// Overwrite objects already in the identity map with the rows' values, discarding
    /// their unflushed changes.
    pub fn populate_existing(mut self) -> Self {
        self.populate_existing = true;
        self
    }

    /// Every matching object.
    ///
    /// # Errors
    /// Database and conversion errors; autoflush errors.
    pub fn all(self) -> Result<Vec<Handle<E>>> {
        self.session.load(&self.spec, self.populate_existing)
    }

    /// The first matching object, if any.
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub fn first(self) -> Result<Option<Handle<E>>> {
        Ok(self.limit(1).all()?.into_iter().next())
    }

    /// The only matching object, or `None`.
    ///
    /// # Errors
    /// [`Error::MultipleRows`] when more than one matches; as [`all`](Self::all).
    pub fn one_or_none(self) -> Result<Option<Handle<E>>> {
        let mut found = self.limit(2).all()?;
        if found.len() > 1 {
            return Err(Error::MultipleRows {
                entity: E::META.name,
                table: E::META.table,
            });
        }
        Ok(found.pop())
    }

    /// Exactly one matching object.
    ///
    /// # Errors
    /// [`Error::NotFound`] when none matches, [`Error::MultipleRows`] when several do.
    pub fn one(self) -> Result<Handle<E>> {
        self.one_or_none()?.ok_or(Error::NotFound {
            entity: E::META.name,
            table: E::META.table,
            key: "matching the query".into(),
        })
    }

    /// How many rows match (limit and offset ignored).
    ///
    /// # Errors
    /// Database errors; autoflush errors.
    pub fn count(self) -> Result<u64> {
        self.session.count::<E>(self.spec.filter.as_ref())
    }
}
