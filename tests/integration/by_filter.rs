//! Q3: UPDATE and DELETE by filter through the session, with `Synchronize` keeping the
//! identity map in step (SQLAlchemy 2.0's `synchronize_session`).

use orm_session::prelude::*;
use orm_tests::{SqlLog, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "member")]
pub struct Member {
    #[orm(primary_key)]
    pub id: i64,
    #[orm(unique)]
    pub name: String,
    pub age: Option<i32>,
    pub status: String,
    #[orm(version)]
    pub version: i64,
}

/// Ten members: ages 10, 20, …, 90 and one without an age (id 10).
fn members(db: &TestDb) -> Result<(Engine, Session, Vec<Handle<Member>>)> {
    let engine = db.engine();
    engine.create_table::<Member>()?;
    let s = engine.session();
    let all = s.add_all((1..=10).map(|i| Member {
        id: i,
        name: format!("m{i}"),
        age: (i < 10).then_some(i as i32 * 10),
        status: "new".into(),
        version: 1,
    }))?;
    s.commit()?;
    // Loaded (not expired) for what follows.
    s.query::<Member>().all()?;
    Ok((engine, s, all))
}

/// (id, status, version) of every row.
fn rows(engine: &Engine) -> Result<Vec<(i64, String, i64)>> {
    let mut all: Vec<Member> = engine.connect()?.select_all()?;
    all.sort_by_key(|m| m.id);
    Ok(all
        .into_iter()
        .map(|m| (m.id, m.status, m.version))
        .collect())
}

// Q3
orm_tests::backends! {
fn q3_update_by_filter_evaluates_the_filter_on_loaded_objects(db) -> Result<()> {
    let (engine, s, all) = members(db)?;
    let (log, _g) = SqlLog::start();
    let n = s
        .query::<Member>()
        .filter(Member::AGE.ge(50).and(Member::AGE.ne(70)))
        .update(Mapping::from([Member::STATUS.to("senior")]), Synchronize::Auto)?;
    assert_eq!(n, 4);
    assert_eq!(log.statements().iter().filter(|s| s.starts_with("UPDATE")).count(), 1);
    let before = log.statements().len();
    // The objects show the new values and versions without a reload.
    for (i, m) in all.iter().enumerate() {
        let m = m.read()?;
        let senior = matches!(i + 1, 5 | 6 | 8 | 9);
        assert_eq!(m.status, if senior { "senior" } else { "new" }, "member {}", i + 1);
        assert_eq!(m.version, if senior { 2 } else { 1 }, "member {}", i + 1);
    }
    assert_eq!(log.statements().len(), before, "no SQL to read them");
    // Taken as loaded: the commit sends no UPDATE of its own.
    s.commit()?;
    assert_eq!(log.starting_with("UPDATE").len(), 1);
    let want: Vec<(i64, String, i64)> = (1..=10)
        .map(|i| {
            let senior = matches!(i, 5 | 6 | 8 | 9);
            (i, if senior { "senior" } else { "new" }.to_owned(), if senior { 2 } else { 1 })
        })
        .collect();
    assert_eq!(rows(&engine)?, want);
    Ok(())
}
}

// Q3: NULL compares as SQL says: `age <> 20` is unknown for the member without an age, in
// memory as in the database.
orm_tests::backends! {
fn q3_evaluation_follows_sql_rules_for_null(db) -> Result<()> {
    let (engine, s, all) = members(db)?;
    let n = s
        .query::<Member>()
        .filter(Member::AGE.ne(20).or(Member::AGE.is_null().not()).not().not())
        .update(Mapping::from([Member::STATUS.to("aged")]), Synchronize::Evaluate)?;
    assert_eq!(n, 9, "every member with an age");
    assert_eq!(all[9].read()?.status, "new");
    assert_eq!(all[1].read()?.status, "aged");
    let n = s
        .query::<Member>()
        .filter(Member::AGE.ne(20))
        .update(Mapping::from([Member::STATUS.to("not twenty")]), Synchronize::Evaluate)?;
    assert_eq!(n, 8);
    assert_eq!(all[9].read()?.status, "new", "NULL <> 20 is not true");
    assert_eq!(all[1].read()?.status, "aged");
    // NOT (NULL = 20) is unknown too, not true.
    let n = s
        .query::<Member>()
        .filter(Member::AGE.eq(20).not())
        .update(Mapping::from([Member::STATUS.to("not twenty")]), Synchronize::Evaluate)?;
    assert_eq!(n, 8);
    assert_eq!(all[9].read()?.status, "new", "NOT (NULL = 20) is not true");
    s.commit()?;
    let db_rows = rows(&engine)?;
    assert_eq!(db_rows[9].1, "new");
    assert_eq!(db_rows[1].1, "aged");
    assert_eq!(db_rows[0].1, "not twenty");
    Ok(())
}
}

// Q3: a filter the session cannot evaluate exactly (LIKE) asks the database which rows
// changed; those objects have the changed columns expired and reload them.
orm_tests::backends! {
fn q3_auto_falls_back_to_fetch_and_expires_the_changed_rows(db) -> Result<()> {
    let (_engine, s, all) = members(db)?;
    let (log, _g) = SqlLog::start();
    let n = s
        .query::<Member>()
        .filter(Member::NAME.like("m1%"))
        .update(Mapping::from([Member::STATUS.to("one")]), Synchronize::Auto)?;
    assert_eq!(n, 2, "m1 and m10");
    if db.is_mysql() {
        // No UPDATE … RETURNING: the rows are read and locked first.
        let locked = log.starting_with("SELECT");
        assert!(locked.iter().any(|s| s.ends_with("FOR UPDATE")), "{locked:?}");
    } else {
        let update = log.starting_with("UPDATE");
        assert!(update[0].contains("RETURNING"), "{update:?}");
    }
    let before = log.statements().len();
    assert_eq!(all[1].read()?.status, "new", "not matched: untouched, no SQL");
    assert_eq!(log.statements().len(), before);
    assert_eq!(all[0].read()?.status, "one", "matched: reloaded");
    assert_eq!(all[0].read()?.version, 2);
    assert_eq!(all[9].read()?.status, "one");
    assert!(log.statements().len() > before);
    // Evaluate is refused for it, before any SQL.
    let before = log.statements().len();
    let err = s
        .query::<Member>()
        .filter(Member::NAME.like("m%"))
        .update(Mapping::from([Member::STATUS.to("x")]), Synchronize::Evaluate)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.to_string().contains("Fetch"), "{err}");
    assert_eq!(log.statements().len(), before);
    Ok(())
}
}

// Q3: `Synchronize::None` leaves the objects as they were, until expired.
orm_tests::backends! {
fn q3_synchronize_none_leaves_objects_stale_until_expired(db) -> Result<()> {
    let (_engine, s, all) = members(db)?;
    let n = s
        .query::<Member>()
        .filter(Member::ID.le(3))
        .update(Mapping::from([Member::STATUS.to("gone")]), Synchronize::None)?;
    assert_eq!(n, 3);
    assert_eq!(all[0].read()?.status, "new");
    s.expire_all();
    assert_eq!(all[0].read()?.status, "gone");
    Ok(())
}
}

// Q3, S5: pending changes are flushed before the statement, so that it sees them.
orm_tests::backends! {
fn q3_autoflush_runs_before_an_update_by_filter(db) -> Result<()> {
    let (engine, s, all) = members(db)?;
    all[0].write()?.age = Some(99);
    let n = s
        .query::<Member>()
        .filter(Member::AGE.gt(85))
        .update(Mapping::from([Member::STATUS.to("old")]), Synchronize::Auto)?;
    assert_eq!(n, 2, "member 1 (flushed first) and member 9");
    assert_eq!(all[0].read()?.status, "old");
    assert_eq!(all[0].read()?.version, 3, "bumped by the flush and by the update");
    s.commit()?;
    assert_eq!(rows(&engine)?[0], (1, "old".to_owned(), 3));
    Ok(())
}
}

// Q3: DELETE by filter; the deleted objects leave the identity map as a flushed delete's
// do, and a rollback brings them back.
orm_tests::backends! {
fn q3_delete_by_filter_removes_objects_and_rollback_restores_them(db) -> Result<()> {
    let (engine, s, all) = members(db)?;
    let n = s
        .query::<Member>()
        .filter(Member::AGE.lt(35))
        .delete(Synchronize::Auto)?;
    assert_eq!(n, 3);
    assert_eq!(all[0].state(), ObjectState::Deleted);
    assert_eq!(all[3].state(), ObjectState::Persistent);
    assert!(s.get::<Member>(1)?.is_none());
    s.rollback()?;
    assert_eq!(all[0].state(), ObjectState::Persistent);
    assert_eq!(engine.connect()?.count::<Member>(None)?, 10);
    // By fetch (LIKE): the rows named by RETURNING.
    let n = s.query::<Member>().filter(Member::NAME.like("m1%")).delete(Synchronize::Auto)?;
    assert_eq!(n, 2);
    assert_eq!(all[9].state(), ObjectState::Deleted);
    assert_eq!(all[1].state(), ObjectState::Persistent);
    s.commit()?;
    assert_eq!(all[0].state(), ObjectState::Detached);
    assert_eq!(engine.connect()?.count::<Member>(None)?, 8);
    Ok(())
}
}

// Q3, R1: a failing UPDATE by filter changes nothing, in the database or in memory, and the
// session goes on.
orm_tests::backends! {
fn q3_a_failing_update_by_filter_changes_nothing(db) -> Result<()> {
    let (engine, s, all) = members(db)?;
    let before = rows(&engine)?;
    // Two rows cannot take one unique name.
    let err = s
        .query::<Member>()
        .filter(Member::ID.le(2))
        .update(Mapping::from([Member::NAME.to("same")]), Synchronize::Auto)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");
    assert_eq!(all[0].read()?.name, "m1");
    s.rollback()?;
    assert_eq!(rows(&engine)?, before);
    // Nor does a refused one.
    for err in [
        s.query::<Member>().limit(1).update(Mapping::from([Member::STATUS.to("x")]), Synchronize::Auto),
        s.query::<Member>().update(Mapping::from([Member::ID.to(5)]), Synchronize::Auto),
        s.query::<Member>().update(Mapping::new(), Synchronize::Auto),
        s.query::<Member>().order_by(Member::ID, Order::Asc).delete(Synchronize::Auto),
    ] {
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidState);
    }
    assert_eq!(rows(&engine)?, before);
    s.query::<Member>().update(Mapping::from([Member::STATUS.to("all")]), Synchronize::Auto)?;
    s.commit()?;
    assert!(rows(&engine)?.iter().all(|r| r.1 == "all" && r.2 == 2));
    Ok(())
}
}

// Q3, R4: with `Synchronize::None` an object keeps the version it loaded, so its own later
// change is stale: the version rule holds across statements by filter.
orm_tests::backends! {
fn q3_an_update_by_filter_makes_unsynchronized_objects_stale(db) -> Result<()> {
    let (_engine, s, all) = members(db)?;
    s.query::<Member>()
        .filter(Member::ID.eq(4))
        .update(Mapping::from([Member::STATUS.to("elsewhere")]), Synchronize::None)?;
    all[3].write()?.status = "mine".into();
    assert_eq!(s.flush().unwrap_err().kind(), ErrorKind::StaleData);
    Ok(())
}
}

// Q3: an object read through a guard the caller still holds cannot take the new values in
// place; it is expired instead, and shows them once the guard is dropped.
orm_tests::backends! {
fn q3_an_object_borrowed_during_evaluate_is_expired_not_skipped(db) -> Result<()> {
    let (_engine, s, all) = members(db)?;
    let guard = all[4].read()?;
    let n = s
        .query::<Member>()
        .filter(Member::AGE.ge(50))
        .update(Mapping::from([Member::STATUS.to("late")]), Synchronize::Evaluate)?;
    assert_eq!(n, 5);
    assert_eq!(guard.status, "new", "the guard's view does not change under it");
    drop(guard);
    assert_eq!(all[4].read()?.status, "late");
    assert_eq!(all[4].read()?.version, 2);
    assert_eq!(all[5].read()?.status, "late");
    Ok(())
}
}
