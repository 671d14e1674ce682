//! B5/B6: the core insert path, chunked under the bound-parameter limit.

use orm_core::{Connection, Entity, ErrorKind, InsertOptions, Key, Result};
use rusqlite::limits::Limit;

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "customer")]
pub struct Customer {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    pub name: String,
    #[orm(column = "descr")]
    pub description: Option<String>,
}

/// 40 columns: 100 rows per statement would need 4,000 parameters.
#[derive(Entity, Debug, Clone, PartialEq, Default)]
pub struct Wide {
    #[orm(primary_key)]
    pub c0: i64,
    pub c1: i64,
    pub c2: i64,
    pub c3: i64,
    pub c4: i64,
    pub c5: i64,
    pub c6: i64,
    pub c7: i64,
    pub c8: i64,
    pub c9: i64,
    pub c10: i64,
    pub c11: i64,
    pub c12: i64,
    pub c13: i64,
    pub c14: i64,
    pub c15: i64,
    pub c16: i64,
    pub c17: i64,
    pub c18: i64,
    pub c19: i64,
    pub c20: i64,
    pub c21: i64,
    pub c22: i64,
    pub c23: i64,
    pub c24: i64,
    pub c25: i64,
    pub c26: i64,
    pub c27: i64,
    pub c28: i64,
    pub c29: i64,
    pub c30: i64,
    pub c31: i64,
    pub c32: i64,
    pub c33: i64,
    pub c34: i64,
    pub c35: i64,
    pub c36: i64,
    pub c37: i64,
    pub c38: i64,
    pub c39: i64,
}

fn wide(i: i64) -> Wide {
    let mut w = Wide {
        c0: i,
        ..Wide::default()
    };
    for c in 1..40 {
        orm_core::Entity::set_column(&mut w, c, orm_core::ValueRef::I64(i * 100 + c as i64))
            .unwrap();
    }
    w
}

// B5
orm_tests::backends! {
fn b5_core_insert_of_100_000_rows_verifies_row_by_row(db) -> Result<()> {
    let conn = db.connect();
    conn.drop_table::<Customer>()?;
    conn.create_table::<Customer>()?;
    let n = 100_000;
    let rows = (0..n).map(|i| Customer {
        id: None,
        name: format!("customer name {i}"),
        description: Some(format!("customer description {i}")),
    });
    assert_eq!(conn.insert_many(rows)?, n);
    let all: Vec<Customer> = conn.select(&orm_core::SelectSpec {
        order: vec![(Customer::ID.into(), orm_core::Order::Asc)],
        ..Default::default()
    })?;
    assert_eq!(all.len() as u64, n);
    for (i, c) in all.iter().enumerate() {
        assert_eq!(c.id, Some(i as i64 + 1));
        assert_eq!(c.name, format!("customer name {i}"));
        assert_eq!(
            c.description.as_deref(),
            Some(format!("customer description {i}").as_str())
        );
    }
    Ok(())
}
}

// B6
#[test]
fn b6_wide_rows_are_chunked_under_the_runtime_parameter_limit() -> Result<()> {
    let conn = Connection::open_sqlite_memory()?;
    conn.create_table::<Wide>()?;
    // Lower the limit at run time: the insert must read it, not assume a constant.
    conn.as_rusqlite()
        .expect("SQLite")
        .set_limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 250)
        .unwrap();
    assert_eq!(conn.max_bind_parameters(), 250);
    let (log, _g) = orm_tests::SqlLog::start();
    let rows: Vec<Wide> = (0..1000).map(wide).collect();
    // Ask for 500 rows per statement; only 6 fit (6 * 40 = 240 <= 250).
    assert_eq!(
        conn.insert_many_with(rows.iter(), &InsertOptions::batch_rows(500))?,
        1000
    );
    let inserts = log.starting_with("INSERT");
    assert_eq!(inserts.len(), 1000usize.div_ceil(6), "statements sent");
    assert!(inserts.iter().all(|s| s.matches('?').count() <= 250));
    let back: Vec<Wide> = conn.select(&orm_core::SelectSpec {
        order: vec![(0.into(), orm_core::Order::Asc)],
        ..Default::default()
    })?;
    assert_eq!(back, rows);
    Ok(())
}

// B6
#[test]
fn b6_default_limit_forces_several_chunks_for_large_batches() -> Result<()> {
    let conn = Connection::open_sqlite_memory()?;
    conn.create_table::<Wide>()?;
    let limit = conn.max_bind_parameters();
    let per_stmt = limit / 40;
    let n = per_stmt * 2 + 7;
    let rows: Vec<Wide> = (0..n as i64).map(wide).collect();
    let (log, _g) = orm_tests::SqlLog::start();
    conn.insert_many_with(rows.iter(), &InsertOptions::batch_rows(usize::MAX))?;
    assert_eq!(log.starting_with("INSERT").len(), 3);
    assert_eq!(conn.select_all::<Wide>()?.len(), n);
    Ok(())
}

// B5
#[test]
fn b5_statements_are_prepared_once_per_shape() -> Result<()> {
    let conn = Connection::open_sqlite_memory()?;
    conn.create_table::<Customer>()?;
    let (log, _g) = orm_tests::SqlLog::start();
    conn.insert_many((0..120).map(|i| Customer {
        id: None,
        name: i.to_string(),
        description: None,
    }))?;
    let inserts = log.starting_with("INSERT");
    assert_eq!(inserts.len(), 3);
    assert_eq!(inserts[0], inserts[1], "same SQL text for every full batch");
    assert_eq!(inserts[0].matches("(?, ?)").count(), 50);
    assert_eq!(inserts[2].matches("(?, ?)").count(), 20);
    Ok(())
}

orm_tests::backends! {
fn rows_with_and_without_keys_mix(db) -> Result<()> {
    let conn = db.connect();
    conn.drop_table::<Customer>()?;
    conn.create_table::<Customer>()?;
    conn.insert_many([
        Customer {
            id: Some(100),
            name: "given".into(),
            description: None,
        },
        Customer {
            id: None,
            name: "generated".into(),
            description: None,
        },
    ])?;
    let all: Vec<Customer> = conn.select_all()?;
    let id_of = |name: &str| all.iter().find(|c| c.name == name).and_then(|c| c.id);
    assert_eq!(id_of("given"), Some(100));
    // SQLite continues after the largest key; PostgreSQL's sequence knows nothing of 100.
    let generated = if db.is_postgres() { 1 } else { 101 };
    assert_eq!(id_of("generated"), Some(generated));
    Ok(())
}

// A key given as 0 is the row's key, on every backend (MySQL would otherwise take 0 as
// "generate one"), both through the core insert and the session.
fn a_key_of_zero_is_kept(db) -> Result<()> {
    let conn = db.connect();
    conn.drop_table::<Customer>()?;
    conn.create_table::<Customer>()?;
    let zero = |name: &str, id| Customer {
        id: Some(id),
        name: name.into(),
        description: None,
    };
    conn.insert_many([zero("core", 0)])?;
    assert_eq!(conn.find::<Customer>(&0_i64.into())?.map(|c| c.name), Some("core".into()));
    conn.execute("DELETE FROM customer", &[])?;
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(zero("session", 0))?;
    s.commit()?;
    assert_eq!(h.read()?.id, Some(0));
    let all: Vec<Customer> = conn.select_all()?;
    assert_eq!(all, [zero("session", 0)]);
    Ok(())
}
}

// R1, R3
orm_tests::backends! {
fn a_unique_violation_writes_none_of_the_call(db) -> Result<()> {
    let conn = db.connect();
    conn.drop_table::<Customer>()?;
    conn.create_table::<Customer>()?;
    conn.insert_many([Customer {
        id: Some(7_500),
        name: "existing".into(),
        description: None,
    }])?;
    let rows = (1..=10_000).map(|i| Customer {
        id: Some(i),
        name: format!("n{i}"),
        description: None,
    });
    let err = conn.insert_many(rows).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation);
    let msg = err.to_string();
    assert!(
        msg.contains("customer") && msg.contains("Customer"),
        "{msg}"
    );
    assert!(
        err.sql()
            .is_some_and(|s| s.replace('`', "\"").starts_with(if db.is_postgres() {
                "COPY \"customer\""
            } else {
                "INSERT INTO \"customer\""
            })),
        "{msg}"
    );
    assert!(
        !msg.contains("n7500"),
        "bound values are not inlined: {msg}"
    );
    assert_eq!(conn.count::<Customer>(None)?, 1);
    Ok(())
}
}

// R1
orm_tests::backends! {
fn a_failed_call_inside_a_transaction_keeps_earlier_work(db) -> Result<()> {
    let conn = db.connect();
    conn.drop_table::<Customer>()?;
    conn.create_table::<Customer>()?;
    conn.begin()?;
    conn.insert_many([Customer {
        id: Some(1),
        name: "kept".into(),
        description: None,
    }])?;
    let dup = [
        Customer {
            id: Some(2),
            name: "x".into(),
            description: None,
        },
        Customer {
            id: Some(1),
            name: "dup".into(),
            description: None,
        },
    ];
    assert_eq!(
        conn.insert_many(dup).unwrap_err().kind(),
        ErrorKind::UniqueViolation
    );
    conn.commit()?;
    let all: Vec<Customer> = conn.select_all()?;
    assert_eq!(
        all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["kept"]
    );
    Ok(())
}
}

orm_tests::backends! {
fn select_by_primary_key(db) -> Result<()> {
    let conn = db.connect();
    conn.drop_table::<Customer>()?;
    conn.create_table::<Customer>()?;
    conn.insert_many((0..10).map(|i| Customer {
        id: None,
        name: format!("c{i}"),
        description: None,
    }))?;
    assert_eq!(
        conn.find::<Customer>(&5.into())?.map(|c| c.name),
        Some("c4".to_owned())
    );
    assert_eq!(conn.find::<Customer>(&500.into())?, None);
    Ok(())
}
}

// B5, R10: rows with and without keys, alternating in runs of every length, get back each its
// own key: the one it carried, or the one made for it, in input order, whether rows are sent
// in input order or grouped by whether they carry a key.
orm_tests::backends! {
fn keys_come_back_for_rows_with_and_without_keys(db) -> Result<()> {
    let conn = db.connect();
    conn.drop_table::<Customer>()?;
    conn.create_table::<Customer>()?;
    // Runs of 1, 2, 3, … rows, with and without a key in turn. The given keys fall as the
    // input goes on, below the first one: keys SQLite and MySQL make (after the largest so
    // far) cannot meet a key given later, whatever order the rows are sent in.
    let mut given = Vec::new();
    let (mut run, mut with_key) = (1, false);
    while given.len() < 700 {
        given.extend(std::iter::repeat_n(with_key, run));
        run += 1;
        with_key = !with_key;
    }
    let row = |i: usize| Customer {
        id: given[i].then(|| 1_000_000 - i64::try_from(i).expect("small")),
        name: format!("n{i}"),
        description: None,
    };
    let check = |keys: &[Key], offset: usize| -> Result<()> {
        assert_eq!(keys.len(), given.len());
        for (i, key) in keys.iter().enumerate() {
            let Key::Int(id) = key else { panic!("key {key:?}") };
            if given[i] {
                assert_eq!(*id, 1_000_000 - i64::try_from(i).expect("small"));
            }
            let found = conn.find::<Customer>(key)?.expect("the row of a returned key");
            assert_eq!(found.name, format!("n{}", i + offset), "row {i}");
        }
        Ok(())
    };
    conn.begin()?;
    let keys = conn.insert_returning_keys((0..given.len()).map(row))?;
    check(&keys, 0)?;
    conn.rollback()?;
    conn.begin()?;
    let mut ins = conn.inserter::<Customer>(&InsertOptions::default().grouped(), true)?;
    for i in 0..given.len() {
        ins.push(Customer { name: format!("n{}", i + 1), ..row(i) })?;
    }
    let keys = ins.finish()?.keys;
    check(&keys, 1)?;
    conn.commit()?;
    Ok(())
}
}

// B5, B7: runs of rows with and without keys (two column sets) keep their input order, also
// when PostgreSQL streams each run through its own COPY.
orm_tests::backends! {
fn runs_of_two_column_sets_keep_their_order(db) -> Result<()> {
    let conn = db.connect();
    conn.drop_table::<Customer>()?;
    conn.create_table::<Customer>()?;
    let given = |i: i64| (i / 40) % 2 == 1;
    let rows = (0..2000i64).map(|i| Customer {
        id: given(i).then_some(1_000_000 + i),
        name: format!("n{i}"),
        description: Some(format!("d{i}")),
    });
    assert_eq!(conn.insert_many(rows)?, 2000);
    let all: Vec<Customer> = conn.select(&orm_core::SelectSpec {
        order: vec![(Customer::ID.into(), orm_core::Order::Asc)],
        ..Default::default()
    })?;
    assert_eq!(all.len(), 2000);
    let index = |c: &Customer| c.name[1..].parse::<i64>().expect("index in name");
    // Rows without a key got keys in input order (SQLite after the largest key so far,
    // PostgreSQL from the sequence).
    let generated: Vec<i64> = all.iter().map(index).filter(|&i| !given(i)).collect();
    let expected: Vec<i64> = (0..2000).filter(|&i| !given(i)).collect();
    assert_eq!(generated, expected, "generated keys follow the input order");
    for c in &all {
        let i = index(c);
        if given(i) {
            assert_eq!(c.id, Some(1_000_000 + i));
        }
        assert_eq!(c.description, Some(format!("d{i}")));
    }
    Ok(())
}
}
