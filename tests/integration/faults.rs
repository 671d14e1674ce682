//! R6–R9: faults in the middle of every write path. Each case asserts what the database
//! holds and what state the session is in after the fault and after `rollback()`, and that
//! `commit()` never says `Ok` for work that is not in the database. Cases that could hang run
//! under [`watchdog`], so a deadlock fails the test instead of stalling the suite.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use orm_session::prelude::*;
use orm_session::{FromSqlError, SqlType, ValueRef};
use orm_tests::model::Customer;
use orm_tests::{TempDb, TestDb, both};

/// Runs `f` on a thread of its own and fails if it has not finished within `secs` seconds
/// (a deadlock), passing on its panic if it panicked.
fn watchdog<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => worker.join().expect("worker"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("no answer within {secs} s: deadlock")
        }
    }
}

/// Names of the rows the table holds, in key order, read on a connection of its own.
fn names(engine: &Engine) -> Result<Vec<String>> {
    let conn = engine.connect()?;
    let rows = conn.query_values("SELECT name FROM customer ORDER BY id", &[])?;
    Ok(rows
        .into_iter()
        .map(|r| match &r[0] {
            Value::Text(s) => s.clone(),
            other => panic!("name is {other:?}"),
        })
        .collect())
}

fn count(engine: &Engine) -> Result<usize> {
    Ok(names(engine)?.len())
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    r.expect_err("an error").kind()
}

/// A session that works after the fault: a new row commits and is there.
fn works_again(engine: &Engine, s: &Session, name: &str) -> Result<()> {
    let h = s.add(Customer::new(name, 1))?;
    s.commit()?;
    let id = h.read()?.id.expect("key");
    let conn = engine.connect()?;
    let back = conn.find::<Customer>(&id.into())?.expect("row");
    assert_eq!(back.name, name, "the key handed out is the row's own");
    Ok(())
}

// ---- 1. the transaction's state comes from the database ---------------------------------

both! {
    // R6: a statement that fails inside the transaction. PostgreSQL aborts the whole
    // transaction (its COMMIT would silently roll back); SQLite only the statement.
    fn r6_a_failed_statement_never_lets_commit_lie(db) -> Result<()> {
        let engine = db.engine();
        let s = engine.session();
        s.add(Customer::new("flushed before", 1))?;
        s.flush()?;
        let failed = s.execute(&db.sql("INSERT INTO customer (name, age) VALUES (NULL, ?)"), &[Value::I64(1)]);
        assert_eq!(kind(failed), ErrorKind::NotNullViolation);
        let committed = s.commit();
        if db.is_postgres() {
            assert_eq!(kind(committed), ErrorKind::PendingRollback);
            // Every call but rollback and close keeps failing, with the same kind.
            assert_eq!(kind(s.commit()), ErrorKind::PendingRollback);
            assert_eq!(kind(s.flush()), ErrorKind::PendingRollback);
            assert_eq!(kind(s.get::<Customer>(1)), ErrorKind::PendingRollback);
            assert_eq!(kind(s.query::<Customer>().all()), ErrorKind::PendingRollback);
            assert_eq!(kind(s.add(Customer::new("x", 1))), ErrorKind::PendingRollback);
            assert_eq!(count(&engine)?, 0, "nothing of the aborted transaction is committed");
            s.rollback()?;
        } else {
            committed?;
            assert_eq!(names(&engine)?, ["flushed before"]);
        }
        works_again(&engine, &s, "after")?;
        Ok(())
    }

    // R6: a read of a table that does not exist, inside the session's transaction.
    fn r6_a_failed_read_inside_the_transaction_is_seen(db) -> Result<()> {
        #[derive(Entity, Debug, Clone)]
        #[orm(table = "no_such_table")]
        struct Ghost {
            #[orm(primary_key)]
            id: i64,
        }
        let engine = db.engine();
        let s = engine.session();
        s.add(Customer::new("flushed", 1))?;
        s.flush()?;
        assert!(s.get::<Ghost>(1).is_err());
        match s.commit() {
            Ok(()) => {
                assert!(!db.is_postgres(), "PostgreSQL aborted the transaction");
                assert_eq!(names(&engine)?, ["flushed"]);
            }
            Err(e) => {
                assert!(db.is_postgres());
                assert_eq!(e.kind(), ErrorKind::PendingRollback, "{e}");
                assert_eq!(count(&engine)?, 0);
                s.rollback()?;
            }
        }
        works_again(&engine, &s, "after")
    }

    // R6: a COMMIT that fails (a deferred foreign key) is never followed by an `Ok` commit of
    // nothing; after rollback the objects are transient again and the session works.
    fn r6_a_failed_commit_requires_rollback(db) -> Result<()> {
        #[derive(Entity, Debug, Clone)]
        #[orm(table = "child")]
        struct Child {
            #[orm(primary_key, auto_increment)]
            id: Option<i64>,
            parent_id: i64,
        }
        let engine = db.engine();
        let conn = engine.connect()?;
        let key = if db.is_postgres() {
            "bigint PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY"
        } else {
            "INTEGER PRIMARY KEY"
        };
        conn.execute("CREATE TABLE parent (id bigint PRIMARY KEY)", &[])?;
        conn.execute(
            &format!(
                "CREATE TABLE child (id {key}, parent_id bigint NOT NULL \
                 REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
            ),
            &[],
        )?;
        engine.release(conn);
        let s = engine.session();
        let orphan = s.add(Child { id: None, parent_id: 42 })?;
        s.flush()?;
        assert_eq!(orphan.state(), ObjectState::Persistent);
        assert_eq!(kind(s.commit()), ErrorKind::ForeignKeyViolation);
        assert_eq!(kind(s.commit()), ErrorKind::PendingRollback, "a retried commit never says Ok");
        s.rollback()?;
        let other = engine.connect()?;
        assert_eq!(other.query_i64("SELECT count(*) FROM child", &[])?, 0);
        assert_eq!(orphan.state(), ObjectState::Transient);
        assert_eq!(orphan.read()?.id, None, "the generated key is forgotten");
        other.execute("INSERT INTO parent (id) VALUES (42)", &[])?;
        s.add_handle(&orphan)?;
        s.commit()?;
        assert_eq!(other.query_i64("SELECT count(*) FROM child", &[])?, 1);
        Ok(())
    }

    // R7: a panic inside a user's conversion at row 1,500 of a 2,000-object flush.
    fn r7_a_panicking_conversion_in_flush_writes_nothing(db) -> Result<()> {
        let engine = db.engine();
        create_fused(db, &engine)?;
        let s = engine.session();
        s.add(Fused { id: None, n: Fuse(-1) })?;
        s.commit()?;
        let added = s.add_all((0..2000).map(|i| Fused { id: None, n: Fuse(i) }))?;
        let caught = arm(1500, || s.flush());
        assert!(caught.is_err(), "the panic goes on to the caller");
        assert_eq!(s.new_objects().len(), 2000, "the objects are pending again");
        assert!(added.iter().all(|h| h.state() == ObjectState::Pending && h.key().is_none()));
        assert!(added.iter().all(|h| h.read().unwrap().id.is_none()));
        // Nothing of the flush is in the transaction: committing now writes what is pending,
        // once, each object with its own row.
        s.commit()?;
        let conn = engine.connect()?;
        assert_eq!(conn.query_i64("SELECT count(*) FROM fused", &[])?, 2001);
        for h in added.iter().step_by(97) {
            let v = h.read()?;
            let row = conn.find::<Fused>(&v.id.expect("key").into())?.expect("row");
            assert_eq!(row.n.0, v.n.0);
        }
        Ok(())
    }

    // R7: a panic in the iterator given to add_all: nothing is added.
    fn r7_a_panicking_add_all_iterator_adds_nothing(db) -> Result<()> {
        let engine = db.engine();
        let s = engine.session();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            s.add_all((0..1000).map(|i| {
                assert!(i != 500, "user iterator fails");
                Customer::new(&format!("c{i}"), i)
            }))
        }));
        assert!(caught.is_err());
        assert!(s.new_objects().is_empty());
        s.commit()?;
        assert_eq!(count(&engine)?, 0);
        works_again(&engine, &s, "after")
    }

    // R7: a panic in a bulk call's iterator after several batches (and, on PostgreSQL, in
    // the middle of a streamed COPY): nothing of the call stays, earlier work does.
    fn r7_a_panicking_bulk_iterator_writes_nothing_of_the_call(db) -> Result<()> {
        let engine = db.engine();
        let s = engine.session();
        s.add(Customer::new("earlier", 1))?;
        s.flush()?;
        let caught = catch_unwind(AssertUnwindSafe(|| {
            s.bulk_insert_mappings(
                (0..30_000).map(|i| {
                    assert!(i != 25_000, "user iterator fails");
                    Mapping::from([Customer::NAME.to(format!("m{i}")), Customer::AGE.to(i)])
                }),
                BulkOptions::default(),
            )
        }));
        assert!(caught.is_err());
        s.commit()?;
        assert_eq!(names(&engine)?, ["earlier"]);
        // Outside a transaction: the bulk call's own transaction is rolled back.
        let caught = catch_unwind(AssertUnwindSafe(|| {
            s.bulk_insert_mappings(
                (0..3000).map(|i| {
                    assert!(i != 2500, "user iterator fails");
                    Mapping::from([Customer::NAME.to(format!("n{i}")), Customer::AGE.to(i)])
                }),
                BulkOptions::default().return_defaults(true),
            )
        }));
        assert!(caught.is_err());
        s.commit()?;
        assert_eq!(names(&engine)?, ["earlier"]);
        works_again(&engine, &s, "after")
    }

    // R7: a panic in a conversion while bulk_save streams objects.
    fn r7_a_panicking_conversion_in_bulk_save_writes_nothing(db) -> Result<()> {
        let engine = db.engine();
        create_fused(db, &engine)?;
        let s = engine.session();
        let mut objs: Vec<Fused> = (0..20_000).map(|i| Fused { id: None, n: Fuse(i) }).collect();
        let caught = arm(15_000, || s.bulk_save(objs.iter_mut(), BulkOptions::default()));
        assert!(caught.is_err());
        let caught = arm(15_000, || {
            s.bulk_save(objs.iter_mut(), BulkOptions::default().return_defaults(true))
        });
        assert!(caught.is_err());
        assert!(objs.iter().all(|o| o.id.is_none()), "no key was written back");
        s.commit()?;
        let conn = engine.connect()?;
        assert_eq!(conn.query_i64("SELECT count(*) FROM fused", &[])?, 0);
        Ok(())
    }

    // R7: a panicking iterator given to the core insert.
    fn r7_a_panicking_core_insert_iterator_writes_nothing(db) -> Result<()> {
        let conn = db.connect();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            conn.insert_many((0..5000).map(|i| {
                assert!(i != 4000, "user iterator fails");
                Customer::new(&format!("c{i}"), i)
            }))
        }));
        assert!(caught.is_err());
        assert!(!conn.in_transaction(), "the call's transaction is rolled back");
        assert_eq!(conn.count::<Customer>(None)?, 0);
        conn.insert_many([Customer::new("after", 1)])?;
        assert_eq!(conn.count::<Customer>(None)?, 1);
        Ok(())
    }

    // R7: a panic while a write guard is alive leaves a half-made change: the flush refuses
    // it until the object is reloaded; the database never sees it.
    fn r7_a_change_torn_by_a_panic_is_never_flushed(db) -> Result<()> {
        let engine = db.engine();
        let s = engine.session();
        let h = s.add(Customer::new("whole", 30))?;
        s.commit()?;
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let mut g = h.write().unwrap();
            g.name = "half".into();
            panic!("user code fails before setting the age");
        }));
        assert!(caught.is_err());
        let refused = s.commit().expect_err("a torn object is not flushed");
        assert_eq!(refused.kind(), ErrorKind::InvalidState);
        assert!(refused.to_string().contains("panic"), "{refused}");
        assert_eq!(names(&engine)?, ["whole"]);
        s.refresh(&h)?;
        assert_eq!(h.read()?.name, "whole");
        s.commit()?;
        // A pending object torn the same way is refused until it leaves the session.
        let p = s.add(Customer::new("pending", 1))?;
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let mut g = p.write().unwrap();
            g.name = "pend".into();
            panic!("again");
        }));
        assert_eq!(kind(s.flush()), ErrorKind::InvalidState);
        s.expunge(&p)?;
        works_again(&engine, &s, "after")
    }
}

// ---- 3. ownership ------------------------------------------------------------------------

both! {
    // R8: a change made while detached (after expunge) is written once the object is added
    // to another session; the first session's flush does not write it.
    fn r8_a_detached_change_is_written_by_the_adopting_session(db) -> Result<()> {
        let engine = db.engine();
        let a = engine.session();
        let h = a.add(Customer::new("original", 1))?;
        a.commit()?;
        h.read()?;
        h.write()?.age = 2; // in A's list of written objects
        a.expunge(&h)?;
        h.write()?.name = "changed while detached".into();
        let b = engine.session();
        b.add_handle(&h)?;
        assert!(b.is_modified(&h)?);
        a.commit()?;
        assert_eq!(names(&engine)?, ["original"], "A no longer owns it");
        b.commit()?;
        let row = engine.connect()?.find::<Customer>(&h.read()?.id.unwrap().into())?.unwrap();
        assert_eq!((row.name.as_str(), row.age), ("changed while detached", 2));
        Ok(())
    }

    // R8: a change made in session A, which then closes, is written by session B.
    fn r8_a_change_left_in_a_closed_session_is_written_by_the_next(db) -> Result<()> {
        let engine = db.engine();
        let a = engine.session();
        let h = a.add(Customer::new("original", 1))?;
        a.commit()?;
        h.write()?.name = "changed in A".into();
        a.close()?;
        assert_eq!(h.state(), ObjectState::Detached);
        assert_eq!(names(&engine)?, ["original"]);
        let b = engine.session();
        b.add_handle(&h)?;
        b.commit()?;
        assert_eq!(names(&engine)?, ["changed in A"]);
        Ok(())
    }
}

// R8: a handle is never in two sessions, even when two threads add it at once.
#[test]
fn r8_two_sessions_adding_one_handle_at_once_one_wins() -> Result<()> {
    let engine = orm_tests::memory_engine();
    for _ in 0..200 {
        let h = Handle::new(Customer::new("contested", 1));
        let (a, b) = (engine.session(), engine.session());
        let (ra, rb) = std::thread::scope(|scope| {
            let ta = scope.spawn(|| a.add_handle(&h).is_ok());
            let tb = scope.spawn(|| b.add_handle(&h).is_ok());
            (ta.join().unwrap(), tb.join().unwrap())
        });
        assert!(ra ^ rb, "exactly one session takes it (a: {ra}, b: {rb})");
        assert_eq!(a.contains(&h), ra);
        assert_eq!(b.contains(&h), rb);
    }
    Ok(())
}

// ---- 4. user code and locks ----------------------------------------------------------------

both! {
    // R9: a bulk call's iterator reads objects that commit expired: they reload instead of
    // hanging on the session's lock.
    fn r9_a_bulk_iterator_may_read_expired_objects(db) -> Result<()> {
        let engine = db.engine();
        watchdog(60, move || -> Result<()> {
            let s = engine.session();
            let handles = s.add_all((0..2500).map(|i| Customer::new(&format!("c{i}"), i)))?;
            s.commit()?;
            assert!(handles[0].is_expired());
            let copies = handles.iter().map(|h| {
                let c = h.read().expect("reload inside the iterator");
                Mapping::from([Customer::NAME.to(format!("copy of {}", c.name)), Customer::AGE.to(c.age)])
            });
            let r = s.bulk_insert_mappings(copies, BulkOptions::default())?;
            assert_eq!(r.inserted, 2500);
            s.commit()?;
            assert_eq!(count(&engine)?, 5000);
            Ok(())
        })
    }

    // R9: a call back into the session from inside with_connection fails instead of hanging.
    fn r9_with_connection_cannot_deadlock_its_own_thread(db) -> Result<()> {
        let engine = db.engine();
        watchdog(30, move || -> Result<()> {
            let s = engine.session();
            let inner = s.with_connection(|_| s.query::<Customer>().count());
            assert_eq!(kind(inner), ErrorKind::InvalidState);
            s.add(Customer::new("after", 1))?;
            s.commit()?;
            assert_eq!(s.query::<Customer>().count()?, 1);
            Ok(())
        })
    }

    // R9: a thread that holds a read guard and then calls the session, while another
    // thread flushes that object: neither waits for ever.
    fn r9_a_reader_calling_the_session_during_a_flush_does_not_deadlock(db) -> Result<()> {
        let engine = db.engine();
        watchdog(60, move || -> Result<()> {
            let s = engine.session();
            let hs = s.add_all((0..200).map(|i| Customer::new(&format!("c{i}"), i)))?;
            s.commit()?;
            for _ in 0..20 {
                for h in &hs {
                    h.write()?.age += 1;
                }
                std::thread::scope(|scope| -> Result<()> {
                    let reader = scope.spawn(|| -> Result<()> {
                        let g = hs[100].read()?;
                        let _ = s.get::<Customer>(g.id.unwrap())?;
                        drop(g);
                        Ok(())
                    });
                    // Either the flush got there first, or it saw the reader's guard.
                    match s.flush() {
                        Ok(()) => {}
                        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidState, "{e}"),
                    }
                    reader.join().unwrap()
                })?;
            }
            s.commit()?;
            let conn = engine.connect()?;
            let ages = conn.query_i64("SELECT sum(age) FROM customer", &[])?;
            assert_eq!(ages, (0..200).sum::<i64>() + 20 * 200, "every change is written");
            Ok(())
        })
    }

    // R9: a change written from another thread while a flush runs is in that flush or still
    // dirty after it, never lost.
    fn r9_a_change_made_during_a_flush_is_never_lost(db) -> Result<()> {
        let engine = db.engine();
        watchdog(120, move || -> Result<()> {
            let s = engine.session();
            let hs = s.add_all((0..2000).map(|i| Customer::new(&format!("c{i}"), i)))?;
            s.commit()?;
            for h in &hs {
                h.read()?;
            }
            let target = hs[1999].clone();
            for round in 0..10 {
                for h in &hs[..1999] {
                    h.write()?.age += 1;
                }
                let wanted = 10_000 + round;
                std::thread::scope(|scope| {
                    scope.spawn(|| {
                        // Retried until the flush lets it through (it refuses while writing).
                        loop {
                            if let Ok(mut g) = target.write() {
                                g.age = wanted;
                                break;
                            }
                            std::thread::yield_now();
                        }
                    });
                    s.flush()
                })?;
                s.commit()?;
                let row = engine.connect()?.find::<Customer>(&target.key().unwrap())?.unwrap();
                assert_eq!(row.age, wanted, "round {round}: the concurrent change was lost");
            }
            Ok(())
        })
    }
}

// ---- SQLite faults: a full disk, a read-only database, a deleted file, a busy COMMIT ------

// R6: SQLITE_FULL fails the statement; with a small page cache (pages spilled to the file
// mid-transaction) SQLite rolls the whole transaction back. Either way the session must not
// go on as if the earlier flush were still there, nor hand its keys to new rows.
#[test]
fn r6_sqlite_full_disk_never_lets_commit_lie() -> Result<()> {
    for cache_pages in [2000, 1] {
        let tmp = TempDb::new();
        let engine = Engine::sqlite_file(tmp.path())?;
        engine.create_table::<Customer>()?;
        let s = engine.session();
        s.add(Customer::new("committed", 1))?;
        s.commit()?;
        s.with_connection(|c| {
            c.execute(&format!("PRAGMA cache_size = {cache_pages}"), &[])
                .map(drop)
        })?;
        let pages = s.with_connection(|c| c.query_i64("PRAGMA page_count", &[]))?;
        let early = s.add_all((0..20).map(|i| Customer::new(&format!("early {i}"), i)))?;
        s.flush()?;
        s.with_connection(|c| {
            c.query_values(&format!("PRAGMA max_page_count = {}", pages + 3), &[])
                .map(drop)
        })?;
        let big = "x".repeat(4000);
        let full = if cache_pages == 1 {
            // Row by row, as SQLite's own tests fill a disk: the spill fails mid-transaction.
            (0..200)
                .find_map(|i| {
                    s.execute(
                        "INSERT INTO customer (name, age) VALUES (?, 1)",
                        &[Value::Text(format!("{big}{i}"))],
                    )
                    .err()
                })
                .expect("the disk is full")
        } else {
            let huge = s.add_all((0..200).map(|i| Customer::new(&format!("{big}{i}"), i)))?;
            let full = s.flush().expect_err("the disk is full");
            for h in &huge {
                s.expunge(h)?;
            }
            full
        };
        assert!(full.to_string().contains("full"), "{full}");
        match s.commit() {
            Ok(()) => {
                assert_eq!(
                    cache_pages, 2000,
                    "SQLite rolled back: commit must not say Ok"
                );
                assert_eq!(count(&engine)?, 21, "the earlier flush is committed");
            }
            Err(e) => {
                assert_eq!(cache_pages, 1, "{e}");
                assert_eq!(e.kind(), ErrorKind::PendingRollback, "{e} (after {full})");
                assert_eq!(names(&engine)?, ["committed"]);
                s.rollback()?;
                assert!(early.iter().all(|h| h.state() == ObjectState::Transient));
            }
        }
        s.with_connection(|c| {
            c.query_values("PRAGMA max_page_count = 1000000", &[])
                .map(drop)
        })?;
        // Keys handed out afterwards are each row's own, never an earlier object's.
        let later = s.add_all((0..5).map(|i| Customer::new(&format!("later {i}"), i)))?;
        s.commit()?;
        let conn = engine.connect()?;
        for h in &later {
            let v = h.read()?;
            assert_eq!(
                conn.find::<Customer>(&v.id.unwrap().into())?.unwrap().name,
                v.name
            );
        }
    }
    Ok(())
}

both! {
    // R6: the transaction ends behind the session's back (here a raw ROLLBACK, as SQLite does
    // itself after some failures): commit must not report the flushed work as saved.
    fn r6_a_transaction_ended_behind_the_session_is_not_committed(db) -> Result<()> {
        let engine = db.engine();
        let s = engine.session();
        let h = s.add(Customer::new("flushed", 1))?;
        s.flush()?;
        s.with_connection(|c| c.execute("ROLLBACK", &[]).map(drop))?;
        assert_eq!(kind(s.commit()), ErrorKind::PendingRollback);
        assert_eq!(count(&engine)?, 0);
        s.rollback()?;
        assert_eq!(h.state(), ObjectState::Transient);
        works_again(&engine, &s, "after")
    }
}

/// A SQLite file holding one committed row named "before", its engine and a session.
fn file_with_a_row() -> Result<(TempDb, Engine, Session)> {
    let tmp = TempDb::new();
    let engine = Engine::sqlite_file(tmp.path())?;
    engine.create_table::<Customer>()?;
    let s = engine.session();
    s.add(Customer::new("before", 1))?;
    s.commit()?;
    Ok((tmp, engine, s))
}

// R6: a read-only database: the write fails, nothing is written, and the session recovers.
#[test]
fn r6_sqlite_read_only_database() -> Result<()> {
    let (_tmp, engine, s) = file_with_a_row()?;
    s.with_connection(|c| c.execute("PRAGMA query_only = ON", &[]).map(drop))?;
    s.add(Customer::new("refused", 1))?;
    assert!(s.commit().is_err());
    s.rollback()?;
    assert_eq!(names(&engine)?, ["before"]);
    s.with_connection(|c| c.execute("PRAGMA query_only = OFF", &[]).map(drop))?;
    works_again(&engine, &s, "after")
}

// R6: the database file is deleted under an open session: a commit must not report work
// as saved that no later connection can find.
#[test]
fn r6_sqlite_deleted_file_never_lets_commit_lie() -> Result<()> {
    let (tmp, _engine, s) = file_with_a_row()?;
    std::fs::remove_file(tmp.path()).expect("delete the file");
    s.add(Customer::new("after delete", 1))?;
    // SQLite refuses writes to a file that was unlinked (SQLITE_READONLY_DBMOVED).
    let refused = s
        .commit()
        .expect_err("the write must not go to a deleted file");
    assert!(refused.to_string().contains("readonly"), "{refused}");
    s.rollback()?;
    let reopened = Connection::open_sqlite(tmp.path())?;
    let tables = reopened.query_i64(
        "SELECT count(*) FROM sqlite_master WHERE name = 'customer'",
        &[],
    )?;
    assert_eq!(tables, 0, "a new, empty file is at the path");
    Ok(())
}

// R6: COMMIT fails with SQLITE_BUSY (a reader holds its lock): the session refuses to go on
// until rollback, and the core `atomic` path leaves no transaction open behind it.
#[test]
fn r6_sqlite_busy_commit() -> Result<()> {
    let tmp = TempDb::new();
    let mut options = SqliteOptions::default();
    options.busy_timeout = Duration::from_millis(200);
    let engine = Engine::sqlite_file_with(tmp.path(), options.clone())?;
    engine.create_table::<Customer>()?;
    let reader = Connection::open_sqlite_with(tmp.path(), &options)?;
    let s = engine.session();
    s.add(Customer::new("waiting", 1))?;
    s.flush()?;
    // A read transaction holds a SHARED lock: COMMIT cannot get its EXCLUSIVE one.
    reader.execute("BEGIN", &[])?;
    reader.query_i64("SELECT count(*) FROM customer", &[])?;
    assert_eq!(kind(s.commit()), ErrorKind::Busy);
    assert_eq!(kind(s.commit()), ErrorKind::PendingRollback);
    s.rollback()?;
    reader.execute("COMMIT", &[])?;
    assert_eq!(count(&engine)?, 0);
    works_again(&engine, &s, "after")?;

    let conn = Connection::open_sqlite_with(tmp.path(), &options)?;
    reader.execute("BEGIN", &[])?;
    reader.query_i64("SELECT count(*) FROM customer", &[])?;
    assert_eq!(
        kind(conn.insert_many([Customer::new("core", 2)])),
        ErrorKind::Busy
    );
    assert!(
        !conn.in_transaction(),
        "the failed COMMIT's transaction is not left open"
    );
    reader.execute("COMMIT", &[])?;
    conn.insert_many([Customer::new("core again", 3)])?;
    assert_eq!(names(&engine)?, ["after", "core again"]);
    Ok(())
}

// ---- PostgreSQL faults: a lost connection ---------------------------------------------------

fn terminate(db: &TestDb, s: &Session) -> Result<()> {
    let pid = s.with_connection(|c| c.query_i64("SELECT pg_backend_pid()::int8", &[]))?;
    let killer = db.connect();
    killer.query_values(
        &db.sql("SELECT pg_terminate_backend(?::int4)"),
        &[Value::I64(pid)],
    )?;
    // Wait until the server has ended it.
    for _ in 0..100 {
        let alive = killer.query_i64(
            &db.sql("SELECT count(*) FROM pg_stat_activity WHERE pid = ?::int4"),
            &[Value::I64(pid)],
        )?;
        if alive == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

// R6: the backend is terminated between the flush and COMMIT: commit fails, a retry never
// says Ok, and after rollback the session works on a new connection.
#[test]
fn r6_postgres_connection_lost_before_commit() -> Result<()> {
    let Some(db) = TestDb::postgres() else {
        return Ok(());
    };
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("lost", 1))?;
    s.flush()?;
    terminate(&db, &s)?;
    assert!(s.commit().is_err());
    assert_eq!(kind(s.commit()), ErrorKind::PendingRollback);
    assert_eq!(count(&engine)?, 0);
    s.rollback()?;
    assert_eq!(h.state(), ObjectState::Transient);
    works_again(&engine, &s, "after")
}

// R6: the backend is terminated in the middle of a streamed COPY.
#[test]
fn r6_postgres_connection_lost_mid_copy() -> Result<()> {
    let Some(db) = TestDb::postgres() else {
        return Ok(());
    };
    let engine = db.engine();
    let s = engine.session();
    s.add(Customer::new("flushed", 1))?;
    s.flush()?;
    let pid = s.with_connection(|c| c.query_i64("SELECT pg_backend_pid()::int8", &[]))?;
    let killer = db.connect();
    let rows = (0..50_000).map(|i| {
        if i == 15_000 {
            killer
                .query_values(
                    &db.sql("SELECT pg_terminate_backend(?::int4)"),
                    &[Value::I64(pid)],
                )
                .expect("terminate");
            std::thread::sleep(Duration::from_millis(200));
        }
        Mapping::from([Customer::NAME.to(format!("m{i}")), Customer::AGE.to(i)])
    });
    assert!(
        s.bulk_insert_mappings(rows, BulkOptions::default())
            .is_err()
    );
    assert_eq!(kind(s.commit()), ErrorKind::PendingRollback);
    assert_eq!(count(&engine)?, 0);
    s.rollback()?;
    works_again(&engine, &s, "after")
}

// R6: the backend is terminated while COMMIT runs (a deferred trigger makes COMMIT take a
// second): commit fails and the row is not there.
#[test]
fn r6_postgres_connection_lost_during_commit() -> Result<()> {
    let Some(db) = TestDb::postgres() else {
        return Ok(());
    };
    let engine = db.engine();
    let conn = engine.connect()?;
    conn.execute(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$",
        &[],
    )?;
    conn.execute(
        "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON customer DEFERRABLE INITIALLY DEFERRED \
         FOR EACH ROW EXECUTE FUNCTION slow_commit()",
        &[],
    )?;
    engine.release(conn);
    let s = engine.session();
    s.add(Customer::new("committing", 1))?;
    s.flush()?;
    let pid = s.with_connection(|c| c.query_i64("SELECT pg_backend_pid()::int8", &[]))?;
    let killer = db.connect();
    let committed = std::thread::scope(|scope| {
        let commit = scope.spawn(|| s.commit());
        std::thread::sleep(Duration::from_millis(500));
        killer
            .query_values(
                &db.sql("SELECT pg_terminate_backend(?::int4)"),
                &[Value::I64(pid)],
            )
            .expect("terminate");
        commit.join().unwrap()
    });
    assert!(committed.is_err(), "the server never confirmed the commit");
    assert_eq!(kind(s.commit()), ErrorKind::PendingRollback);
    assert_eq!(count(&engine)?, 0);
    s.rollback()?;
    db.connect().execute("DROP TRIGGER slow ON customer", &[])?;
    works_again(&engine, &s, "after")
}

both! {
    // R7: a panic in the iterator of bulk_update_mappings after several chunks.
    fn r7_a_panicking_bulk_update_iterator_writes_nothing(db) -> Result<()> {
        let engine = db.engine();
        let s = engine.session();
        let hs = s.add_all((0..12_000).map(|i| Customer::new(&format!("c{i}"), 0)))?;
        s.commit()?;
        let ids: Vec<i64> = hs.iter().map(|h| h.read().unwrap().id.unwrap()).collect();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            s.bulk_update_mappings(ids.iter().enumerate().map(|(i, id)| {
                assert!(i != 11_000, "user iterator fails");
                Mapping::from([Customer::ID.to(Some(*id)), Customer::AGE.to(7)])
            }))
        }));
        assert!(caught.is_err());
        s.commit()?;
        let conn = engine.connect()?;
        assert_eq!(conn.query_i64("SELECT count(*) FROM customer WHERE age = 7", &[])?, 0);
        Ok(())
    }

    // R7: a panic inside a with_connection closure that wrote: the session finds the
    // transaction as the driver reports it, and rollback puts everything back.
    fn r7_a_panic_in_with_connection_is_recoverable(db) -> Result<()> {
        let engine = db.engine();
        let s = engine.session();
        s.add(Customer::new("flushed", 1))?;
        s.flush()?;
        let sql = db.sql("INSERT INTO customer (name, age) VALUES (?, 2)");
        let caught = catch_unwind(AssertUnwindSafe(|| {
            s.with_connection(|c| {
                c.execute(&sql, &[Value::Text("raw".into())])?;
                panic!("user code fails");
                #[allow(unreachable_code)]
                Ok(())
            })
        }));
        assert!(caught.is_err());
        s.rollback()?;
        assert_eq!(count(&engine)?, 0);
        works_again(&engine, &s, "after")
    }
}

// ---- a user type whose conversion panics on demand ----------------------------------------

thread_local! {
    /// The value whose conversion panics on this thread, if any.
    static ARMED: Cell<Option<i64>> = const { Cell::new(None) };
}

/// An integer whose conversion to SQL panics when it equals the armed value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fuse(i64);

impl Field for Fuse {
    const SQL_TYPE: SqlType = SqlType::I64;
    fn to_sql(&self) -> ValueRef<'_> {
        assert!(
            ARMED.get() != Some(self.0),
            "conversion of {} fails",
            self.0
        );
        ValueRef::I64(self.0)
    }
    fn from_sql(value: ValueRef<'_>) -> std::result::Result<Self, FromSqlError> {
        i64::from_sql(value).map(Fuse)
    }
}

#[derive(Entity, Debug, Clone)]
#[orm(table = "fused")]
struct Fused {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    n: Fuse,
}

fn create_fused(_db: &TestDb, engine: &Engine) -> Result<()> {
    engine.create_table::<Fused>()
}

/// Runs `f` with conversions of `at` panicking; returns the panic, if any.
fn arm<T>(at: i64, f: impl FnOnce() -> T) -> std::thread::Result<T> {
    ARMED.set(Some(at));
    let r = catch_unwind(AssertUnwindSafe(f));
    ARMED.set(None);
    r
}
