//! Q4: streaming queries (`query.yield_per(n).iter()`): pages through a cursor, merged into
//! the identity map, with memory bounded by the page.

use orm_session::prelude::*;
use orm_tests::SqlLog;
use orm_tests::model::Customer;

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "stream_author", has_many(books = Book::AUTHOR))]
struct Author {
    #[orm(primary_key)]
    id: i64,
    name: String,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "stream_book")]
struct Book {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Author)]
    author_id: i64,
}

/// `customer` with a description that must be there.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "customer")]
struct Strict {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
    #[orm(column = "descr")]
    description: String,
    age: i32,
}

fn fill(db: &orm_tests::TestDb, n: i32) -> Result<()> {
    db.connect()
        .insert_many((0..n).map(|i| Customer::new(&format!("c{i:05}"), i % 10)))?;
    Ok(())
}

fn ids(hs: &[Handle<Customer>]) -> Result<Vec<i64>> {
    hs.iter().map(|h| Ok(h.read()?.id.expect("key"))).collect()
}

/// Temporary tables (SQLite, MySQL) or cursors (PostgreSQL) open on the session's connection.
fn open_cursors(db: &orm_tests::TestDb, s: &Session) -> Result<i64> {
    if db.is_mysql() {
        // MariaDB lists no temporary tables anywhere: each name a connection gives its
        // cursors (`orm_cursor_1`, `orm_cursor_2`, …) is asked for in turn.
        return s.with_connection(|c| {
            Ok((1..=64)
                .filter(|n| {
                    c.query_i64(&format!("SELECT count(*) FROM orm_cursor_{n}"), &[])
                        .is_ok()
                })
                .count() as i64)
        });
    }
    let sql = if db.is_postgres() {
        // Not the portal of this query itself, which PostgreSQL lists too.
        "SELECT count(*) FROM pg_cursors WHERE name LIKE 'orm_cursor_%'"
    } else {
        "SELECT count(*) FROM temp.sqlite_master WHERE type = 'table'"
    };
    s.with_connection(|c| c.query_i64(sql, &[]))
}

orm_tests::backends! {
// Q4: a stream yields exactly what `all()` returns, in the same order, a page per round trip.
fn q4_a_stream_yields_what_all_returns_page_by_page(db) -> Result<()> {
    fill(db, 95)?;
    let s = db.engine().session();
    let query = || {
        s.query::<Customer>()
            .filter(Customer::AGE.ne(3))
            .order_by(Customer::AGE, Order::Desc)
            .order_by(Customer::ID, Order::Asc)
    };
    let all = ids(&query().all()?)?;
    assert_eq!(all.len(), 85);
    let (log, _guard) = SqlLog::start();
    let mut stream = query().yield_per(10).iter()?;
    let mut pages = Vec::new();
    let mut seen = Vec::new();
    while let Some(page) = stream.next_page()? {
        pages.push(page.len());
        seen.extend(ids(&page)?);
    }
    assert_eq!(seen, all, "same rows, same order");
    assert_eq!(pages, [10, 10, 10, 10, 10, 10, 10, 10, 5]);
    assert!(stream.next_page()?.is_none(), "over is over");
    let reads = log
        .statements()
        .iter()
        .filter(|q| q.starts_with("FETCH") || q.starts_with("SELECT t."))
        .count();
    assert_eq!(reads, 9, "one statement per page: {:?}", log.statements());
    // One by one, with limit and offset.
    let some: Vec<i64> = query()
        .offset(5)
        .limit(12)
        .yield_per(5)
        .iter()?
        .map(|h| h.and_then(|h| Ok(h.read()?.id.expect("key"))))
        .collect::<Result<_>>()?;
    assert_eq!(some, all[5..17]);
    // Nothing matches: no page; a page size of 0 reads one row at a time.
    assert!(s.query::<Customer>().filter(Customer::AGE.gt(100)).iter()?.next().is_none());
    assert_eq!(query().yield_per(0).iter()?.page_size(), 1);
    Ok(())
}

// Q4: objects already in the identity map come back as they are (their unflushed changes
// kept), or overwritten with `populate_existing`; the rest join the identity map.
fn q4_a_stream_merges_into_the_identity_map(db) -> Result<()> {
    fill(db, 30)?;
    let s = db.engine().session();
    s.set_autoflush(false);
    let held = s.query::<Customer>().filter(Customer::NAME.eq("c00007")).one()?;
    held.write()?.description = Some("unflushed".into());
    let mut found = None;
    for h in s.query::<Customer>().yield_per(4).iter()? {
        let h = h?;
        if h.read()?.name == "c00007" {
            found = Some(h);
        }
    }
    let found = found.expect("streamed");
    assert!(found == held, "the session's own object");
    assert_eq!(found.read()?.description.as_deref(), Some("unflushed"));
    let again: Vec<_> = s.query::<Customer>().populate_existing().yield_per(7).iter()?.collect::<Result<_>>()?;
    assert_eq!(again.len(), 30);
    assert_eq!(held.read()?.description, None, "populate_existing overwrote it");
    assert!(again.iter().all(|h| s.contains(h)));
    Ok(())
}

// Q4: between pages the session is free: objects read are changed and flushed, other
// queries run; the changes are committed after the stream.
fn q4_the_session_works_between_pages(db) -> Result<()> {
    fill(db, 50)?;
    let s = db.engine().session();
    let mut n = 0;
    let mut stream = s.query::<Customer>().order_by(Customer::ID, Order::Asc).yield_per(8).iter()?;
    while let Some(page) = stream.next_page()? {
        for h in &page {
            h.write()?.age += 100;
        }
        s.flush()?;
        n += page.len();
        assert_eq!(s.query::<Customer>().filter(Customer::AGE.ge(100)).count()?, n as u64);
    }
    drop(stream);
    s.commit()?;
    assert_eq!(db.connect().count(Some(Customer::AGE.ge(100)))?, 50);
    Ok(())
}

// Q4: a commit or a rollback ends the stream: its next page is a clear error, the session
// goes on, and the cursor is gone.
fn q4_commit_or_rollback_ends_the_stream(db) -> Result<()> {
    fill(db, 40)?;
    for end in ["commit", "rollback"] {
        let s = db.engine().session();
        let mut stream = s.query::<Customer>().yield_per(10).iter()?;
        assert_eq!(stream.next_page()?.map(|p| p.len()), Some(10));
        if end == "commit" { s.commit()? } else { s.rollback()? }
        let e = stream.next_page().expect_err("the cursor ended with the transaction");
        assert_eq!(e.kind(), ErrorKind::InvalidState, "{e}");
        assert!(e.to_string().contains("committed or rolled back"), "{e}");
        assert!(stream.next_page()?.is_none(), "the stream is over");
        drop(stream);
        assert_eq!(s.query::<Customer>().count()?, 40, "the session goes on after {end}");
        assert_eq!(open_cursors(db, &s)?, 0);
    }
    Ok(())
}

// Q4: a stream dropped half-way (or ended by a panic in the caller's loop) closes its cursor
// and lets the session give its connection back.
fn q4_a_stream_dropped_early_closes_its_cursor(db) -> Result<()> {
    fill(db, 40)?;
    let s = db.engine().session();
    let mut stream = s.query::<Customer>().yield_per(10).iter()?;
    assert!(stream.next().is_some());
    assert_eq!(open_cursors(db, &s)?, 1);
    drop(stream);
    assert_eq!(open_cursors(db, &s)?, 0);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for h in s.query::<Customer>().yield_per(5).iter().expect("open") {
            if h.expect("row").read().expect("read").name == "c00012" {
                panic!("the caller's code failed");
            }
        }
    }));
    assert!(caught.is_err());
    assert_eq!(open_cursors(db, &s)?, 0, "the unwinding closed the cursor");
    // Dropped inside one of the session's own calls: closed at its next call.
    let stream = s.query::<Customer>().iter()?;
    s.with_connection(move |_| {
        drop(stream);
        Ok(())
    })?;
    assert_eq!(open_cursors(db, &s)?, 0);
    Ok(())
}

// Q4: a value a field cannot take, in the middle of the stream, is an error that names its
// column; the pages before were delivered, and the session stays usable.
fn q4_a_bad_row_mid_stream_fails_that_page_only(db) -> Result<()> {
    fill(db, 30)?;
    let s = db.engine().session();
    // Every description but the 25th's is set; `Strict` reads it into a plain `String`.
    s.execute(&db.sql("UPDATE customer SET descr = 'd' WHERE name <> ?"), &[Value::Text("c00024".into())])?;
    let mut stream = s.query::<Strict>().order_by(Strict::NAME, Order::Asc).yield_per(10).iter()?;
    assert_eq!(stream.next_page()?.map(|p| p.len()), Some(10));
    assert_eq!(stream.next_page()?.map(|p| p.len()), Some(10));
    let e = stream.next_page().expect_err("row 25 cannot be read");
    assert_eq!(e.kind(), ErrorKind::Conversion, "{e}");
    assert!(e.to_string().contains("descr"), "names the column: {e}");
    assert!(stream.next_page()?.is_none(), "the stream is over");
    drop(stream);
    assert_eq!(s.query::<Customer>().filter(Customer::AGE.eq(1)).count()?, 3);
    s.commit()?;
    assert_eq!(db.connect().count(Some(Customer::DESCRIPTION.eq("d")))?, 29);
    Ok(())
}

// Q4: eager loads run per page: N authors and their books cost one statement per page and
// one per relation per page, and `related` answers without SQL.
fn q4_eager_loads_run_per_page(db) -> Result<()> {
    let engine = db.engine();
    engine.create_all(&[Author::META, Book::META])?;
    let s = engine.session();
    s.add_all((1..=12).map(|id| Author { id, name: format!("a{id}") }))?;
    s.add_all((1..=36).map(|id| Book { id, author_id: (id + 2) / 3 }))?;
    s.commit()?;
    let (log, _guard) = SqlLog::start();
    let mut books = 0;
    for a in s.query::<Author>().selectin(Author::BOOKS).yield_per(5).iter()? {
        let a = a?;
        let before = log.statements().len();
        books += s.related(&a, Author::BOOKS)?.len();
        assert_eq!(log.statements().len(), before, "no SQL for a loaded relation");
    }
    assert_eq!(books, 36);
    let statements = log.statements();
    let pages = statements.iter().filter(|q| q.starts_with("FETCH") || q.starts_with("SELECT t.")).count();
    let eager = statements.iter().filter(|q| q.starts_with("SELECT") && q.contains("stream_book")).count();
    assert_eq!((pages, eager), (3, 3), "three pages, an eager load each: {statements:?}");
    Ok(())
}

// Q4: another connection writing during the stream: the set of rows is the one of the
// stream's start (rows inserted later never appear); a row deleted meanwhile is skipped on
// SQLite and read from the cursor's snapshot on PostgreSQL.
fn q4_a_concurrent_writer_does_not_change_the_stream_s_rows(db) -> Result<()> {
    fill(db, 40)?;
    let s = db.engine().session();
    let mut stream = s.query::<Customer>().order_by(Customer::ID, Order::Asc).yield_per(10).iter()?;
    let first = stream.next_page()?.expect("a page");
    let other = db.connect();
    other.insert_many((0..20).map(|i| Customer::new(&format!("late{i}"), 99)))?;
    let deleted = other.execute(&db.sql("DELETE FROM customer WHERE name IN (?, ?)"), &[Value::Text("c00025".into()), Value::Text("c00033".into())])?;
    assert_eq!(deleted, 2);
    let mut names: Vec<String> = first.iter().map(|h| Ok(h.read()?.name.clone())).collect::<Result<_>>()?;
    for h in stream {
        names.push(h?.read()?.name.clone());
    }
    assert!(names.iter().all(|n| n.starts_with('c')), "no row inserted after the start");
    let expected = if db.is_postgres() { 40 } else { 38 };
    assert_eq!(names.len(), expected, "{names:?}");
    Ok(())
}

// Q4: a page size far beyond the result (or beyond what PostgreSQL's FETCH counts) reads
// everything in one page, without reserving memory for it.
fn q4_a_huge_page_size_reads_everything_at_once(db) -> Result<()> {
    fill(db, 12)?;
    let s = db.engine().session();
    let mut stream = s.query::<Customer>().yield_per(usize::MAX).iter()?;
    assert_eq!(stream.next_page()?.map(|p| p.len()), Some(12));
    assert!(stream.next_page()?.is_none());
    Ok(())
}

// Q4: a scan far larger than a page keeps only the objects the caller holds: the identity
// map holds the rest weakly, so memory stays at a page.
fn q4_a_long_stream_keeps_only_what_the_caller_holds(db) -> Result<()> {
    let rows: i32 = std::env::var("ORM_Q4_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000);
    fill(db, rows)?;
    let s = db.engine().session();
    let mut kept = Vec::new();
    let mut n = 0;
    let mut most = 0;
    for h in s.query::<Customer>().yield_per(500).iter()? {
        let h = h?;
        n += 1;
        if n % 5000 == 0 {
            kept.push(h);
        }
        most = most.max(s.identity_len());
    }
    assert_eq!(n, rows);
    assert!(most <= 500 + kept.len(), "at most a page and the kept objects: {most}");
    assert_eq!(s.identity_len(), kept.len());
    Ok(())
}
}
