//! The engine's connection pool: a maximum, a checkout timeout, a reset between users, and
//! sessions that hold a connection only while they need one.

use std::time::{Duration, Instant};

use orm_session::prelude::*;
use orm_tests::model::Customer;
use orm_tests::{TestDb, backends};

// 64 threads run short sessions through an engine capped at 8 connections: all finish, and
// no more than 8 connections are ever open.
#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn sixty_four_threads_share_eight_postgres_connections() -> Result<()> {
    let Some(db) = TestDb::postgres() else {
        return Ok(());
    };
    let engine = db.engine().max_connections(8);
    let started = Instant::now();
    let waits: Vec<Duration> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..64)
            .map(|t| {
                let engine = engine.clone();
                scope.spawn(move || -> Result<Vec<Duration>> {
                    let mut waits = Vec::new();
                    for i in 0..10 {
                        let s = engine.session();
                        let asked = Instant::now();
                        s.add(Customer::new(&format!("t{t} s{i}"), t))?;
                        s.flush()?; // the first statement: a connection is checked out here
                        waits.push(asked.elapsed());
                        s.commit()?;
                        assert!(s.get::<Customer>(1).is_ok());
                        s.close()?;
                    }
                    Ok(waits)
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread").expect("sessions"))
            .collect()
    });
    let mut waits = waits;
    waits.sort();
    eprintln!(
        "64 threads × 10 sessions on 8 connections: {:?} in all; first statement waited median {:?}, p99 {:?}, max {:?}",
        started.elapsed(),
        waits[waits.len() / 2],
        waits[waits.len() * 99 / 100],
        waits[waits.len() - 1]
    );
    assert_eq!(s_count(&engine)?, 640);
    assert!(
        engine.open_connections() <= 8,
        "{} open",
        engine.open_connections()
    );
    Ok(())
}

fn s_count(engine: &Engine) -> Result<u64> {
    engine.session().query::<Customer>().count()
}

backends! {
    // A checkout waits at most the checkout timeout, then fails with a clear error; once the
    // holder commits, the connection is free again.
    fn a_checkout_times_out_when_every_connection_is_held(db) -> Result<()> {
        let engine = db.engine().max_connections(1).checkout_timeout(Duration::from_millis(300));
        let holder = engine.session();
        holder.add(Customer::new("held", 1))?;
        holder.flush()?; // in a transaction: the connection stays with this session
        let other = engine.session();
        let asked = Instant::now();
        let e = other.query::<Customer>().count().expect_err("no free connection");
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(asked.elapsed() >= Duration::from_millis(250));
        assert!(e.to_string().contains("pool of 1"), "{e}");
        holder.commit()?; // gives it back
        assert_eq!(other.query::<Customer>().count()?, 1);
        Ok(())
    }

    // Many sessions alive at once share a small pool: each holds a connection only from its
    // first statement to its commit.
    fn many_live_sessions_share_two_connections(db) -> Result<()> {
        let engine = db.engine().max_connections(2).checkout_timeout(Duration::from_secs(5));
        let sessions: Vec<Session> = (0..20).map(|_| engine.session()).collect();
        for (i, s) in sessions.iter().enumerate() {
            s.add(Customer::new(&format!("s{i}"), 1))?;
            s.commit()?;
        }
        for s in &sessions {
            assert_eq!(s.query::<Customer>().count()?, 20);
            s.rollback()?;
        }
        Ok(())
    }
}

// What one user of a pooled PostgreSQL connection changes with raw SQL (settings, the search
// path, temporary tables) does not reach the next user.
#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn postgres_connections_are_reset_between_users() -> Result<()> {
    let Some(db) = TestDb::postgres() else {
        return Ok(());
    };
    let engine = db.engine().max_connections(1);
    let a = engine.session();
    a.execute("SET statement_timeout = 4321", &[])?;
    a.execute("SET search_path TO pg_catalog", &[])?;
    a.execute("CREATE TEMPORARY TABLE leaked (x int)", &[])?;
    a.commit()?;
    a.close()?;
    let b = engine.session();
    let timeout = b.with_connection(|c| c.query_values("SHOW statement_timeout", &[]))?;
    assert_eq!(timeout[0][0], Value::Text("0".into()));
    let temp = b.with_connection(|c| {
        c.query_i64(
            "SELECT count(*) FROM pg_class WHERE relname = 'leaked' AND relpersistence = 't'",
            &[],
        )
    })?;
    assert_eq!(temp, 0, "the temporary table was dropped");
    // The engine's schema is first on the search path again: its table is found.
    b.add(Customer::new("after reset", 1))?;
    b.commit()?;
    assert_eq!(b.query::<Customer>().count()?, 1);
    Ok(())
}

// A table dropped and made again by another program: pooled connections go on inserting
// (keys included) without failing on what they had cached for the old table.
#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn postgres_table_recreated_elsewhere_keeps_working() -> Result<()> {
    let Some(db) = TestDb::postgres() else {
        return Ok(());
    };
    let engine = db.engine().max_connections(2);
    let s = engine.session();
    s.add_all((0..50).map(|i| Customer::new(&format!("before {i}"), i)))?;
    s.commit()?;
    s.bulk_insert_mappings(
        (0..50).map(|i| Mapping::from([Customer::NAME.to(format!("b{i}")), Customer::AGE.to(i)])),
        BulkOptions::default().return_defaults(true),
    )?;
    s.commit()?;
    // Another program: its own connection, not the pool's.
    let url = orm_tests::database_url().expect("url");
    let other = Connection::open_postgres_with(&url, &db_options(&db, &s)?)?;
    other.drop_table::<Customer>()?;
    other.create_table::<Customer>()?;
    let hs = s.add_all((0..50).map(|i| Customer::new(&format!("after {i}"), i)))?;
    s.commit()?;
    let r = s.bulk_insert_mappings(
        (0..50).map(|i| Mapping::from([Customer::NAME.to(format!("a{i}")), Customer::AGE.to(i)])),
        BulkOptions::default().return_defaults(true),
    )?;
    s.commit()?;
    assert_eq!(r.keys.len(), 50);
    assert_eq!(s.query::<Customer>().count()?, 100);
    for h in &hs {
        let v = h.read()?;
        assert_eq!(
            other
                .find::<Customer>(&v.id.unwrap().into())?
                .map(|c| c.name),
            Some(v.name.clone())
        );
    }
    Ok(())
}

/// The schema of the test's engine, for a connection of another program.
fn db_options(_db: &TestDb, s: &Session) -> Result<orm_session::PgOptions> {
    let schema = s.with_connection(|c| c.query_values("SELECT current_schema()", &[]))?;
    let Value::Text(schema) = &schema[0][0] else {
        panic!("schema is {:?}", schema[0][0]);
    };
    Ok(orm_session::PgOptions::default().schema(schema.clone()))
}

// A role without CREATE on the database can still use an engine whose schema exists: the
// schema is created only when missing. And an engine's Debug never shows a password.
#[test]
#[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
fn postgres_schema_that_exists_needs_no_create_privilege() -> Result<()> {
    let Some(db) = TestDb::postgres() else {
        return Ok(());
    };
    let url = orm_tests::database_url().expect("url");
    let admin = db.connect();
    let s = db.engine().session();
    let options = db_options(&db, &s)?;
    let schema = options.schema.clone().expect("schema");
    let role = format!("orm_reader_{}", std::process::id());
    admin.execute(&format!("DROP ROLE IF EXISTS {role}"), &[])?;
    admin.execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'hunter2'"), &[])?;
    admin.execute(&format!("REVOKE CREATE ON DATABASE test FROM {role}"), &[])?;
    admin.execute(
        &format!("GRANT USAGE ON SCHEMA \"{schema}\" TO {role}"),
        &[],
    )?;
    admin.execute(
        &format!("GRANT SELECT ON ALL TABLES IN SCHEMA \"{schema}\" TO {role}"),
        &[],
    )?;
    let config: Vec<&str> = url.splitn(2, "://").collect();
    let rest = config[1]
        .split_once('@')
        .map_or(config[1], |(_, host)| host);
    let as_role = format!("postgres://{role}:hunter2@{rest}?application_name=orm_reader");
    let result = (|| -> Result<()> {
        let engine = Engine::postgres_with(&as_role, options.clone())?;
        assert!(!format!("{engine:?}").contains("hunter2"), "{engine:?}");
        assert_eq!(engine.session().query::<Customer>().count()?, 0);
        Ok(())
    })();
    admin.execute(&format!("DROP OWNED BY {role}"), &[])?;
    admin.execute(&format!("DROP ROLE {role}"), &[])?;
    result
}
