//! The edges: versioned rows on every path, identifiers that need escaping everywhere, empty
//! calls, and entities with nothing to insert but their key.

use orm_session::prelude::*;
use orm_tests::{SqlLog, backends};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "setting")]
struct Setting {
    #[orm(primary_key)]
    name: String,
    value: i64,
    #[orm(version)]
    version: i64,
}

backends! {
    // R4: bulk_save of an entity whose key the user assigns: a stale struct never overwrites
    // another writer's change; the version is checked and bumped; a new key is inserted.
    fn r4_bulk_save_with_user_keys_checks_the_version(db) -> Result<()> {
        let engine = db.engine();
        engine.create_table::<Setting>()?;
        let s = engine.session();
        let mut mine = [Setting { name: "a".into(), value: 1, version: 1 }];
        let r = s.bulk_save(mine.iter_mut(), BulkOptions::default())?;
        assert_eq!((r.inserted, r.updated), (1, 0));
        s.commit()?;
        // Another writer changes the row: version 2.
        let other = engine.session();
        let theirs = other.get::<Setting>("a")?.expect("row");
        theirs.write()?.value = 2;
        other.commit()?;
        // Our struct still holds version 1: refused, nothing of the call written.
        mine[0].value = 3;
        let mut batch = [Setting { name: "b".into(), value: 9, version: 1 }, mine[0].clone()];
        let e = s.bulk_save(batch.iter_mut(), BulkOptions::default()).expect_err("stale");
        assert_eq!(e.kind(), ErrorKind::StaleData);
        s.rollback()?;
        let conn = db.connect();
        let row = conn.find::<Setting>(&"a".into())?.expect("row");
        assert_eq!((row.value, row.version), (2, 2), "the other writer's change stays");
        assert!(conn.find::<Setting>(&"b".into())?.is_none(), "nothing of the failed call");
        // At the current version it goes through and bumps.
        let mut fresh = [Setting { name: "a".into(), value: 4, version: 2 }];
        let r = s.bulk_save(fresh.iter_mut(), BulkOptions::default())?;
        assert_eq!(r.updated, 1);
        assert_eq!(fresh[0].version, 3);
        s.commit()?;
        let row = conn.find::<Setting>(&"a".into())?.expect("row");
        assert_eq!((row.value, row.version), (4, 3));
        Ok(())
    }

    // R3: an indexed column of a table whose name carries quotes and SQL: create_table works,
    // runs nothing but its own DDL, and the index exists.
    fn r3_index_names_are_safe_whatever_the_identifiers(db) -> Result<()> {
        #[derive(Entity, Debug, Clone, PartialEq)]
        #[orm(table = "we\"ird'; DROP TABLE customer; --")]
        struct Weird {
            #[orm(primary_key, auto_increment)]
            id: Option<i64>,
            #[orm(index, column = "co\"l'); DROP TABLE customer; --")]
            tag: String,
        }
        let engine = db.engine();
        engine.create_table::<Weird>()?;
        engine.create_table::<Weird>()?; // IF NOT EXISTS, index included
        let s = engine.session();
        s.add(Weird { id: None, tag: "x".into() })?;
        s.commit()?;
        assert_eq!(s.query::<Weird>().filter(Weird::TAG.eq("x")).count()?, 1);
        // The customer table is still there.
        assert_eq!(s.query::<orm_tests::model::Customer>().count()?, 0);
        let conn = db.connect();
        let indexes = if db.is_postgres() {
            conn.query_i64("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'ix_we_ird%'", &[])?
        } else if db.is_mysql() {
            conn.query_i64(
                "SELECT count(DISTINCT index_name) FROM information_schema.statistics \
                 WHERE table_schema = DATABASE() AND index_name LIKE 'ix_we_ird%'",
                &[],
            )?
        } else {
            conn.query_i64(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_we_ird%'",
                &[],
            )?
        };
        assert_eq!(indexes, 1);
        Ok(())
    }

    // An empty bulk call sends nothing: no transaction, no write lock held.
    fn empty_bulk_calls_send_nothing(db) -> Result<()> {
        use orm_tests::model::Customer;
        let engine = db.engine();
        let s = engine.session();
        let (log, _g) = SqlLog::start();
        let r = s.bulk_insert_mappings(std::iter::empty::<Mapping<Customer>>(), BulkOptions::default())?;
        assert_eq!(r.inserted, 0);
        let mut none: Vec<Customer> = Vec::new();
        s.bulk_save(none.iter_mut(), BulkOptions::default())?;
        assert_eq!(s.bulk_update_mappings(std::iter::empty::<Mapping<Customer>>())?, 0);
        assert_eq!(log.statements(), Vec::<String>::new());
        // Another connection can write at once.
        let other = db.connect();
        other.insert_many([Customer::new("other", 1)])?;
        assert!(!s.with_connection(|c| Ok(c.in_transaction()))?);
        Ok(())
    }
}

/// An entity with many optional columns: each subset of them is a statement shape of its own.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "wide")]
struct Wide {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    c0: Option<i64>,
    c1: Option<i64>,
    c2: Option<i64>,
    c3: Option<i64>,
    c4: Option<i64>,
    c5: Option<i64>,
    c6: Option<i64>,
    c7: Option<i64>,
    c8: Option<i64>,
    c9: Option<i64>,
    c10: Option<i64>,
    c11: Option<i64>,
    c12: Option<i64>,
    c13: Option<i64>,
}

// The statement-text cache stays bounded however many shapes a program makes.
#[test]
fn the_statement_cache_is_bounded() -> Result<()> {
    let conn = Connection::open_sqlite_memory()?;
    conn.create_table::<Wide>()?;
    for set in 1..=10_000_u32 {
        let row: Vec<(String, Value)> = (0..14)
            .filter(|b| set & (1 << b) != 0)
            .map(|b| (format!("c{b}"), Value::I64(i64::from(b))))
            .collect();
        let mapping = Mapping::<Wide>::from_names(row)?;
        conn.insert_many([mapping])?;
    }
    let (texts, bytes) = orm_core::statement_cache();
    eprintln!("statement cache after 10,000 distinct shapes: {texts} texts, {bytes} bytes");
    assert!(texts <= 1024, "{texts} texts cached");
    assert_eq!(conn.count::<Wide>(None)?, 10_000);
    Ok(())
}

backends! {
    // An entity that is only its generated key: `DEFAULT VALUES`, each object its own key.
    fn an_entity_of_only_a_key_inserts_default_values(db) -> Result<()> {
        #[derive(Entity, Debug, Clone, PartialEq)]
        #[orm(table = "ticket")]
        struct Ticket {
            #[orm(primary_key, auto_increment)]
            id: Option<i64>,
        }
        let engine = db.engine();
        engine.create_table::<Ticket>()?;
        let s = engine.session();
        let hs = s.add_all((0..50).map(|_| Ticket { id: None }))?;
        s.commit()?;
        let mut keys: Vec<i64> = hs.iter().map(|h| h.read().unwrap().id.unwrap()).collect();
        keys.dedup();
        assert_eq!(keys.len(), 50);
        let r = s.bulk_insert_mappings((0..40).map(|_| Mapping::<Ticket>::new()), BulkOptions::default())?;
        assert_eq!(r.inserted, 40);
        s.commit()?;
        assert_eq!(s.query::<Ticket>().count()?, 90);
        Ok(())
    }

    // OFFSET without LIMIT works on every backend.
    fn offset_without_limit(db) -> Result<()> {
        use orm_tests::model::Customer;
        let engine = db.engine();
        let s = engine.session();
        s.add_all((0..5).map(|i| Customer::new(&format!("c{i}"), i)))?;
        s.commit()?;
        let rest = s.query::<Customer>().order_by(Customer::AGE, Order::Asc).offset(3).all()?;
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].read()?.age, 3);
        Ok(())
    }
}

backends! {
    // Bound values stay out of messages: a unique violation does not quote the row (the
    // server's detail is there on request), nor does a value that does not fit its column.
    fn error_messages_carry_no_bound_values(db) -> Result<()> {
        use orm_tests::model::Customer;
        let engine = db.engine();
        let s = engine.session();
        s.add(Customer::new("secret-name-42", 7))?;
        s.commit()?;
        s.add(Customer::new("secret-name-42", 8))?;
        let e = s.commit().expect_err("unique");
        assert_eq!(e.kind(), ErrorKind::UniqueViolation);
        assert!(!e.to_string().contains("secret-name-42"), "{e}");
        if !db.is_sqlite() {
            let detail = e.server_detail().expect("the server's detail");
            assert!(detail.contains("secret-name-42"), "{detail}");
        }
        s.rollback()?;
        let rows = [Mapping::<Customer>::from_names([
            ("name", Value::I64(987_654_321)),
            ("age", Value::I64(1)),
        ])];
        let e = rows[0].as_ref().map(drop).expect_err("a number for a text column");
        assert!(!e.to_string().contains("987654321"), "{e}");
        Ok(())
    }
}

// Passwords never appear in errors or in an engine's Debug, whatever the form of the string.
#[test]
fn passwords_stay_out_of_errors_and_debug() {
    for url in [
        "postgres://someone:hunter2@127.0.0.1:1/test",
        "postgres://someone@127.0.0.1:1/test?password=hunter2",
        "host=127.0.0.1 port=1 user=someone password=hunter2",
        "host=127.0.0.1 port=1 user=someone password='hunter2 x'",
    ] {
        let err = Engine::postgres(url).expect_err("nothing listens on port 1");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{url}: {shown}");
        assert!(shown.contains("127.0.0.1:1"), "{url}: {shown}");
    }
}
