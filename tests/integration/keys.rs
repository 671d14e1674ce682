//! R10: every key handed to an object or returned by a bulk call is its own row's, proven
//! per row, on tables the ORM did not create too (triggers, keys that are not rowid aliases,
//! keys that do not fit their field).

use orm_session::prelude::*;
use orm_tests::{TestDb, backends};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "item")]
struct Item {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
}

/// Every handle's key selects a row with that handle's name.
fn assert_own_rows(db: &TestDb, handles: &[Handle<Item>]) -> Result<()> {
    let conn = db.connect();
    for h in handles {
        let v = h.read()?;
        let key = v.id.expect("a key");
        let row = conn.find::<Item>(&key.into())?;
        assert_eq!(
            row.map(|r| r.name),
            Some(v.name.clone()),
            "key {key} is not {}'s row",
            v.name
        );
    }
    Ok(())
}

// R10: triggers that write to the same table while rows are inserted (one inserts a log row,
// one deletes a row) cannot shift keys: each object gets the key of its own row.
#[test]
fn r10_sqlite_triggers_writing_the_table_do_not_shift_keys() -> Result<()> {
    let db = TestDb::sqlite();
    let conn = db.connect();
    conn.execute(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        &[],
    )?;
    conn.execute(
        "CREATE TRIGGER log_temp AFTER INSERT ON item WHEN NEW.name LIKE 'temp%' \
         BEGIN INSERT INTO item (name) VALUES ('log of ' || NEW.name); END",
        &[],
    )?;
    conn.execute(
        "CREATE TRIGGER drop_temp AFTER INSERT ON item WHEN NEW.name LIKE 'log of %' \
         BEGIN DELETE FROM item WHERE id = NEW.id - 1; END",
        &[],
    )?;
    let engine = db.engine();
    let s = engine.session();
    // The rows of "temp…" objects are deleted by the trigger: keep loaded values readable.
    s.set_expire_on_commit(false);
    let names = ["temp", "b", "c", "temp 2", "d", "last"];
    let hs = s.add_all(names.iter().map(|n| Item {
        id: None,
        name: (*n).into(),
    }))?;
    s.commit()?;
    let kept: Vec<_> = hs
        .iter()
        .filter(|h| !h.read().unwrap().name.starts_with("temp"))
        .cloned()
        .collect();
    assert_own_rows(&db, &kept)?;
    // bulk_insert_mappings with keys back: the same proof.
    let r = s.bulk_insert_mappings(
        ["temp 3", "e", "f"]
            .iter()
            .map(|n| Mapping::from([Item::NAME.to((*n).to_owned())])),
        BulkOptions::default().return_defaults(true),
    )?;
    s.commit()?;
    for (key, name) in r.keys.iter().zip(["temp 3", "e", "f"]).skip(1) {
        assert_eq!(
            conn.find::<Item>(key)?.map(|r| r.name).as_deref(),
            Some(name)
        );
    }
    Ok(())
}

// R10: a table whose integer key is not a rowid alias (written by a migration tool as
// `id BIGINT PRIMARY KEY`): SQLite generates nothing there, so the rows must get real keys,
// each object its own.
#[test]
fn r10_sqlite_key_that_is_not_a_rowid_alias() -> Result<()> {
    let db = TestDb::sqlite();
    let conn = db.connect();
    conn.execute(
        "CREATE TABLE item (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        &[],
    )?;
    let engine = db.engine();
    let s = engine.session();
    let hs = s.add_all(["a", "b", "c"].iter().map(|n| Item {
        id: None,
        name: (*n).into(),
    }))?;
    s.commit()?;
    assert_own_rows(&db, &hs)?;
    // The bulk path without keys back writes keys too, never NULL.
    s.bulk_insert_mappings(
        (0..250).map(|i| Mapping::from([Item::NAME.to(format!("m{i}"))])),
        BulkOptions::default(),
    )?;
    s.commit()?;
    conn.insert_many((0..5).map(|i| Item {
        id: None,
        name: format!("core {i}"),
    }))?;
    assert_eq!(
        conn.query_i64("SELECT count(*) FROM item WHERE id IS NULL", &[])?,
        0
    );
    assert_eq!(
        conn.query_i64("SELECT count(DISTINCT id) FROM item", &[])?,
        258
    );
    Ok(())
}

// R10: keys that end exactly at i64::MAX fit and are accepted; the next one does not exist.
#[test]
fn r10_sqlite_keys_up_to_i64_max() -> Result<()> {
    let db = TestDb::sqlite();
    let engine = db.engine();
    engine.create_table::<Item>()?;
    let conn = db.connect();
    conn.execute(
        "INSERT INTO item (id, name) VALUES (?, 'near the end')",
        &[Value::I64(i64::MAX - 3)],
    )?;
    let s = engine.session();
    let hs = s.add_all(["x", "y", "z"].iter().map(|n| Item {
        id: None,
        name: (*n).into(),
    }))?;
    s.commit()?;
    assert_eq!(hs[2].read()?.id, Some(i64::MAX));
    assert_own_rows(&db, &hs)?;
    s.add(Item {
        id: None,
        name: "one too many".into(),
    })?;
    let e = s.commit().expect_err("no key is left");
    assert!(e.to_string().contains("exhausted"), "{e}");
    Ok(())
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "small")]
struct Small {
    #[orm(primary_key, auto_increment)]
    id: Option<i32>,
    name: String,
}

/// Creates the `small` table with 64-bit keys on the server, so that the next key the
/// database generates is `next` (on SQLite, by a row `top` just below it).
fn small_table(db: &TestDb, next: i64) -> Result<orm_session::PooledConnection> {
    let conn = db.connect();
    if db.is_postgres() {
        conn.execute(
            "CREATE TABLE small (id bigint PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \
             name text NOT NULL)",
            &[],
        )?;
        conn.execute(
            &format!("ALTER TABLE small ALTER COLUMN id RESTART WITH {next}"),
            &[],
        )?;
    } else if db.is_mysql() {
        conn.execute(
            &format!(
                "CREATE TABLE small (id bigint AUTO_INCREMENT PRIMARY KEY, name text NOT NULL) \
                 AUTO_INCREMENT = {next}"
            ),
            &[],
        )?;
    } else {
        conn.execute(
            "CREATE TABLE small (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            &[],
        )?;
        conn.execute(
            "INSERT INTO small (id, name) VALUES (?, 'top')",
            &[Value::I64(next - 1)],
        )?;
    }
    Ok(conn)
}

backends! {
    // R10, B2: `bulk_save` with `return_defaults` whose second generated key does not fit the
    // key field: the call fails with nothing written, and the object that got its key
    // before the failure has none again (no key of a row that is not there).
    fn r10_a_key_that_does_not_fit_leaves_no_key_in_any_saved_struct(db) -> Result<()> {
        let conn = small_table(db, 2_147_483_647)?;
        let engine = db.engine();
        let s = engine.session();
        let mut rows: Vec<Small> = ["fits", "too far", "further"]
            .into_iter()
            .map(|n| Small { id: None, name: n.into() })
            .collect();
        let e = s
            .bulk_save(rows.iter_mut(), BulkOptions::default().return_defaults(true))
            .expect_err("the second key does not fit");
        assert!(e.to_string().contains("does not fit"), "{e}");
        assert!(rows.iter().all(|r| r.id.is_none()), "{rows:?}");
        s.commit()?;
        assert_eq!(
            conn.query_i64("SELECT count(*) FROM small WHERE name <> 'top'", &[])?,
            0,
            "nothing of the call is written"
        );
        Ok(())
    }

    // R10: a generated key that does not fit the key field fails the flush before commit:
    // nothing is written and the object keeps no key.
    fn r10_a_key_past_i32_max_fails_the_flush(db) -> Result<()> {
        let conn = small_table(db, 2_147_483_648)?;
        let engine = db.engine();
        let s = engine.session();
        let h = s.add(Small { id: None, name: "too far".into() })?;
        let e = s.commit().expect_err("the key does not fit");
        assert!(e.to_string().contains("does not fit"), "{e}");
        assert_eq!(h.read()?.id, None);
        assert_eq!(h.state(), ObjectState::Pending);
        s.rollback()?;
        assert_eq!(
            conn.query_i64("SELECT count(*) FROM small WHERE name = 'too far'", &[])?,
            0
        );
        // A key that cannot exist in an i32 column is simply not found, on every backend.
        assert!(s.get_by_key::<Small>(Key::Int(1_i64 << 40))?.is_none());
        assert!(conn.find::<Small>(&Key::Int(1 << 40))?.is_none());
        Ok(())
    }
}
