//! Relations (G1–G7 in docs/behaviours.md): foreign keys in the mapping, linking objects
//! before their keys exist, a dependency-ordered flush, cascades, lazy and select-in loading,
//! filters across relations. Every test runs on SQLite and PostgreSQL and checks the rows on
//! another connection.

use orm_session::prelude::*;
use orm_tests::{SqlLog, backends, watchdog};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "shop_customer", has_many(orders = Order::CUSTOMER, cascade = "all, delete-orphan"))]
struct Customer {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "shop_order", has_many(lines = Line::ORDER, cascade = "all"))]
#[orm(many_to_many(products = Product, via = (Line::ORDER, Line::PRODUCT)))]
struct Order {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Customer, index)]
    customer_id: Option<i64>,
    total: f64,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "shop_product")]
struct Product {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "shop_line")]
struct Line {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Order)]
    order_id: Option<i64>,
    #[orm(references = Product)]
    product_id: Option<i64>,
    qty: i32,
}

/// A tree of one table.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "tree_node", has_many(children = Node::PARENT))]
struct Node {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Node)]
    parent_id: Option<i64>,
    label: String,
}

/// A one-to-one: a user has at most one profile.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "app_user", has_one(profile = Profile::USER, cascade = "all"))]
struct User {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "app_profile")]
struct Profile {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = User, unique)]
    user_id: Option<i64>,
    bio: String,
}

/// No cascade, nullable foreign key: deleting the author leaves the books with NULL.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "lib_author", has_many(books = Book::AUTHOR))]
struct Author {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "lib_book")]
struct Book {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Author)]
    author_id: Option<i64>,
    title: String,
}

/// No cascade, NOT NULL foreign key: deleting a team with players fails clearly.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "club_team", has_many(players = Player::TEAM))]
struct Team {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "club_player")]
struct Player {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Team)]
    team_id: i64,
    name: String,
}

const ALL: &[&EntityMeta] = &[
    Line::META,
    Order::META,
    Customer::META,
    Product::META,
    Node::META,
    Book::META,
    Author::META,
    Player::META,
    Team::META,
    Profile::META,
    User::META,
];

fn count(db: &orm_tests::TestDb, table: &str) -> i64 {
    db.connect()
        .query_i64(&format!("SELECT COUNT(*) FROM {table}"), &[])
        .expect("count")
}

fn order(total: f64) -> Order {
    Order {
        id: None,
        customer_id: None,
        total,
    }
}

backends! {
    // G1: create_all takes the entities in any order and creates referenced tables first;
    // the foreign keys are enforced.
    fn g1_create_all_orders_tables_and_enforces_references(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        engine.create_all(ALL)?; // again: nothing to do, no error
        let conn = db.connect();
        let e = conn
            .execute(&db.sql("INSERT INTO shop_order (customer_id, total) VALUES (?, ?)"), &[Value::I64(999), Value::F64(1.0)])
            .expect_err("no customer 999");
        assert_eq!(e.kind(), ErrorKind::ForeignKeyViolation);
        Ok(())
    }

    // G3: children added before their parents, linked before either has a key: the flush
    // inserts the parents first and writes their keys into the children.
    fn g3_children_added_first_flush_after_their_parents(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let orders = s.add_all((0..5).map(|i| order(f64::from(i))))?;
        let ada = s.add(Customer { id: None, name: "ada".into() })?;
        let bob = s.add(Customer { id: None, name: "bob".into() })?;
        for (i, o) in orders.iter().enumerate() {
            s.link(o, Order::CUSTOMER, if i % 2 == 0 { &ada } else { &bob })?;
        }
        assert_eq!(orders[0].read()?.customer_id, None, "no key before the flush");
        s.commit()?;
        let (a, b) = (ada.read()?.id, bob.read()?.id);
        assert!(a.is_some() && b.is_some());
        for (i, o) in orders.iter().enumerate() {
            assert_eq!(o.read()?.customer_id, if i % 2 == 0 { a } else { b });
        }
        let conn = db.connect();
        let rows = conn.query_values(&db.sql("SELECT COUNT(*) FROM shop_order WHERE customer_id = ?"), &[Value::I64(a.unwrap())])?;
        assert_eq!(rows[0][0], Value::I64(3));
        // A transient child linked to a persistent parent is added (save-update cascade) and
        // gets the key at once.
        let extra = Handle::new(order(9.0));
        s.link(&extra, Order::CUSTOMER, &ada)?;
        assert_eq!(extra.state(), ObjectState::Pending);
        assert_eq!(extra.read()?.customer_id, a);
        s.commit()?;
        assert_eq!(count(db, "shop_order"), 6);
        Ok(())
    }

    // G3: a persistent child moved to a parent that has no key yet is updated after the
    // parent's insert, in the same flush.
    fn g3_persistent_child_relinked_to_a_new_parent(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let old = s.add(Customer { id: None, name: "old".into() })?;
        let o = s.add(order(5.0))?;
        s.link(&o, Order::CUSTOMER, &old)?;
        s.commit()?;
        let new = s.add(Customer { id: None, name: "new".into() })?;
        s.link(&o, Order::CUSTOMER, &new)?;
        s.commit()?;
        let new_id = new.read()?.id.expect("key");
        assert_eq!(o.read()?.customer_id, Some(new_id));
        let conn = db.connect();
        let rows = conn.query_values("SELECT customer_id FROM shop_order", &[])?;
        assert_eq!(rows, vec![vec![Value::I64(new_id)]]);
        Ok(())
    }

    // G4: a tree of one table added in random order (leaves first) flushes level by level.
    fn g4_self_referential_tree_added_leaves_first(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        // 1 root, 3 children, 9 grandchildren; added grandchildren first, shuffled.
        let node = |l: &str| Node { id: None, parent_id: None, label: l.into() };
        let grand: Vec<_> = (0..9).map(|i| s.add(node(&format!("g{i}")))).collect::<Result<_>>()?;
        let kids: Vec<_> = (0..3).map(|i| s.add(node(&format!("k{i}")))).collect::<Result<_>>()?;
        let root = s.add(node("root"))?;
        for (i, g) in grand.iter().enumerate().rev() {
            s.link(g, Node::PARENT, &kids[i % 3])?;
        }
        for k in &kids {
            s.link(k, Node::PARENT, &root)?;
        }
        s.commit()?;
        let conn = db.connect();
        let rows = conn.query_values(
            "SELECT c.label, p.label FROM tree_node c LEFT JOIN tree_node p ON p.id = c.parent_id ORDER BY c.label",
            &[],
        )?;
        assert_eq!(rows.len(), 13);
        for r in rows {
            let (Value::Text(child), parent) = (&r[0], &r[1]) else { panic!("{r:?}") };
            match child.as_str() {
                "root" => assert_eq!(parent, &Value::Null),
                c if c.starts_with('k') => assert_eq!(parent, &Value::Text("root".into())),
                g => {
                    let i: usize = g[1..].parse().expect("index");
                    assert_eq!(parent, &Value::Text(format!("k{}", i % 3)));
                }
            }
        }
        assert_eq!(s.related(&root, Node::CHILDREN)?.len(), 3);
        Ok(())
    }

    // G4: objects linked in a cycle cannot be inserted in any order: refused, nothing written,
    // and the session is usable once the cycle is broken.
    fn g4_a_cycle_of_links_is_refused(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let a = s.add(Node { id: None, parent_id: None, label: "a".into() })?;
        let b = s.add(Node { id: None, parent_id: None, label: "b".into() })?;
        s.link(&a, Node::PARENT, &b)?;
        s.link(&b, Node::PARENT, &a)?;
        let e = s.flush().expect_err("cycle");
        assert_eq!(e.kind(), ErrorKind::DependencyCycle);
        assert!(e.to_string().contains("cycle"), "{e}");
        assert_eq!(count(db, "tree_node"), 0);
        assert_eq!(a.state(), ObjectState::Pending);
        s.unlink(&a, Node::PARENT)?;
        s.commit()?;
        assert_eq!(b.read()?.parent_id, a.read()?.id);
        assert_eq!(count(db, "tree_node"), 2);
        Ok(())
    }

    // G5: delete cascade: deleting a customer deletes its orders, and their lines, in the
    // same flush, children first.
    fn g5_delete_cascades_to_children(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let c = s.add(Customer { id: None, name: "c".into() })?;
        let p = s.add(Product { id: None, name: "p".into() })?;
        for i in 0..3 {
            let o = s.add(order(f64::from(i)))?;
            s.link(&o, Order::CUSTOMER, &c)?;
            let l = s.add(Line { id: None, order_id: None, product_id: None, qty: 1 })?;
            s.link(&l, Line::ORDER, &o)?;
            s.link(&l, Line::PRODUCT, &p)?;
        }
        let other = s.add(Customer { id: None, name: "other".into() })?;
        let kept = s.add(order(7.0))?;
        s.link(&kept, Order::CUSTOMER, &other)?;
        s.commit()?;
        // A fresh session: the children are not loaded; delete loads and marks them.
        let s = engine.session();
        let c = s.get::<Customer>(c.read()?.id.expect("key"))?.expect("row");
        s.delete(&c)?;
        assert_eq!(s.deleted_objects().len(), 7, "1 customer, 3 orders, 3 lines");
        s.commit()?;
        assert_eq!(count(db, "shop_customer"), 1);
        assert_eq!(count(db, "shop_order"), 1);
        assert_eq!(count(db, "shop_line"), 0);
        assert_eq!(count(db, "shop_product"), 1);
        Ok(())
    }

    // G5: delete-orphan: a child unlinked from its parent is deleted.
    fn g5_delete_orphan_deletes_an_unlinked_child(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let c = s.add(Customer { id: None, name: "c".into() })?;
        let o1 = s.add(order(1.0))?;
        let o2 = s.add(order(2.0))?;
        s.append(&c, Customer::ORDERS, &o1)?;
        s.append(&c, Customer::ORDERS, &o2)?;
        s.commit()?;
        assert_eq!(s.related(&c, Customer::ORDERS)?.len(), 2);
        s.remove(&c, Customer::ORDERS, &o1)?;
        assert_eq!(s.related(&c, Customer::ORDERS)?.len(), 1, "the loaded collection lost it");
        s.commit()?;
        assert_eq!(count(db, "shop_order"), 1);
        assert_eq!(o1.state(), ObjectState::Detached);
        Ok(())
    }

    // G5: without a delete cascade, deleting a parent sets its children's nullable foreign
    // key to NULL (one UPDATE before the DELETE) ...
    fn g5_no_cascade_nulls_a_nullable_foreign_key(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let a = s.add(Author { id: None, name: "a".into() })?;
        let books: Vec<_> = (0..2)
            .map(|i| s.add(Book { id: None, author_id: None, title: format!("b{i}") }))
            .collect::<Result<_>>()?;
        for b in &books {
            s.link(b, Book::AUTHOR, &a)?;
        }
        s.commit()?;
        let s = engine.session();
        let a = s.get::<Author>(a.read()?.id.expect("key"))?.expect("row");
        s.delete(&a)?;
        s.commit()?;
        assert_eq!(count(db, "lib_author"), 0);
        let rows = db.connect().query_values("SELECT author_id FROM lib_book", &[])?;
        assert_eq!(rows, vec![vec![Value::Null], vec![Value::Null]]);
        Ok(())
    }

    // G5: ... and fails clearly, writing nothing, when the foreign key is NOT NULL.
    fn g5_no_cascade_not_null_fails_naming_both_tables(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let t = s.add(Team { id: None, name: "t".into() })?;
        s.commit()?;
        let tid = t.read()?.id.expect("key");
        s.add(Player { id: None, team_id: tid, name: "p".into() })?;
        s.commit()?;
        s.delete(&t)?;
        let e = s.commit().expect_err("NOT NULL children");
        let msg = e.to_string();
        assert!(msg.contains("club_team") && msg.contains("club_player") && msg.contains("team_id"), "{msg}");
        s.rollback()?;
        assert_eq!(count(db, "club_team"), 1);
        assert_eq!(count(db, "club_player"), 1);
        Ok(())
    }

    // G6: N parents with select-in loading cost 2 statements; every collection is then read
    // without SQL; a many-to-one to an object in the identity map costs none.
    fn g6_selectin_and_lazy_statement_counts(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let customers = s.add_all((0..50).map(|i| Customer { id: None, name: format!("c{i}") }))?;
        for (i, c) in customers.iter().enumerate() {
            for j in 0..i % 4 {
                let o = s.add(order(j as f64))?;
                s.link(&o, Order::CUSTOMER, c)?;
            }
        }
        s.commit()?;
        let s = engine.session();
        let (log, _g) = SqlLog::start();
        let all = s.query::<Customer>().selectin(Customer::ORDERS).all()?;
        assert_eq!(all.len(), 50);
        let mut total = 0;
        for c in &all {
            let orders = s.related(c, Customer::ORDERS)?;
            total += orders.len();
            for o in &orders {
                // The parent is in the identity map: no SQL.
                assert!(s.related(o, Order::CUSTOMER)?.expect("parent") == *c);
            }
        }
        assert_eq!(total, (0..50).map(|i| i % 4).sum::<usize>());
        let selects = log.starting_with("SELECT");
        assert_eq!(selects.len(), 2, "{selects:#?}");
        // Lazy one-to-many: one SELECT at first use, none after.
        let s = engine.session();
        let c = s.query::<Customer>().filter(Customer::NAME.eq("c3")).one()?;
        log.clear();
        assert_eq!(s.related(&c, Customer::ORDERS)?.len(), 3);
        assert_eq!(s.related(&c, Customer::ORDERS)?.len(), 3);
        assert_eq!(log.starting_with("SELECT").len(), 1);
        // Eager many-to-one: the parents of every order in one more SELECT, held by the
        // session.
        let s = engine.session();
        log.clear();
        let orders = s.query::<Order>().selectin(Order::CUSTOMER).all()?;
        for o in &orders {
            assert!(s.related(o, Order::CUSTOMER)?.is_some());
        }
        assert_eq!(log.starting_with("SELECT").len(), 2);
        Ok(())
    }

    // G6: a many-to-many loaded for a whole query: the orders, their association rows, the
    // products: three statements whatever the number of orders.
    fn g6_many_to_many_selectin_costs_three_statements(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let products = s.add_all((0..4).map(|i| Product { id: None, name: format!("p{i}") }))?;
        for i in 0..20_u32 {
            let o = s.add(order(f64::from(i)))?;
            for p in products.iter().take(i as usize % 4) {
                let l = s.add(Line { id: None, order_id: None, product_id: None, qty: 1 })?;
                s.link(&l, Line::ORDER, &o)?;
                s.link(&l, Line::PRODUCT, p)?;
            }
        }
        s.commit()?;
        let s = engine.session();
        let (log, _g) = SqlLog::start();
        let orders = s.query::<Order>().order_by(Order::TOTAL, orm_session::Order::Asc).selectin(Order::PRODUCTS).all()?;
        for (i, o) in orders.iter().enumerate() {
            let mut names: Vec<String> = s
                .related(o, Order::PRODUCTS)?
                .iter()
                .map(|p| p.read().map(|p| p.name.clone()))
                .collect::<Result<_>>()?;
            names.sort();
            let want: Vec<String> = (0..i % 4).map(|j| format!("p{j}")).collect();
            assert_eq!(names, want, "order {i}");
        }
        assert_eq!(log.starting_with("SELECT").len(), 3, "{:#?}", log.statements());
        // The products are the session's objects: one per row.
        let p0 = s.query::<Product>().filter(Product::NAME.eq("p0")).one()?;
        assert!(s.related(&orders[1], Order::PRODUCTS)?[0] == p0);
        Ok(())
    }

    // S9, G3: rollback after a flushed graph puts every object back: transient, generated keys
    // and the foreign keys written from links cleared, nothing in the database.
    fn s9_rollback_after_a_flushed_graph_restores_keys_and_foreign_keys(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let c = s.add(Customer { id: None, name: "c".into() })?;
        let orders = s.add_all((0..3).map(|i| order(f64::from(i))))?;
        for o in &orders {
            s.link(o, Order::CUSTOMER, &c)?;
        }
        s.flush()?;
        assert!(c.read()?.id.is_some());
        assert!(orders.iter().all(|o| o.read().map(|o| o.customer_id.is_some()).unwrap_or(false)));
        s.rollback()?;
        assert_eq!(c.state(), ObjectState::Transient);
        assert_eq!(c.read()?.id, None);
        for o in &orders {
            assert_eq!(o.state(), ObjectState::Transient);
            assert_eq!(*o.read()?, order(o.read()?.total));
        }
        assert_eq!(count(db, "shop_customer"), 0);
        assert_eq!(count(db, "shop_order"), 0);
        // Added and linked again, they flush as new.
        s.add_handle(&c)?;
        for o in &orders {
            s.link(o, Order::CUSTOMER, &c)?;
        }
        s.commit()?;
        assert_eq!(count(db, "shop_order"), 3);
        Ok(())
    }

    // R1, G3: a flush that fails after the parents' insert writes nothing and puts the children's
    // foreign keys back; fixed, the same objects flush.
    fn r1_failed_graph_flush_restores_foreign_keys(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let missing_team = 424_242;
        let c = s.add(Customer { id: None, name: "c".into() })?;
        let o = s.add(order(1.0))?;
        s.link(&o, Order::CUSTOMER, &c)?;
        // A line of the new order, for a product that does not exist, fails after the
        // customer's and the order's inserts (the order's foreign key written by then).
        let bad = s.add(Line { id: None, order_id: None, product_id: Some(missing_team), qty: 1 })?;
        s.link(&bad, Line::ORDER, &o)?;
        let e = s.flush().expect_err("foreign key");
        assert_eq!(e.kind(), ErrorKind::ForeignKeyViolation);
        assert_eq!(o.read()?.customer_id, None);
        assert_eq!(c.read()?.id, None);
        assert_eq!(count(db, "shop_customer"), 0);
        assert_eq!(bad.read()?.order_id, None);
        if db.is_postgres() {
            s.rollback()?; // PostgreSQL aborted the transaction
            s.add_handle(&c)?;
            s.link(&o, Order::CUSTOMER, &c)?;
            assert_eq!(bad.state(), ObjectState::Transient);
        } else {
            s.expunge(&bad)?;
        }
        s.commit()?;
        assert_eq!(o.read()?.customer_id, c.read()?.id);
        assert_eq!(count(db, "shop_order"), 1);
        Ok(())
    }

    // R3, G1: a foreign-key violation's message names both tables.
    fn r3_foreign_key_violation_names_both_tables(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        s.add(Order { id: None, customer_id: Some(12345), total: 1.0 })?;
        let e = s.commit().expect_err("no such customer");
        assert_eq!(e.kind(), ErrorKind::ForeignKeyViolation);
        let msg = e.to_string();
        assert!(msg.contains("shop_order") && msg.contains("shop_customer"), "{msg}");
        Ok(())
    }

    // G2: filters across relations: EXISTS on one-to-many, many-to-one and many-to-many, and
    // a self-referential one.
    fn g2_filters_across_relations(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let cs = s.add_all(["ada", "bob", "cy"].map(|n| Customer { id: None, name: n.into() }))?;
        let pen = s.add(Product { id: None, name: "pen".into() })?;
        let ink = s.add(Product { id: None, name: "ink".into() })?;
        for (c, totals) in cs.iter().zip([&[50.0, 150.0][..], &[20.0], &[]]) {
            for &t in totals {
                let o = s.add(order(t))?;
                s.link(&o, Order::CUSTOMER, c)?;
                let l = s.add(Line { id: None, order_id: None, product_id: None, qty: 1 })?;
                s.link(&l, Line::ORDER, &o)?;
                s.link(&l, Line::PRODUCT, if t > 100.0 { &ink } else { &pen })?;
            }
        }
        s.commit()?;
        let names = |hs: Vec<Handle<Customer>>| -> Vec<String> {
            let mut v: Vec<String> = hs.iter().map(|h| h.read().map(|c| c.name.clone()).unwrap_or_default()).collect();
            v.sort();
            v
        };
        let big = s.query::<Customer>().filter(Customer::ORDERS.any(Order::TOTAL.gt(100.0))).all()?;
        assert_eq!(names(big), ["ada"]);
        let buyers = s.query::<Customer>().filter(Customer::ORDERS.exists()).all()?;
        assert_eq!(names(buyers), ["ada", "bob"]);
        let none = s.query::<Customer>().filter(Customer::ORDERS.exists().not()).all()?;
        assert_eq!(names(none), ["cy"]);
        let of_ada = s.query::<Order>().filter(Order::CUSTOMER.has(Customer::NAME.eq("ada"))).count()?;
        assert_eq!(of_ada, 2);
        let with_ink = s.query::<Order>().filter(Order::PRODUCTS.any(Product::NAME.eq("ink"))).all()?;
        assert_eq!(with_ink.len(), 1);
        assert_eq!(with_ink[0].read()?.total, 150.0);
        // Nested: customers with an order containing ink.
        let ink_buyers = s
            .query::<Customer>()
            .filter(Customer::ORDERS.any(Order::PRODUCTS.any(Product::NAME.eq("ink"))))
            .all()?;
        assert_eq!(names(ink_buyers), ["ada"]);
        // Many-to-many loading.
        let products = s.related(&with_ink[0], Order::PRODUCTS)?;
        assert!(products.len() == 1 && products[0] == ink);
        Ok(())
    }

    // G2: a self-referential filter: nodes having a child labelled "k1".
    fn g2_self_referential_filter(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let root = s.add(Node { id: None, parent_id: None, label: "root".into() })?;
        let k1 = s.add(Node { id: None, parent_id: None, label: "k1".into() })?;
        s.link(&k1, Node::PARENT, &root)?;
        s.commit()?;
        let found = s.query::<Node>().filter(Node::CHILDREN.any(Node::LABEL.eq("k1"))).all()?;
        assert!(found.len() == 1 && found[0] == root);
        let kids = s.query::<Node>().filter(Node::PARENT.has(Node::LABEL.eq("root"))).all()?;
        assert!(kids.len() == 1 && kids[0] == k1);
        Ok(())
    }

    // R1, G3: a guard the caller holds on a linked child keeps the flush from writing its
    // foreign key: the flush fails whole, the links stay, and once the guard is gone the
    // same objects flush.
    fn r1_a_guard_on_a_linked_child_fails_the_graph_flush_whole(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let c = s.add(Customer { id: None, name: "c".into() })?;
        let orders = s.add_all((0..3).map(|i| order(f64::from(i))))?;
        for o in &orders {
            s.link(o, Order::CUSTOMER, &c)?;
        }
        {
            let _reading = orders[2].read()?;
            let e = s.flush().expect_err("the child is borrowed");
            assert_eq!(e.kind(), ErrorKind::Borrowed);
        }
        assert_eq!(count(db, "shop_customer"), 0);
        assert_eq!(c.state(), ObjectState::Pending);
        assert_eq!(orders[0].read()?.customer_id, None);
        s.commit()?;
        let id = c.read()?.id;
        for o in &orders {
            assert_eq!(o.read()?.customer_id, id);
        }
        assert_eq!(count(db, "shop_order"), 3);
        Ok(())
    }

    // R1, G5: another connection adds a child after delete() loaded the children to cascade
    // to: the parent's DELETE fails on the foreign key, nothing of the flush stays, and the
    // error names both tables.
    fn r1_a_child_added_elsewhere_fails_the_cascade_whole(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let c = s.add(Customer { id: None, name: "c".into() })?;
        let o = s.add(order(1.0))?;
        s.link(&o, Order::CUSTOMER, &c)?;
        s.commit()?;
        let id = c.read()?.id.expect("key");
        s.delete(&c)?;
        assert_eq!(s.deleted_objects().len(), 2);
        db.connect().execute(
            &db.sql("INSERT INTO shop_order (customer_id, total) VALUES (?, ?)"),
            &[Value::I64(id), Value::F64(2.0)],
        )?;
        let e = s.commit().expect_err("a child the session did not see");
        assert_eq!(e.kind(), ErrorKind::ForeignKeyViolation);
        let msg = e.to_string();
        assert!(msg.contains("shop_order") && msg.contains("shop_customer"), "{msg}");
        s.rollback()?;
        assert_eq!(count(db, "shop_customer"), 1);
        assert_eq!(count(db, "shop_order"), 2);
        Ok(())
    }

    // R9, G3: threads linking children to one parent in one session at once: every link
    // is kept, nothing waits for ever.
    fn r9_threads_linking_in_one_session(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        watchdog(60, move || -> Result<()> {
            let s = std::sync::Arc::new(engine.session());
            let c = s.add(Customer { id: None, name: "c".into() })?;
            let workers: Vec<_> = (0..4)
                .map(|t| {
                    let (s, c) = (std::sync::Arc::clone(&s), c.clone());
                    std::thread::spawn(move || -> Result<()> {
                        for i in 0..250 {
                            let o = Handle::new(order(f64::from(t * 1000 + i)));
                            s.link(&o, Order::CUSTOMER, &c)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join().expect("worker")?;
            }
            assert_eq!(s.related(&c, Customer::ORDERS)?.len(), 1000);
            s.commit()?;
            let id = c.read()?.id.expect("key");
            let n = engine.connect()?.query_i64(
                &format!("SELECT COUNT(*) FROM shop_order WHERE customer_id = {id}"),
                &[],
            )?;
            assert_eq!(n, 1000);
            Ok(())
        })
    }

    // G2, G5: a one-to-one holds one child: linking a second profile to a user replaces the
    // first, whose foreign key becomes NULL (an UPDATE before the INSERT, so the unique
    // foreign key is never violated).
    fn g2_one_to_one_link_replaces_the_child(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let u = s.add(User { id: None, name: "ada".into() })?;
        let first = s.add(Profile { id: None, user_id: None, bio: "first".into() })?;
        s.link(&first, Profile::USER, &u)?;
        s.commit()?;
        assert!(s.related(&u, User::PROFILE)?.expect("one") == first);
        let second = Handle::new(Profile { id: None, user_id: None, bio: "second".into() });
        s.link(&second, Profile::USER, &u)?;
        assert!(s.related(&u, User::PROFILE)?.expect("one") == second);
        s.commit()?;
        let rows = db
            .connect()
            .query_values("SELECT bio, user_id FROM app_profile ORDER BY bio", &[])?;
        let uid = u.id().expect("key");
        assert_eq!(
            rows,
            vec![
                vec![Value::Text("first".into()), Value::Null],
                vec![Value::Text("second".into()), Value::I64(uid)],
            ]
        );
        assert_eq!(first.read()?.user_id, None);
        // Filters reach across it too.
        let with_bio = s.query::<User>().filter(User::PROFILE.has(Profile::BIO.eq("second"))).count()?;
        assert_eq!(with_bio, 1);
        Ok(())
    }
}

backends! {
    // G2, S3: a persistent child linked to a parent that has no key yet, whose own primary
    // key also changed: the flush writes the parent's key into it and moves its row, found by
    // its old key, in one UPDATE after the parent's INSERT.
    fn g2_a_relinked_child_with_a_changed_key_moves_its_row(db) -> Result<()> {
        let engine = db.engine();
        engine.create_all(ALL)?;
        let s = engine.session();
        let ada = s.add(Customer { id: None, name: "ada".into() })?;
        let o = s.add(Order { id: None, customer_id: None, total: 5.0 })?;
        s.link(&o, Order::CUSTOMER, &ada)?;
        s.commit()?;
        let id = o.read()?.id.unwrap();
        let bob = s.add(Customer { id: None, name: "bob".into() })?;
        s.link(&o, Order::CUSTOMER, &bob)?;
        o.write()?.id = Some(id + 100);
        s.commit()?;
        let bob_id = bob.read()?.id.unwrap();
        let conn = engine.connect()?;
        assert!(conn.find::<Order>(&Key::Int(id))?.is_none());
        let moved = conn.find::<Order>(&Key::Int(id + 100))?.expect("moved");
        assert_eq!(moved.customer_id, Some(bob_id));
        assert!(s.get::<Order>(id + 100)?.is_some_and(|h| h == o));
        Ok(())
    }
}
