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

/// Runs `work(engine, t)` on `threads` threads, each with its own clone of the engine, and
/// fails with the first error any of them returned ("database is locked" included).
fn on_threads(
    engine: &Engine,
    threads: i32,
    work: impl Fn(Engine, i32) -> Result<()> + Clone + Send + 'static,
) -> Result<()> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (engine, work) = (engine.clone(), work.clone());
            std::thread::spawn(move || work(engine, t))
        })
        .collect();
    for h in handles {
        h.join().expect("thread")?;
    }
    Ok(())
}

// S12, R5
#[test]
fn s12_four_threads_commit_1000_objects_each_into_one_file() -> Result<()> {
    let db = TempDb::new();
    let engine = Engine::sqlite_file(db.path())?;
    engine.create_table::<Customer>()?;
    on_threads(&engine, 4, |engine, t| {
        let s = engine.session();
        for batch in 0..10 {
            s.add_all((0..100).map(|i| Customer::new(&format!("t{t}-{batch}-{i}"), t)))?;
            s.commit()?;
        }
        Ok(())
    })?;
    let conn = Connection::open_sqlite(db.path())?;
    assert_eq!(conn.count::<Customer>(None)?, 4000);
    for t in 0..4 {
        assert_eq!(conn.count(Some(Customer::AGE.eq(t)))?, 1000);
    }
    Ok(())
}

/// Eight threads, each with its own session on one SQLite file, each committing `commits`
/// small changes (an insert, and an update of a shared row). Returns the rows found.
fn eight_writers(options: SqliteOptions, commits: i32) -> Result<()> {
    let db = TempDb::new();
    let engine = Engine::sqlite_file_with(db.path(), options)?;
    engine.create_table::<Customer>()?;
    let s = engine.session();
    s.add(Customer::new("shared", 0))?;
    s.commit()?;
    on_threads(&engine, 8, move |engine, t| {
        let s = engine.session();
        s.set_expire_on_commit(false);
        for i in 0..commits {
            s.add(Customer::new(&format!("t{t}-{i}"), t))?;
            s.execute(
                "UPDATE customer SET age = age + 1 WHERE name = 'shared'",
                &[],
            )?;
            s.commit()?;
        }
        Ok(())
    })?;
    let conn = Connection::open_sqlite(db.path())?;
    assert_eq!(conn.count::<Customer>(None)?, 8 * commits as u64 + 1);
    for t in 0..8 {
        assert_eq!(
            conn.count(Some(Customer::AGE.eq(t).and(Customer::NAME.ne("shared"))))?,
            commits as u64
        );
    }
    let shared = conn.query_i64("SELECT age FROM customer WHERE name = 'shared'", &[])?;
    assert_eq!(
        shared,
        i64::from(8 * commits),
        "every committed update is there"
    );
    assert_eq!(
        conn.query_values("PRAGMA integrity_check", &[])?,
        vec![vec![Value::Text("ok".into())]]
    );
    Ok(())
}

fn r5_commits() -> i32 {
    std::env::var("ORM_R5_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

// R5
#[test]
fn r5_eight_threads_commit_on_one_file_in_wal_mode() -> Result<()> {
    let mut options = SqliteOptions::default();
    options.wal = true;
    eight_writers(options, r5_commits())
}

// R5
#[test]
fn r5_eight_threads_commit_on_one_file_with_a_rollback_journal() -> Result<()> {
    eight_writers(SqliteOptions::default(), r5_commits())
}

// S12
#[test]
fn s12_dropping_a_session_while_a_guard_is_alive_does_not_block() -> Result<()> {
    let engine = orm_tests::memory_engine();
    let s = engine.session();
    let h = s.add(Customer::new("held", 1))?;
    s.flush()?;
    let guard = h.write()?;
    drop(s); // rolls back; must not wait for the guard
    drop(guard);
    assert_eq!(h.state(), ObjectState::Transient);
    Ok(())
}
