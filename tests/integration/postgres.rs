//! What only PostgreSQL has: identity-column DDL, SQLSTATE mapping, connection errors, its
//! own type checks. Skipped (with a message) without `DATABASE_URL`; mandatory in CI.

use orm_session::prelude::*;
use orm_session::{Backend, PgOptions};
use orm_tests::TestDb;
use orm_tests::model::Customer;

#[derive(Entity, Debug, Clone, PartialEq)]
pub struct Gauge {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i32>,
    #[orm(unique)]
    pub label: String,
    #[orm(index)]
    pub reading: Option<f64>,
    pub raw: Vec<u8>,
    pub tag: Option<uuid::Uuid>,
    pub on: bool,
}

fn pg() -> Option<TestDb> {
    TestDb::postgres()
}

/// One column of `information_schema.columns` for `table` in the test's schema.
fn column_facts(conn: &Connection, table: &str) -> Result<Vec<Vec<Value>>> {
    conn.query_values(
        "SELECT column_name::text, data_type::text, is_nullable::text, is_identity::text, \
         coalesce(identity_generation, '')::text \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        &[Value::Text(table.into())],
    )
}

#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn ddl_uses_identity_columns_and_native_types() -> Result<()> {
    let Some(db) = pg() else { return Ok(()) };
    let conn = db.connect();
    assert_eq!(conn.backend(), Backend::Postgres);
    conn.create_table::<Gauge>()?;
    conn.create_table::<Gauge>()?; // idempotent
    let text = |s: &str| Value::Text(s.into());
    assert_eq!(
        column_facts(&conn, "gauge")?,
        vec![
            vec![
                text("id"),
                text("integer"),
                text("NO"),
                text("YES"),
                text("BY DEFAULT")
            ],
            vec![
                text("label"),
                text("text"),
                text("NO"),
                text("NO"),
                text("")
            ],
            vec![
                text("reading"),
                text("double precision"),
                text("YES"),
                text("NO"),
                text("")
            ],
            vec![text("raw"), text("bytea"), text("NO"), text("NO"), text("")],
            vec![text("tag"), text("uuid"), text("YES"), text("NO"), text("")],
            vec![
                text("on"),
                text("boolean"),
                text("NO"),
                text("NO"),
                text("")
            ],
        ]
    );
    let indexes = conn.query_values(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() \
         AND tablename = 'gauge' ORDER BY indexname",
        &[],
    )?;
    assert!(
        indexes.contains(&vec![Value::Text("ix_gauge_reading".into())]),
        "{indexes:?}"
    );
    // The round trip of every type, through COPY (many rows) and VALUES (few).
    for n in [3, 200] {
        conn.execute("TRUNCATE gauge RESTART IDENTITY", &[])?;
        let rows: Vec<Gauge> = (0..n)
            .map(|i| Gauge {
                id: None,
                label: format!("g{i} ✓"),
                reading: (i % 2 == 0).then_some(f64::from(i) / 3.0),
                raw: vec![0, 255, u8::try_from(i % 256).unwrap_or(0)],
                tag: (i % 3 == 0).then(uuid::Uuid::now_v7),
                on: i % 2 == 1,
            })
            .collect();
        let keys = conn.insert_returning_keys(rows.iter())?;
        for (row, key) in rows.iter().zip(&keys) {
            let back = conn.find::<Gauge>(key)?.expect("row");
            assert_eq!(Gauge { id: None, ..back }, *row);
        }
    }
    Ok(())
}

#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn sqlstates_map_to_error_kinds() -> Result<()> {
    let Some(db) = pg() else { return Ok(()) };
    let conn = db.connect();
    conn.execute("CREATE TABLE parent (id bigint PRIMARY KEY)", &[])?;
    conn.execute(
        "CREATE TABLE child (id bigint PRIMARY KEY, parent bigint REFERENCES parent(id), \
         n int NOT NULL CHECK (n >= 0))",
        &[],
    )?;
    let kind = |sql: &str| {
        conn.execute(sql, &[])
            .map(|_| ErrorKind::Database)
            .unwrap_or_else(|e| e.kind())
    };
    assert_eq!(
        kind("INSERT INTO child VALUES (1, 42, 1)"),
        ErrorKind::ForeignKeyViolation
    );
    assert_eq!(
        kind("INSERT INTO child VALUES (1, NULL, NULL)"),
        ErrorKind::NotNullViolation
    );
    assert_eq!(
        kind("INSERT INTO child VALUES (1, NULL, -1)"),
        ErrorKind::CheckViolation
    );
    conn.execute("INSERT INTO parent VALUES (1)", &[])?;
    assert_eq!(
        kind("INSERT INTO parent VALUES (1)"),
        ErrorKind::UniqueViolation
    );
    assert_eq!(
        kind("SELECT 2147483647::int + 1"),
        ErrorKind::TypeMismatch,
        "numeric overflow"
    );
    assert_eq!(kind("SELEC 1"), ErrorKind::Database);
    // The message carries the server's words and the SQLSTATE, the error its statement.
    let err = conn
        .execute("INSERT INTO parent VALUES (1)", &[])
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("23505") && msg.contains("parent_pkey"),
        "{msg}"
    );
    assert_eq!(err.sql(), Some("INSERT INTO parent VALUES (1)"));
    Ok(())
}

#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn a_serialization_failure_is_reported_as_busy() -> Result<()> {
    let Some(db) = pg() else { return Ok(()) };
    let engine = db.engine();
    let a = engine.connect()?;
    let b = engine.connect()?;
    a.execute("INSERT INTO customer (name, age) VALUES ('x', 1)", &[])?;
    for c in [&a, &b] {
        c.begin()?;
        c.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", &[])?;
        c.query_values("SELECT age FROM customer", &[])?;
    }
    a.execute("UPDATE customer SET age = 2", &[])?;
    a.commit()?;
    let err = b.execute("UPDATE customer SET age = 3", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    b.rollback()?;
    assert!(!b.in_transaction());
    Ok(())
}

#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn open_errors_name_the_server_without_the_password() {
    let Some(url) = orm_tests::database_url() else {
        return;
    };
    let _ = url;
    // Nothing listens on port 1.
    let err = Engine::postgres("postgres://someone:hunter2@127.0.0.1:1/test").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("hunter2"), "the password leaked: {msg}");
    assert!(format!("{err:?}").contains("***") || !format!("{err:?}").contains("hunter2"));
}

#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn a_schema_keeps_tables_apart() -> Result<()> {
    let Some(db) = pg() else { return Ok(()) };
    let url = orm_tests::database_url().expect("url");
    let schema = format!("orm_test_apart_{}", uuid::Uuid::now_v7().simple());
    let other = Engine::postgres_with(&url, PgOptions::default().schema(schema.clone()))?;
    other.create_table::<Customer>()?;
    let s = other.session();
    s.add(Customer::new("elsewhere", 1))?;
    s.commit()?;
    assert_eq!(db.connect().count::<Customer>(None)?, 0);
    assert_eq!(other.connect()?.count::<Customer>(None)?, 1);
    drop(s);
    drop(other);
    db.connect()
        .execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"), &[])?;
    Ok(())
}

#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn a_lost_connection_is_an_error_and_the_engine_recovers() -> Result<()> {
    let Some(db) = pg() else { return Ok(()) };
    let engine = db.engine();
    let s = engine.session();
    s.add(Customer::new("before", 1))?;
    s.flush()?;
    // Kill the session's server process from another connection.
    let pid = s.with_connection(|c| c.query_i64("SELECT pg_backend_pid()", &[]))?;
    db.connect()
        .query_values("SELECT pg_terminate_backend($1::int)", &[Value::I64(pid)])?;
    let err = s.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    s.rollback()?; // forgets the session's state; the dead connection is not pooled again
    drop(s);
    let s = engine.session();
    let h = s.add(Customer::new("after", 2))?;
    s.commit()?;
    assert!(h.key().is_some());
    let names: Vec<String> = engine
        .connect()?
        .select_all::<Customer>()?
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        ["after"],
        "the uncommitted row died with its connection"
    );
    Ok(())
}

#[test]
fn nan_and_infinities_round_trip_on_postgres() -> Result<()> {
    #[derive(Entity, Debug, Clone, PartialEq)]
    struct Reading {
        #[orm(primary_key)]
        id: i64,
        v: f64,
    }
    let Some(db) = pg() else { return Ok(()) };
    let conn = db.connect();
    conn.create_table::<Reading>()?;
    let values = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::MIN_POSITIVE,
    ];
    conn.insert_many(
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| Reading { id: i as i64, v }),
    )?;
    for (i, v) in values.iter().enumerate() {
        let back = conn.find::<Reading>(&Key::Int(i as i64))?.expect("row").v;
        assert_eq!(
            back.to_bits(),
            v.to_bits(),
            "{v}: PostgreSQL keeps every f64 bit"
        );
    }
    Ok(())
}

#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn raw_transaction_statements_are_followed() -> Result<()> {
    let Some(db) = pg() else { return Ok(()) };
    let conn = db.connect();
    assert!(!conn.in_transaction());
    conn.execute("begin", &[])?;
    assert!(conn.in_transaction());
    conn.execute("SAVEPOINT a", &[])?;
    conn.execute("ROLLBACK TO SAVEPOINT a", &[])?;
    assert!(
        conn.in_transaction(),
        "rolling back to a savepoint keeps the transaction"
    );
    conn.execute("ROLLBACK", &[])?;
    assert!(!conn.in_transaction());
    conn.begin()?;
    assert!(conn.in_transaction());
    conn.commit()?;
    assert!(!conn.in_transaction());
    Ok(())
}
