//! `session.query::<E>()`: filtered, ordered, limited loads merged into the identity map.

use std::marker::PhantomData;

use orm_core::{Condition, Entity, Error, Filter, Mapping, Order, Result, SelectSpec, Selection};

use crate::by_filter::{Synchronize, Write};

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
    /// Relations loaded for the whole result (`selectin`).
    eager: Vec<Eager<'s, E>>,
    /// Rows per page of [`iter`](Self::iter).
    yield_per: usize,
    _entity: PhantomData<fn() -> E>,
}

/// Rows per page of a stream whose query did not say ([`Query::yield_per`]).
pub const DEFAULT_PAGE: usize = 1000;

pub(crate) type Eager<'s, E> = Box<dyn Fn(&'s Session, &[Handle<E>]) -> Result<()> + 's>;

impl<'s, E: Entity> Query<'s, E> {
    pub(crate) fn new(session: &'s Session) -> Self {
        Query {
            session,
            spec: SelectSpec::default(),
            populate_existing: false,
            eager: Vec::new(),
            yield_per: DEFAULT_PAGE,
            _entity: PhantomData,
        }
    }

    /// Loads `relation` for every result with one more SELECT per relation (per chunk of
    /// results under the driver's parameter limit), instead of one per object when each is
    /// accessed (SQLAlchemy's `selectinload`): N parents and their children cost two
    /// statements. [`Session::related`] then answers from what was loaded, without SQL.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// #[orm(has_many(books = Book::AUTHOR))]
    /// struct Author { #[orm(primary_key)] id: i64 }
    /// #[derive(Entity, Debug, Clone)]
    /// struct Book { #[orm(primary_key)] id: i64, #[orm(references = Author)] author_id: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_all(&[Author::META, Book::META])?;
    /// let s = engine.session();
    /// s.add_all((1..=3).map(|id| Author { id }))?;
    /// s.add_all((1..=6).map(|id| Book { id, author_id: (id + 1) / 2 }))?;
    /// s.commit()?;
    /// let authors = s.query::<Author>().selectin(Author::BOOKS).all()?; // 2 SELECTs
    /// for a in &authors {
    ///     assert_eq!(s.related(a, Author::BOOKS)?.len(), 2);         // no SQL
    /// }
    /// # Ok(()) }
    /// ```
    pub fn selectin<R: crate::Relation<E> + 's>(mut self, relation: R) -> Self {
        self.eager
            .push(Box::new(move |s, objs| relation.load_all(s, objs)));
        self
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

    /// `UPDATE` of every row the query's filters match (SQLAlchemy 2.0's ORM-enabled
    /// `update()`): one statement, setting the columns `values` sets; a versioned entity's
    /// version is incremented in every row. Pending changes are flushed first (autoflush);
    /// the objects of the identity map are brought in line as `sync` says (the default,
    /// [`Synchronize::Auto`], evaluates the filter in memory when it can, else asks the
    /// database which rows changed). Returns the number of rows changed. Cascades do not
    /// run, as for SQLAlchemy's bulk statements.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64, name: String, age: i32 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// let pets = s.add_all((1..=5).map(|i| Pet { id: i, name: format!("pet{i}"), age: i as i32 }))?;
    /// s.commit()?;
    /// let n = s.query::<Pet>()
    ///     .filter(Pet::AGE.ge(4))
    ///     .update(Mapping::from([Pet::NAME.to("old")]), Synchronize::Auto)?;
    /// assert_eq!(n, 2);
    /// assert_eq!(pets[4].read()?.name, "old"); // the object in the session shows it
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidState`] for a query with an order, a limit, an offset or eager loads,
    /// a mapping that sets nothing or sets the primary key, or [`Synchronize::Evaluate`] with
    /// a filter that cannot be evaluated in memory (all before any SQL); the database's
    /// error, after which the session's transaction is as after a failed flush.
    pub fn update(self, values: Mapping<E>, sync: Synchronize) -> Result<u64> {
        self.plain("update")?;
        let values = values
            .columns()
            .map(|c| (c, values.get(c).cloned().unwrap_or(orm_core::Value::Null)))
            .collect();
        self.session
            .write_where::<E>(self.spec.filter.as_ref(), &Write::Update(values), sync)
    }

    /// `DELETE` of every row the query's filters match (SQLAlchemy 2.0's ORM-enabled
    /// `delete()`), after an autoflush; the objects of the identity map whose rows were
    /// deleted leave it as a flushed delete would (a rollback brings them back), found as
    /// `sync` says. Returns the number of rows deleted. Cascades do not run: rows that
    /// reference the deleted ones are the foreign key's `ON DELETE` business.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64, age: i32 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// let pets = s.add_all((1..=5).map(|i| Pet { id: i, age: i as i32 }))?;
    /// assert_eq!(s.query::<Pet>().filter(Pet::AGE.lt(3)).delete(Synchronize::Auto)?, 2);
    /// assert_eq!(pets[0].state(), ObjectState::Deleted);
    /// s.commit()?;
    /// assert_eq!(s.query::<Pet>().count()?, 3);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`update`](Self::update).
    pub fn delete(self, sync: Synchronize) -> Result<u64> {
        self.plain("delete")?;
        self.session
            .write_where::<E>(self.spec.filter.as_ref(), &Write::Delete, sync)
    }

    /// Refuses what an `UPDATE` or `DELETE` by filter cannot honour.
    fn plain(&self, operation: &str) -> Result<()> {
        let spec = &self.spec;
        if !spec.order.is_empty()
            || spec.limit.is_some()
            || spec.offset.is_some()
            || !self.eager.is_empty()
        {
            return Err(Error::InvalidState {
                message: format!(
                    "{} (table `{}`): `{operation}` by filter takes only filters; an order, a                      limit, an offset or eager loads have no meaning for it",
                    E::META.name,
                    E::META.table
                ),
            });
        }
        Ok(())
    }

    /// Selects columns instead of whole entities (SQLAlchemy's `session.query(User.id,
    /// User.name)`): one column constant or a tuple of up to eight, each result row decoded
    /// into the columns' field types. The query's filters, order, limit and offset apply;
    /// rows are plain values, not tracked by the identity map. Autoflush first.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64, name: String, age: i32 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// s.add_all((1..=4).map(|i| Pet { id: i, name: format!("pet{i}"), age: (i % 2) as i32 }))?;
    /// let rows: Vec<(i64, String)> = s.query::<Pet>()
    ///     .filter(Pet::AGE.eq(1))
    ///     .order_by(Pet::ID, Order::Desc)
    ///     .select((Pet::ID, Pet::NAME))
    ///     .all()?;
    /// assert_eq!(rows, [(3, "pet3".to_string()), (1, "pet1".to_string())]);
    /// let ages: Vec<i32> = s.query::<Pet>().order_by(Pet::AGE, Order::Asc).select(Pet::AGE).distinct().all()?;
    /// assert_eq!(ages, [0, 1]);
    /// # Ok(()) }
    /// ```
    pub fn select<S: Selection<E>>(self, selection: S) -> Select<'s, E, S> {
        Select {
            session: self.session,
            spec: self.spec,
            selection,
            distinct: false,
            _entity: PhantomData,
        }
    }

    /// Adds an `ORDER BY` column: one of `E`'s, or one of an entity `E` references, reached
    /// through a many-to-one relation (`Order::CUSTOMER.col(Customer::NAME)`, which joins
    /// that entity's table with `LEFT JOIN`).
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Customer { #[orm(primary_key)] id: i64, name: String }
    /// #[derive(Entity, Debug, Clone)]
    /// struct Purchase { #[orm(primary_key)] id: i64, #[orm(references = Customer)] customer_id: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_all(&[Customer::META, Purchase::META])?;
    /// let s = engine.session();
    /// s.add_all([Customer { id: 1, name: "Zoe".into() }, Customer { id: 2, name: "Al".into() }])?;
    /// s.add_all([Purchase { id: 10, customer_id: 1 }, Purchase { id: 20, customer_id: 2 }])?;
    /// let by_name = s.query::<Purchase>()
    ///     .order_by(Purchase::CUSTOMER.col(Customer::NAME), Order::Asc)
    ///     .all()?;
    /// assert_eq!(by_name[0].read()?.id, 20); // Al's
    /// let named: Vec<(i64, Option<String>)> = s.query::<Purchase>()
    ///     .order_by(Purchase::ID, Order::Asc)
    ///     .select((Purchase::ID, Purchase::CUSTOMER.col(Customer::NAME)))
    ///     .all()?;
    /// assert_eq!(named, [(10, Some("Zoe".into())), (20, Some("Al".into()))]);
    /// # Ok(()) }
    /// ```
    pub fn order_by(mut self, column: impl orm_core::ColumnExpr<E>, order: Order) -> Self {
        self.spec.order.push((column.column_expr(), order));
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
        let found = self.session.load(&self.spec, self.populate_existing)?;
        if !found.is_empty() {
            for load in &self.eager {
                load(self.session, &found)?;
            }
        }
        Ok(found)
    }

    /// Rows read per round trip by [`iter`](Self::iter) (SQLAlchemy's `yield_per`); the
    /// default is [`DEFAULT_PAGE`]. Memory is bounded by one page of objects plus those the
    /// caller keeps.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// s.add_all((1..=7).map(|id| Pet { id }))?;
    /// let stream = s.query::<Pet>().yield_per(3).iter()?;
    /// assert_eq!(stream.page_size(), 3);
    /// assert_eq!(stream.count(), 7);
    /// # Ok(()) }
    /// ```
    pub fn yield_per(mut self, n: usize) -> Self {
        self.yield_per = n.max(1);
        self
    }

    /// The matching objects read a page at a time through a cursor (a server-side cursor
    /// on PostgreSQL), merged into the identity map as [`all`](Self::all)'s are, and eager
    /// loads run per page. Autoflush first; on PostgreSQL the session's transaction begins
    /// here. See [`Stream`](crate::Stream) for what may happen between pages.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64, age: i32 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// s.add_all((1..=10).map(|id| Pet { id, age: (id % 3) as i32 }))?;
    /// let mut pages = s.query::<Pet>().order_by(Pet::ID, Order::Desc).yield_per(4).iter()?;
    /// let first = pages.next_page()?.expect("a page");
    /// assert_eq!(first.iter().map(|p| p.read().map(|p| p.id)).collect::<Result<Vec<_>>>()?, [10, 9, 8, 7]);
    /// assert_eq!(pages.map(|p| p.map(drop)).count(), 6);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Autoflush errors; the database's error when the cursor opens. Errors of later pages
    /// come from the stream.
    pub fn iter(self) -> Result<crate::Stream<'s, E>> {
        crate::Stream::open(
            self.session,
            &self.spec,
            self.yield_per,
            self.populate_existing,
            self.eager,
        )
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

    /// Whether any row matches the filters (`SELECT EXISTS (…)`, which stops at the first),
    /// after an autoflush.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64, age: i32 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// assert!(!s.query::<Pet>().exists()?);
    /// s.add(Pet { id: 1, age: 3 })?; // flushed first
    /// assert!(s.query::<Pet>().filter(Pet::AGE.eq(3)).exists()?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The database's error.
    pub fn exists(self) -> Result<bool> {
        let filter = self.spec.filter;
        self.session
            .with_flushed(|conn| conn.exists_where::<E>(filter.as_ref()))
    }
}

/// A query of columns of `E` ([`Query::select`]): plain rows, not tracked objects.
#[must_use = "a query does nothing until `all` or `first`"]
pub struct Select<'s, E, S> {
    session: &'s Session,
    spec: SelectSpec,
    selection: S,
    distinct: bool,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity, S: Selection<E>> Select<'_, E, S> {
    /// Each distinct row once (`SELECT DISTINCT`).
    pub fn distinct(mut self) -> Self {
        self.distinct = true;
        self
    }

    /// `GROUP BY` a column: with aggregates in the selection, one row per group.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Sale { #[orm(primary_key)] id: i64, region: String, amount: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Sale>()?;
    /// let s = engine.session();
    /// s.add_all((1..=6).map(|i| Sale { id: i, region: ["n", "s"][(i % 2) as usize].into(), amount: i * 10 }))?;
    /// let by_region: Vec<(String, i64, Option<i64>, Option<i64>)> = s.query::<Sale>()
    ///     .order_by(Sale::REGION, Order::Asc)
    ///     .select((Sale::REGION, Sale::ID.count(), Sale::AMOUNT.sum(), Sale::AMOUNT.max()))
    ///     .group_by(Sale::REGION)
    ///     .all()?;
    /// assert_eq!(by_region, [("n".into(), 3, Some(120), Some(60)), ("s".into(), 3, Some(90), Some(50))]);
    /// # Ok(()) }
    /// ```
    pub fn group_by(mut self, column: impl orm_core::ColumnExpr<E>) -> Self {
        self.spec.group_by.push(column.column_expr());
        self
    }

    /// `HAVING`: keeps the groups whose aggregates pass `filter` (built from the
    /// aggregates' comparisons, `Sale::AMOUNT.sum().gt(100)`); several are ANDed.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Sale { #[orm(primary_key)] id: i64, region: String, amount: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Sale>()?;
    /// let s = engine.session();
    /// s.add_all((1..=6).map(|i| Sale { id: i, region: ["n", "s"][(i % 2) as usize].into(), amount: i * 10 }))?;
    /// let big: Vec<String> = s.query::<Sale>()
    ///     .select(Sale::REGION)
    ///     .group_by(Sale::REGION)
    ///     .having(Sale::AMOUNT.sum().gt(100))
    ///     .all()?;
    /// assert_eq!(big, ["n"]);
    /// # Ok(()) }
    /// ```
    pub fn having(mut self, filter: Filter<E>) -> Self {
        let c = filter.into_condition();
        self.spec.having = Some(match self.spec.having.take() {
            Some(prev) => Condition::And(vec![prev, c]),
            None => c,
        });
        self
    }

    /// Every row.
    ///
    /// # Errors
    /// The database's error; [`Error::Conversion`] for a value its field type cannot take.
    pub fn all(self) -> Result<Vec<S::Row>> {
        self.session.with_flushed(|conn| {
            conn.select_columns::<E, S>(&self.selection, &self.spec, self.distinct)
        })
    }

    /// The first row, if any (`LIMIT 1`).
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub fn first(mut self) -> Result<Option<S::Row>> {
        self.spec.limit = Some(1);
        Ok(self.all()?.into_iter().next())
    }

    /// Every row, each made into a `T`: a struct derived with
    /// [`FromRow`](derive@crate::FromRow) whose fields are the selection's types in order
    /// (anything else does not compile).
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Sale { #[orm(primary_key)] id: i64, region: String, amount: i64 }
    /// #[derive(FromRow, Debug, PartialEq)]
    /// struct RegionTotal { region: String, sales: i64, total: Option<i64> }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Sale>()?;
    /// let s = engine.session();
    /// s.add_all((1..=4).map(|i| Sale { id: i, region: ["n", "s"][(i % 2) as usize].into(), amount: i }))?;
    /// let totals: Vec<RegionTotal> = s.query::<Sale>()
    ///     .order_by(Sale::REGION, Order::Asc)
    ///     .select((Sale::REGION, Sale::ID.count(), Sale::AMOUNT.sum()))
    ///     .group_by(Sale::REGION)
    ///     .all_as()?;
    /// assert_eq!(totals[0], RegionTotal { region: "n".into(), sales: 2, total: Some(6) });
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub fn all_as<T: From<S::Row>>(self) -> Result<Vec<T>> {
        Ok(self.all()?.into_iter().map(T::from).collect())
    }

    /// The first row made into a `T`, if any (`LIMIT 1`); see [`all_as`](Self::all_as).
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64, name: String }
    /// #[derive(FromRow, Debug, PartialEq)]
    /// struct Name(String);
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// s.add_all([Pet { id: 1, name: "rex".into() }, Pet { id: 2, name: "ace".into() }])?;
    /// let first: Option<Name> = s.query::<Pet>().order_by(Pet::NAME, Order::Asc).select(Pet::NAME).first_as()?;
    /// assert_eq!(first, Some(Name("ace".into())));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub fn first_as<T: From<S::Row>>(self) -> Result<Option<T>> {
        Ok(self.first()?.map(T::from))
    }
}
