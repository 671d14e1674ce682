//! S4 flush order and atomicity, S11 delete, B1 keys.

use orm_session::prelude::*;
use orm_tests::SqlLog;
use orm_tests::model::Customer;

// S4
orm_tests::backends! {
fn s4_f4_one_flush_sends_updates_then_inserts_then_deletes(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let a = s.add(Customer::new("a", 1))?;
    let b = s.add(Customer::new("b", 2))?;
    s.commit()?;
    let _ = (a.read()?, b.read()?);

    let (log, _g) = SqlLog::start();
    s.delete(&a)?; // requested first
    b.write()?.age = 20; // then an update
    let c = s.add(Customer::new("c", 3))?; // then an insert
    let d = s.add(Customer::new("d", 4))?;
    s.flush()?;
    let kinds: Vec<String> = log
        .statements()
        .into_iter()
        .filter_map(|sql| sql.split_whitespace().next().map(str::to_owned))
        .filter(|w| ["INSERT", "UPDATE", "DELETE"].contains(&w.as_str()))
        .collect();
    assert_eq!(
        kinds,
        ["UPDATE", "INSERT", "DELETE"],
        "the two inserts go in one statement"
    );
    assert_eq!(c.key(), Some(Key::Int(3)), "inserts keep the order of add");
    assert_eq!(d.key(), Some(Key::Int(4)));
    Ok(())
}
}

// S4, R1
orm_tests::backends! {
fn s4_a_failing_flush_leaves_the_database_and_the_session_as_before(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let a = s.add(Customer::new("a", 1))?;
    s.commit()?;
    a.write()?.age = 99;
    let fresh = s.add(Customer::new("fresh", 2))?;
    let dup = s.add(Customer::new("a", 3))?; // unique violation on name
    let err = s.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation);
    let msg = err.to_string();
    assert!(
        msg.contains("Customer")
            && msg.contains("`customer`")
            && msg.to_lowercase().contains("unique"),
        "{msg}"
    );

    // Nothing of the flush is in the database, seen from the session's own transaction.
    let rows =
        s.with_connection(|c| c.query_values("SELECT name, age FROM customer ORDER BY id", &[]))?;
    assert_eq!(rows, vec![vec![Value::Text("a".into()), Value::I64(1)]]);
    // The session's objects are as before: still pending, still dirty, no keys.
    assert_eq!(fresh.state(), ObjectState::Pending);
    assert_eq!(fresh.read()?.id, None);
    assert!(s.is_modified(&a)?);
    assert_eq!(s.new_objects().len(), 2);

    // Fix the problem and flush again: everything goes through.
    s.expunge(&dup)?;
    s.commit()?;
    let conn = engine.connect()?;
    assert_eq!(conn.count::<Customer>(None)?, 2);
    assert_eq!(conn.find::<Customer>(&1.into())?.expect("a").age, 99);
    Ok(())
}
}

// S4, S9
orm_tests::backends! {
fn s4_after_a_failed_flush_rollback_makes_the_session_consistent(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    s.add(Customer::new("a", 1))?;
    s.add(Customer::new("a", 2))?;
    assert!(s.flush().is_err());
    s.rollback()?;
    assert!(s.new_objects().is_empty());
    let ok = s.add(Customer::new("b", 1))?;
    s.commit()?;
    // PostgreSQL's sequence and MySQL's AUTO_INCREMENT do not roll back: the failed flush
    // used keys 1 and 2.
    let first_free = if db.is_sqlite() { 1 } else { 3 };
    assert_eq!(ok.read()?.id, Some(first_free));
    Ok(())
}
}

// S11
orm_tests::backends! {
fn s11_delete_removes_the_row_and_the_identity(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("gone", 1))?;
    s.commit()?;
    s.delete(&h)?;
    assert!(
        s.get::<Customer>(1)?.is_some_and(|g| g == h),
        "marked for deletion, not flushed: still the session's object (F2)"
    );
    s.commit()?;
    assert!(s.get::<Customer>(1)?.is_none(), "deleted");
    assert_eq!(engine.connect()?.count::<Customer>(None)?, 0);
    assert_eq!(s.identity_len(), 0);
    // Deleting a pending object just takes it out.
    let p = s.add(Customer::new("p", 1))?;
    s.delete(&p)?;
    assert_eq!(p.state(), ObjectState::Transient);
    s.commit()?;
    assert_eq!(engine.connect()?.count::<Customer>(None)?, 0);
    Ok(())
}
}

// S11, B8: a delete goes by the key the object was known by when it was marked: a key changed
// in memory does not redirect it. A read guard alive does not stop it, in a batch or alone.
orm_tests::backends! {
fn s11_deletes_go_by_the_key_the_objects_were_marked_under(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let hs = s.add_all((0..300).map(|i| Customer::new(&format!("c{i}"), 1)))?;
    s.commit()?;
    let ids: Vec<i64> = hs.iter().map(|h| h.id().expect("a key")).collect();
    hs[5].write()?.id = Some(1_000_000);
    let reading = (hs[10].read()?, hs[199].read()?);
    for h in &hs[..200] {
        s.delete(h)?;
    }
    s.commit()?;
    drop(reading);
    let left = |engine: &Engine| -> Result<Vec<i64>> {
        let rows = engine.connect()?.query_values("SELECT id FROM customer ORDER BY id", &[])?;
        Ok(rows
            .into_iter()
            .map(|r| match r[0] {
                Value::I64(id) => id,
                ref other => panic!("id {other:?}"),
            })
            .collect())
    };
    assert_eq!(left(&engine)?, ids[200..]);
    assert_eq!(hs[10].state(), ObjectState::Detached);
    // The only object of a flush.
    let reading = hs[250].read()?;
    s.delete(&hs[250])?;
    s.commit()?;
    drop(reading);
    let mut want = ids[200..].to_vec();
    want.retain(|&id| id != ids[250]);
    assert_eq!(left(&engine)?, want);
    assert_eq!(s.identity_len(), 99);
    Ok(())
}
}

// B1
orm_tests::backends! {
fn b1_every_added_object_gets_the_key_of_its_own_row(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let handles = s.add_all((0..10_000).map(|i| Customer::new(&format!("customer {i}"), i)))?;
    s.commit()?;
    let conn = engine.connect()?;
    for (i, h) in handles.iter().enumerate() {
        let key = h.key().expect("persistent");
        let mine = h.read()?.clone();
        let row = conn.find::<Customer>(&key)?.expect("own row");
        assert_eq!(row, mine, "object {i}");
        assert_eq!(row.name, format!("customer {i}"));
    }
    assert_eq!(s.identity_len(), 10_000);
    Ok(())
}
}

// B1
orm_tests::backends! {
fn b1_flush_inserts_in_batches_with_keys_it_knows(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    s.add_all((0..120).map(|i| Customer::new(&format!("c{i}"), i)))?;
    let (log, _g) = SqlLog::start();
    s.flush()?;
    if db.is_postgres() {
        // 120 keys from the identity sequence in one round trip, then one INSERT carrying
        // them, each column in one array (besides the one-time check of the mapping against
        // the live table).
        let statements: Vec<String> = log
            .statements()
            .into_iter()
            .filter(|s| !s.contains("pg_attribute"))
            .collect();
        assert_eq!(statements.len(), 3, "{statements:#?}");
        assert!(statements[0].starts_with("BEGIN"));
        assert!(statements[1].contains("nextval("), "{}", statements[1]);
        assert!(
            statements[2].starts_with(r#"INSERT INTO "customer" ("id", "name", "#)
                && statements[2].contains("unnest($1::int8[]"),
            "{}",
            statements[2]
        );
        // A batch of thousands goes in by COPY.
        let more = s.add_all((120..2620).map(|i| Customer::new(&format!("c{i}"), i)))?;
        let (log, _g) = SqlLog::start();
        s.flush()?;
        let copies = log.starting_with("COPY");
        assert_eq!(copies.len(), 1, "{:#?}", log.statements());
        assert!(copies[0].starts_with(r#"COPY "customer" ("id", "name", "#), "{}", copies[0]);
        s.commit()?;
        let conn = engine.connect()?;
        assert_eq!(conn.count::<Customer>(None)?, 2620);
        for (i, h) in more.iter().enumerate() {
            let row = conn.find::<Customer>(&h.key().expect("a key"))?.expect("its row");
            assert_eq!(row.name, format!("c{}", i + 120));
        }
        return Ok(());
    }
    let inserts = log.starting_with("INSERT");
    if db.is_mysql() {
        // One statement, whose first key is its LAST_INSERT_ID().
        assert_eq!(inserts.len(), 1, "{inserts:#?}");
        assert!(inserts[0].starts_with(r#"INSERT INTO "customer" ("name", "#));
        return Ok(());
    }
    assert_eq!(inserts.len(), 3, "50 + 50 + 20 rows");
    assert_eq!(inserts[0], inserts[1], "one statement text, prepared once");
    assert!(
        inserts[0].starts_with(r#"INSERT INTO "customer" ("name", "#),
        "SQLite assigns the keys, which the flush computed beforehand: {}",
        inserts[0]
    );
    Ok(())
}
}

// B1
orm_tests::backends! {
fn b1_keys_stay_right_after_deletes_and_explicit_keys(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let first = s.add_all((0..5).map(|i| Customer::new(&format!("a{i}"), i)))?;
    s.commit()?;
    s.delete(&first[4])?; // the largest key goes: SQLite would reuse it
    s.commit()?;
    let given = s.add(Customer {
        id: Some(100),
        ..Customer::new("given", 0)
    })?;
    let after = s.add_all((0..3).map(|i| Customer::new(&format!("b{i}"), i)))?;
    s.commit()?;
    assert_eq!(given.key(), Some(Key::Int(100)));
    let keys: Vec<Option<Key>> = after.iter().map(Handle::key).collect();
    // SQLite gives max(key) + 1; PostgreSQL's sequence never saw the explicit key 100.
    let next = if db.is_postgres() { 6 } else { 101 };
    assert_eq!(
        keys,
        [
            Some(Key::Int(next)),
            Some(Key::Int(next + 1)),
            Some(Key::Int(next + 2))
        ]
    );
    let conn = engine.connect()?;
    for h in &after {
        let row = conn.find::<Customer>(&h.key().expect("key"))?.expect("row");
        assert_eq!(row.name, h.read()?.name);
    }
    Ok(())
}
}

// B1, R1
orm_tests::backends! {
fn b1_add_all_failing_at_row_7500_of_10000_writes_none_of_it(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    s.add(Customer::new("customer 7499", 0))?;
    s.commit()?;
    let handles = s.add_all((0..10_000).map(|i| Customer::new(&format!("customer {i}"), i)))?;
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation);
    assert!(
        handles
            .iter()
            .all(|h| h.state() == ObjectState::Pending && h.key().is_none())
    );
    s.rollback()?;
    assert_eq!(engine.connect()?.count::<Customer>(None)?, 1);
    assert!(handles.iter().all(|h| h.state() == ObjectState::Transient));
    Ok(())
}
}

// B1
#[test]
fn b1_keys_follow_sqlite_sequence_on_autoincrement_tables() -> Result<()> {
    // A table made elsewhere, with AUTOINCREMENT: keys of deleted rows are never reused.
    let engine = orm_session::Engine::sqlite_memory()?;
    engine.connect()?.execute(
        "CREATE TABLE customer (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, descr TEXT, age INTEGER NOT NULL)",
        &[],
    )?;
    let s = engine.session();
    let first = s.add_all((0..5).map(|i| Customer::new(&format!("a{i}"), i)))?;
    s.commit()?;
    s.delete(&first[4])?;
    s.commit()?;
    let after = s.add_all((0..3).map(|i| Customer::new(&format!("b{i}"), i)))?;
    s.commit()?;
    let keys: Vec<Option<Key>> = after.iter().map(Handle::key).collect();
    assert_eq!(
        keys,
        [Some(Key::Int(6)), Some(Key::Int(7)), Some(Key::Int(8))]
    );
    let conn = engine.connect()?;
    for h in &after {
        assert_eq!(
            conn.find::<Customer>(&h.key().expect("key"))?
                .expect("row")
                .name,
            h.read()?.name
        );
    }
    Ok(())
}

// B1, R1
#[test]
fn b1_an_exhausted_key_space_is_an_error_not_a_wrong_key_on_sqlite() -> Result<()> {
    let engine = orm_tests::memory_engine();
    let s = engine.session();
    s.add(Customer {
        id: Some(i64::MAX),
        ..Customer::new("last", 0)
    })?;
    s.commit()?;
    let h = s.add(Customer::new("next", 0))?;
    let err = s.commit().unwrap_err();
    assert!(err.to_string().contains("exhausted"), "{err}");
    assert_eq!(h.key(), None);
    s.rollback()?;
    assert_eq!(engine.connect()?.count::<Customer>(None)?, 1);
    Ok(())
}

// F4: within one table, UPDATEs go before INSERTs: a unique name moved away from one row is
// given to a new row in the same flush.
orm_tests::backends! {
fn f4_a_unique_value_moves_to_a_new_row_in_one_flush(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let old = s.add(Customer::new("ada", 1))?;
    s.commit()?;
    old.write()?.name = "ada (retired)".into();
    s.add(Customer::new("ada", 2))?;
    s.commit()?;
    let names: Vec<String> = s
        .query::<Customer>()
        .order_by(Customer::ID, Order::Asc)
        .all()?
        .iter()
        .map(|h| h.read().unwrap().name.clone())
        .collect();
    assert_eq!(names, ["ada (retired)", "ada"]);
    Ok(())
}
}

// F2: `get` of an object marked for deletion and not flushed returns that object; after the
// flush, nothing.
orm_tests::backends! {
fn f2_get_of_an_object_marked_deleted_returns_it_until_the_flush(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("doomed", 1))?;
    s.commit()?;
    let id = h.read()?.id.unwrap();
    s.delete(&h)?;
    let same = s.get::<Customer>(id)?.expect("still the session's object");
    assert!(same == h);
    s.flush()?;
    assert!(s.get::<Customer>(id)?.is_none());
    s.commit()?;
    assert!(s.get::<Customer>(id)?.is_none());
    Ok(())
}
}

// F1: delete an object and add a new one with the same key before a flush: the pair becomes
// one UPDATE of that row (a row switch); a rollback puts the old object back.
orm_tests::backends! {
fn f1_delete_then_add_of_one_key_is_a_row_switch(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let old = s.add(Customer::new("old", 1))?;
    s.commit()?;
    let id = old.read()?.id.unwrap();
    s.delete(&old)?;
    let new = s.add(Customer { id: Some(id), ..Customer::new("new", 2) })?;
    let (log, _g) = SqlLog::start();
    s.flush()?;
    let kinds: Vec<String> = log
        .statements()
        .into_iter()
        .filter_map(|sql| sql.split_whitespace().next().map(str::to_owned))
        .filter(|w| ["INSERT", "UPDATE", "DELETE", "COPY"].contains(&w.as_str()))
        .collect();
    assert_eq!(kinds, ["UPDATE"]);
    assert_eq!(new.state(), ObjectState::Persistent);
    assert_eq!(old.state(), ObjectState::Deleted);
    assert!(s.get::<Customer>(id)?.is_some_and(|h| h == new));
    s.rollback()?;
    assert_eq!(old.state(), ObjectState::Persistent, "the old object is back");
    assert_eq!(new.state(), ObjectState::Transient);
    assert_eq!(old.read()?.name, "old");

    s.delete(&old)?;
    let new = s.add(Customer { id: Some(id), ..Customer::new("new", 2) })?;
    s.commit()?;
    let conn = engine.connect()?;
    assert_eq!(conn.count::<Customer>(None)?, 1);
    assert_eq!(conn.find::<Customer>(&id.into())?.unwrap().name, "new");
    assert!(s.get::<Customer>(id)?.is_some_and(|h| h == new));
    // Taking the new object out before the flush leaves the deletion as it was.
    s.delete(&new)?;
    let third = s.add(Customer { id: Some(id), ..Customer::new("third", 3) })?;
    s.expunge(&third)?;
    s.commit()?;
    assert_eq!(conn.count::<Customer>(None)?, 0, "the delete of `new` still happened");
    Ok(())
}
}

// F1, R1: a row switch whose row another connection deleted meanwhile fails the flush with
// nothing written; the session is as before, and rollback puts the old object back.
orm_tests::backends! {
fn f1_a_row_switch_onto_a_vanished_row_fails_whole(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let old = s.add(Customer::new("old", 1))?;
    let other = s.add(Customer::new("other", 2))?;
    s.commit()?;
    let id = old.read()?.id.unwrap();
    other.write()?.age = 20;
    s.delete(&old)?;
    let new = s.add(Customer { id: Some(id), ..Customer::new("new", 3) })?;
    db.connect()
        .execute(&db.sql("DELETE FROM customer WHERE id = ?"), &[Value::I64(id)])?;
    let e = s.flush().expect_err("the row is gone");
    assert_eq!(e.kind(), ErrorKind::StaleData, "{e}");
    assert_eq!(new.state(), ObjectState::Pending, "still pending");
    assert!(s.is_modified(&other)?, "the other change is still pending");
    let conn = engine.connect()?;
    let kept = conn.find::<Customer>(&other.key().unwrap())?.unwrap();
    assert_eq!(kept.age, 2, "nothing of the flush was written");
    s.rollback()?;
    assert_eq!(new.state(), ObjectState::Transient);
    assert_eq!(old.state(), ObjectState::Persistent, "the old object is back");
    assert!(s.get::<Customer>(id)?.is_none(), "its row is gone: nothing to load");
    Ok(())
}
}

// F1, B1: `add_all` checks every key before it makes a row switch: a value whose key an
// object of the session holds fails the call, and the switch an earlier value of the same
// call would have made is not made (the object marked for deletion stays so). Two values of
// one call cannot take over the same row.
orm_tests::backends! {
fn f1_an_add_all_that_fails_on_a_later_value_makes_no_row_switch(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let old = s.add(Customer::new("old", 1))?;
    let kept = s.add(Customer::new("kept", 2))?;
    s.commit()?;
    let (id, kept_id) = (old.read()?.id.unwrap(), kept.read()?.id.unwrap());
    s.delete(&old)?;
    let e = s
        .add_all([
            Customer { id: Some(id), ..Customer::new("switch", 3) },
            Customer { id: Some(kept_id), ..Customer::new("clash", 4) },
        ])
        .expect_err("the second key is taken");
    assert_eq!(e.kind(), ErrorKind::DuplicateObject, "{e}");
    assert!(
        s.get::<Customer>(id)?.is_some_and(|h| h == old),
        "the object marked for deletion is still the session's for its key"
    );
    let e = s
        .add_all([
            Customer { id: Some(id), ..Customer::new("first", 5) },
            Customer { id: Some(id), ..Customer::new("second", 6) },
        ])
        .expect_err("one row, two takers");
    assert_eq!(e.kind(), ErrorKind::DuplicateObject, "{e}");
    s.commit()?;
    let conn = engine.connect()?;
    assert!(conn.find::<Customer>(&id.into())?.is_none(), "the delete still happened");
    assert_eq!(conn.count::<Customer>(None)?, 1);
    assert_eq!(old.state(), ObjectState::Detached);
    // A switch alone goes through.
    let new = s.add_all([Customer { id: Some(kept_id), ..Customer::new("after", 7) }]);
    assert!(new.is_err(), "`kept` is not marked for deletion");
    s.delete(&kept)?;
    let new = s.add_all([Customer { id: Some(kept_id), ..Customer::new("after", 7) }])?;
    s.commit()?;
    assert_eq!(conn.find::<Customer>(&kept_id.into())?.unwrap().name, "after");
    assert!(s.get::<Customer>(kept_id)?.is_some_and(|h| h == new[0]));
    Ok(())
}
}

// F1: the same one `add` at a time, replacements coming in the order of the deletes, in
// reverse, and shuffled (a row switch looks for its deleted object from both ends of the
// list of deletes). Every pair is a row switch; each row holds its new values; the objects
// not replaced are deleted.
orm_tests::backends! {
fn f1_adds_one_at_a_time_of_replacements_switch_every_row(db) -> Result<()> {
    let engine = db.engine();
    engine.connect()?.insert_many((0..1500).map(|i| Customer::new(&format!("old {i}"), 1)))?;
    let s = engine.session();
    let old = s.query::<Customer>().order_by(Customer::ID, Order::Asc).all()?;
    for h in &old {
        s.delete(h)?;
    }
    let ids: Vec<i64> = old.iter().map(|h| h.id().expect("a key")).collect();
    // Thirds: in order, in reverse, shuffled (a fixed stride through the last third); the
    // last ten of the shuffled third stay deleted.
    let mut order: Vec<usize> = (0..500).collect();
    order.extend((500..1000).rev());
    order.extend((0..500).map(|i| 1000 + (i * 7) % 500).take(490));
    let mut new = Vec::new();
    for &i in &order {
        let id = ids[i];
        new.push((id, s.add(Customer { id: Some(id), ..Customer::new(&format!("new {id}"), 2) })?));
    }
    assert_eq!(s.deleted_objects().len(), 10);
    let (log, _g) = SqlLog::start();
    s.commit()?;
    assert!(log.starting_with("INSERT").is_empty() && log.starting_with("COPY").is_empty());
    let conn = engine.connect()?;
    assert_eq!(conn.count::<Customer>(None)?, 1490);
    for (id, h) in &new {
        assert_eq!(conn.find::<Customer>(&(*id).into())?.expect("its row").name, format!("new {id}"));
        assert!(s.get::<Customer>(*id)?.is_some_and(|g| g == *h));
    }
    assert!(old.iter().all(|h| h.state() == ObjectState::Detached));
    Ok(())
}
}

// F1, B1: replacing many rows at once: every loaded object deleted, then `add_all` of new
// values with the same keys. Each pair is a row switch: the commit sends UPDATEs only, and
// each row holds its new values.
orm_tests::backends! {
fn f1_add_all_of_replacements_for_deleted_objects_switches_every_row(db) -> Result<()> {
    let engine = db.engine();
    engine.connect()?.insert_many((0..2000).map(|i| Customer::new(&format!("old {i}"), 1)))?;
    let s = engine.session();
    let old = s.query::<Customer>().all()?;
    for h in &old {
        s.delete(h)?;
    }
    let ids: Vec<i64> = old.iter().map(|h| h.read().unwrap().id.unwrap()).collect();
    let new = s.add_all(ids.iter().map(|&id| Customer { id: Some(id), ..Customer::new(&format!("new {id}"), 2) }))?;
    let (log, _g) = SqlLog::start();
    s.commit()?;
    let kinds: Vec<String> = log
        .statements()
        .into_iter()
        .filter_map(|sql| sql.split_whitespace().next().map(str::to_owned))
        .filter(|w| ["INSERT", "DELETE", "COPY"].contains(&w.as_str()))
        .collect();
    assert!(kinds.is_empty(), "row switches only: {kinds:?}");
    let conn = engine.connect()?;
    assert_eq!(conn.count::<Customer>(None)?, 2000);
    for (h, &id) in new.iter().zip(&ids).step_by(97) {
        assert_eq!(conn.find::<Customer>(&id.into())?.unwrap().name, format!("new {id}"));
        assert!(s.get::<Customer>(id)?.is_some_and(|g| g == *h));
    }
    assert!(old.iter().all(|h| h.state() == ObjectState::Detached));
    Ok(())
}
}
