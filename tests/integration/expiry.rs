//! S6 commit, S7 expiry, S8 refresh, S10 stale data.

use orm_session::prelude::*;
use orm_tests::SqlLog;
use orm_tests::model::Customer;

// S6
orm_tests::backends! {
fn s6_commit_expires_and_the_next_access_reloads(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("ann", 1))?;
    s.commit()?;
    assert!(h.is_expired());
    let (log, _g) = SqlLog::start();
    assert_eq!(h.read()?.name, "ann");
    assert_eq!(
        log.starting_with("SELECT").len(),
        1,
        "one SELECT reloads it"
    );
    let _ = h.read()?;
    assert_eq!(log.starting_with("SELECT").len(), 1, "then it is loaded");
    // The session stays usable: the next statement begins a new transaction.
    h.write()?.age = 2;
    s.commit()?;
    assert_eq!(h.read()?.age, 2);
    Ok(())
}
}

// S6
orm_tests::backends! {
fn s6_without_expire_on_commit_objects_stay_loaded(db) -> Result<()> {
    let engine = db.engine().expire_on_commit(false);
    let s = engine.session();
    let h = s.add(Customer::new("ann", 1))?;
    s.commit()?;
    assert!(!h.is_expired());
    let (log, _g) = SqlLog::start();
    assert_eq!(h.read()?.id, Some(1));
    assert!(log.statements().is_empty());
    Ok(())
}
}

// S7
orm_tests::backends! {
fn s7_expire_discards_an_unflushed_change(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("ann", 1))?;
    s.commit()?;
    h.write()?.age = 50;
    s.expire(&h)?;
    assert_eq!(h.read()?.age, 1, "reloaded from the row");
    assert!(!s.is_modified(&h)?);
    let (log, _g) = SqlLog::start();
    s.flush()?;
    assert!(log.starting_with("UPDATE").is_empty());
    Ok(())
}
}

// S7
orm_tests::backends! {
fn s7_expire_attrs_reloads_only_those_columns(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("ann", 1))?;
    s.commit()?;
    {
        let mut w = h.write()?;
        w.age = 50;
        w.description = Some("kept".into());
    }
    s.expire_attrs(&h, Customer::AGE)?; // F8: typed
    let (log, _g) = SqlLog::start();
    assert_eq!(h.read()?.age, 1, "expired column reloaded");
    assert_eq!(
        h.read()?.description.as_deref(),
        Some("kept"),
        "other change kept"
    );
    assert_eq!(
        log.starting_with("SELECT"),
        vec![db.sql(r#"SELECT "age" FROM "customer" WHERE "id" = ?"#)]
    );
    s.flush()?;
    assert_eq!(
        log.starting_with("UPDATE"),
        vec![db.sql(r#"UPDATE "customer" SET "descr" = ? WHERE "id" = ?"#)]
    );
    let err = s.expire_attrs_by_name(&h, &["agee"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownColumn);
    assert!(
        err.to_string().contains("agee") && err.to_string().contains("descr"),
        "{err}"
    );
    Ok(())
}
}

// S7
orm_tests::backends! {
fn s7_an_expired_object_whose_row_was_deleted_elsewhere_errors(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("ann", 1))?;
    s.commit()?;
    engine.connect()?.execute("DELETE FROM customer", &[])?;
    let err = h.read().map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ObjectDeleted);
    assert!(err.to_string().contains("no longer exists"), "{err}");
    assert!(s.get::<Customer>(1)?.is_none());
    Ok(())
}
}

// S8
orm_tests::backends! {
fn s8_refresh_reloads_at_once(db) -> Result<()> {
    let engine = db.engine().expire_on_commit(false);
    let s = engine.session();
    let h = s.add(Customer::new("ann", 1))?;
    s.commit()?;
    engine
        .connect()?
        .execute("UPDATE customer SET age = 7", &[])?;
    h.write()?.name = "unflushed".into();
    let (log, _g) = SqlLog::start();
    s.refresh(&h)?;
    assert_eq!(
        log.starting_with("SELECT").len(),
        1,
        "refresh sends its SELECT at once"
    );
    log.clear();
    let c = h.get()?;
    assert!(log.statements().is_empty());
    assert_eq!((c.name.as_str(), c.age), ("ann", 7));
    Ok(())
}
}

// S10
orm_tests::backends! {
fn s10_changes_made_elsewhere_show_only_after_expire_all(db) -> Result<()> {
    let engine = db.engine().expire_on_commit(false);
    let s = engine.session();
    s.add(Customer::new("ann", 1))?;
    s.commit()?;
    let h = s.get::<Customer>(1)?.expect("row");
    assert_eq!(h.read()?.age, 1);

    // Another connection changes the row and commits.
    let other = engine.connect()?;
    assert_eq!(
        other.execute("UPDATE customer SET age = 2 WHERE id = 1", &[])?,
        1
    );

    // Objects already loaded do not see it…
    assert_eq!(h.read()?.age, 1);
    assert_eq!(s.get::<Customer>(1)?.expect("row").read()?.age, 1);
    // …a query returns the same object, its state kept…
    assert_eq!(s.query::<Customer>().one()?.read()?.age, 1);
    // …until they are expired.
    s.expire_all();
    assert_eq!(h.read()?.age, 2);
    // populate_existing is the other way to see it.
    other.execute("UPDATE customer SET age = 3 WHERE id = 1", &[])?;
    assert_eq!(
        s.query::<Customer>().populate_existing().one()?.read()?.age,
        3
    );
    Ok(())
}
}
