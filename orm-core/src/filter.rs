//! Filter expressions over typed columns.

use std::marker::PhantomData;

use crate::value::Value;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// An untyped filter tree over column positions. Build it through [`Filter`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// `column op value`.
    Compare {
        /// Column position.
        column: usize,
        /// Operator.
        op: CmpOp,
        /// Operand, always bound.
        value: Value,
    },
    /// `column LIKE pattern`.
    Like {
        /// Column position.
        column: usize,
        /// Pattern, always bound.
        pattern: String,
    },
    /// `column IN (…)`.
    In {
        /// Column position.
        column: usize,
        /// Operands, always bound.
        values: Vec<Value>,
    },
    /// `column IS NULL`.
    IsNull {
        /// Column position.
        column: usize,
    },
    /// All of them.
    And(Vec<Condition>),
    /// Any of them.
    Or(Vec<Condition>),
    /// The negation.
    Not(Box<Condition>),
    /// `aggregate(column) op value`: a condition on a group, for `HAVING` (built by the
    /// comparisons of [`Aggregate`](crate::Aggregate)).
    Aggregate {
        /// The aggregate function.
        function: crate::AggregateFn,
        /// Column position.
        column: usize,
        /// Operator.
        op: CmpOp,
        /// Operand, always bound.
        value: Value,
    },
    /// A related row exists (`EXISTS (SELECT 1 FROM target WHERE target.inner =
    /// outer.outer AND condition)`), built by the relation constants' `any` and `has`.
    Related {
        /// The related entity.
        target: &'static crate::EntityMeta,
        /// Column of the filtered entity in the join.
        outer: usize,
        /// Column of the target in the join.
        inner: usize,
        /// Many-to-many: the association entity, its column matching `outer` and its
        /// column matching `inner`.
        through: Option<(&'static crate::EntityMeta, usize, usize)>,
        /// A condition on the target's columns.
        condition: Option<Box<Condition>>,
    },
}

/// A filter on entity `E`, built from its typed column constants.
///
/// ```
/// use orm_core::Entity;
/// #[derive(Entity)]
/// struct Pet { #[orm(primary_key)] id: i32, name: String, age: i32 }
///
/// let young_rex = Pet::NAME.eq("Rex").and(Pet::AGE.lt(3));
/// let not_rex = Pet::NAME.eq("Rex").not();
/// # let _ = (young_rex, not_rex);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Filter<E> {
    condition: Condition,
    _marker: PhantomData<fn() -> E>,
}

impl<E> Filter<E> {
    pub(crate) fn new(condition: Condition) -> Self {
        Filter {
            condition,
            _marker: PhantomData,
        }
    }

    /// Both this and `other`.
    #[must_use]
    pub fn and(self, other: Filter<E>) -> Filter<E> {
        Filter::new(match self.condition {
            Condition::And(mut all) => {
                all.push(other.condition);
                Condition::And(all)
            }
            c => Condition::And(vec![c, other.condition]),
        })
    }

    /// This or `other`.
    #[must_use]
    pub fn or(self, other: Filter<E>) -> Filter<E> {
        Filter::new(match self.condition {
            Condition::Or(mut any) => {
                any.push(other.condition);
                Condition::Or(any)
            }
            c => Condition::Or(vec![c, other.condition]),
        })
    }

    /// The negation of this filter.
    #[must_use]
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter<E> {
        Filter::new(Condition::Not(Box::new(self.condition)))
    }

    /// The untyped condition tree.
    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    /// Takes the untyped condition tree.
    pub fn into_condition(self) -> Condition {
        self.condition
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// A `SELECT`: filter, order, limit, offset, and (for column queries) grouping.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SelectSpec {
    /// `WHERE`.
    pub filter: Option<Condition>,
    /// `ORDER BY` columns (a position in the entity's columns converts: `0.into()`).
    pub order: Vec<(crate::SelectExpr, Order)>,
    /// `LIMIT`.
    pub limit: Option<u64>,
    /// `OFFSET`.
    pub offset: Option<u64>,
    /// `GROUP BY` columns (column queries with aggregates).
    pub group_by: Vec<crate::SelectExpr>,
    /// `HAVING`: a condition on the groups.
    pub having: Option<Condition>,
}
