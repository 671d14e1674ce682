//! Foreign keys and relations between entities: the metadata the derive generates, and the
//! typed relation constants (`Order::CUSTOMER`, `Customer::ORDERS`) that session calls and
//! filters take.
//!
//! A relation is declared once, by the foreign key: a field `#[orm(references = Customer)]`
//! on `Order` makes the many-to-one `Order::CUSTOMER`. The other side names it:
//! `#[orm(has_many(orders = Order::CUSTOMER))]` on `Customer` makes the one-to-many
//! `Customer::ORDERS`, whose join is the foreign key's, so the two sides cannot disagree.
//! A constant of the wrong entity does not compile.
//!
//! ```
//! use orm_core::Entity;
//!
//! #[derive(Entity)]
//! #[orm(has_many(orders = Order::CUSTOMER, cascade = "all, delete-orphan"))]
//! struct Customer { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String }
//!
//! #[derive(Entity)]
//! #[orm(table = "orders")]
//! struct Order {
//!     #[orm(primary_key, auto_increment)] id: Option<i64>,
//!     #[orm(references = Customer, on_delete = "cascade")] customer_id: Option<i64>,
//!     total: f64,
//! }
//!
//! let fk = Order::META.columns[1].references.expect("a foreign key");
//! assert_eq!(fk.target().table, "customer");
//! assert_eq!(Customer::META.relations[0].name, "orders");
//! // Customers having an order over 100:
//! let big = Customer::ORDERS.any(Order::TOTAL.gt(100.0));
//! // Orders of customers called Ada:
//! let ada = Order::CUSTOMER.has(Customer::NAME.eq("Ada"));
//! # let _ = (big, ada);
//! ```

use std::fmt;
use std::marker::PhantomData;

use crate::connection::Connection;
use crate::entity::{Entity, EntityMeta};
use crate::error::Result;
use crate::filter::{Condition, Filter, SelectSpec};
use crate::value::{Key, Value};

/// `fn() -> &'static EntityMeta` for `T`: how metadata points at another entity's (a plain
/// reference would make two entities that reference each other a cycle in const evaluation).
#[doc(hidden)]
pub fn meta_of<T: Entity>() -> &'static EntityMeta {
    T::META
}

/// How metadata names another entity's metadata (see [`meta_of`]).
pub type MetaFn = fn() -> &'static EntityMeta;

/// What the database does to the rows referencing a row that is deleted (`ON DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnDelete {
    /// Refuse the delete at the end of the statement (the default).
    NoAction,
    /// Refuse the delete at once.
    Restrict,
    /// Delete the referencing rows too.
    Cascade,
    /// Set the referencing column to NULL.
    SetNull,
}

impl OnDelete {
    /// The SQL words.
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
        }
    }
}

/// A column that references the primary key of another entity (`FOREIGN KEY … REFERENCES`).
#[derive(Clone, Copy)]
pub struct ForeignKey {
    /// The referenced entity.
    pub target: MetaFn,
    /// `ON DELETE`.
    pub on_delete: OnDelete,
}

impl ForeignKey {
    /// The referenced entity's metadata.
    pub fn target(&self) -> &'static EntityMeta {
        (self.target)()
    }
}

impl PartialEq for ForeignKey {
    fn eq(&self, other: &Self) -> bool {
        self.target().is(other.target()) && self.on_delete == other.on_delete
    }
}
impl Eq for ForeignKey {}

impl fmt::Debug for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignKey")
            .field("target", &self.target().table)
            .field("on_delete", &self.on_delete)
            .finish()
    }
}

/// What the session does to the objects of a one-to-many (or one-to-one) relation when it
/// adds, deletes or unlinks the parent, with SQLAlchemy's names and meanings.
///
/// ```
/// use orm_core::Cascade;
/// let c = Cascade::parse("all, delete-orphan").unwrap();
/// assert!(c.contains(Cascade::DELETE) && c.contains(Cascade::DELETE_ORPHAN));
/// assert!(Cascade::parse("delete, typo").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cascade(u8);

impl Cascade {
    /// Nothing.
    pub const NONE: Cascade = Cascade(0);
    /// Linking an object that is not in the session to one that is adds it (the default).
    pub const SAVE_UPDATE: Cascade = Cascade(1);
    /// Deleting the parent deletes its children in the same flush.
    pub const DELETE: Cascade = Cascade(2);
    /// A child unlinked from its parent is deleted.
    pub const DELETE_ORPHAN: Cascade = Cascade(4);
    /// `save-update` and `delete`.
    pub const ALL: Cascade = Cascade(1 | 2);

    /// Both sets.
    #[must_use]
    pub const fn union(self, other: Cascade) -> Cascade {
        Cascade(self.0 | other.0)
    }

    /// Whether every cascade of `other` is in this set.
    pub const fn contains(self, other: Cascade) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parses SQLAlchemy's notation: a comma-separated list of `save-update`, `delete`,
    /// `delete-orphan`, `all` (`save-update, delete`) and `none`.
    ///
    /// # Errors
    /// The unknown word.
    pub fn parse(s: &str) -> Result<Cascade, String> {
        let mut c = Cascade::NONE;
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            c = c.union(match word {
                "save-update" => Cascade::SAVE_UPDATE,
                "delete" => Cascade::DELETE,
                "delete-orphan" => Cascade::DELETE_ORPHAN,
                "all" => Cascade::ALL,
                "none" => Cascade::NONE,
                other => {
                    return Err(format!(
                        "unknown cascade `{other}`; expected save-update, delete, delete-orphan, \
                         all or none"
                    ));
                }
            });
        }
        Ok(c)
    }

    /// The bits, for generated code.
    #[doc(hidden)]
    pub const fn from_bits(bits: u8) -> Cascade {
        Cascade(bits & 7)
    }

    /// The bits, for generated code.
    #[doc(hidden)]
    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl fmt::Debug for Cascade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (Cascade::SAVE_UPDATE, "save-update"),
            (Cascade::DELETE, "delete"),
            (Cascade::DELETE_ORPHAN, "delete-orphan"),
        ]
        .iter()
        .filter(|(c, _)| self.contains(*c))
        .map(|(_, n)| *n)
        .collect();
        write!(f, "Cascade({})", names.join(", "))
    }
}

/// The kind of a relation declared on the "one" side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RelationKind {
    /// Many rows of the target reference this one.
    OneToMany,
    /// At most one row of the target references this one.
    OneToOne,
    /// Rows of an association entity reference this one and the target.
    ManyToMany,
}

/// A relation declared on an entity with `has_many`, `has_one` or `many_to_many`.
#[derive(Clone, Copy)]
pub struct RelationMeta {
    /// The relation's name (`orders`).
    pub name: &'static str,
    /// One-to-many, one-to-one or many-to-many.
    pub kind: RelationKind,
    /// The related entity.
    pub target: MetaFn,
    /// The column (of the target, or of the association entity for many-to-many) that
    /// references this entity.
    pub remote_column: usize,
    /// Many-to-many: the association entity and its column referencing the target.
    pub through: Option<(MetaFn, usize)>,
    /// What the session cascades along it.
    pub cascade: Cascade,
}

impl RelationMeta {
    /// The related entity's metadata.
    pub fn target(&self) -> &'static EntityMeta {
        (self.target)()
    }
}

impl PartialEq for RelationMeta {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.target().is(other.target())
            && self.remote_column == other.remote_column
            && self.cascade == other.cascade
    }
}
impl Eq for RelationMeta {}

impl fmt::Debug for RelationMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelationMeta")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("target", &self.target().table)
            .field("remote_column", &self.remote_column)
            .field("cascade", &self.cascade)
            .finish()
    }
}

/// Generic code that needs a relation's target as a type: [`Entity::visit_relation`] calls
/// `visit::<Target>()`.
#[doc(hidden)]
pub trait TypeVisitor {
    /// What the visit returns.
    type Output;
    /// Runs with the target type.
    fn visit<T: Entity>(self) -> Self::Output;
}

/// The many-to-one relation of a foreign key: child `C` references parent `P`. The derive
/// generates it from `#[orm(references = P)]` (`Order::CUSTOMER` for field `customer_id`).
pub struct ManyToOne<C, P> {
    column: usize,
    name: &'static str,
    _marker: PhantomData<fn() -> (C, P)>,
}

/// A one-to-many relation: parent `P` has children `C` through `C`'s foreign key. The derive
/// generates it from `#[orm(has_many(name = C::REL))]`.
pub struct OneToMany<P, C> {
    relation: usize,
    column: usize,
    _marker: PhantomData<fn() -> (P, C)>,
}

/// A one-to-one relation: parent `P` has at most one `C` referencing it (make the foreign key
/// `unique`). The derive generates it from `#[orm(has_one(name = C::REL))]`.
pub struct OneToOne<P, C> {
    relation: usize,
    column: usize,
    _marker: PhantomData<fn() -> (P, C)>,
}

/// A many-to-many relation from `A` to `B` through an association entity whose rows
/// reference both. The derive generates it from
/// `#[orm(many_to_many(name = B, via = (Assoc::TO_A, Assoc::TO_B)))]`.
pub struct ManyToMany<A, B> {
    relation: usize,
    through: MetaFn,
    left: usize,
    right: usize,
    pairs: PairsFn,
    _marker: PhantomData<fn() -> (A, B)>,
}

/// Reads (left key, right key) pairs of an association entity's rows whose left column holds
/// one of the given values.
type PairsFn = fn(&Connection, usize, usize, &[Value]) -> Result<Vec<(Key, Key)>>;

fn association_pairs<T: Entity>(
    conn: &Connection,
    left: usize,
    right: usize,
    keys: &[Value],
) -> Result<Vec<(Key, Key)>> {
    let spec = SelectSpec {
        filter: Some(Condition::In {
            column: left,
            values: keys.to_vec(),
        }),
        ..SelectSpec::default()
    };
    let mut out = Vec::new();
    conn.select_each::<T>(&spec, |row| {
        if let (Some(a), Some(b)) = (
            Key::from_value(&row.column(left)),
            Key::from_value(&row.column(right)),
        ) {
            out.push((a, b));
        }
        Ok(())
    })?;
    Ok(out)
}

macro_rules! copy_debug {
    ($($t:ident),*) => {$(
        impl<A, B> Clone for $t<A, B> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<A, B> Copy for $t<A, B> {}
    )*};
}
copy_debug!(ManyToOne, OneToMany, OneToOne, ManyToMany);

impl<C, P> fmt::Debug for ManyToOne<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManyToOne({})", self.name)
    }
}
impl<P, C> fmt::Debug for OneToMany<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OneToMany(#{})", self.relation)
    }
}
impl<P, C> fmt::Debug for OneToOne<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OneToOne(#{})", self.relation)
    }
}
impl<A, B> fmt::Debug for ManyToMany<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManyToMany(#{})", self.relation)
    }
}

impl<C, P> ManyToOne<C, P> {
    /// Used by generated code.
    #[doc(hidden)]
    pub const fn new(column: usize, name: &'static str) -> Self {
        ManyToOne {
            column,
            name,
            _marker: PhantomData,
        }
    }

    /// The foreign-key column's position in `C::META.columns`.
    pub const fn column(&self) -> usize {
        self.column
    }

    /// The relation's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<C: Entity, P: Entity> ManyToOne<C, P> {
    /// Column `column` of the parent, seen from the child through this relation: select it,
    /// order or group by it (a `LEFT JOIN` of the parent's table; the column reads as
    /// `Option`, `None` where the foreign key is NULL).
    ///
    /// ```
    /// use orm_core::{Connection, Entity, Order, SelectSpec};
    /// #[derive(Entity, Debug)]
    /// struct Customer { #[orm(primary_key)] id: i64, name: String }
    /// #[derive(Entity, Debug)]
    /// struct Purchase { #[orm(primary_key)] id: i64, #[orm(references = Customer)] customer_id: Option<i64> }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.create_all(&[Customer::META, Purchase::META])?;
    /// conn.insert_many([Customer { id: 1, name: "Zoe".into() }, Customer { id: 2, name: "Al".into() }])?;
    /// conn.insert_many([1, 2, 0].map(|c| Purchase { id: c + 10, customer_id: (c > 0).then_some(c) }))?;
    /// let spec = SelectSpec { order: vec![(Purchase::CUSTOMER.col(Customer::NAME).into(), Order::Desc)], ..SelectSpec::default() };
    /// let rows: Vec<(i64, Option<String>)> =
    ///     conn.select_columns::<Purchase, _>(&(Purchase::ID, Purchase::CUSTOMER.col(Customer::NAME)), &spec, false)?;
    /// assert_eq!(rows[0], (11, Some("Zoe".into())));
    /// assert!(rows.contains(&(10, None)), "kept without a customer");
    /// # Ok(()) }
    /// ```
    pub fn col<T>(self, column: crate::Column<P, T>) -> crate::select::Via<C, P, T> {
        crate::select::Via::new(self.column, column.index())
    }

    /// Children whose parent matches `filter` (`EXISTS` on the parent's table; SQLAlchemy's
    /// `has`).
    pub fn has(self, filter: Filter<P>) -> Filter<C> {
        Filter::new(Condition::Related {
            target: P::META,
            outer: self.column,
            inner: P::META.primary_key,
            through: None,
            condition: Some(Box::new(filter.into_condition())),
        })
    }
}

// One-to-many and one-to-one share their shape; they are written out (not made by a macro)
// so that a wrong relation in a derive attribute is reported at the attribute, plainly.
impl<P, C> OneToMany<P, C> {
    /// Used by generated code: relation `relation` of `P::META.relations`, through `via`.
    #[doc(hidden)]
    pub const fn new(relation: usize, via: ManyToOne<C, P>) -> Self {
        OneToMany {
            relation,
            column: via.column,
            _marker: PhantomData,
        }
    }

    /// Position in `P::META.relations`.
    pub const fn relation(&self) -> usize {
        self.relation
    }

    /// The children's many-to-one back to the parent.
    pub const fn via(&self) -> ManyToOne<C, P> {
        ManyToOne {
            column: self.column,
            name: "",
            _marker: PhantomData,
        }
    }
}

impl<P, C> OneToOne<P, C> {
    /// Used by generated code: relation `relation` of `P::META.relations`, through `via`.
    #[doc(hidden)]
    pub const fn new(relation: usize, via: ManyToOne<C, P>) -> Self {
        OneToOne {
            relation,
            column: via.column,
            _marker: PhantomData,
        }
    }

    /// Position in `P::META.relations`.
    pub const fn relation(&self) -> usize {
        self.relation
    }

    /// The child's many-to-one back to the parent.
    pub const fn via(&self) -> ManyToOne<C, P> {
        ManyToOne {
            column: self.column,
            name: "",
            _marker: PhantomData,
        }
    }
}

fn referenced_by<P: Entity, C: Entity>(column: usize, filter: Option<Filter<C>>) -> Filter<P> {
    Filter::new(Condition::Related {
        target: C::META,
        outer: P::META.primary_key,
        inner: column,
        through: None,
        condition: filter.map(|f| Box::new(f.into_condition())),
    })
}

impl<P: Entity, C: Entity> OneToMany<P, C> {
    /// Parents having a child that matches `filter` (`EXISTS`; SQLAlchemy's `any`).
    pub fn any(self, filter: Filter<C>) -> Filter<P> {
        referenced_by(self.column, Some(filter))
    }

    /// Parents having at least one child.
    pub fn exists(self) -> Filter<P> {
        referenced_by::<P, C>(self.column, None)
    }
}

impl<P: Entity, C: Entity> OneToOne<P, C> {
    /// Parents whose child matches `filter` (`EXISTS`; SQLAlchemy's `has`).
    pub fn has(self, filter: Filter<C>) -> Filter<P> {
        referenced_by(self.column, Some(filter))
    }

    /// Parents that have the child.
    pub fn exists(self) -> Filter<P> {
        referenced_by::<P, C>(self.column, None)
    }
}

impl<A, B> ManyToMany<A, B> {
    /// Used by generated code: relation `relation` of `A::META.relations`, through the
    /// association entity `T`'s many-to-ones to `A` and to `B`.
    #[doc(hidden)]
    pub const fn new<T: Entity>(
        relation: usize,
        left: ManyToOne<T, A>,
        right: ManyToOne<T, B>,
    ) -> Self {
        ManyToMany {
            relation,
            through: meta_of::<T>,
            left: left.column,
            right: right.column,
            pairs: association_pairs::<T>,
            _marker: PhantomData,
        }
    }

    /// Position in `A::META.relations`.
    pub const fn relation(&self) -> usize {
        self.relation
    }

    /// The association entity.
    pub fn through(&self) -> &'static EntityMeta {
        (self.through)()
    }

    /// The association's column referencing `A`, and its column referencing `B`.
    pub const fn columns(&self) -> (usize, usize) {
        (self.left, self.right)
    }

    /// The (key of `A`, key of `B`) pairs of the association rows whose `A` key is one of
    /// `keys` (values of the association's column to `A`): one SELECT.
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) from the driver.
    pub fn pairs(&self, conn: &Connection, keys: &[Value]) -> Result<Vec<(Key, Key)>> {
        (self.pairs)(conn, self.left, self.right, keys)
    }
}

impl<A: Entity, B: Entity> ManyToMany<A, B> {
    /// Rows of `A` related to a `B` that matches `filter` (`EXISTS` over the association).
    pub fn any(self, filter: Filter<B>) -> Filter<A> {
        Filter::new(Condition::Related {
            target: B::META,
            outer: A::META.primary_key,
            inner: B::META.primary_key,
            through: Some((self.through(), self.left, self.right)),
            condition: Some(Box::new(filter.into_condition())),
        })
    }
}
