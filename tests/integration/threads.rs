//! S12 threads and drop.

use orm_session::prelude::*;
use orm_tests::TempDb;
use orm_tests::model::Customer;

fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
fn assert_send<T: Send>() {}

// S12
#[test]
fn s12_engine_is_shared_and_sessions_are_send() {
    assert_send_sync_clone::<Engine>();
    assert_send::<Session>();
    assert_send::<Handle<Customer>>();
}

// S12
#[test]
fn s12_dropping_a_session_with_uncommitted_work_rolls_back() -> Result<()> {
    let db = TempDb::new();
    let engine = Engine::sqlite_file(db.path())?;
    engine.create_table::<Customer>()?;
    {
        let s = engine.session();
        s.add(Customer::new("flushed", 1))?;
        s.flush()?;
        s.add(Customer::new("pending", 2))?;
        // dropped here: no panic, no flush, the transaction rolls back
    }
    let conn = Connection::open_sqlite(db.path())?;
    assert_eq!(conn.count::<Customer>(None)?, 0);
    // The write lock was released: another session can write at once.
    let s = engine.session();
    s.add(Customer::new("after", 1))?;
    s.commit()?;
    assert_eq!(conn.count::<Customer>(None)?, 1);
    Ok(())
}

// S12, R5
#[test]
fn s12_four_threads_commit_1000_objects_each_into_one_file() -> Result<()> {
    let db = TempDb::new();
    let engine = Engine::sqlite_file(db.path())?;
    engine.create_table::<Customer>()?;
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
    let conn = Connection::open_sqlite(db.path())?;
    assert_eq!(conn.count::<Customer>(None)?, 4000);
    for t in 0..4 {
        assert_eq!(conn.count(Some(Customer::AGE.eq(t)))?, 1000);
    }
    Ok(())
}
