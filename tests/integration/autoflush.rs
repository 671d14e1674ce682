//! S5 autoflush.

use orm_session::prelude::*;
use orm_tests::SqlLog;
use orm_tests::model::Customer;

// S5
orm_tests::both! {
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
orm_tests::both! {
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
