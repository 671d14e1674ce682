//! Q1: selecting typed columns (one, or a tuple) instead of whole entities.

use orm_session::prelude::*;

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "product")]
pub struct Product {
    #[orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub price: f64,
    pub stock: Option<i32>,
    pub active: bool,
}

fn products(engine: &Engine) -> Result<Session> {
    engine.create_table::<Product>()?;
    let s = engine.session();
    s.add_all((1..=6).map(|i| Product {
        id: i,
        name: format!("p{i}"),
        price: i as f64 * 1.5,
        stock: (i % 3 != 0).then_some(i as i32 * 10),
        active: i % 2 == 0,
    }))?;
    s.commit()?;
    Ok(s)
}

// Q1
orm_tests::backends! {
fn q1_columns_come_back_as_typed_tuples_under_the_query_s_filter_and_order(db) -> Result<()> {
    let engine = db.engine();
    let s = products(&engine)?;
    let rows: Vec<(i64, String, f64, Option<i32>, bool)> = s
        .query::<Product>()
        .filter(Product::PRICE.gt(3.0))
        .order_by(Product::ID, Order::Desc)
        .select((Product::ID, Product::NAME, Product::PRICE, Product::STOCK, Product::ACTIVE))
        .all()?;
    assert_eq!(
        rows,
        [
            (6, "p6".to_owned(), 9.0, None, true),
            (5, "p5".to_owned(), 7.5, Some(50), false),
            (4, "p4".to_owned(), 6.0, Some(40), true),
            (3, "p3".to_owned(), 4.5, None, false),
        ]
    );
    let names: Vec<String> = s
        .query::<Product>()
        .order_by(Product::NAME, Order::Asc)
        .limit(2)
        .offset(1)
        .select(Product::NAME)
        .all()?;
    assert_eq!(names, ["p2", "p3"]);
    let flags: Vec<bool> = s
        .query::<Product>()
        .order_by(Product::ACTIVE, Order::Asc)
        .select(Product::ACTIVE)
        .distinct()
        .all()?;
    assert_eq!(flags, [false, true]);
    let none: Option<i64> = s
        .query::<Product>()
        .filter(Product::PRICE.gt(100.0))
        .select(Product::ID)
        .first()?;
    assert_eq!(none, None);
    Ok(())
}
}

// Q1, S5: rows are plain values, not tracked; pending changes are flushed first.
orm_tests::backends! {
fn q1_column_rows_see_pending_changes_and_stay_out_of_the_identity_map(db) -> Result<()> {
    let engine = db.engine();
    let s = products(&engine)?;
    s.expunge_all();
    let p = s.get::<Product>(2)?.expect("row");
    p.write()?.name = "renamed".into();
    s.add(Product { id: 7, name: "p7".into(), price: 1.0, stock: None, active: true })?;
    let before = s.identity_len();
    let rows: Vec<(i64, String)> = s
        .query::<Product>()
        .filter(Product::ID.eq(2).or(Product::ID.eq(7)))
        .order_by(Product::ID, Order::Asc)
        .select((Product::ID, Product::NAME))
        .all()?;
    assert_eq!(rows, [(2, "renamed".to_owned()), (7, "p7".to_owned())]);
    assert_eq!(s.identity_len(), before + 1, "only the flushed new object joined the map");
    Ok(())
}
}

// Q1: a value its field type cannot take is a conversion error naming the column.
orm_tests::backends! {
fn q1_a_value_that_does_not_fit_names_its_column(db) -> Result<()> {
    let engine = db.engine();
    let s = products(&engine)?;
    let err = s
        .query::<Product>()
        .select(Product::STOCK)
        .all()
        .map(|v| v.len());
    assert!(err.is_ok(), "NULL goes into Option");
    #[derive(Entity, Debug, Clone)]
    #[orm(table = "product")]
    struct Strict {
        #[orm(primary_key)]
        id: i64,
        stock: i32,
    }
    let err = s.query::<Strict>().select(Strict::STOCK).all().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conversion);
    assert!(err.to_string().contains("stock"), "{err}");
    Ok(())
}
}

// Q1: aggregates (count, sum, avg, min, max), over the whole table or grouped, with the
// types SQL gives them: integer sums as i64, averages as f64, NULL where no row counts.
orm_tests::backends! {
fn q1_aggregates_and_group_by(db) -> Result<()> {
    let engine = db.engine();
    let s = products(&engine)?;
    let (n, stock, avg_price, cheapest, dearest): (i64, Option<i64>, Option<f64>, Option<f64>, Option<String>) = s
        .query::<Product>()
        .select((
            Product::STOCK.count(),
            Product::STOCK.sum(),
            Product::PRICE.avg(),
            Product::PRICE.min(),
            Product::NAME.max(),
        ))
        .first()?
        .expect("one row");
    // Stock is NULL for products 3 and 6.
    assert_eq!(n, 4);
    assert_eq!(stock, Some(10 + 20 + 40 + 50));
    assert_eq!(avg_price, Some(5.25));
    assert_eq!(cheapest, Some(1.5));
    assert_eq!(dearest, Some("p6".to_owned()));
    let by_flag: Vec<(bool, i64, Option<f64>, Option<i32>)> = s
        .query::<Product>()
        .filter(Product::ID.le(5))
        .order_by(Product::ACTIVE, Order::Asc)
        .select((Product::ACTIVE, Product::ID.count(), Product::PRICE.sum(), Product::STOCK.max()))
        .group_by(Product::ACTIVE)
        .all()?;
    assert_eq!(
        by_flag,
        [(false, 3, Some(1.5 + 4.5 + 7.5), Some(50)), (true, 2, Some(3.0 + 6.0), Some(40))]
    );
    // No rows: counts are 0, the others NULL.
    let empty: (i64, Option<i64>, Option<f64>) = s
        .query::<Product>()
        .filter(Product::ID.gt(100))
        .select((Product::ID.count(), Product::ID.sum(), Product::PRICE.avg()))
        .first()?
        .expect("one row");
    assert_eq!(empty, (0, None, None));
    Ok(())
}
}

// Q2: raw SQL into entities merges into the identity map like a query (an unexpired object
// keeps its unflushed changes; a row not loaded yet becomes a tracked object); parameters
// are bound; a missing column is named.
orm_tests::backends! {
fn q2_raw_sql_into_entities_merges_into_the_identity_map(db) -> Result<()> {
    let engine = db.engine();
    let s = products(&engine)?;
    s.query::<Product>().all()?;
    let p2 = s.get::<Product>(2)?.expect("row");
    s.set_autoflush(false);
    p2.write()?.name = "mine".into();
    let found = s.from_statement::<Product>(
        &db.sql("SELECT active, stock, price, name, id FROM product WHERE price < ? ORDER BY id"),
        &[Value::F64(4.0)],
    )?;
    assert_eq!(found.len(), 2);
    assert!(found[1] == p2, "the session's own object");
    assert_eq!(found[1].read()?.name, "mine", "its unflushed change is kept");
    s.set_autoflush(true);
    // An injection attempt is a value, not SQL.
    let none = s.from_statement::<Product>(
        &db.sql("SELECT * FROM product WHERE name = ?"),
        &[Value::Text("x' OR '1'='1".into())],
    )?;
    assert!(none.is_empty());
    let err = s
        .from_statement::<Product>("SELECT id, name FROM product", &[])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.to_string().contains("price"), "{err}");
    Ok(())
}
}

// Q2: raw SQL into tuples, after an autoflush.
orm_tests::backends! {
fn q2_raw_sql_into_tuples_sees_pending_changes(db) -> Result<()> {
    let engine = db.engine();
    let s = products(&engine)?;
    s.add(Product { id: 9, name: "p9".into(), price: 2.0, stock: Some(1), active: true })?;
    let rows: Vec<(i64, String, Option<i32>)> = s.query_as(
        &db.sql("SELECT id, name, stock FROM product WHERE id >= ? ORDER BY id"),
        &[Value::I64(6)],
    )?;
    assert_eq!(rows, [(6, "p6".to_owned(), None), (9, "p9".to_owned(), Some(1))]);
    let err = s.query_as::<(i64,)>("SELECT name FROM product", &[]).unwrap_err();
    assert!(err.to_string().contains("column 0"), "{err}");
    Ok(())
}
}

// Q1: `exists` answers without counting, under the filters, after an autoflush.
orm_tests::backends! {
fn q1_exists_follows_filters_and_pending_changes(db) -> Result<()> {
    let engine = db.engine();
    let s = products(&engine)?;
    assert!(s.query::<Product>().filter(Product::PRICE.gt(8.0)).exists()?);
    assert!(!s.query::<Product>().filter(Product::PRICE.gt(9.0)).exists()?);
    let p1 = s.get::<Product>(1)?.expect("row");
    p1.write()?.price = 100.0;
    assert!(s.query::<Product>().filter(Product::PRICE.gt(9.0)).exists()?, "the change was flushed first");
    Ok(())
}
}

// Q1: HAVING on aggregates of every kind, with bound operands, on both backends (on
// PostgreSQL the casts make `SUM(bigint) > $1` compare with a bigint).
orm_tests::backends! {
fn q1_having_keeps_the_groups_whose_aggregates_pass(db) -> Result<()> {
    let engine = db.engine();
    let s = products(&engine)?;
    let groups: Vec<(bool, i64)> = s
        .query::<Product>()
        .order_by(Product::ACTIVE, Order::Asc)
        .select((Product::ACTIVE, Product::ID.count()))
        .group_by(Product::ACTIVE)
        .having(Product::ID.sum().gt(10).and(Product::PRICE.avg().ge(5.0)))
        .all()?;
    // Active: ids 2, 4, 6 (sum 12, average price 6.0); inactive: 1, 3, 5 (sum 9).
    assert_eq!(groups, [(true, 3)]);
    let none: Vec<bool> = s
        .query::<Product>()
        .select(Product::ACTIVE)
        .group_by(Product::ACTIVE)
        .having(Product::STOCK.count().gt(2).and(Product::STOCK.max().lt(40)))
        .all()?;
    assert!(none.is_empty(), "{none:?}");
    Ok(())
}
}

/// A row of a column query or of raw SQL, by position.
#[derive(FromRow, Debug, Clone, PartialEq)]
struct Stocked {
    name: String,
    price: f64,
    stock: Option<i32>,
}

/// One column, in a tuple struct.
#[derive(FromRow, Debug, Clone, PartialEq)]
struct Name(String);

// Q1, Q2: rows into structs derived with `FromRow`, from a column query (aggregates too) and
// from raw SQL; a value that does not fit names its column.
orm_tests::backends! {
fn q1_rows_come_back_as_derived_structs(db) -> Result<()> {
    let engine = db.engine();
    let s = products(&engine)?;
    let rows: Vec<Stocked> = s
        .query::<Product>()
        .filter(Product::ID.le(3))
        .order_by(Product::ID, Order::Asc)
        .select((Product::NAME, Product::PRICE, Product::STOCK))
        .all_as()?;
    assert_eq!(rows, [
        Stocked { name: "p1".into(), price: 1.5, stock: Some(10) },
        Stocked { name: "p2".into(), price: 3.0, stock: Some(20) },
        Stocked { name: "p3".into(), price: 4.5, stock: None },
    ]);
    let first: Option<Name> = s.query::<Product>().order_by(Product::NAME, Order::Desc).select(Product::NAME).first_as()?;
    assert_eq!(first, Some(Name("p6".into())));
    let raw: Vec<Stocked> = s.query_as(
        &db.sql("SELECT name, price, stock FROM product WHERE id > ? ORDER BY id DESC"),
        &[Value::I64(4)],
    )?;
    assert_eq!(raw.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["p6", "p5"]);
    assert_eq!(raw[0].stock, None);
    let err = s.query_as::<Stocked>("SELECT name, name, stock FROM product", &[]).unwrap_err();
    assert!(err.to_string().contains("column 1"), "names the column: {err}");
    Ok(())
}
}

/// Both tables have `id` and `name`: every column of a joined query must be qualified.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "j_customer", has_many(orders = JOrder::CUSTOMER))]
struct JCustomer {
    #[orm(primary_key)]
    id: i64,
    name: String,
    city: Option<String>,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "j_order")]
struct JOrder {
    #[orm(primary_key)]
    id: i64,
    name: String,
    #[orm(references = JCustomer)]
    customer_id: Option<i64>,
    total: i64,
}

fn shop(engine: &Engine) -> Result<Session> {
    engine.create_all(&[JCustomer::META, JOrder::META])?;
    let s = engine.session();
    s.add_all([
        JCustomer {
            id: 1,
            name: "Zoe".into(),
            city: Some("Oslo".into()),
        },
        JCustomer {
            id: 2,
            name: "Al".into(),
            city: None,
        },
        JCustomer {
            id: 3,
            name: "Mo".into(),
            city: Some("Rome".into()),
        },
    ])?;
    s.add_all([
        JOrder {
            id: 10,
            name: "o10".into(),
            customer_id: Some(1),
            total: 50,
        },
        JOrder {
            id: 11,
            name: "o11".into(),
            customer_id: Some(2),
            total: 150,
        },
        JOrder {
            id: 12,
            name: "o12".into(),
            customer_id: Some(1),
            total: 200,
        },
        JOrder {
            id: 13,
            name: "o13".into(),
            customer_id: None,
            total: 5,
        },
        JOrder {
            id: 14,
            name: "o14".into(),
            customer_id: Some(3),
            total: 120,
        },
    ])?;
    s.commit()?;
    Ok(s)
}

// Q5: joins through a many-to-one relation: order objects by a related column, with filters
// on both sides (a filter on the order's own `name`, which the customer's table also has).
orm_tests::backends! {
fn q5_objects_ordered_by_a_related_column(db) -> Result<()> {
    let engine = db.engine();
    let s = shop(&engine)?;
    let by_customer = |o: Order| -> Result<Vec<i64>> {
        s.query::<JOrder>()
            .filter(JOrder::NAME.ne("o14").and(JOrder::CUSTOMER.has(JCustomer::CITY.is_not_null()).or(JOrder::TOTAL.gt(100))))
            .order_by(JOrder::CUSTOMER.col(JCustomer::NAME), o)
            .order_by(JOrder::ID, Order::Desc)
            .all()?
            .iter()
            .map(|h| Ok(h.read()?.id))
            .collect()
    };
    // Al (11), then Zoe's two, newest first; o13 has no customer and is filtered out.
    assert_eq!(by_customer(Order::Asc)?, [11, 12, 10]);
    assert_eq!(by_customer(Order::Desc)?, [12, 10, 11]);
    // The objects are the session's own, and a row without a parent is kept by the join.
    let all = s.query::<JOrder>().order_by(JOrder::CUSTOMER.col(JCustomer::CITY), Order::Asc).all()?;
    assert_eq!(all.len(), 5);
    assert!(all.iter().any(|h| h == &s.get::<JOrder>(13).unwrap().unwrap()));
    // A stream orders the same way.
    let streamed: Vec<i64> = s.query::<JOrder>()
        .filter(JOrder::CUSTOMER.has(JCustomer::ID.gt(0)))
        .order_by(JOrder::CUSTOMER.col(JCustomer::NAME), Order::Desc)
        .order_by(JOrder::TOTAL, Order::Asc)
        .yield_per(2)
        .iter()?
        .map(|h| Ok(h?.read()?.id))
        .collect::<Result<_>>()?;
    assert_eq!(streamed, [10, 12, 14, 11]);
    Ok(())
}
}

// Q5: columns of two entities in one row (`LEFT JOIN`: `None` where there is no parent),
// grouped by a related column with aggregates, and into a derived row struct.
orm_tests::backends! {
fn q5_columns_of_two_entities(db) -> Result<()> {
    let engine = db.engine();
    let s = shop(&engine)?;
    // The customer's city is nullable itself: a NULL reads as the outer `None`, whether the
    // customer has no city (o11) or there is no customer (o13).
    type Row = (i64, String, Option<String>, Option<Option<String>>);
    let rows: Vec<Row> = s
        .query::<JOrder>()
        .order_by(JOrder::ID, Order::Asc)
        .select((JOrder::ID, JOrder::NAME, JOrder::CUSTOMER.col(JCustomer::NAME), JOrder::CUSTOMER.col(JCustomer::CITY)))
        .all()?;
    assert_eq!(rows, [
        (10, "o10".into(), Some("Zoe".into()), Some(Some("Oslo".into()))),
        (11, "o11".into(), Some("Al".into()), None),
        (12, "o12".into(), Some("Zoe".into()), Some(Some("Oslo".into()))),
        (13, "o13".into(), None, None),
        (14, "o14".into(), Some("Mo".into()), Some(Some("Rome".into()))),
    ]);
    #[derive(FromRow, Debug, PartialEq)]
    struct PerCustomer { name: Option<String>, orders: i64, total: Option<i64> }
    let per: Vec<PerCustomer> = s
        .query::<JOrder>()
        .filter(JOrder::TOTAL.ge(50))
        .order_by(JOrder::CUSTOMER.col(JCustomer::NAME), Order::Asc)
        .select((JOrder::CUSTOMER.col(JCustomer::NAME), JOrder::ID.count(), JOrder::TOTAL.sum()))
        .group_by(JOrder::CUSTOMER.col(JCustomer::NAME))
        .having(JOrder::TOTAL.sum().gt(100))
        .all_as()?;
    assert_eq!(per, [
        PerCustomer { name: Some("Al".into()), orders: 1, total: Some(150) },
        PerCustomer { name: Some("Mo".into()), orders: 1, total: Some(120) },
        PerCustomer { name: Some("Zoe".into()), orders: 2, total: Some(250) },
    ]);
    Ok(())
}
}

/// A tree: a node's parent is a node of the same table.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "j_node")]
struct JNode {
    #[orm(primary_key)]
    id: i64,
    name: String,
    #[orm(references = JNode)]
    parent_id: Option<i64>,
}

// Q5: a join of a table with itself (a node and its parent's name): the joined copy has an
// alias of its own.
orm_tests::backends! {
fn q5_a_self_referential_join(db) -> Result<()> {
    let engine = db.engine();
    engine.create_table::<JNode>()?;
    let s = engine.session();
    s.add_all([
        JNode { id: 1, name: "root".into(), parent_id: None },
        JNode { id: 2, name: "b".into(), parent_id: Some(1) },
        JNode { id: 3, name: "a".into(), parent_id: Some(2) },
    ])?;
    let rows: Vec<(String, Option<String>)> = s
        .query::<JNode>()
        .filter(JNode::NAME.ne("root"))
        .order_by(JNode::PARENT.col(JNode::NAME), Order::Desc)
        .select((JNode::NAME, JNode::PARENT.col(JNode::NAME)))
        .all()?;
    assert_eq!(rows, [("b".into(), Some("root".into())), ("a".into(), Some("b".into()))]);
    Ok(())
}
}
