//! S3 dirty tracking.

use orm_session::prelude::*;
use orm_tests::SqlLog;
use orm_tests::model::Customer;

// S3
orm_tests::backends! {
fn s3_changing_one_of_three_fields_updates_that_column_only(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer {
        description: Some("d".into()),
        ..Customer::new("ann", 30)
    })?;
    s.commit()?;
    let _ = h.read()?; // reload after commit

    let (log, _g) = SqlLog::start();
    h.write()?.age = 31;
    assert!(s.is_modified(&h)?);
    assert_eq!(s.dirty_objects()?.len(), 1);
    s.flush()?;
    let updates = log.starting_with("UPDATE");
    assert_eq!(
        updates,
        vec![db.sql(r#"UPDATE "customer" SET "age" = ? WHERE "id" = ?"#)]
    );
    assert!(!s.is_modified(&h)?);
    s.commit()?;
    let fresh = engine.connect()?.find::<Customer>(&1.into())?.expect("row");
    assert_eq!(fresh.age, 31);
    assert_eq!(fresh.description.as_deref(), Some("d"));
    Ok(())
}
}

// S3
orm_tests::backends! {
fn s3_a_change_reverted_sends_nothing(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("ben", 40))?;
    s.commit()?;
    let (log, _g) = SqlLog::start();
    h.write()?.age = 41;
    h.write()?.age = 40;
    {
        let mut w = h.write()?;
        w.name = "other".into();
        w.name = "ben".into();
    }
    assert!(!s.is_modified(&h)?);
    assert!(s.dirty_objects()?.is_empty());
    s.flush()?;
    assert!(
        log.starting_with("UPDATE").is_empty(),
        "{:?}",
        log.statements()
    );
    Ok(())
}
}

// S3
orm_tests::backends! {
fn s3_objects_only_read_carry_no_snapshot_and_are_never_dirty(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    s.add_all((0..10).map(|i| Customer::new(&format!("c{i}"), i)))?;
    s.commit()?;
    let all = s.query::<Customer>().all()?;
    let total: i32 = all
        .iter()
        .map(|h| h.read().map(|c| c.age))
        .sum::<Result<i32>>()?;
    assert_eq!(total, 45);
    assert!(s.dirty_objects()?.is_empty());
    Ok(())
}
}

// S3
orm_tests::backends! {
fn s3_several_changes_to_several_objects_flush_once_each(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    s.add_all((0..3).map(|i| Customer::new(&format!("c{i}"), i)))?;
    s.commit()?;
    let all = s
        .query::<Customer>()
        .order_by(Customer::ID, Order::Asc)
        .all()?;
    let (log, _g) = SqlLog::start();
    for h in &all {
        h.write()?.age += 100;
        h.write()?.description = Some("x".into());
    }
    s.flush()?;
    // Each object is written once, and objects whose changed columns are the same share
    // one batched statement.
    let updates = log.starting_with("UPDATE");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert!(
        updates[0].contains(r#"SET "descr" = "#) && updates[0].contains(r#""age" = "#)
            || updates[0].contains(r#""customer"."descr" = "#)
                && updates[0].contains(r#""customer"."age" = "#),
        "{}",
        updates[0]
    );
    s.commit()?;
    let rows = db.connect().query_values(
        r#"SELECT "age", "descr" FROM "customer" ORDER BY "id""#,
        &[],
    )?;
    let expected: Vec<Vec<Value>> = (0..3)
        .map(|i| vec![Value::I64(100 + i), Value::Text("x".into())])
        .collect();
    assert_eq!(rows, expected);
    Ok(())
}
}

// S3
orm_tests::backends! {
fn s3_flush_refuses_while_a_write_guard_is_alive(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("gus", 1))?;
    s.commit()?;
    let mut guard = h.write()?;
    guard.age = 2;
    let err = s.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Borrowed);
    assert!(err.to_string().contains("guard"), "{err}");
    drop(guard);
    s.commit()?;
    assert_eq!(
        engine
            .connect()?
            .find::<Customer>(&1.into())?
            .expect("row")
            .age,
        2,
        "the change survived"
    );
    Ok(())
}
}

// S3, R6: the primary key of a persistent object changed through `write()`. The session knows
// the object and its row by the key it was loaded with, so the flush refuses, naming both
// keys, before any statement: nothing of it is written (not the other objects' changes
// either), and once the key is put back the same changes commit.
orm_tests::backends! {
fn s3_a_changed_primary_key_fails_the_flush_with_nothing_written(db) -> Result<()> {
    let engine = db.engine();
    engine.connect()?.insert_many((0..50).map(|i| Customer::new(&format!("c{i}"), i)))?;
    let s = engine.session();
    let all = s.query::<Customer>().order_by(Customer::ID, Order::Asc).all()?;
    for h in &all {
        h.write()?.age += 100;
    }
    let id = all[20].read()?.id.unwrap();
    all[20].write()?.id = Some(id + 1000);
    let e = s.commit().expect_err("the key changed");
    assert_eq!(e.kind(), ErrorKind::InvalidState, "{e}");
    let text = e.to_string();
    assert!(text.contains("primary key") && text.contains(&id.to_string()) && text.contains(&(id + 1000).to_string()), "{text}");
    let conn = engine.connect()?;
    assert_eq!(conn.query_i64("SELECT count(*) FROM customer WHERE age >= 100", &[])?, 0);
    assert_eq!(s.dirty_objects()?.len(), 50, "every change is still pending");
    all[20].write()?.id = Some(id);
    s.commit()?;
    assert_eq!(conn.query_i64("SELECT count(*) FROM customer WHERE age >= 100", &[])?, 50);
    assert!(s.get::<Customer>(id)?.is_some_and(|h| h == all[20]));
    Ok(())
}
}
