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

// S6, S9: a commit settles each of its objects when the object is next used (`Tie`), not by
// a visit of every object; an object left alone over several commits takes all of them: the
// rows it was inserted with stay its own through a later rollback, and an expiring commit
// among plain ones leaves it expired.
orm_tests::backends! {
fn s6_an_object_left_alone_takes_every_commit_since_it_was_last_used(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    s.set_expire_on_commit(false);
    let a = s.add(Customer::new("ann", 1))?;
    let b = s.add(Customer::new("bob", 2))?;
    s.commit()?;
    // `a` is left alone over the next commits.
    b.write()?.age = 3;
    s.commit()?;
    let (log, _g) = SqlLog::start();
    assert!(!a.is_expired() && !b.is_expired());
    assert_eq!((a.read()?.age, b.read()?.age), (1, 3));
    assert!(log.statements().is_empty(), "nothing reloaded");
    // Inserted and committed: a rollback of a later transaction keeps them, keys and all,
    // and reverts only what that transaction added.
    let c = s.add(Customer::new("cy", 4))?;
    s.flush()?;
    assert_eq!(c.state(), ObjectState::Persistent);
    s.rollback()?;
    assert_eq!(c.state(), ObjectState::Transient);
    assert_eq!(c.id(), None);
    for (h, id) in [(&a, 1), (&b, 2)] {
        assert_eq!(h.state(), ObjectState::Persistent);
        assert_eq!(h.id(), Some(id));
        assert_eq!(h.read()?.id, Some(id));
        assert!(s.get::<Customer>(id)?.is_some_and(|g| g == *h));
    }
    assert_eq!(s.query::<Customer>().count()?, 2);

    // An expiring commit between plain ones: `a`, left alone since, reads the row as the
    // expiring commit left it, once, and is loaded after.
    let _ = a.read()?;
    s.set_expire_on_commit(true);
    s.commit()?;
    engine
        .connect()?
        .execute("UPDATE customer SET age = 9 WHERE id = 1", &[])?;
    s.set_expire_on_commit(false);
    b.write()?.age = 4;
    s.commit()?;
    s.commit()?;
    assert!(a.is_expired());
    log.clear();
    assert_eq!(a.read()?.age, 9);
    assert_eq!(log.starting_with("SELECT").len(), 1);
    assert!(!a.is_expired());
    assert_eq!(b.read()?.age, 4, "written after the expiring commit: reloaded, then changed");
    Ok(())
}
}

// S6, R6: the claims of a commit's flush end with the commit, for every object it wrote,
// whichever is used first and however: 3,000 objects written and committed, then each written
// again in a shuffled order (none is refused as still being flushed), committed, and read.
orm_tests::backends! {
fn s6_every_object_a_commit_wrote_can_be_written_again_after_it(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let all = s.add_all((0..3000).map(|i| Customer::new(&format!("c{i}"), i)))?;
    s.commit()?;
    for h in &all {
        h.write()?.age += 1;
    }
    s.commit()?;
    let mut order: Vec<usize> = (0..all.len()).collect();
    // A fixed shuffle: multiples of a number prime to the length.
    order.sort_by_key(|&i| (i * 1237) % all.len());
    for &i in &order {
        all[i].write()?.age += 10;
    }
    s.commit()?;
    for (i, h) in (0..).zip(&all) {
        assert_eq!(h.read()?.age, i + 11);
    }
    let other = engine.session();
    let rows = other.query::<Customer>().all()?;
    assert_eq!(rows.len(), 3000);
    for r in &rows {
        let r = r.read()?;
        let i: i32 = r.name[1..].parse().expect("a number");
        assert_eq!(r.age, i + 11, "{}", r.name);
    }
    Ok(())
}
}
