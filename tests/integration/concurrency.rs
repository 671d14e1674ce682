//! B1 and S12 with other writers at work: keys stay each object's own, and threads sharing
//! an engine lose nothing. Both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use orm_session::prelude::*;
use orm_tests::model::Customer;

orm_tests::backends! {
// B1: the acceptance test of the PostgreSQL issue. While another connection keeps inserting
// into the same table (taking keys from the same identity sequence on PostgreSQL, the same
// AUTO_INCREMENT counter on MySQL), 100 objects from `add_all` must each hold the key of the
// row that carries their own data.
fn b1_add_all_keys_are_right_while_another_connection_inserts(db) -> Result<()> {
    keys_right_while_another_connection_inserts(db)
}
}

// B1 on MySQL where consecutive keys are not trusted (as with `innodb_autoinc_lock_mode = 2`):
// one row per statement, each key from its own OK packet.
#[test]
#[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
fn b1_mysql_keys_one_row_at_a_time_are_right_while_another_connection_inserts() -> Result<()> {
    let Some(db) = orm_tests::TestDb::mysql_with(|o| o.consecutive_keys(false)) else {
        return Ok(());
    };
    let (log, _g) = orm_tests::SqlLog::start();
    keys_right_while_another_connection_inserts(&db)?;
    let multi_row = log
        .starting_with("INSERT")
        .iter()
        .filter(|s| s.contains("), ("))
        .count();
    assert_eq!(multi_row, 0, "no multi-row INSERT when keys are read back");
    Ok(())
}

fn keys_right_while_another_connection_inserts(db: &orm_tests::TestDb) -> Result<()> {
    let engine = db.engine();
    let stop = Arc::new(AtomicBool::new(false));
    let other_rows = Arc::new(AtomicU32::new(0));
    let other = {
        let (engine, stop, other_rows) = (engine.clone(), stop.clone(), other_rows.clone());
        std::thread::spawn(move || -> Result<()> {
            let conn = engine.connect()?;
            while !stop.load(Ordering::Relaxed) {
                let n = other_rows.fetch_add(1, Ordering::Relaxed);
                conn.insert_many([Customer::new(&format!("other {n}"), -1)])?;
            }
            Ok(())
        })
    };
    // Let the other writer get going before each round.
    while other_rows.load(Ordering::Relaxed) < 5 {
        std::thread::yield_now();
    }
    let s = engine.session();
    let mut all = Vec::new();
    for round in 0..20 {
        let before = other_rows.load(Ordering::Relaxed);
        let hs = s.add_all((0..100).map(|i| Customer::new(&format!("mine {round}-{i}"), i)))?;
        s.commit()?;
        all.extend(hs);
        // The other writer kept going during the round (or, on SQLite, queued behind it).
        while other_rows.load(Ordering::Relaxed) < before + 2 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    other.join().expect("other writer")?;

    let conn = engine.connect()?;
    let mut keys = std::collections::HashSet::new();
    for (j, h) in all.iter().enumerate() {
        let key = h.key().expect("a key after commit");
        assert!(keys.insert(key.clone()), "key {key} handed out twice");
        let row = conn.find::<Customer>(&key)?.expect("the key selects a row");
        let (round, i) = (j / 100, j % 100);
        assert_eq!(
            row.name,
            format!("mine {round}-{i}"),
            "object {j} holds key {key}"
        );
        assert_eq!(row.age, i as i32);
    }
    let others = conn.count(Some(Customer::AGE.eq(-1)))?;
    assert_eq!(others, u64::from(other_rows.load(Ordering::Relaxed)));
    assert!(
        others >= 20,
        "the other writer inserted during the test: {others}"
    );
    assert_eq!(conn.count::<Customer>(None)?, 2000 + others);
    Ok(())
}

orm_tests::backends! {
// S12
fn s12_four_threads_sharing_an_engine_commit_1000_objects_each(db) -> Result<()> {
    let engine = db.engine();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || -> Result<()> {
                let s = engine.session();
                for batch in 0..10 {
                    s.add_all((0..100).map(|i| Customer::new(&format!("t{t}-{batch}-{i}"), t)))?;
                    s.commit()?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread")?;
    }
    let conn = db.connect();
    assert_eq!(conn.count::<Customer>(None)?, 4000);
    for t in 0..4 {
        assert_eq!(conn.count(Some(Customer::AGE.eq(t)))?, 1000);
    }
    Ok(())
}

// S12
fn s12_dropping_a_session_with_uncommitted_work_rolls_back(db) -> Result<()> {
    let engine = db.engine();
    {
        let s = engine.session();
        s.add(Customer::new("flushed", 1))?;
        s.flush()?;
        s.add(Customer::new("pending", 2))?;
        // dropped here: no panic, no flush, the transaction rolls back
    }
    let conn = db.connect();
    assert_eq!(conn.count::<Customer>(None)?, 0);
    let s = engine.session();
    s.add(Customer::new("after", 1))?;
    s.commit()?;
    assert_eq!(conn.count::<Customer>(None)?, 1);
    Ok(())
}
}
