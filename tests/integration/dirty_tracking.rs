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

// S3: the primary key of a persistent object changed through `write()`, with other changes
// to it and to other objects (SQLAlchemy's mutable primary key). The row is found by the key
// the session knew the object by and takes the new one; the object is known by the new key
// afterwards, in the identity map too.
orm_tests::backends! {
fn s3_a_changed_primary_key_moves_the_row_and_the_identity(db) -> Result<()> {
    let engine = db.engine();
    engine.connect()?.insert_many((0..50).map(|i| Customer::new(&format!("c{i}"), i)))?;
    let s = engine.session();
    let all = s.query::<Customer>().order_by(Customer::ID, Order::Asc).all()?;
    for h in &all {
        h.write()?.age += 100;
    }
    let id = all[20].read()?.id.unwrap();
    all[20].write()?.id = Some(id + 1000);
    s.commit()?;
    let conn = engine.connect()?;
    assert_eq!(conn.query_i64("SELECT count(*) FROM customer WHERE age >= 100", &[])?, 50);
    assert!(conn.find::<Customer>(&id.into())?.is_none(), "the old key is gone");
    let moved = conn.find::<Customer>(&(id + 1000).into())?.expect("the row under its new key");
    assert_eq!((moved.name.as_str(), moved.age), ("c20", 120));
    assert_eq!(all[20].key(), Some(Key::Int(id + 1000)));
    assert!(s.get::<Customer>(id + 1000)?.is_some_and(|h| h == all[20]));
    assert!(s.get::<Customer>(id)?.is_none());
    assert_eq!(all[20].read()?.id, Some(id + 1000));
    Ok(())
}
}

// S3, R6: a changed primary key that a rollback undoes: the object is known by its old key
// again and reads its row; one that collides with another row's key fails the flush with
// nothing of it written, and the same session commits once the key is put back.
orm_tests::backends! {
fn s3_a_changed_primary_key_is_undone_by_rollback_and_fails_whole(db) -> Result<()> {
    let engine = db.engine();
    engine.connect()?.insert_many((0..3).map(|i| Customer::new(&format!("c{i}"), i)))?;
    let s = engine.session();
    let all = s.query::<Customer>().order_by(Customer::ID, Order::Asc).all()?;
    let (a, b) = (all[0].read()?.id.unwrap(), all[1].read()?.id.unwrap());
    all[0].write()?.id = Some(a + 500);
    s.flush()?;
    assert!(s.get::<Customer>(a + 500)?.is_some_and(|h| h == all[0]));
    s.rollback()?;
    assert_eq!(all[0].key(), Some(Key::Int(a)));
    assert!(s.get::<Customer>(a)?.is_some_and(|h| h == all[0]));
    assert_eq!(all[0].read()?.id, Some(a), "reloaded from its row");
    let conn = engine.connect()?;
    assert!(conn.find::<Customer>(&a.into())?.is_some());

    all[2].write()?.age = 77;
    all[0].write()?.id = Some(b);
    let e = s.commit().expect_err("the key is another row's");
    assert!(
        e.kind() == ErrorKind::UniqueViolation,
        "{e}"
    );
    s.rollback()?;
    assert_eq!(conn.query_i64("SELECT count(*) FROM customer WHERE age = 77", &[])?, 0);
    assert_eq!(conn.count::<Customer>(None)?, 3);
    all[2].write()?.age = 77;
    s.commit()?;
    assert_eq!(conn.query_i64("SELECT count(*) FROM customer WHERE age = 77", &[])?, 1);
    Ok(())
}
}
