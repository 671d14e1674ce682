//! S5 autoflush.

use orm_session::prelude::*;
use orm_tests::SqlLog;
use orm_tests::model::Customer;

// S5
orm_tests::backends! {
fn s5_a_query_sees_objects_added_without_an_explicit_flush(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("new", 1))?;
    let found = s
        .query::<Customer>()
        .filter(Customer::NAME.eq("new"))
        .all()?;
    assert_eq!(found.len(), 1);
    assert!(found[0] == h, "the query returns the added object itself");
    assert_eq!(s.query::<Customer>().count()?, 1);
    h.write()?.age = 5;
    assert_eq!(
        s.query::<Customer>().filter(Customer::AGE.eq(5)).count()?,
        1,
        "changes too"
    );
    Ok(())
}
}

// S5
orm_tests::backends! {
fn s5_autoflush_can_be_turned_off(db) -> Result<()> {
    let engine = db.engine().autoflush(false);
    let s = engine.session();
    assert!(!s.autoflush());
    let (log, _g) = SqlLog::start();
    s.add(Customer::new("new", 1))?;
    assert_eq!(s.query::<Customer>().all()?.len(), 0);
    assert_eq!(s.query::<Customer>().count()?, 0);
    assert!(log.starting_with("INSERT").is_empty());
    s.set_autoflush(true);
    assert_eq!(s.query::<Customer>().count()?, 1);
    Ok(())
}
}

// F3: reloading an expired object is a load that sends SQL: pending changes (of other objects
// too) are flushed first, so a later expire_all keeps them. Inside `no_autoflush` they are not.
orm_tests::backends! {
fn f3_autoflush_before_the_reload_of_an_expired_object(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let (a, b) = (s.add(Customer::new("a", 1))?, s.add(Customer::new("b", 2))?);
    s.commit()?;
    let _ = (a.read()?.age, b.read()?.age);
    s.expire(&b)?;
    a.write()?.age = 77;
    assert_eq!(b.read()?.age, 2); // the reload: a's change is flushed first
    assert!(!s.is_modified(&a)?, "flushed by the reload");
    s.expire_all();
    assert_eq!(a.read()?.age, 77, "the change survives expire_all");
    s.commit()?;
    let conn = engine.connect()?;
    assert_eq!(conn.find::<Customer>(&a.key().unwrap())?.unwrap().age, 77);

    // Inside no_autoflush, the reload sends nothing first.
    let _ = (a.read()?.age, b.read()?.age);
    s.expire(&b)?;
    a.write()?.age = 88;
    s.no_autoflush(|| -> Result<()> {
        assert_eq!(b.read()?.age, 2);
        assert!(s.is_modified(&a)?, "not flushed inside no_autoflush");
        Ok(())
    })?;
    // get() of an expired object reloads too, after an autoflush.
    s.expire(&b)?;
    let got = s.get::<Customer>(b.id().unwrap())?.expect("row");
    assert!(got == b);
    assert!(!s.is_modified(&a)?, "flushed by get's reload");
    s.commit()?;
    assert_eq!(conn.find::<Customer>(&a.key().unwrap())?.unwrap().age, 88);
    Ok(())
}
}
