//! R4: optimistic concurrency with `#[orm(version)]`.

use orm_session::prelude::*;
use orm_tests::TestDb;

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "account")]
pub struct Account {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    pub owner: String,
    pub balance: i64,
    #[orm(version)]
    pub version: i64,
}

fn engine(db: &TestDb) -> Result<((), Engine)> {
    let engine = db.engine();
    engine.create_table::<Account>()?;
    let s = engine.session();
    s.add(Account {
        id: None,
        owner: "ada".into(),
        balance: 100,
        version: 1,
    })?;
    s.commit()?;
    Ok(((), engine))
}

// R4
orm_tests::backends! {
fn r4_every_flushed_update_checks_and_bumps_the_version(db) -> Result<()> {
    let (_db, engine) = engine(db)?;
    let s = engine.session();
    let a = s.get::<Account>(1)?.expect("row");
    let (log, _g) = orm_tests::SqlLog::start();
    a.write()?.balance = 150;
    s.commit()?;
    assert_eq!(
        log.starting_with("UPDATE"),
        [
            db.sql(r#"UPDATE "account" SET "balance" = ?, "version" = "version" + (1) WHERE "id" = ? AND "version" = ?"#)
        ]
    );
    assert_eq!(a.read()?.version, 2);
    Ok(())
}
}

// R4
orm_tests::backends! {
fn r4_two_sessions_updating_one_row_lose_no_update(db) -> Result<()> {
    let (_db, engine) = engine(db)?;
    let first = engine.session();
    let second = engine.session();
    let a1 = first.get::<Account>(1)?.expect("row");
    let a2 = second.get::<Account>(1)?.expect("row");
    assert_eq!((a1.read()?.version, a2.read()?.version), (1, 1));

    a1.write()?.balance += 10;
    first.commit()?;

    a2.write()?.balance += 20;
    let err = second.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    let msg = err.to_string();
    assert!(
        msg.contains("Account") && msg.contains("key 1") && msg.contains("UPDATE"),
        "{msg}"
    );

    // Nothing of the failed flush was written; after rollback the session reloads and the
    // change can be made again on the fresh row.
    second.rollback()?;
    assert_eq!(a2.read()?.balance, 110);
    a2.write()?.balance += 20;
    second.commit()?;
    let row = engine.connect()?.find::<Account>(&1.into())?.expect("row");
    assert_eq!(
        (row.balance, row.version),
        (130, 3),
        "both updates are there"
    );
    Ok(())
}
}

// R4
orm_tests::backends! {
fn r4_many_writers_with_retries_lose_no_increment(db) -> Result<()> {
    let (_db, engine) = engine(db)?;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let engine = engine.clone();
            std::thread::spawn(move || -> Result<u32> {
                let s = engine.session();
                let mut conflicts = 0;
                for _ in 0..50 {
                    loop {
                        let a = s.get::<Account>(1)?.expect("row");
                        a.write()?.balance += 1;
                        match s.commit() {
                            Ok(()) => break,
                            Err(e) if e.kind() == ErrorKind::StaleData => {
                                conflicts += 1;
                                s.rollback()?;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(conflicts)
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in threads {
        conflicts += t.join().expect("thread")?;
    }
    let row = engine.connect()?.find::<Account>(&1.into())?.expect("row");
    eprintln!(
        "R4: 4 writers x 50 increments, {conflicts} stale-data conflicts retried, balance {}",
        row.balance
    );
    assert_eq!(
        row.balance,
        100 + 4 * 50,
        "no lost update ({conflicts} conflicts retried)"
    );
    assert_eq!(row.version, 1 + 4 * 50);
    Ok(())
}
}

// R4
orm_tests::backends! {
fn r4_a_stale_delete_fails_and_writes_nothing(db) -> Result<()> {
    let (_db, engine) = engine(db)?;
    let s = engine.session();
    let a = s.get::<Account>(1)?.expect("row");
    let other = engine.connect()?;
    other.execute("UPDATE account SET balance = 0, version = version + 1", &[])?;
    s.delete(&a)?;
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    assert!(err.to_string().contains("DELETE"), "{err}");
    s.rollback()?;
    assert_eq!(other.count::<Account>(None)?, 1);
    Ok(())
}
}

// R4: the version a delete checks is read from a free object: a write guard alive on a
// versioned object stops the flush, in a batch or alone, and nothing of it is written; once
// the guard is gone, the deletes go through.
orm_tests::backends! {
fn r4_a_delete_under_a_write_guard_fails_whole(db) -> Result<()> {
    let (_db, engine) = engine(db)?;
    let s = engine.session();
    s.add(Account { id: None, owner: "bob".into(), balance: 5, version: 1 })?;
    s.commit()?;
    let all = s.query::<Account>().order_by(Account::ID, Order::Asc).all()?;
    for batch in [&all[..], &all[..1]] {
        let writing = batch[batch.len() - 1].write()?;
        for a in batch {
            s.delete(a)?;
        }
        assert_eq!(s.commit().unwrap_err().kind(), ErrorKind::Borrowed);
        assert_eq!(engine.connect()?.count::<Account>(None)?, 2);
        drop(writing);
        s.rollback()?;
    }
    for a in &all {
        s.delete(a)?;
    }
    s.commit()?;
    assert_eq!(engine.connect()?.count::<Account>(None)?, 0);
    Ok(())
}
}

// R4
orm_tests::backends! {
fn r4_bulk_update_mappings_and_bulk_save_check_the_version(db) -> Result<()> {
    let (_db, engine) = engine(db)?;
    let s = engine.session();
    let ok = Mapping::from([
        Account::ID.to(1),
        Account::BALANCE.to(5),
        Account::VERSION.to(1),
    ]);
    assert_eq!(s.bulk_update_mappings([ok])?, 1);
    let stale = Mapping::from([
        Account::ID.to(1),
        Account::BALANCE.to(6),
        Account::VERSION.to(1),
    ]);
    assert_eq!(
        s.bulk_update_mappings([stale]).unwrap_err().kind(),
        ErrorKind::StaleData
    );
    s.commit()?;
    let mut rows: Vec<Account> = engine.connect()?.select_all()?;
    assert_eq!((rows[0].balance, rows[0].version), (5, 2));
    // Without the version in the mapping the row is still bumped: holders of version 2 are stale.
    s.bulk_update_mappings([Mapping::from([
        Account::ID.to(1),
        Account::OWNER.to("ada l."),
    ])])?;
    s.commit()?;
    rows = engine.connect()?.select_all()?;
    assert_eq!((rows[0].owner.as_str(), rows[0].version), ("ada l.", 3));

    rows[0].balance = 7;
    s.bulk_save(rows.iter_mut(), BulkOptions::default())?;
    assert_eq!(
        rows[0].version, 4,
        "bulk_save bumps the version in the struct too"
    );
    rows[0].version = 1; // pretend it was loaded long ago
    assert_eq!(
        s.bulk_save(rows.iter_mut(), BulkOptions::default())
            .unwrap_err()
            .kind(),
        ErrorKind::StaleData
    );
    s.commit()?;
    let row = engine.connect()?.find::<Account>(&1.into())?.expect("row");
    assert_eq!((row.balance, row.version), (7, 4));
    Ok(())
}
}

// R4, S3: a change of primary key is checked against the version too: another session's
// update in between makes it stale (naming the key the row had), with nothing written; a
// current one moves the row and bumps its version.
orm_tests::backends! {
fn r4_a_changed_primary_key_checks_and_bumps_the_version(db) -> Result<()> {
    let (_db, engine) = engine(db)?;
    let s = engine.session();
    let other = engine.session();
    let a = s.get::<Account>(1)?.expect("row");
    other.get::<Account>(1)?.expect("row").write()?.balance = 1;
    other.commit()?;
    a.write()?.id = Some(9);
    let e = s.commit().expect_err("the row's version moved on");
    assert_eq!(e.kind(), ErrorKind::StaleData, "{e}");
    assert!(e.to_string().contains('1'), "{e}");
    s.rollback()?;
    let conn = engine.connect()?;
    assert!(conn.find::<Account>(&Key::Int(9))?.is_none(), "nothing written");
    let a = s.get::<Account>(1)?.expect("row");
    assert_eq!(a.read()?.version, 2);
    a.write()?.id = Some(9);
    s.commit()?;
    let moved = conn.find::<Account>(&Key::Int(9))?.expect("moved");
    assert_eq!((moved.balance, moved.version), (1, 3));
    assert_eq!(a.read()?.version, 3);
    Ok(())
}
}
