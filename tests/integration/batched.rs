//! B8: the flush's batched UPDATE and DELETE (one statement per entity and set of changed
//! columns): every row accounted for, a stale row named exactly, nothing written on failure.

use orm_session::prelude::*;
use orm_tests::{SqlLog, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "account")]
pub struct Account {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    #[orm(unique)]
    pub owner: String,
    pub balance: i64,
    #[orm(version)]
    pub version: i64,
}

/// More rows than one SQLite statement takes (100 a statement).
const ROWS: i64 = 250;

fn accounts(db: &TestDb) -> Result<Engine> {
    accounts_of(db, ROWS)
}

fn accounts_of(db: &TestDb, rows: i64) -> Result<Engine> {
    let engine = db.engine();
    engine.create_table::<Account>()?;
    engine.connect()?.insert_many((0..rows).map(|i| Account {
        id: None,
        owner: format!("owner {i}"),
        balance: 100,
        version: 1,
    }))?;
    Ok(engine)
}

/// (balance, version) of every row, by key.
fn table(engine: &Engine) -> Result<Vec<(i64, i64, i64)>> {
    let mut rows: Vec<Account> = engine.connect()?.select_all()?;
    rows.sort_by_key(|a| a.id);
    Ok(rows
        .iter()
        .map(|a| (a.id.unwrap_or(0), a.balance, a.version))
        .collect())
}

fn loaded(s: &Session) -> Result<Vec<Handle<Account>>> {
    s.query::<Account>().order_by(Account::ID, Order::Asc).all()
}

// B8
orm_tests::backends! {
fn b8_a_flush_updates_many_rows_in_batches_and_bumps_every_version(db) -> Result<()> {
    let engine = accounts(db)?;
    let s = engine.session();
    let all = loaded(&s)?;
    let (log, _g) = SqlLog::start();
    for (i, h) in all.iter().enumerate() {
        h.write()?.balance = 1000 + i as i64;
    }
    s.commit()?;
    let updates = log.starting_with("UPDATE");
    let per_statement = if db.is_postgres() {
        10_000
    } else if db.is_mysql() {
        1_000
    } else {
        100
    };
    assert_eq!(updates.len(), (ROWS as usize).div_ceil(per_statement), "{updates:?}");
    let want: Vec<(i64, i64, i64)> = (0..ROWS).map(|i| (i + 1, 1000 + i, 2)).collect();
    assert!(table(&engine)? == want, "every row changed once, its version bumped");
    for h in &all {
        assert_eq!(h.read()?.version, 2, "the object holds the bumped version");
    }
    Ok(())
}
}

// B8, R4
orm_tests::backends! {
fn b8_stale_rows_in_a_batched_update_are_all_named_and_nothing_is_written(db) -> Result<()> {
    let engine = accounts(db)?;
    let s = engine.session();
    let all = loaded(&s)?;
    // Another writer changes three rows, in different statements of the batch.
    let other = engine.connect()?;
    other.execute(
        &db.sql("UPDATE account SET version = version + 1 WHERE id IN (7, 150, 240)"),
        &[],
    )?;
    other.execute(&db.sql("DELETE FROM account WHERE id = 199"), &[])?;
    let before = table(&engine)?;
    for h in &all {
        h.write()?.balance = 0;
    }
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    let message = err.to_string();
    for key in ["7", "150", "199", "240"] {
        assert!(
            message.split(|c: char| !c.is_ascii_digit()).any(|k| k == key),
            "{key} named: {message}"
        );
    }
    assert!(message.contains("UPDATE"), "{message}");
    s.rollback()?;
    assert!(table(&engine)? == before, "nothing of the flush is written");
    // The rollback expired the objects; reloaded and written again, every row still there
    // is updated.
    for h in loaded(&s)? {
        h.write()?.balance = 1;
    }
    s.commit()?;
    assert!(table(&engine)?.iter().all(|&(_, balance, _)| balance == 1));
    Ok(())
}
}

/// Rows a flush statement of each backend takes.
fn per_statement(db: &TestDb) -> usize {
    if db.is_postgres() {
        10_000
    } else if db.is_mysql() {
        1_000
    } else {
        100
    }
}

/// Whether `key` is one of the numbers in an error message.
fn names(message: &str, key: i64) -> bool {
    message
        .split(|c: char| !c.is_ascii_digit())
        .any(|k| k == key.to_string())
}

/// Another writer bumps the versions of the rows `stale`; a flush of `all`, every balance
/// changed, then fails naming each of those rows (and no row the flush left alone). After the
/// rollback nothing of it is written. Returns how many `UPDATE` statements the flush sent.
fn stale_flush(
    db: &TestDb,
    engine: &Engine,
    s: &Session,
    all: &[Handle<Account>],
    stale: &[i64],
) -> Result<usize> {
    let ids: Vec<String> = stale.iter().map(ToString::to_string).collect();
    engine.connect()?.execute(
        &db.sql(&format!(
            "UPDATE account SET version = version + 1 WHERE id IN ({})",
            ids.join(", ")
        )),
        &[],
    )?;
    let before = table(engine)?;
    for h in all {
        h.write()?.balance = 7;
    }
    let (log, _g) = SqlLog::start();
    let err = s.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    let message = err.to_string();
    for key in stale {
        assert!(names(&message, *key), "{key} named: {message}");
    }
    assert!(!names(&message, 7), "only the stale rows: {message}");
    let updates = log.starting_with("UPDATE").len();
    s.rollback()?;
    assert!(table(engine)? == before, "nothing of the flush is written");
    Ok(updates)
}

/// The first `n` rows, loaded.
fn first_rows(s: &Session, n: i64) -> Result<Vec<Handle<Account>>> {
    s.query::<Account>()
        .filter(Account::ID.le(n))
        .order_by(Account::ID, Order::Asc)
        .all()
}

// B8, R4: a flush group larger than the chunk the flush binds at a time (1,000 objects on
// SQLite, 10,000 on a server, in statements of 100, 10,000 and 1,000 rows): stale rows in
// the first and the last statement are all named, and no statement's rows are written, the
// ones sent before the stale statement included. The flush changes under half of the table:
// PostgreSQL sends it in batches too (see the next test for most of a table).
orm_tests::backends! {
fn b8_stale_rows_in_every_chunk_of_a_large_flush_are_named_and_nothing_is_written(db) -> Result<()> {
    const MANY: i64 = 12_500;
    let stale = [5, 1_500, 10_001, 12_400];
    let engine = accounts_of(db, MANY + 40_000)?;
    let other = engine.connect()?;
    let s = engine.session();
    let all = first_rows(&s, MANY)?;
    assert_eq!(
        stale_flush(db, &engine, &s, &all, &stale)?,
        (MANY as usize).div_ceil(per_statement(db)),
        "every chunk was sent, in whole statements"
    );

    // The same for deletes.
    for h in first_rows(&s, MANY)? {
        s.delete(&h)?;
    }
    other.execute(
        &db.sql("UPDATE account SET version = version + 1 WHERE id IN (5, 1500, 10001, 12400)"),
        &[],
    )?;
    let (log, _g) = SqlLog::start();
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    let message = err.to_string();
    assert!(message.contains("DELETE"), "{message}");
    for key in stale {
        assert!(names(&message, key), "{key} named: {message}");
    }
    assert_eq!(
        log.starting_with("DELETE").len(),
        (MANY as usize).div_ceil(per_statement(db)),
        "every batch was sent"
    );
    s.rollback()?;
    assert_eq!(
        other.count::<Account>(None)?,
        (MANY + 40_000) as u64,
        "nothing deleted"
    );
    Ok(())
}
}

// B8, R4: a flush that changes most of its table. On PostgreSQL its rows go in one
// statement, which the planner joins with the table in one pass: a stale row is still named
// exactly and nothing is written; once the stale objects are loaded again, every row is
// changed once and its version bumped, and deleting them all is one statement too.
orm_tests::backends! {
fn b8_a_flush_that_changes_most_of_its_table_accounts_for_every_row(db) -> Result<()> {
    const MANY: i64 = 12_500;
    let stale = [5, 6_000, 12_500];
    let engine = accounts_of(db, MANY)?;
    let other = engine.connect()?;
    let s = engine.session();
    let statements = |kind: &str, log: &SqlLog| log.starting_with(kind).len();
    // The table's count made current on PostgreSQL: a statement that failed, or one that
    // changed every row, leaves as many dead rows in the table's pages, which an estimate
    // of its size from the pages alone would count.
    let counted = || -> Result<()> {
        if db.is_postgres() {
            engine.connect()?.execute("VACUUM account", &[])?;
        }
        Ok(())
    };
    let per_flush = if db.is_postgres() {
        1
    } else {
        (MANY as usize).div_ceil(per_statement(db))
    };
    // A row that fails (the unique owner of row 1, which the flush leaves as it is) fails
    // the one statement: nothing is written.
    let all = loaded(&s)?;
    let before = table(&engine)?;
    for (i, h) in all.iter().enumerate().skip(1) {
        let mut a = h.write()?;
        a.balance = -1;
        if i == 9_000 {
            a.owner = "owner 0".into();
        }
    }
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");
    s.rollback()?;
    assert!(table(&engine)? == before, "nothing of the failed flush is written");

    // Stale rows are named, and nothing is written.
    counted()?;
    let all = loaded(&s)?;
    assert_eq!(stale_flush(db, &engine, &s, &all, &stale)?, per_flush);

    // Loaded again (the stale objects refreshed), every row changes once.
    counted()?;
    let all = loaded(&s)?;
    for (i, h) in all.iter().enumerate() {
        h.write()?.balance = 1_000 + i as i64;
    }
    let (log, _g) = SqlLog::start();
    s.commit()?;
    assert_eq!(statements("UPDATE", &log), per_flush);
    let after = table(&engine)?;
    assert_eq!(after.len(), MANY as usize);
    for (i, (id, balance, version)) in after.iter().enumerate() {
        let bumped = if stale.contains(id) { 3 } else { 2 };
        assert_eq!((*balance, *version), (1_000 + i as i64, bumped), "row {id}");
    }

    // All of them deleted: one statement on PostgreSQL as well.
    counted()?;
    for h in loaded(&s)? {
        s.delete(&h)?;
    }
    log.clear();
    s.commit()?;
    assert_eq!(statements("DELETE", &log), per_flush);
    assert_eq!(other.count::<Account>(None)?, 0);
    Ok(())
}
}

// B8, R4
orm_tests::backends! {
fn b8_a_batched_delete_names_every_stale_row_and_deletes_nothing(db) -> Result<()> {
    let engine = accounts(db)?;
    let s = engine.session();
    let all = loaded(&s)?;
    let other = engine.connect()?;
    other.execute(
        &db.sql("UPDATE account SET version = version + 1 WHERE id IN (3, 201)"),
        &[],
    )?;
    for h in &all {
        s.delete(h)?;
    }
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    let message = err.to_string();
    assert!(message.contains("DELETE"), "{message}");
    for key in ["3", "201"] {
        assert!(
            message.split(|c: char| !c.is_ascii_digit()).any(|k| k == key),
            "{key} named: {message}"
        );
    }
    s.rollback()?;
    assert_eq!(other.count::<Account>(None)?, ROWS as u64, "nothing deleted");
    let (log, _g) = SqlLog::start();
    for h in loaded(&s)? {
        s.delete(&h)?;
    }
    s.commit()?;
    assert_eq!(other.count::<Account>(None)?, 0);
    let per_statement = if db.is_postgres() {
        10_000
    } else if db.is_mysql() {
        1_000
    } else {
        100
    };
    assert_eq!(
        log.starting_with("DELETE").len(),
        (ROWS as usize).div_ceil(per_statement)
    );
    Ok(())
}
}

// B8, R1
orm_tests::backends! {
fn b8_a_failing_row_in_a_later_batch_writes_nothing_of_the_flush(db) -> Result<()> {
    let engine = accounts(db)?;
    let s = engine.session();
    let all = loaded(&s)?;
    let before = table(&engine)?;
    // Row 1 is not changed at all, so its owner stays taken.
    for (i, h) in all.iter().enumerate().skip(1) {
        let mut a = h.write()?;
        a.balance = -1;
        // Row 220 takes the unique owner of row 1, which the flush does not change: the
        // third SQLite statement (the only one on PostgreSQL) fails.
        if i == 219 {
            a.owner = "owner 0".into();
        }
    }
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");
    s.rollback()?;
    assert!(table(&engine)? == before, "nothing of the flush is written");
    Ok(())
}
}

// B8
orm_tests::backends! {
fn b8_objects_with_different_changed_columns_go_in_separate_statements(db) -> Result<()> {
    let engine = accounts(db)?;
    let s = engine.session();
    let all = loaded(&s)?;
    let (log, _g) = SqlLog::start();
    for (i, h) in all.iter().take(6).enumerate() {
        let mut a = h.write()?;
        if i % 2 == 0 {
            a.balance = 7;
        } else {
            a.owner = format!("renamed {i}");
        }
    }
    s.commit()?;
    let updates = log.starting_with("UPDATE");
    assert_eq!(updates.len(), 2, "{updates:?}");
    let rows: Vec<Account> = engine.connect()?.select_all()?;
    for a in rows.iter().filter(|a| a.id.is_some_and(|id| id <= 6)) {
        let i = a.id.unwrap_or(0) - 1;
        if i % 2 == 0 {
            assert_eq!((a.balance, a.owner.clone()), (7, format!("owner {i}")));
        } else {
            assert_eq!((a.balance, a.owner.clone()), (100, format!("renamed {i}")));
        }
        assert_eq!(a.version, 2);
    }
    Ok(())
}
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "shelf")]
pub struct Shelf {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    pub label: String,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "book")]
pub struct Book {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    #[orm(references = Shelf)]
    pub shelf_id: Option<i64>,
    pub title: String,
}

// B8, relationships: deletes go children first across entities, each entity one batch.
orm_tests::backends! {
fn b8_deleting_parents_and_children_in_one_flush_batches_each_entity_children_first(db) -> Result<()> {
    let engine = db.engine();
    engine.create_all(&[Book::META, Shelf::META])?;
    let s = engine.session();
    let shelves = s.add_all((0..30).map(|i| Shelf { id: None, label: format!("s{i}") }))?;
    s.flush()?;
    let mut books = Vec::new();
    for (i, shelf) in shelves.iter().enumerate() {
        let shelf_id = shelf.read()?.id;
        for j in 0..4 {
            books.push(s.add(Book { id: None, shelf_id, title: format!("b{i}.{j}") })?);
        }
    }
    s.commit()?;
    let (log, _g) = SqlLog::start();
    // Parents marked first: the flush still deletes the books before their shelves.
    for h in &shelves {
        s.delete(h)?;
    }
    for b in &books {
        s.delete(b)?;
    }
    s.commit()?;
    let deletes = log.starting_with("DELETE");
    assert_eq!(deletes.len(), if db.is_sqlite() { 3 } else { 2 }, "{deletes:?}");
    assert!(deletes[0].contains("\"book\""), "{deletes:?}");
    assert!(deletes.last().is_some_and(|d| d.contains("\"shelf\"")), "{deletes:?}");
    let conn = engine.connect()?;
    assert_eq!((conn.count::<Book>(None)?, conn.count::<Shelf>(None)?), (0, 0));
    Ok(())
}
}

// B4, B8
orm_tests::backends! {
fn b8_bulk_update_mappings_batches_rows_and_keeps_their_order(db) -> Result<()> {
    let engine = accounts(db)?;
    let s = engine.session();
    let (log, _g) = SqlLog::start();
    // Every row once, then row 5 again (a later value for the same key), then a key that
    // matches nothing.
    let rows = (1..=ROWS)
        .map(|id| Mapping::from([Account::ID.to(id), Account::BALANCE.to(id * 2)]))
        .chain([
            Mapping::from([Account::ID.to(5), Account::BALANCE.to(-5)]),
            Mapping::from([Account::ID.to(ROWS + 1), Account::BALANCE.to(1)]),
        ]);
    assert_eq!(s.bulk_update_mappings(rows)?, ROWS as u64 + 1);
    s.commit()?;
    let updates = log.starting_with("UPDATE");
    assert!(updates.len() < 10, "batched: {} statements", updates.len());
    let want: Vec<(i64, i64, i64)> = (1..=ROWS)
        .map(|id| (id, if id == 5 { -5 } else { id * 2 }, 3))
        .collect();
    // Version 3: bumped once per write, and row 5 twice.
    let got = table(&engine)?;
    for (g, w) in got.iter().zip(&want) {
        let version = if g.0 == 5 { 3 } else { 2 };
        assert_eq!((g.0, g.1, g.2), (w.0, w.1, version));
    }
    assert_eq!(got.len(), want.len());
    Ok(())
}
}

// B4, B8, R4
orm_tests::backends! {
fn b8_bulk_update_mappings_names_every_stale_row_and_writes_nothing(db) -> Result<()> {
    let engine = accounts(db)?;
    let s = engine.session();
    engine
        .connect()?
        .execute(&db.sql("UPDATE account SET version = 2 WHERE id IN (10, 120, 230)"), &[])?;
    let before = table(&engine)?;
    let rows = (1..=ROWS).map(|id| {
        Mapping::from([
            Account::ID.to(id),
            Account::BALANCE.to(0),
            Account::VERSION.to(1),
        ])
    });
    let err = s.bulk_update_mappings(rows).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    let message = err.to_string();
    assert!(message.contains("10, 120, 230"), "{message}");
    s.rollback()?;
    assert!(table(&engine)? == before, "nothing of the call is written");
    Ok(())
}
}

// B8: without a version column, a row is stale when it is gone; the batch's count shows a
// row short, and the rows that no longer exist are named.
orm_tests::backends! {
fn b8_rows_deleted_elsewhere_are_named_by_an_unversioned_batched_update(db) -> Result<()> {
    use orm_tests::model::Customer;
    let engine = db.engine();
    engine.connect()?.insert_many((0..ROWS).map(|i| Customer::new(&format!("c{i}"), 1)))?;
    let s = engine.session();
    let all = s.query::<Customer>().order_by(Customer::ID, Order::Asc).all()?;
    engine
        .connect()?
        .execute(&db.sql("DELETE FROM customer WHERE id IN (5, 180)"), &[])?;
    for h in &all {
        h.write()?.age = 2;
    }
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    assert!(err.to_string().contains("5, 180"), "{err}");
    s.rollback()?;
    let conn = engine.connect()?;
    assert_eq!(conn.count::<Customer>(Some(Customer::AGE.eq(2)))?, 0, "nothing written");
    assert_eq!(conn.count::<Customer>(None)?, ROWS as u64 - 2);
    Ok(())
}
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "token")]
pub struct Token {
    #[orm(primary_key, uuid_v7)]
    pub id: orm_session::Uuid,
    pub label: String,
    #[orm(version)]
    pub version: i32,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "code")]
pub struct Code {
    #[orm(primary_key)]
    pub code: String,
    pub uses: i64,
}

// B8 with keys that are not integers: UUID keys (a `uuid` column on PostgreSQL, 16 bytes on
// SQLite) come back from RETURNING and name the stale rows; text keys batch and look up
// missing rows.
orm_tests::backends! {
fn b8_uuid_and_text_keys_are_accounted_for(db) -> Result<()> {
    let engine = db.engine();
    engine.create_table::<Token>()?;
    engine.create_table::<Code>()?;
    let s = engine.session();
    let tokens = s.add_all((0..150).map(|i| Token {
        id: orm_session::Uuid::nil(),
        label: format!("t{i}"),
        version: 1,
    }))?;
    s.add_all((0..150).map(|i| Code { code: format!("code-{i:03}"), uses: 0 }))?;
    s.commit()?;
    let stale_id = tokens[120].read()?.id;
    engine.connect()?.execute(
        &db.sql("UPDATE token SET version = 5 WHERE id = ?"),
        &[Value::Uuid(stale_id)],
    )?;
    engine.connect()?.execute(&db.sql("DELETE FROM code WHERE code = 'code-007'"), &[])?;
    // Loaded again by one query (else each write reloads its expired object, and the
    // autoflush before that reload sends the previous writes one by one).
    s.query::<Token>().all()?;
    for t in &tokens {
        t.write()?.label.push('!');
    }
    let err = s.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    assert!(err.to_string().contains(&stale_id.to_string()), "{err}");
    s.rollback()?;
    // Without the stale token, every row is written; the missing code is named.
    s.query::<Token>().all()?;
    for (i, t) in tokens.iter().enumerate() {
        if i != 120 {
            t.write()?.label.push('!');
        }
    }
    s.commit()?;
    let conn = engine.connect()?;
    assert_eq!(conn.count::<Token>(Some(Token::LABEL.like("%!")))?, 149);
    let codes = s.query::<Code>().all()?;
    assert_eq!(codes.len(), 149);
    engine.connect()?.execute(&db.sql("DELETE FROM code WHERE code = 'code-008'"), &[])?;
    for c in &codes {
        c.write()?.uses += 1;
    }
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleData);
    assert!(err.to_string().contains("code-008"), "{err}");
    s.rollback()?;
    assert_eq!(conn.count::<Code>(Some(Code::USES.eq(1)))?, 0);
    Ok(())
}
}

// B8: a delete without a version to match goes in statements of up to 250,000 keys on
// PostgreSQL, whatever share of its table it is: the planner looks its keys up or scans the
// table once, where batches of 10,000 would each do so again. 12,000 of 45,000 rows go in
// one statement and the others stay. A row that refuses to go (a trigger raises) fails that
// statement, and nothing is deleted.
orm_tests::backends! {
fn b8_a_delete_without_versions_is_one_statement_on_postgres(db) -> Result<()> {
    use orm_tests::model::Customer;
    let engine = db.engine();
    let s = engine.session();
    s.add_all((0..45_000).map(|i| Customer::new(&format!("c{i}"), i % 7)))?;
    s.commit()?;
    let all = s
        .query::<Customer>()
        .order_by(Customer::ID, Order::Asc)
        .all()?;
    let doomed: Vec<&Handle<Customer>> = all.iter().step_by(3).take(12_000).collect();
    let per_delete = if db.is_postgres() {
        1
    } else {
        12_000_usize.div_ceil(per_statement(db))
    };
    if db.is_postgres() {
        let conn = engine.connect()?;
        conn.execute(
            "CREATE FUNCTION keep_row() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'row kept'; END $$",
            &[],
        )?;
        conn.execute(
            "CREATE TRIGGER keep BEFORE DELETE ON customer FOR EACH ROW \
             WHEN (OLD.name = 'c30000') EXECUTE FUNCTION keep_row()",
            &[],
        )?;
        for h in &doomed {
            s.delete(h)?;
        }
        let (log, _g) = SqlLog::start();
        let err = s.commit().unwrap_err();
        assert!(err.to_string().contains("row kept"), "{err}");
        assert_eq!(log.starting_with("DELETE").len(), 1);
        s.rollback()?;
        assert_eq!(conn.count::<Customer>(None)?, 45_000, "nothing deleted");
        conn.execute("DROP TRIGGER keep ON customer", &[])?;
        engine.release(conn);
    }
    for h in &doomed {
        s.delete(h)?;
    }
    let (log, _g) = SqlLog::start();
    s.commit()?;
    assert_eq!(log.starting_with("DELETE").len(), per_delete);
    let conn = engine.connect()?;
    assert_eq!(conn.count::<Customer>(None)?, 33_000);
    for h in &doomed {
        assert_eq!(h.state(), ObjectState::Detached);
    }
    let left: Vec<Customer> = conn.select_all()?;
    assert!(
        left.iter()
            .all(|c| c.name[1..].parse::<usize>().is_ok_and(|i| i % 3 != 0 || i >= 36_000)),
        "only the deleted rows went"
    );
    Ok(())
}
}
