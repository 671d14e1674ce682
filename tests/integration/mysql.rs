//! MySQL and MariaDB faults: a killed connection (before COMMIT, in the middle of a bulk
//! insert, in the middle of a stream), a deadlock the server breaks by rolling one
//! transaction back, a lock wait timeout, and the server's error codes as error kinds. Each
//! asserts what the database holds afterwards.

use std::time::Duration;

use orm_session::prelude::*;
use orm_tests::model::Customer;
use orm_tests::{TestDb, watchdog};

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    r.expect_err("an error").kind()
}

fn count(engine: &Engine) -> Result<i64> {
    engine
        .connect()?
        .query_i64("SELECT count(*) FROM customer", &[])
}

/// Kills the session's connection from another one (`KILL CONNECTION`).
fn kill(db: &TestDb, s: &Session) -> Result<()> {
    let id = s.with_connection(|c| c.query_i64("SELECT CONNECTION_ID()", &[]))?;
    db.connect()
        .execute(&format!("KILL CONNECTION {id}"), &[])?;
    Ok(())
}

/// A session that works after the fault: a new row commits and is there.
fn works_again(engine: &Engine, s: &Session) -> Result<()> {
    let h = s.add(Customer::new("after", 1))?;
    s.commit()?;
    let key = h.key().expect("a key");
    let row = engine.connect()?.find::<Customer>(&key)?.expect("the row");
    assert_eq!(row.name, "after");
    Ok(())
}

// R6: the connection is killed between the flush and COMMIT: commit fails, a retry never
// says Ok, nothing is written, and after rollback the session works on a new connection.
#[test]
#[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
fn r6_mysql_connection_lost_before_commit() -> Result<()> {
    let Some(db) = TestDb::mysql() else {
        return Ok(());
    };
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("lost", 1))?;
    s.flush()?;
    kill(&db, &s)?;
    let e = s.commit().expect_err("the connection is gone");
    assert!(
        matches!(e.kind(), ErrorKind::Connection | ErrorKind::PendingRollback),
        "{e}"
    );
    assert_eq!(kind(s.commit()), ErrorKind::PendingRollback);
    assert_eq!(count(&engine)?, 0);
    s.rollback()?;
    assert_eq!(h.state(), ObjectState::Transient);
    works_again(&engine, &s)
}

// R6, B7: the connection is killed while a bulk insert streams rows: the call fails and
// writes nothing.
#[test]
#[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
fn r6_mysql_connection_lost_mid_bulk_insert() -> Result<()> {
    let Some(db) = TestDb::mysql() else {
        return Ok(());
    };
    let engine = db.engine();
    let s = engine.session();
    s.add(Customer::new("flushed", 1))?;
    s.flush()?;
    let id = s.with_connection(|c| c.query_i64("SELECT CONNECTION_ID()", &[]))?;
    let killer = db.connect();
    let rows = (0..50_000).map(|i| {
        if i == 15_000 {
            killer
                .execute(&format!("KILL CONNECTION {id}"), &[])
                .expect("kill");
            std::thread::sleep(Duration::from_millis(100));
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
    works_again(&engine, &s)
}

// R6, Q4: the connection is killed between two pages of a stream: the next page fails, and
// after a rollback the session works on a new connection.
#[test]
#[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
fn r6_mysql_connection_lost_mid_stream() -> Result<()> {
    let Some(db) = TestDb::mysql() else {
        return Ok(());
    };
    let engine = db.engine();
    let s = engine.session();
    s.add_all((0..30).map(|i| Customer::new(&format!("s{i}"), i)))?;
    s.commit()?;
    let mut stream = s.query::<Customer>().yield_per(10).iter()?;
    assert_eq!(stream.next_page()?.map(|p| p.len()), Some(10));
    kill(&db, &s)?;
    assert!(
        stream.next_page().is_err(),
        "the cursor died with its connection"
    );
    drop(stream);
    s.rollback()?;
    assert_eq!(s.query::<Customer>().count()?, 30);
    works_again(&engine, &s)
}

// R6, R9: two sessions lock two rows in opposite orders; InnoDB breaks the deadlock by
// rolling one transaction back whole. That session's error says so, its commit never says
// Ok, none of its writes remain, and the other session commits. Under a watchdog.
#[test]
#[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
fn r6_mysql_deadlock_rolls_one_transaction_back_and_commit_tells() -> Result<()> {
    let Some(db) = TestDb::mysql() else {
        return Ok(());
    };
    let engine = db.engine();
    let setup = engine.session();
    setup.add_all([Customer::new("a", 0), Customer::new("b", 0)])?;
    setup.commit()?;
    watchdog(60, move || -> Result<()> {
        let barrier = std::sync::Barrier::new(2);
        let (first, second) = std::thread::scope(|scope| {
            let run = |mine: &'static str, theirs: &'static str| {
                let engine = engine.clone();
                let barrier = &barrier;
                scope.spawn(move || -> Result<Result<()>> {
                    let s = engine.session();
                    let me = s
                        .query::<Customer>()
                        .filter(Customer::NAME.eq(mine))
                        .one()?;
                    let other = s
                        .query::<Customer>()
                        .filter(Customer::NAME.eq(theirs))
                        .one()?;
                    me.write()?.age = 1;
                    s.flush()?;
                    barrier.wait();
                    other.write()?.age = 2;
                    let outcome = s.flush().and_then(|()| s.commit());
                    if outcome.is_err() {
                        // The deadlock's victim: its commit never says Ok afterwards.
                        assert_eq!(kind(s.commit()), ErrorKind::PendingRollback);
                        s.rollback()?;
                    }
                    Ok(outcome)
                })
            };
            let a = run("a", "b");
            let b = run("b", "a");
            (a.join().expect("a"), b.join().expect("b"))
        });
        let (first, second) = (first?, second?);
        let (won, lost) = match (&first, &second) {
            (Ok(()), Err(e)) | (Err(e), Ok(())) => (if first.is_ok() { "a" } else { "b" }, e),
            other => panic!("exactly one session must lose the deadlock: {other:?}"),
        };
        assert_eq!(lost.kind(), ErrorKind::PendingRollback, "{lost}");
        assert!(lost.to_string().contains("1213"), "{lost}");
        // The winner wrote both rows; nothing of the loser remains.
        let conn = engine.connect()?;
        let ages: Vec<Vec<Value>> =
            conn.query_values("SELECT name, age FROM customer ORDER BY name", &[])?;
        let (mine, theirs) = if won == "a" { (1, 2) } else { (2, 1) };
        assert_eq!(
            ages,
            vec![
                vec![Value::Text("a".into()), Value::I64(mine)],
                vec![Value::Text("b".into()), Value::I64(theirs)],
            ]
        );
        Ok(())
    })
}

// R9: a row locked by another transaction past `innodb_lock_wait_timeout` is `Busy`; the
// statement alone is undone, and the transaction's earlier work commits.
#[test]
#[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
fn r9_mysql_lock_wait_timeout_is_busy_and_keeps_the_transaction() -> Result<()> {
    let Some(db) = TestDb::mysql() else {
        return Ok(());
    };
    let engine = db.engine();
    let s = engine.session();
    s.add_all([Customer::new("held", 0), Customer::new("free", 0)])?;
    s.commit()?;
    let holder = db.connect();
    holder.begin()?;
    holder.execute("UPDATE customer SET age = 9 WHERE name = 'held'", &[])?;
    s.with_connection(|c| {
        c.execute("SET SESSION innodb_lock_wait_timeout = 1", &[])
            .map(drop)
    })?;
    let free = s
        .query::<Customer>()
        .filter(Customer::NAME.eq("free"))
        .one()?;
    free.write()?.age = 5;
    s.flush()?;
    let held = s
        .query::<Customer>()
        .filter(Customer::NAME.eq("held"))
        .one()?;
    held.write()?.age = 7;
    let e = s.flush().expect_err("the row is locked");
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    holder.rollback()?;
    // The earlier flush is still part of the open transaction.
    held.write()?.age = 0;
    s.commit()?;
    let conn = engine.connect()?;
    assert_eq!(
        conn.query_i64("SELECT age FROM customer WHERE name = 'free'", &[])?,
        5
    );
    assert_eq!(
        conn.query_i64("SELECT age FROM customer WHERE name = 'held'", &[])?,
        0
    );
    Ok(())
}

// The server's error codes as error kinds: 1062 unique, 1452 foreign key, 1048 not null;
// the message quotes no bound value, the server's whole text is the detail.
#[test]
#[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
fn mysql_error_codes_are_mapped_and_values_stay_out_of_messages() -> Result<()> {
    let Some(db) = TestDb::mysql() else {
        return Ok(());
    };
    let conn = db.connect();
    conn.execute("CREATE TABLE parent (id bigint PRIMARY KEY)", &[])?;
    conn.execute(
        "CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL, \
         FOREIGN KEY (parent_id) REFERENCES parent (id))",
        &[],
    )?;
    conn.execute("INSERT INTO parent (id) VALUES (1)", &[])?;
    let fk = conn
        .execute("INSERT INTO child (id, parent_id) VALUES (1, 4242)", &[])
        .unwrap_err();
    assert_eq!(fk.kind(), ErrorKind::ForeignKeyViolation, "{fk}");
    let null = conn
        .execute(
            "INSERT INTO child (id, parent_id) VALUES (?, ?)",
            &[Value::I64(2), Value::Null],
        )
        .unwrap_err();
    assert_eq!(null.kind(), ErrorKind::NotNullViolation, "{null}");
    conn.insert_many([Customer::new("secret-7781", 1)])?;
    let dup = conn
        .insert_many([Customer::new("secret-7781", 2)])
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::UniqueViolation, "{dup}");
    assert!(!dup.to_string().contains("secret-7781"), "{dup}");
    assert!(
        dup.server_detail()
            .is_some_and(|d| d.contains("secret-7781"))
    );
    assert_eq!(conn.query_i64("SELECT count(*) FROM child", &[])?, 0);
    assert_eq!(conn.count::<Customer>(None)?, 1);
    Ok(())
}

// The session's settings: ANSI quotes, strict mode (a value too long is refused, not cut),
// and text compared as stored (binary collation, no trailing-space padding).
#[test]
#[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
fn mysql_text_is_strict_and_compared_as_stored() -> Result<()> {
    let Some(db) = TestDb::mysql() else {
        return Ok(());
    };
    let engine = db.engine();
    let s = engine.session();
    s.add_all([
        Customer::new("Ada", 1),
        Customer::new("ada", 2),
        Customer::new("ada ", 3),
    ])?;
    s.commit()?;
    assert_eq!(
        s.query::<Customer>()
            .filter(Customer::NAME.eq("ada"))
            .count()?,
        1
    );
    let conn = db.connect();
    conn.execute(
        "CREATE TABLE short (id bigint PRIMARY KEY, code varchar(3) NOT NULL)",
        &[],
    )?;
    let e = conn
        .execute(
            "INSERT INTO short (id, code) VALUES (1, ?)",
            &[Value::Text("toolong".into())],
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TypeMismatch, "{e}");
    assert_eq!(conn.query_i64("SELECT count(*) FROM short", &[])?, 0);
    Ok(())
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "texts")]
struct Texts {
    #[orm(primary_key)]
    id: i64,
    s: String,
    os: Option<String>,
    b: Vec<u8>,
}

// A load takes each text over from the driver's row instead of copying it: whatever the
// text (empty, multi-byte, NULL), the entity reads what the row holds; bytes that are not
// UTF-8 stay in the row for the field's own read, which names the column; raw SQL reads the
// same rows through the other reads of a row.
#[test]
#[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
fn mysql_loads_take_text_over_and_still_name_bad_bytes() -> Result<()> {
    let Some(db) = TestDb::mysql() else {
        return Ok(());
    };
    let conn = db.connect();
    // VARBINARY text columns hold any bytes, as a table the ORM did not create may.
    conn.execute(
        "CREATE TABLE texts (id bigint PRIMARY KEY, s varbinary(64) NOT NULL, \
         os varbinary(64), b blob NOT NULL)",
        &[],
    )?;
    conn.execute(
        "INSERT INTO texts VALUES (1, 'plain', NULL, X'00FF'), (2, '', 'ünïcødé ✓', X''), \
         (3, 'x', 'y', X'C3')",
        &[],
    )?;
    let mut rows = conn.select_all::<Texts>()?;
    rows.sort_by_key(|r| r.id);
    let expected = [
        (1, "plain", None, vec![0, 255]),
        (2, "", Some("ünïcødé ✓"), vec![]),
        (3, "x", Some("y"), vec![0xC3]),
    ];
    assert_eq!(rows.len(), 3);
    for (row, (id, s, os, b)) in rows.iter().zip(expected) {
        assert_eq!(
            (row.id, row.s.as_str(), row.os.as_deref(), &row.b[..]),
            (id, s, os, &b[..])
        );
    }
    // The session's load (the identity map path) reads the same.
    let engine = db.engine();
    let s = engine.session();
    let loaded = s.query::<Texts>().all()?;
    assert_eq!(loaded.len(), 3);
    for h in &loaded {
        let v = h.read()?.clone();
        assert!(rows.contains(&v), "{v:?}");
    }
    // Raw SQL reads the rows through the row's other reads: by name, in another order…
    let mut by_name = Vec::new();
    conn.query_entities_each::<Texts>(
        "SELECT b, os, 'extra' AS note, s, id FROM texts WHERE id = 2",
        &[],
        |t| {
            by_name.push(t);
            Ok(())
        },
    )?;
    assert_eq!(by_name, [rows[1].clone()]);
    // … and as values as sent (a binary column's as bytes).
    assert_eq!(
        conn.query_values("SELECT id, os FROM texts WHERE id = 2", &[])?,
        [vec![
            Value::I64(2),
            Value::Blob("ünïcødé ✓".as_bytes().to_vec())
        ]]
    );
    // Bytes that are not UTF-8, in a text field and in an optional one.
    for (set, column) in [("s = X'FF'", "`s`"), ("os = X'C3A9C3'", "`os`")] {
        conn.execute("DELETE FROM texts", &[])?;
        conn.execute("INSERT INTO texts VALUES (4, 'a', 'b', X'01')", &[])?;
        conn.execute(&format!("UPDATE texts SET {set}"), &[])?;
        let err = conn.select_all::<Texts>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conversion, "{set}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(column) && msg.contains("UTF-8"),
            "{set}: {msg}"
        );
    }
    Ok(())
}
