//! Statement building. All SQL text is produced here, by sea-query, and cached per
//! (backend, entity, statement kind, column set, batch size).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;
use sea_query::{
    Alias, ColumnDef, Condition as SqCondition, DeleteStatement, Expr, ExprTrait,
    ForeignKey as SqForeignKey, ForeignKeyAction, Index, InsertStatement, JoinType, Query,
    SelectStatement, Table, UpdateStatement,
};

use crate::entity::{EntityMeta, Generated};
use crate::filter::{CmpOp, Condition, Order, SelectSpec};
use crate::select::{AggregateFn, SelectExpr};
use crate::value::{SqlType, Value};

/// The SQL dialect of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite (embedded).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

/// Runs `$e` with `$b` bound to sea-query's builder for `$backend`: the one place a statement
/// built once meets each backend's dialect.
macro_rules! in_dialect {
    ($backend:expr, $b:ident => $e:expr) => {
        match $backend {
            Backend::Sqlite => {
                let $b = sea_query::SqliteQueryBuilder;
                $e
            }
            Backend::Postgres => {
                let $b = sea_query::PostgresQueryBuilder;
                $e
            }
            Backend::MySql => {
                let $b = sea_query::MysqlQueryBuilder;
                $e
            }
        }
    };
}

/// The kinds of cached statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `INSERT INTO t (cols) VALUES (…), (…)`: `batch` rows.
    Insert,
    /// `SELECT all FROM t WHERE key = ?`.
    SelectByKey,
    /// `SELECT cols FROM t WHERE key = ?`.
    SelectColumnsByKey,
    /// `UPDATE t SET cols = ? WHERE key = ? [AND version = ?]`.
    UpdateByKey,
    /// `UPDATE t SET cols = ?, version = version + 1 WHERE key = ?`: a versioned row changed
    /// without an expected version still bumps it, so that other holders of the row see it.
    UpdateBumpByKey,
    /// `DELETE FROM t WHERE key = ? [AND version = ?]`.
    DeleteByKey,
    /// `INSERT … VALUES (…) ON CONFLICT (key) DO UPDATE SET col = excluded.col, …`.
    Upsert,
    /// `INSERT … VALUES (…) ON CONFLICT (key) DO NOTHING`.
    InsertIfAbsent,
    /// PostgreSQL: `COPY t (cols) FROM STDIN (FORMAT binary)`.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Copy,
}

/// A column list as a cache key: a bit mask when the list is ascending and under 128 (no
/// allocation, the common case), else the list itself.
#[derive(PartialEq, Eq, Hash)]
enum Columns {
    Mask(u128),
    List(Box<[usize]>),
}

impl Columns {
    fn of(columns: &[usize]) -> Self {
        let ascending = columns.windows(2).all(|w| w[0] < w[1]);
        if ascending && columns.last().is_none_or(|&c| c < 128) {
            Columns::Mask(columns.iter().fold(0, |m, &c| m | (1u128 << c)))
        } else {
            Columns::List(columns.into())
        }
    }
}

#[derive(PartialEq, Eq, Hash)]
struct CacheKey {
    backend: Backend,
    entity: TypeId,
    kind: Kind,
    columns: Columns,
    batch: usize,
    check_version: bool,
}

type Cache = HashMap<CacheKey, Arc<str>, crate::hash::KeyHashState>;

static CACHE: LazyLock<RwLock<Cache>> = LazyLock::new(Default::default);

/// Statement texts the cache keeps at most (a few kilobytes each). A program uses a few
/// dozen shapes; one that makes new shapes without end (filters built from user input, many
/// column sets) starts over when it reaches this, rather than grow without bound.
pub(crate) const CACHE_CAPACITY: usize = 1024;

/// The process-wide statement-text cache: how many texts it holds and their total length in
/// bytes. It keeps at most 1,024 texts; a program that makes new statement shapes without
/// end sees it start over rather than grow.
///
/// ```
/// let (texts, bytes) = orm_core::statement_cache();
/// assert!(texts <= 1024 && bytes >= texts);
/// ```
pub fn statement_cache() -> (usize, usize) {
    let cache = CACHE.read();
    (cache.len(), cache.values().map(|s| s.len()).sum())
}

/// A cached statement text: built once per shape for the whole process.
pub(crate) struct Shape<'a> {
    pub backend: Backend,
    pub entity: TypeId,
    pub meta: &'static EntityMeta,
    pub kind: Kind,
    pub columns: &'a [usize],
    pub batch: usize,
    pub check_version: bool,
}

impl Shape<'_> {
    /// The SQL text of this shape, from the cache or built now.
    pub fn sql(&self) -> Arc<str> {
        let key = CacheKey {
            backend: self.backend,
            entity: self.entity,
            kind: self.kind,
            columns: Columns::of(self.columns),
            batch: self.batch,
            check_version: self.check_version,
        };
        if let Some(sql) = CACHE.read().get(&key) {
            return Arc::clone(sql);
        }
        let sql: Arc<str> = self.build().into();
        let mut cache = CACHE.write();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.entry(key).or_insert(sql).clone()
    }

    fn build(&self) -> String {
        let m = self.meta;
        let version = if self.check_version {
            m.version_column()
        } else {
            None
        };
        match self.kind {
            Kind::Insert => {
                let mut q = Query::insert();
                q.into_table(table(m));
                if self.columns.is_empty() {
                    // Nothing to send but defaults (an entity that is only its generated
                    // key): `DEFAULT VALUES` on SQLite, one row a statement; `VALUES
                    // (DEFAULT), …` on PostgreSQL.
                    q.or_default_values_many(u32::try_from(self.batch).unwrap_or(1));
                } else {
                    q.columns(self.columns.iter().map(|&c| col(m, c)));
                    for _ in 0..self.batch {
                        q.values_panic(self.columns.iter().map(|_| Expr::val(0_i64)));
                    }
                }
                insert_sql(&q, self.backend)
            }
            Kind::SelectByKey | Kind::SelectColumnsByKey => {
                let mut q = Query::select();
                if self.kind == Kind::SelectByKey {
                    q.columns((0..m.columns.len()).map(|c| col(m, c)));
                } else {
                    q.columns(self.columns.iter().map(|&c| col(m, c)));
                }
                q.from(table(m))
                    .and_where(Expr::col(col(m, m.primary_key)).eq(0_i64));
                select_sql(&q, self.backend)
            }
            Kind::UpdateByKey | Kind::UpdateBumpByKey => {
                let bump = if self.kind == Kind::UpdateBumpByKey {
                    m.version_column()
                } else {
                    version
                };
                let mut q = Query::update();
                q.table(table(m));
                for &c in self.columns {
                    q.value(col(m, c), Expr::val(0_i64));
                }
                if let Some(v) = bump {
                    q.value(col(m, v), Expr::col(col(m, v)).add(Expr::cust("1")));
                }
                q.and_where(Expr::col(col(m, m.primary_key)).eq(0_i64));
                if let Some(v) = version {
                    q.and_where(Expr::col(col(m, v)).eq(0_i64));
                }
                update_sql(&q, self.backend)
            }
            Kind::Upsert | Kind::InsertIfAbsent => {
                let mut q = Query::insert();
                q.into_table(table(m))
                    .columns(self.columns.iter().map(|&c| col(m, c)));
                q.values_panic(self.columns.iter().map(|_| Expr::val(0_i64)));
                let others: Vec<Alias> = self
                    .columns
                    .iter()
                    .filter(|&&c| c != m.primary_key)
                    .map(|&c| col(m, c))
                    .collect();
                if self.backend == Backend::MySql
                    && (others.is_empty() || self.kind == Kind::InsertIfAbsent)
                {
                    // MySQL has no `DO NOTHING` that is only about the key (`INSERT IGNORE`
                    // turns every error into a warning): a plain INSERT, whose duplicate-key
                    // error the connection reads as "absent" (`Db::key_taken`).
                    return insert_sql(&q, self.backend);
                }
                let mut on = sea_query::OnConflict::column(col(m, m.primary_key));
                if others.is_empty() || self.kind == Kind::InsertIfAbsent {
                    on.do_nothing();
                } else {
                    on.update_columns(others);
                }
                q.on_conflict(on);
                insert_sql(&q, self.backend)
            }
            Kind::Copy => {
                let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
                let cols: Vec<String> = self
                    .columns
                    .iter()
                    .map(|&c| quote(m.columns[c].name))
                    .collect();
                format!(
                    "COPY {} ({}) FROM STDIN (FORMAT binary)",
                    quote(m.table),
                    cols.join(", ")
                )
            }
            Kind::DeleteByKey => {
                let mut q = Query::delete();
                q.from_table(table(m))
                    .and_where(Expr::col(col(m, m.primary_key)).eq(0_i64));
                if let Some(v) = version {
                    q.and_where(Expr::col(col(m, v)).eq(0_i64));
                }
                delete_sql(&q, self.backend)
            }
        }
    }
}

/// Identifiers are passed as owned strings: sea-query escapes quote characters only in
/// owned identifiers, and every identifier must be quoted and escaped (R3).
fn table(m: &EntityMeta) -> Alias {
    Alias::new(m.table.to_owned())
}

fn col(m: &EntityMeta, index: usize) -> Alias {
    Alias::new(m.columns[index].name.to_owned())
}

fn insert_sql(q: &InsertStatement, backend: Backend) -> String {
    in_dialect!(backend, b => q.build(b).0)
}

fn select_sql(q: &SelectStatement, backend: Backend) -> String {
    in_dialect!(backend, b => q.build(b).0)
}

fn update_sql(q: &UpdateStatement, backend: Backend) -> String {
    in_dialect!(backend, b => q.build(b).0)
}

fn delete_sql(q: &DeleteStatement, backend: Backend) -> String {
    in_dialect!(backend, b => q.build(b).0)
}

/// `CREATE TABLE IF NOT EXISTS` and `CREATE INDEX IF NOT EXISTS` statements for an entity.
/// References to the entities in `later` are left out, for [`add_foreign_keys`] to add once
/// those tables exist (a cycle of references on PostgreSQL).
pub(crate) fn create_table(m: &EntityMeta, backend: Backend, later: &[&EntityMeta]) -> Vec<String> {
    let mut t = Table::create();
    t.table(table(m)).if_not_exists();
    for (i, c) in m.columns.iter().enumerate() {
        let mut def = ColumnDef::new(col(m, i));
        column_type(&mut def, m, i, backend);
        if c.primary_key {
            def.primary_key();
            if c.generated == Generated::AutoIncrement {
                match backend {
                    Backend::Postgres => {
                        def.extra("GENERATED BY DEFAULT AS IDENTITY");
                    }
                    Backend::MySql => {
                        def.auto_increment();
                    }
                    Backend::Sqlite => {}
                }
            }
        } else if !c.nullable {
            def.not_null();
        }
        if c.unique && !c.primary_key {
            def.unique_key();
        }
        t.col(&mut def);
    }
    for (i, fk) in m.foreign_keys() {
        if later.iter().any(|l| l.is(fk.target())) {
            continue;
        }
        t.foreign_key(&mut foreign_key(m, i, fk));
    }
    let integer_key = matches!(m.key_column().sql_type, SqlType::I32 | SqlType::I64);
    if backend == Backend::Sqlite && !integer_key {
        // One B-tree clustered by the key instead of a rowid table plus a unique index:
        // inserts and lookups by a text or UUID key touch half the pages.
        t.extra("WITHOUT ROWID");
    }
    if backend == Backend::MySql {
        // MySQL has no `CREATE INDEX IF NOT EXISTS`: the indexes go in the `CREATE TABLE`,
        // which is skipped as a whole when the table exists.
        for (i, c) in m.columns.iter().enumerate().filter(|(_, c)| c.index) {
            let mut idx = Index::create();
            idx.name(index_name(m.table, c.name)).col(col(m, i));
            t.index(&mut idx);
        }
        return vec![in_dialect!(backend, b => t.build(b))];
    }
    let mut out = vec![in_dialect!(backend, b => t.build(b))];
    for (i, c) in m.columns.iter().enumerate().filter(|(_, c)| c.index) {
        let mut idx = Index::create();
        idx.if_not_exists()
            .name(index_name(m.table, c.name))
            .table(table(m))
            .col(col(m, i));
        out.push(in_dialect!(backend, b => idx.build(b)));
    }
    out
}

/// The column type of column `i` of `m` on `backend`.
fn column_type(def: &mut ColumnDef, m: &EntityMeta, i: usize, backend: Backend) {
    let c = &m.columns[i];
    let custom = |def: &mut ColumnDef, name: &str| {
        def.custom(Alias::new(name.to_owned()));
    };
    // MySQL indexes no more than a prefix of a `TEXT` or `BLOB`: a key, unique or indexed
    // column is a `VARCHAR` (1,020 bytes of utf8mb4, under InnoDB's 3,072-byte key limit).
    let keyed = c.primary_key || c.unique || c.index || m.foreign_keys().any(|(j, _)| j == i);
    match (c.sql_type, backend) {
        (SqlType::I16, _) => {
            def.small_integer();
        }
        (SqlType::I32, _) => {
            def.integer();
        }
        (SqlType::I64, _) => {
            def.big_integer();
        }
        (SqlType::F64, Backend::MySql) => custom(def, "DOUBLE"),
        (SqlType::F64, _) => {
            def.double();
        }
        (SqlType::Bool, _) => {
            def.boolean();
        }
        (SqlType::Text, Backend::MySql) if keyed => custom(def, "VARCHAR(255)"),
        (SqlType::Text | SqlType::Json, Backend::MySql) => custom(def, "LONGTEXT"),
        (SqlType::Text, _) => {
            def.text();
        }
        (SqlType::Decimal, Backend::Sqlite) => {
            def.text();
        }
        (SqlType::Decimal, Backend::Postgres) => custom(def, "numeric"),
        // rust_decimal carries up to 28 digits after the point.
        (SqlType::Decimal, Backend::MySql) => custom(def, "DECIMAL(65, 28)"),
        (
            SqlType::Date | SqlType::Time | SqlType::DateTime | SqlType::Timestamp,
            Backend::Sqlite,
        ) => {
            def.text();
        }
        (SqlType::Date, Backend::Postgres) => custom(def, "date"),
        (SqlType::Time, Backend::Postgres) => custom(def, "time"),
        (SqlType::DateTime, Backend::Postgres) => custom(def, "timestamp"),
        (SqlType::Timestamp, Backend::Postgres) => custom(def, "timestamptz"),
        (SqlType::Date, Backend::MySql) => custom(def, "DATE"),
        (SqlType::Time, Backend::MySql) => custom(def, "TIME(6)"),
        // `TIMESTAMP` ends in 2038 and converts by the session's zone: an instant is kept
        // as UTC in a `DATETIME`.
        (SqlType::DateTime | SqlType::Timestamp, Backend::MySql) => custom(def, "DATETIME(6)"),
        // Not SQLite's `JSON` type name: it has NUMERIC affinity.
        (SqlType::Json, Backend::Sqlite) => {
            def.text();
        }
        (SqlType::Json, Backend::Postgres) => custom(def, "jsonb"),
        (SqlType::F32, Backend::Sqlite) => custom(def, "REAL"),
        (SqlType::F32, Backend::Postgres) => custom(def, "real"),
        (SqlType::F32, Backend::MySql) => custom(def, "FLOAT"),
        (SqlType::Blob, Backend::Sqlite) => {
            def.blob();
        }
        (SqlType::Blob, Backend::Postgres) => custom(def, "bytea"),
        (SqlType::Blob, Backend::MySql) if keyed => custom(def, "VARBINARY(255)"),
        (SqlType::Blob, Backend::MySql) => custom(def, "LONGBLOB"),
        (SqlType::Uuid, Backend::Sqlite) => {
            def.blob();
        }
        (SqlType::Uuid, Backend::Postgres) => {
            def.uuid();
        }
        (SqlType::Uuid, Backend::MySql) => custom(def, "BINARY(16)"),
    }
}

fn foreign_key(
    m: &EntityMeta,
    column: usize,
    fk: crate::ForeignKey,
) -> sea_query::ForeignKeyCreateStatement {
    let target = fk.target();
    let mut k = SqForeignKey::create();
    k.name(fk_name(m.table, m.columns[column].name))
        .from(table(m), col(m, column))
        .to(table(target), col(target, target.primary_key))
        .on_delete(match fk.on_delete {
            crate::OnDelete::NoAction => ForeignKeyAction::NoAction,
            crate::OnDelete::Restrict => ForeignKeyAction::Restrict,
            crate::OnDelete::Cascade => ForeignKeyAction::Cascade,
            crate::OnDelete::SetNull => ForeignKeyAction::SetNull,
        });
    k
}

/// `ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY` for column `column` of `m`.
pub(crate) fn add_foreign_key(
    m: &EntityMeta,
    column: usize,
    fk: crate::ForeignKey,
    backend: Backend,
) -> String {
    let k = foreign_key(m, column, fk);
    in_dialect!(backend, b => k.to_string(b))
}

/// The name of a foreign-key constraint, as PostgreSQL would choose it (`order_customer_id_fkey`).
pub(crate) fn fk_name(table: &str, column: &str) -> String {
    let base = index_name(table, column);
    format!("fk{}", &base[2..])
}

/// The name of the index on `table.column`: only ASCII letters, digits and `_`, whatever the
/// table and column are called, so that it needs no escaping anywhere; within PostgreSQL's
/// 63-byte limit; and distinct for distinct (table, column) pairs, by a hash of both when
/// anything had to be replaced or cut.
pub(crate) fn index_name(table: &str, column: &str) -> String {
    let plain = format!("ix_{table}_{column}");
    let clean: String = plain
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '_' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    if clean == plain && clean.len() <= 63 {
        return clean;
    }
    // FNV-1a of the exact names, separated so that ("a_b", "c") and ("a", "b_c") differ.
    let hash = table
        .bytes()
        .chain([0])
        .chain(column.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let mut name: String = clean.chars().take(46).collect();
    name.push_str(&format!("_{hash:016x}"));
    name
}

/// `DROP TABLE IF EXISTS`.
pub(crate) fn drop_table(m: &EntityMeta, backend: Backend) -> String {
    let mut t = Table::drop();
    t.table(table(m)).if_exists();
    in_dialect!(backend, b => t.build(b))
}

/// Builds a `SELECT` of whole entities. Returns the SQL and the values to bind, in order.
///
/// Operands are handed to sea-query as numbered tags (`BigInt(i)`), and the tags sea-query
/// returns are mapped back to the real values: whatever order sea-query emits placeholders
/// in, the values follow it, and no value changes type on the way.
pub(crate) fn select(m: &EntityMeta, spec: &SelectSpec, backend: Backend) -> (String, Vec<Value>) {
    let all: Vec<SelectExpr> = (0..m.columns.len()).map(SelectExpr::column).collect();
    select_columns(m, &all, false, spec, backend)
}

/// Builds `SELECT [DISTINCT] exprs FROM t [LEFT JOIN p AS orm_jN …] WHERE … GROUP BY …
/// ORDER BY … LIMIT … OFFSET …`. Columns reached through a foreign key (`via`) join the
/// referenced table once per foreign key; with any join, every column is qualified.
pub(crate) fn select_columns(
    m: &EntityMeta,
    exprs: &[SelectExpr],
    distinct: bool,
    spec: &SelectSpec,
    backend: Backend,
) -> (String, Vec<Value>) {
    let mut operands = Vec::new();
    let mut q = Query::select();
    let mut joins: Vec<usize> = exprs
        .iter()
        .chain(spec.order.iter().map(|(e, _)| e))
        .chain(&spec.group_by)
        .filter_map(|e| e.via)
        .collect();
    joins.sort_unstable();
    joins.dedup();
    let scope = Scope {
        alias: (!joins.is_empty()).then_some(m.table),
        depth: 0,
        backend,
    };
    let column = |e: &SelectExpr| -> (Expr, SqlType) {
        match e.via {
            None => (scope.column(m, e.column), m.columns[e.column].sql_type),
            Some(fk) => {
                let target = referenced(m, fk);
                (
                    Expr::col((Alias::new(join_alias(fk)), col(target, e.column))),
                    target.columns[e.column].sql_type,
                )
            }
        }
    };
    for e in exprs {
        let (c, ty) = column(e);
        q.expr(aggregate_expr(c, ty, e.aggregate, backend));
    }
    q.from(table(m));
    for &fk in &joins {
        let target = referenced(m, fk);
        let alias = Alias::new(join_alias(fk));
        q.join_as(
            sea_query::JoinType::LeftJoin,
            table(target),
            alias.clone(),
            Expr::col((alias, col(target, target.primary_key)))
                .equals((Alias::new(m.table), col(m, fk))),
        );
    }
    if distinct {
        q.distinct();
    }
    for e in &spec.group_by {
        q.add_group_by([column(e).0]);
    }
    if let Some(filter) = &spec.filter {
        q.cond_where(condition(m, filter, &mut operands, scope));
    }
    if let Some(having) = &spec.having {
        q.cond_having(condition(m, having, &mut operands, scope));
    }
    for (e, order) in &spec.order {
        let o = match order {
            Order::Asc => sea_query::Order::Asc,
            Order::Desc => sea_query::Order::Desc,
        };
        q.order_by_expr(column(e).0, o);
    }
    if let Some(l) = spec.limit {
        q.limit(l);
    }
    if let Some(o) = spec.offset {
        if spec.limit.is_none() && backend != Backend::Postgres {
            // SQLite and MySQL accept OFFSET only after a LIMIT; this one is "no limit".
            q.limit(i64::MAX.unsigned_abs());
        }
        q.offset(o);
    }
    with_operands(&q, backend, &operands)
}

/// The entity foreign key `fk` of `m` references.
fn referenced(m: &EntityMeta, fk: usize) -> &'static EntityMeta {
    match m.columns[fk].references {
        Some(r) => r.target(),
        // `Via` is made only from a relation of a foreign key.
        None => unreachable!("column {fk} of {} is not a foreign key", m.name),
    }
}

/// The alias of the table joined through foreign key `fk`.
fn join_alias(fk: usize) -> String {
    format!("orm_j{fk}")
}

/// One expression of a column query: a column, or an aggregate of one.
fn aggregate_expr(c: Expr, ty: SqlType, aggregate: Option<AggregateFn>, backend: Backend) -> Expr {
    let integer = matches!(ty, SqlType::I16 | SqlType::I32 | SqlType::I64);
    let cast = |x: Expr, to: &'static str| match backend {
        // PostgreSQL's SUM of a bigint is numeric, its AVG numeric, its SUM of a real real:
        // cast to what the result type reads.
        Backend::Postgres => Expr::from(sea_query::Func::cast_as(x, Alias::new(to))),
        Backend::Sqlite | Backend::MySql => x,
    };
    match aggregate {
        None => c,
        Some(AggregateFn::Count) => c.count(),
        Some(AggregateFn::Sum) if integer => cast(c.sum(), "bigint"),
        Some(AggregateFn::Sum) => cast(c.sum(), "double precision"),
        Some(AggregateFn::Avg) => cast(Expr::from(sea_query::Func::avg(c)), "double precision"),
        Some(AggregateFn::Min) => c.min(),
        Some(AggregateFn::Max) => c.max(),
    }
}

/// `SELECT expr FROM t WHERE filter`, and the operands the filter binds.
fn filtered(
    m: &EntityMeta,
    expr: &str,
    filter: Option<&Condition>,
    backend: Backend,
) -> (SelectStatement, Vec<Value>) {
    let mut operands = Vec::new();
    let mut q = Query::select();
    q.expr(Expr::cust(expr.to_owned())).from(table(m));
    if let Some(filter) = filter {
        q.cond_where(condition(m, filter, &mut operands, Scope::top(backend)));
    }
    (q, operands)
}

/// Builds `SELECT EXISTS (SELECT 1 FROM t WHERE filter)`.
pub(crate) fn exists(
    m: &EntityMeta,
    filter: Option<&Condition>,
    backend: Backend,
) -> (String, Vec<Value>) {
    let (inner, operands) = filtered(m, "1", filter, backend);
    let mut q = Query::select();
    q.expr(Expr::exists(inner));
    with_operands(&q, backend, &operands)
}

/// Builds `SELECT COUNT(*)` with a filter.
pub(crate) fn count(
    m: &EntityMeta,
    filter: Option<&Condition>,
    backend: Backend,
) -> (String, Vec<Value>) {
    let (q, operands) = filtered(m, "COUNT(*)", filter, backend);
    with_operands(&q, backend, &operands)
}

/// Builds `UPDATE t SET c = ?, … WHERE filter`, with the version column incremented when
/// `bump` names it, and `RETURNING key` when `returning`.
pub(crate) fn update_where(
    m: &EntityMeta,
    values: &[(usize, Value)],
    bump: Option<usize>,
    filter: Option<&Condition>,
    returning: bool,
    backend: Backend,
) -> (String, Vec<Value>) {
    let mut operands = Vec::new();
    let mut q = Query::update();
    q.table(table(m));
    for (c, v) in values {
        q.value(col(m, *c), tag(&mut operands, v.clone()));
    }
    if let Some(v) = bump {
        q.value(col(m, v), Expr::col(col(m, v)).add(Expr::cust("1")));
    }
    if let Some(filter) = filter {
        q.cond_where(condition(m, filter, &mut operands, Scope::top(backend)));
    }
    if returning {
        q.returning_col(col(m, m.primary_key));
    }
    with_operands(&q, backend, &operands)
}

/// Builds `DELETE FROM t WHERE filter`, with `RETURNING key` when `returning`.
pub(crate) fn delete_where(
    m: &EntityMeta,
    filter: Option<&Condition>,
    returning: bool,
    backend: Backend,
) -> (String, Vec<Value>) {
    let mut operands = Vec::new();
    let mut q = Query::delete();
    q.from_table(table(m));
    if let Some(filter) = filter {
        q.cond_where(condition(m, filter, &mut operands, Scope::top(backend)));
    }
    if returning {
        q.returning_col(col(m, m.primary_key));
    }
    with_operands(&q, backend, &operands)
}

/// The text of a statement whose bound values were tagged (`tag`), and those values.
fn with_operands(
    q: &impl sea_query::QueryStatementWriter,
    backend: Backend,
    operands: &[Value],
) -> (String, Vec<Value>) {
    let (sql, tags) = in_dialect!(backend, b => q.build(b));
    (sql, untag(tags, operands))
}

fn tag(operands: &mut Vec<Value>, v: Value) -> Expr {
    let i = i64::try_from(operands.len()).unwrap_or(i64::MAX);
    operands.push(v);
    Expr::val(i)
}

fn untag(tags: sea_query::Values, operands: &[Value]) -> Vec<Value> {
    tags.0
        .into_iter()
        .map(|t| match t {
            sea_query::Value::BigInt(Some(i)) => usize::try_from(i)
                .ok()
                .and_then(|i| operands.get(i).cloned())
                .unwrap_or(Value::I64(i)),
            sea_query::Value::BigUnsigned(Some(u)) => {
                Value::I64(i64::try_from(u).unwrap_or(i64::MAX))
            }
            sea_query::Value::Unsigned(Some(u)) => Value::I64(i64::from(u)),
            sea_query::Value::Int(Some(i)) => Value::I32(i),
            _ => Value::Null,
        })
        .collect()
}

/// Where a condition's columns live: the statement's own table (unqualified, at the top), or
/// the alias of a related table inside `EXISTS` (nested ones numbered by depth, so that a
/// self-referential relation's inner and outer tables stay apart).
#[derive(Clone, Copy)]
struct Scope<'a> {
    alias: Option<&'a str>,
    depth: usize,
    /// The dialect (aggregates are cast on PostgreSQL).
    backend: Backend,
}

impl Scope<'_> {
    fn top(backend: Backend) -> Scope<'static> {
        Scope {
            alias: None,
            depth: 0,
            backend,
        }
    }

    fn column(&self, m: &EntityMeta, index: usize) -> Expr {
        match self.alias {
            None => Expr::col(col(m, index)),
            Some(a) => Expr::col((Alias::new(a.to_owned()), col(m, index))),
        }
    }

    /// The column from inside a subquery, where it must be qualified.
    fn outer_column(&self, m: &EntityMeta, index: usize) -> Expr {
        let name = self.alias.unwrap_or(m.table);
        Expr::col((Alias::new(name.to_owned()), col(m, index)))
    }
}

/// `lhs op rhs`.
fn compare(lhs: Expr, op: CmpOp, rhs: Expr) -> Expr {
    match op {
        CmpOp::Eq => lhs.eq(rhs),
        CmpOp::Ne => lhs.ne(rhs),
        CmpOp::Lt => lhs.lt(rhs),
        CmpOp::Le => lhs.lte(rhs),
        CmpOp::Gt => lhs.gt(rhs),
        CmpOp::Ge => lhs.gte(rhs),
    }
}

fn condition(
    m: &EntityMeta,
    c: &Condition,
    operands: &mut Vec<Value>,
    scope: Scope<'_>,
) -> SqCondition {
    let leaf = match c {
        Condition::And(all) => {
            return all.iter().fold(SqCondition::all(), |acc, c| {
                acc.add(condition(m, c, operands, scope))
            });
        }
        Condition::Or(any) => {
            return any.iter().fold(SqCondition::any(), |acc, c| {
                acc.add(condition(m, c, operands, scope))
            });
        }
        Condition::Not(inner) => {
            return SqCondition::all()
                .add(condition(m, inner, operands, scope))
                .not();
        }
        Condition::Compare { column, op, value } => {
            let lhs = scope.column(m, *column);
            let rhs = tag(operands, value.clone());
            compare(lhs, *op, rhs)
        }
        Condition::Like { column, pattern } => {
            let rhs = tag(operands, Value::Text(pattern.clone()));
            scope
                .column(m, *column)
                .binary(sea_query::BinOper::Like, rhs)
        }
        Condition::In { column, values } if values.is_empty() => {
            let _ = column;
            Expr::cust("1 = 0")
        }
        Condition::In { column, values } => {
            let tags: Vec<Expr> = values.iter().map(|v| tag(operands, v.clone())).collect();
            scope.column(m, *column).is_in(tags)
        }
        Condition::IsNull { column } => scope.column(m, *column).is_null(),
        Condition::Aggregate {
            function,
            column,
            op,
            value,
        } => {
            let lhs = aggregate_expr(
                scope.column(m, *column),
                m.columns[*column].sql_type,
                Some(*function),
                scope.backend,
            );
            let rhs = tag(operands, value.clone());
            compare(lhs, *op, rhs)
        }
        Condition::Related {
            target,
            outer,
            inner,
            through,
            condition: filter,
        } => {
            let depth = scope.depth + 1;
            let alias = format!("r{depth}");
            let inner_scope = Scope {
                alias: Some(&alias),
                depth,
                backend: scope.backend,
            };
            let outer_col = scope.outer_column(m, *outer);
            let mut sub = Query::select();
            sub.expr(Expr::cust("1"));
            let join = match through {
                None => {
                    sub.from_as(table(target), Alias::new(alias.clone()));
                    inner_scope.column(target, *inner).eq(outer_col)
                }
                Some((assoc, left, right)) => {
                    let a = format!("a{depth}");
                    let assoc_col = |i: usize| Expr::col((Alias::new(a.clone()), col(assoc, i)));
                    sub.from_as(table(assoc), Alias::new(a.clone())).join_as(
                        JoinType::InnerJoin,
                        table(target),
                        Alias::new(alias.clone()),
                        inner_scope.column(target, *inner).eq(assoc_col(*right)),
                    );
                    assoc_col(*left).eq(outer_col)
                }
            };
            let mut all = SqCondition::all().add(join);
            if let Some(f) = filter {
                all = all.add(condition(target, f, operands, inner_scope));
            }
            sub.cond_where(all);
            Expr::exists(sub)
        }
    };
    SqCondition::all().add(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Entity;

    #[derive(crate::Entity)]
    #[orm(table = "t")]
    struct T {
        #[orm(primary_key, auto_increment)]
        id: Option<i64>,
        a: String,
        #[orm(version)]
        v: i64,
    }

    fn shape(kind: Kind, columns: &[usize], batch: usize, check_version: bool) -> Arc<str> {
        Shape {
            backend: Backend::Sqlite,
            entity: TypeId::of::<T>(),
            meta: T::META,
            kind,
            columns,
            batch,
            check_version,
        }
        .sql()
    }

    #[test]
    fn statements_have_the_expected_shape() {
        assert_eq!(
            &*shape(Kind::Insert, &[1, 2], 2, false),
            r#"INSERT INTO "t" ("a", "v") VALUES (?, ?), (?, ?)"#
        );
        assert_eq!(
            &*shape(Kind::SelectByKey, &[], 0, false),
            r#"SELECT "id", "a", "v" FROM "t" WHERE "id" = ?"#
        );
        assert_eq!(
            &*shape(Kind::UpdateByKey, &[1], 0, true),
            r#"UPDATE "t" SET "a" = ?, "v" = "v" + (1) WHERE "id" = ? AND "v" = ?"#
        );
        assert_eq!(
            &*shape(Kind::DeleteByKey, &[], 0, false),
            r#"DELETE FROM "t" WHERE "id" = ?"#
        );
    }

    #[test]
    fn the_cache_hands_out_one_text_per_shape() {
        let a = shape(Kind::Insert, &[1, 2], 3, false);
        let b = shape(Kind::Insert, &[1, 2], 3, false);
        let c = shape(Kind::Insert, &[1, 2], 4, false);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn select_binds_operands_in_placeholder_order() {
        let spec = SelectSpec {
            group_by: Vec::new(),
            having: None,
            filter: Some(Condition::Or(vec![
                Condition::Compare {
                    column: 1,
                    op: CmpOp::Eq,
                    value: Value::Text("x".into()),
                },
                Condition::In {
                    column: 0,
                    values: vec![Value::I64(1), Value::I64(2)],
                },
            ])),
            limit: Some(5),
            ..SelectSpec::default()
        };
        let (sql, values) = select(T::META, &spec, Backend::Sqlite);
        assert_eq!(
            sql,
            r#"SELECT "id", "a", "v" FROM "t" WHERE "a" = ? OR "id" IN (?, ?) LIMIT ?"#
        );
        assert_eq!(
            values,
            [
                Value::Text("x".into()),
                Value::I64(1),
                Value::I64(2),
                Value::I64(5)
            ]
        );
    }
}
