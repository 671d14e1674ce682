//! B2 bulk_save, B3 bulk_insert_mappings, B4 bulk_update_mappings, B6 limits, B7 streaming.

use orm_session::prelude::*;
use orm_tests::SqlLog;
use orm_tests::model::Customer;

fn customer_rows(n: i32) -> impl Iterator<Item = Mapping<Customer>> {
    (0..n).map(|i| {
        let m = Mapping::from([
            Customer::NAME.to(format!("customer {i}")),
            Customer::AGE.to(i),
        ]);
        // Every third row carries a description: two column sets.
        if i % 3 == 0 {
            m.set(Customer::DESCRIPTION, format!("description {i}"))
        } else {
            m
        }
    })
}

// B3
orm_tests::backends! {
fn b3_return_defaults_keys_match_rows_in_input_order_across_column_sets(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let (log, _g) = SqlLog::start();
    let r = s.bulk_insert_mappings(
        customer_rows(1000),
        BulkOptions::default().return_defaults(true),
    )?;
    s.commit()?;
    assert_eq!(r.inserted, 1000);
    assert_eq!(r.keys.len(), 1000);
    // SQLite: multi-row INSERTs of 50 rows; PostgreSQL: one INSERT of arrays per column
    // set (a few hundred rows each: fewer than a COPY is worth).
    let (verb, expected) = if db.is_postgres() {
        ("INSERT", (2, 1))
    } else if db.is_mysql() {
        // MySQL: one multi-row INSERT per column set (up to 2,000 rows).
        ("INSERT", (2, 1))
    } else {
        ("INSERT", (7 + 14, 7))
    };
    let inserts = log.starting_with(verb);
    let with_descr = inserts.iter().filter(|s| s.contains("\"descr\"")).count();
    assert_eq!(
        (inserts.len(), with_descr),
        expected,
        "334 rows with descr, 666 without"
    );
    let conn = engine.connect()?;
    for (i, key) in r.keys.iter().enumerate() {
        let row = conn.find::<Customer>(key)?.expect("row of the key");
        assert_eq!(row.name, format!("customer {i}"), "key {key} is row {i}'s");
        assert_eq!(row.age, i as i32);
        assert_eq!(
            row.description,
            (i % 3 == 0).then(|| format!("description {i}"))
        );
    }
    Ok(())
}
}

// B3, R3
orm_tests::backends! {
fn b3_dynamic_rows_are_checked_and_a_bad_row_writes_nothing(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let good = |i: i32| {
        vec![
            ("name", Value::from(format!("n{i}"))),
            ("age", Value::from(i)),
        ]
    };
    type Row = Vec<(&'static str, Value)>;
    let cases: Vec<(Row, ErrorKind, &str)> = vec![
        (
            vec![("name", Value::from("x")), ("agee", Value::from(1))],
            ErrorKind::UnknownColumn,
            "agee",
        ),
        (
            vec![("name", Value::from("x")), ("age", Value::from("old"))],
            ErrorKind::TypeMismatch,
            "age",
        ),
        (
            vec![("name", Value::Null), ("age", Value::from(1))],
            ErrorKind::TypeMismatch,
            "NULL",
        ),
        (
            vec![("age", Value::from(1))],
            ErrorKind::TypeMismatch,
            "missing",
        ),
        (
            vec![("name", Value::from("x")), ("age", Value::I64(1 << 40))],
            ErrorKind::TypeMismatch,
            "age",
        ),
    ];
    for (bad, kind, mentions) in cases {
        // 250 good rows (two batches sent) and then the bad one.
        let rows = (0..250).map(good).chain(std::iter::once(bad));
        let err = s
            .bulk_insert_dynamic::<Customer, _, _>(rows, BulkOptions::default())
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.to_string().contains(mentions), "{err}");
        assert_eq!(
            s.query::<Customer>().count()?,
            0,
            "nothing written after: {err}"
        );
    }
    let r = s.bulk_insert_dynamic::<Customer, _, _>((0..10).map(good), BulkOptions::default())?;
    assert_eq!(r.inserted, 10);
    Ok(())
}
}

// B3, R1
orm_tests::backends! {
fn b3_a_unique_violation_in_row_7500_of_10000_writes_none_of_the_call(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    s.bulk_insert_mappings(
        [Mapping::from([
            Customer::NAME.to("customer 7499"),
            Customer::AGE.to(0),
        ])],
        BulkOptions::default(),
    )?;
    s.commit()?;
    let err = s
        .bulk_insert_mappings(
            customer_rows(10_000),
            BulkOptions::default().return_defaults(true),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation);
    s.commit()?;
    assert_eq!(engine.connect()?.count::<Customer>(None)?, 1);
    Ok(())
}
}

// B2
orm_tests::backends! {
fn b2_bulk_save_inserts_new_objects_and_updates_keyed_ones(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let mut objs: Vec<Customer> = (0..500)
        .map(|i| Customer::new(&format!("c{i}"), i))
        .collect();
    let r = s.bulk_save(
        objs.iter_mut(),
        BulkOptions::default().return_defaults(true),
    )?;
    assert_eq!((r.inserted, r.updated), (500, 0));
    assert!(
        objs.iter()
            .enumerate()
            .all(|(i, c)| c.id == Some(i as i64 + 1)),
        "keys written back"
    );
    for c in objs.iter_mut().step_by(2) {
        c.age += 1000;
    }
    objs.push(Customer::new("new one", 7));
    let (log, _g) = SqlLog::start();
    let r = s.bulk_save(objs.iter_mut(), BulkOptions::default())?;
    assert_eq!((r.inserted, r.updated), (1, 500));
    assert_eq!(
        objs[500].id, None,
        "without return_defaults keys are not read back"
    );
    let updates = log.starting_with("UPDATE");
    assert!(
        updates.iter().all(|u| u == &updates[0]),
        "one prepared UPDATE"
    );
    assert_eq!(s.identity_len(), 0, "no identity map");
    s.commit()?;
    let conn = engine.connect()?;
    assert_eq!(conn.count(Some(Customer::AGE.ge(1000)))?, 250);
    assert_eq!(conn.count::<Customer>(None)?, 501);
    Ok(())
}
}

// B2, R1
orm_tests::backends! {
fn b2_a_failing_bulk_save_writes_nothing_and_leaves_objects_alone(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let mut objs: Vec<Customer> = (0..10_000)
        .map(|i| Customer::new(&format!("c{i}"), i))
        .collect();
    objs[7_500].name = "c10".into();
    let err = s
        .bulk_save(
            objs.iter_mut(),
            BulkOptions::default().return_defaults(true),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation);
    assert!(
        objs.iter().all(|c| c.id.is_none()),
        "no key written back on failure"
    );
    s.commit()?;
    assert_eq!(engine.connect()?.count::<Customer>(None)?, 0);
    Ok(())
}
}

// B2
orm_tests::backends! {
fn b2_user_keyed_entities_are_upserted(db) -> Result<()> {
    #[derive(Entity, Debug, Clone, PartialEq)]
    struct Setting {
        #[orm(primary_key)]
        name: String,
        value: String,
    }
    let engine = db.engine();
    engine.create_table::<Setting>()?;
    let s = engine.session();
    let mut v = vec![
        Setting {
            name: "a".into(),
            value: "1".into(),
        },
        Setting {
            name: "b".into(),
            value: "2".into(),
        },
    ];
    s.bulk_save(v.iter_mut(), BulkOptions::default())?;
    v[1].value = "20".into();
    v.push(Setting {
        name: "c".into(),
        value: "3".into(),
    });
    s.bulk_save(v.iter_mut(), BulkOptions::default())?;
    s.commit()?;
    let mut all: Vec<Setting> = engine.connect()?.select_all()?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(all, v);
    Ok(())
}
}

// B4
orm_tests::backends! {
fn b4_bulk_update_mappings_by_key_one_statement_per_column_set(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    s.bulk_insert_mappings(customer_rows(300), BulkOptions::default())?;
    let (log, _g) = SqlLog::start();
    let rows = (1..=300i64).map(|id| {
        let m = Mapping::from([Customer::ID.to(id), Customer::AGE.to(-1)]);
        if id % 2 == 0 {
            m.set(Customer::DESCRIPTION, "even")
        } else {
            m
        }
    });
    assert_eq!(s.bulk_update_mappings(rows)?, 300);
    let mut shapes = log.starting_with("UPDATE");
    shapes.dedup();
    shapes.sort();
    shapes.dedup();
    assert_eq!(shapes.len(), 2, "{shapes:?}");
    s.commit()?;
    let conn = engine.connect()?;
    assert_eq!(conn.count(Some(Customer::AGE.eq(-1)))?, 300);
    assert_eq!(conn.count(Some(Customer::DESCRIPTION.eq("even")))?, 150);
    // A row without its key is refused before any SQL.
    let err = s
        .bulk_update_mappings([Mapping::from([Customer::AGE.to(5)])])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    Ok(())
}
}

// B6, B7
orm_tests::backends! {
fn b7_a_million_rows_stream_through_an_iterator(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let n = 1_000_000;
    let rows =
        (0..n).map(|i| Mapping::from([Customer::NAME.to(format!("c{i}")), Customer::AGE.to(i)]));
    let r = s.bulk_insert_mappings(rows, BulkOptions::default())?;
    s.commit()?;
    assert_eq!(r.inserted, n as u64);
    let conn = engine.connect()?;
    assert_eq!(conn.count::<Customer>(None)?, n as u64);
    assert_eq!(
        conn.find::<Customer>(&Key::Int(n as i64))?.map(|c| c.age),
        Some(n - 1)
    );
    Ok(())
}
}

// F5: bulk_save never does nothing silently: a new object that carries its own key, on an
// auto-increment entity, is inserted with that key; one whose row exists is updated.
orm_tests::backends! {
fn f5_bulk_save_inserts_keyed_objects_that_have_no_row(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let mut objs = [
        Customer { id: Some(500), ..Customer::new("given key", 1) },
        Customer::new("no key", 2),
    ];
    let r = s.bulk_save(objs.iter_mut(), BulkOptions::default())?;
    assert_eq!((r.inserted, r.updated), (2, 0));
    s.commit()?;
    objs[0].age = 10;
    let r = s.bulk_save(objs.iter_mut().take(1), BulkOptions::default())?;
    assert_eq!((r.inserted, r.updated), (0, 1));
    s.commit()?;
    let conn = engine.connect()?;
    let row = conn.find::<Customer>(&Key::Int(500))?.expect("inserted with its key");
    assert_eq!((row.name.as_str(), row.age), ("given key", 10));
    assert_eq!(conn.count::<Customer>(None)?, 2);
    Ok(())
}
}
