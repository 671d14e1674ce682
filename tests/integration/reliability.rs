//! R1: a constraint violation in the middle of any write path leaves the table exactly as
//! before the call, and the session usable after `rollback()`.

use orm_session::prelude::*;
use orm_tests::model::Customer;

/// Every row, in key order, as the table holds it.
fn snapshot(engine: &Engine) -> Result<Vec<Vec<Value>>> {
    engine
        .connect()?
        .query_values("SELECT id, name, descr, age FROM customer ORDER BY id", &[])
}

/// The table emptied (keys start at 1 again), then 100 committed rows named `existing {i}`, ages 0..100.
fn seeded(db: &orm_tests::TestDb) -> Result<Engine> {
    let engine = db.engine();
    let empty = if db.is_postgres() {
        "TRUNCATE customer RESTART IDENTITY"
    } else if db.is_mysql() {
        // MySQL's TRUNCATE starts AUTO_INCREMENT over; DELETE does not.
        "TRUNCATE customer"
    } else {
        "DELETE FROM customer"
    };
    engine.connect()?.execute(empty, &[])?;
    let s = engine.session();
    s.add_all((0..100).map(|i| Customer::new(&format!("existing {i}"), i)))?;
    s.commit()?;
    Ok(engine)
}

/// Rows 0..1000 with the 500th colliding with an existing name.
fn colliding(i: i32) -> Customer {
    if i == 500 {
        Customer::new("existing 7", i)
    } else {
        Customer::new(&format!("new {i}"), i)
    }
}

type WritePath = fn(&Session) -> Result<()>;

fn paths() -> Vec<(&'static str, WritePath)> {
    vec![
        ("flush", |s| {
            let all = s
                .query::<Customer>()
                .order_by(Customer::ID, Order::Asc)
                .all()?;
            for (i, h) in all.iter().enumerate() {
                // Row 50 takes the name of row 51: a unique violation half way through.
                let name = if i == 50 {
                    "existing 51".to_owned()
                } else {
                    format!("renamed {i}")
                };
                h.write()?.name = name;
            }
            s.add(Customer::new("added", 1))?;
            s.flush()
        }),
        ("add_all", |s| {
            s.add_all((0..1000).map(colliding))?;
            s.flush()
        }),
        ("bulk_save", |s| {
            let mut objs: Vec<Customer> = (0..1000).map(colliding).collect();
            s.bulk_save(
                objs.iter_mut(),
                BulkOptions::default().return_defaults(true),
            )
            .map(drop)
        }),
        ("bulk_insert_mappings", |s| {
            let rows = (0..1000).map(|i| {
                Mapping::from([Customer::NAME.to(colliding(i).name), Customer::AGE.to(i)])
            });
            s.bulk_insert_mappings(rows, BulkOptions::default())
                .map(drop)
        }),
        ("bulk_update_mappings", |s| {
            let rows = (1..=100i64).map(|id| {
                let name = if id == 60 {
                    "existing 99".to_owned()
                } else {
                    format!("updated {id}")
                };
                Mapping::from([Customer::ID.to(id), Customer::NAME.to(name)])
            });
            s.bulk_update_mappings(rows).map(drop)
        }),
        ("core insert", |s| {
            // On the session's connection, so that it shares its transaction when one is open.
            s.with_connection(|conn| conn.insert_many((0..1000).map(colliding)).map(drop))
        }),
    ]
}

// R1
orm_tests::backends! {
fn r1_every_write_path_fails_whole_and_leaves_the_session_usable(db) -> Result<()> {
    for (name, path) in paths() {
        for in_open_transaction in [false, true] {
            let engine = seeded(db)?;
            let s = engine.session();
            let before = snapshot(&engine)?;
            if in_open_transaction {
                // Earlier work in the same transaction: kept across the failed call.
                s.add(Customer::new("earlier", -1))?;
                s.flush()?;
            }
            let err = path(&s).expect_err(name);
            assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{name}: {err}");
            if in_open_transaction {
                let seen = s.with_connection(|c| {
                    c.query_i64("SELECT count(*) FROM customer WHERE name = 'earlier'", &[])
                })?;
                assert_eq!(
                    seen, 1,
                    "{name}: the earlier flush survives the failed call"
                );
            }
            s.rollback()?;
            assert_eq!(
                snapshot(&engine)?,
                before,
                "{name}: the table is exactly as before"
            );
            // Usable again: a write and a commit go through.
            let h = s.add(Customer::new(&format!("after {name}"), 0))?;
            s.commit()?;
            assert!(h.key().is_some(), "{name}");
            assert_eq!(snapshot(&engine)?.len(), before.len() + 1, "{name}");
        }
    }
    Ok(())
}
}
