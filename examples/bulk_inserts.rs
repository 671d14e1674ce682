//! The benchmark of BENCH.md: every rung of the insert ladder against the raw rusqlite
//! floor, measured in the same process, interleaved, verified after every run.
//!
//! ```text
//! cargo run --release --example bulk_inserts -- --rows 100000 --db sqlite-file --repeat 5 [--json FILE]
//! ```
//!
//! Every run uses a fresh database. The timed region builds the rows in the form each path
//! takes (two `format!` calls per row), begins, inserts and commits. A run that does not
//! verify (row count, rows read back, every returned key selecting its own row) is an error.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orm_session::prelude::*;

#[derive(Entity, Debug, Clone)]
#[orm(table = "customer")]
struct Customer {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
    description: String,
}

#[derive(Entity, Debug, Clone)]
#[orm(table = "customer_uuid")]
struct CustomerUuid {
    #[orm(primary_key, uuid_v7)]
    id: uuid::Uuid,
    name: String,
    description: String,
}

fn name(i: usize) -> String {
    format!("customer name {i}")
}

fn description(i: usize) -> String {
    format!("customer description {i}")
}

fn customer(i: usize) -> Customer {
    Customer {
        id: None,
        name: name(i),
        description: description(i),
    }
}

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn fail(msg: String) -> Box<dyn std::error::Error> {
    msg.into()
}

/// The graph of `add_graph`: ten orders per customer.
#[derive(Entity, Debug, Clone)]
#[orm(table = "graph_customer", has_many(orders = GraphOrder::CUSTOMER))]
struct GraphCustomer {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
    description: String,
}

#[derive(Entity, Debug, Clone)]
#[orm(table = "graph_order")]
struct GraphOrder {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = GraphCustomer)]
    customer_id: Option<i64>,
    total: f64,
    /// The name of the order's customer, to verify every link.
    note: String,
}

/// Orders per customer in the graph cases.
const ORDERS_PER_CUSTOMER: usize = 10;

fn graph_order(i: usize) -> GraphOrder {
    GraphOrder {
        id: None,
        customer_id: None,
        total: (i % 1000) as f64 + 0.5,
        note: name(i / ORDERS_PER_CUSTOMER),
    }
}

fn graph_customer(i: usize) -> GraphCustomer {
    GraphCustomer {
        id: None,
        name: name(i),
        description: description(i),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Db {
    SqliteFile,
    SqliteMemory,
    #[cfg(feature = "postgres")]
    Postgres,
    #[cfg(feature = "mysql")]
    MySql,
}

impl Db {
    fn name(self) -> &'static str {
        match self {
            Db::SqliteFile => "sqlite-file",
            Db::SqliteMemory => "sqlite-memory",
            #[cfg(feature = "postgres")]
            Db::Postgres => "postgres",
            #[cfg(feature = "mysql")]
            Db::MySql => "mysql",
        }
    }
}

/// The PostgreSQL floors: the `postgres` crate used directly, binary `COPY` for inserts.
/// Every run gets freshly created tables in a schema of this process.
#[cfg(feature = "postgres")]
mod pg {
    use super::{BoxResult, Customer, description, fail, name};
    use postgres::binary_copy::BinaryCopyInWriter;
    use postgres::types::Type;
    use postgres::{Client, NoTls};

    /// `DATABASE_URL`, or the local server.
    pub fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// The schema of this run (`ORM_BENCH_SCHEMA`, which the parent of a measuring child
    /// sets, or one named after the process).
    pub fn schema() -> String {
        super::pg_schema_default()
    }

    pub fn client() -> BoxResult<Client> {
        let mut c = Client::connect(&url(), NoTls)?;
        c.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {0}; SET search_path TO {0}",
            schema()
        ))?;
        Ok(c)
    }

    pub fn drop_schema() -> BoxResult<()> {
        let mut c = Client::connect(&url(), NoTls)?;
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", schema()))?;
        Ok(())
    }

    /// The floor: one transaction, one binary `COPY` of all rows.
    pub fn floor_insert(c: &mut Client, n: usize) -> BoxResult<()> {
        let mut tx = c.transaction()?;
        let sink = tx.copy_in("COPY customer (name, description) FROM STDIN (FORMAT binary)")?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT]);
        for i in 0..n {
            w.write(&[&name(i), &description(i)])?;
        }
        w.finish()?;
        tx.commit()?;
        Ok(())
    }

    /// The graph floor: one transaction, a binary `COPY` of the customers and one of the
    /// orders, with keys the program assigns itself.
    pub fn floor_graph(c: &mut Client, n: usize) -> BoxResult<()> {
        use super::ORDERS_PER_CUSTOMER as PER;
        let mut tx = c.transaction()?;
        let sink =
            tx.copy_in("COPY graph_customer (id, name, description) FROM STDIN (FORMAT binary)")?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT, Type::TEXT]);
        for i in 0..n / PER {
            w.write(&[&(i64::try_from(i)? + 1), &name(i), &description(i)])?;
        }
        w.finish()?;
        let sink = tx.copy_in(
            "COPY graph_order (id, customer_id, total, note) FROM STDIN (FORMAT binary)",
        )?;
        let mut w =
            BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8, Type::FLOAT8, Type::TEXT]);
        for i in 0..n {
            let o = super::graph_order(i);
            let customer = i64::try_from(i / PER)? + 1;
            w.write(&[&(i64::try_from(i)? + 1), &customer, &o.total, &o.note])?;
        }
        w.finish()?;
        // The keys were given: move the identity sequences past them, as a program that
        // assigns keys must before anyone else inserts.
        tx.batch_execute(
            "SELECT setval(pg_get_serial_sequence('graph_customer', 'id'), (SELECT max(id) FROM graph_customer)); \
             SELECT setval(pg_get_serial_sequence('graph_order', 'id'), (SELECT max(id) FROM graph_order))",
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn floor_uuid(c: &mut Client, n: usize) -> BoxResult<()> {
        let mut tx = c.transaction()?;
        let sink =
            tx.copy_in("COPY customer_uuid (id, name, description) FROM STDIN (FORMAT binary)")?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::UUID, Type::TEXT, Type::TEXT]);
        for i in 0..n {
            let id = orm_session::uuid_v7();
            w.write(&[&id, &name(i), &description(i)])?;
        }
        w.finish()?;
        tx.commit()?;
        Ok(())
    }

    pub fn count(c: &mut Client, table: &str) -> BoxResult<usize> {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
            .get(0);
        Ok(usize::try_from(n)?)
    }

    pub fn row(c: &mut Client, id: i64) -> BoxResult<(String, String)> {
        let r = c.query_one(
            "SELECT name, description FROM customer WHERE id = $1",
            &[&id],
        )?;
        Ok((r.get(0), r.get(1)))
    }

    pub fn load(c: &mut Client) -> BoxResult<Vec<Customer>> {
        let stmt = c.prepare("SELECT id, name, description FROM customer")?;
        Ok(c.query(&stmt, &[])?
            .iter()
            .map(|r| Customer {
                id: r.get(0),
                name: r.get(1),
                description: r.get(2),
            })
            .collect())
    }

    /// Rows per statement of the batched floors (as the ORM's own batches).
    const BATCH: usize = 10_000;

    /// One transaction of statements `sql`, each run by `run` for a range of 10,000 rows
    /// (ids `start + 1 ..= end`), which must change them all.
    fn in_batches(
        c: &mut Client,
        n: usize,
        sql: &str,
        run: impl Fn(
            &mut postgres::Transaction<'_>,
            &postgres::Statement,
            &[i64],
            std::ops::Range<usize>,
        ) -> Result<u64, postgres::Error>,
    ) -> BoxResult<()> {
        let mut tx = c.transaction()?;
        let stmt = tx.prepare(sql)?;
        let mut start = 0;
        while start < n {
            let end = (start + BATCH).min(n);
            let ids = (start..end)
                .map(|i| i64::try_from(i + 1))
                .collect::<Result<Vec<i64>, _>>()?;
            if run(&mut tx, &stmt, &ids, start..end)? != (end - start) as u64 {
                return Err(fail(format!("rows {start}..{end} not all changed")));
            }
            start = end;
        }
        tx.commit()?;
        Ok(())
    }

    /// The batched update floor: `UPDATE … FROM unnest($1::int8[], $2::text[])`, one
    /// statement per 10,000 rows.
    pub fn update_batched(c: &mut Client, n: usize) -> BoxResult<()> {
        in_batches(
            c,
            n,
            "UPDATE customer SET description = v.d FROM unnest($1::int8[], $2::text[]) AS v(id, d) \
             WHERE customer.id = v.id",
            |tx, stmt, ids, rows| {
                let descriptions: Vec<String> = rows.map(|i| format!("updated {i}")).collect();
                tx.execute(stmt, &[&ids, &descriptions])
            },
        )
    }

    /// The other batched update the raw driver has: every row's new value in one binary
    /// `COPY` into a temporary table, then one `UPDATE … FROM` that table.
    pub fn update_copy(c: &mut Client, n: usize) -> BoxResult<()> {
        let mut tx = c.transaction()?;
        tx.batch_execute(
            "CREATE TEMP TABLE customer_change (id int8, description text) ON COMMIT DROP",
        )?;
        let sink =
            tx.copy_in("COPY customer_change (id, description) FROM STDIN (FORMAT binary)")?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT]);
        for i in 0..n {
            w.write(&[&i64::try_from(i + 1)?, &format!("updated {i}")])?;
        }
        w.finish()?;
        let changed = tx.execute(
            "UPDATE customer SET description = v.description FROM customer_change AS v \
             WHERE customer.id = v.id",
            &[],
        )?;
        if changed != n as u64 {
            return Err(fail(format!("{changed} of {n} rows changed")));
        }
        tx.commit()?;
        Ok(())
    }

    /// The per-row delete floor: a prepared `DELETE` per row, one transaction.
    pub fn delete(c: &mut Client, n: usize) -> BoxResult<()> {
        let mut tx = c.transaction()?;
        let stmt = tx.prepare("DELETE FROM customer WHERE id = $1")?;
        for i in 0..n {
            let id = i64::try_from(i + 1)?;
            if tx.execute(&stmt, &[&id])? != 1 {
                return Err(fail(format!("row {id} not deleted")));
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The batched delete floor: `DELETE … WHERE id = ANY($1::int8[])` per 10,000 rows.
    pub fn delete_batched(c: &mut Client, n: usize) -> BoxResult<()> {
        in_batches(
            c,
            n,
            "DELETE FROM customer WHERE id = ANY($1::int8[])",
            |tx, stmt, ids, _| tx.execute(stmt, &[&ids]),
        )
    }

    /// The update floor: one transaction, a prepared UPDATE per row.
    pub fn update(c: &mut Client, n: usize) -> BoxResult<()> {
        let mut tx = c.transaction()?;
        let stmt = tx.prepare("UPDATE customer SET description = $1 WHERE id = $2")?;
        for i in 0..n {
            let id = i64::try_from(i + 1)?;
            if tx.execute(&stmt, &[&format!("updated {i}"), &id])? != 1 {
                return Err(fail(format!("row {id} not updated")));
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The MySQL/MariaDB floors: the `mysql` crate used directly, prepared multi-row `VALUES`
/// for inserts (or `LOAD DATA LOCAL INFILE`, measured beside it). Every run gets freshly
/// created tables in a database of this process.
#[cfg(feature = "mysql")]
mod my {
    use super::{BoxResult, Customer, description, fail, name};
    use mysql::prelude::Queryable;
    use mysql::{Conn, Opts, OptsBuilder, Params, Value};

    /// `MYSQL_URL`, or the local server.
    pub fn url() -> String {
        std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
    }

    /// The database of this run (`ORM_BENCH_SCHEMA`, which the parent of a measuring child
    /// sets, or one named after the process).
    pub fn database() -> String {
        super::pg_schema_default()
    }

    pub fn conn() -> BoxResult<Conn> {
        let opts = OptsBuilder::from_opts(Opts::from_url(&url())?)
            .stmt_cache_size(64)
            .additional_capabilities(mysql::consts::CapabilityFlags::CLIENT_FOUND_ROWS);
        let mut c = Conn::new(opts)?;
        let db = database();
        c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
        c.query_drop(format!("USE {db}"))?;
        Ok(c)
    }

    pub fn drop_database() -> BoxResult<()> {
        let mut c = Conn::new(Opts::from_url(&url())?)?;
        c.query_drop(format!("DROP DATABASE IF EXISTS {}", database()))?;
        Ok(())
    }

    /// Rows per multi-row statement (as the ORM's own).
    const ROWS: usize = 2_000;

    /// Rows per batched UPDATE or DELETE (as the ORM's own).
    const BATCH: usize = 1_000;

    fn values(columns: &str, rows: usize) -> String {
        let one = format!("({})", vec!["?"; columns.split(',').count()].join(", "));
        vec![one.as_str(); rows].join(", ")
    }

    /// Inserts `n` rows into `table (columns)` in one transaction, `ROWS` a statement;
    /// `row(i)` gives row `i`'s values.
    fn insert_rows(
        c: &mut Conn,
        table: &str,
        columns: &str,
        n: usize,
        row: impl Fn(usize) -> BoxResult<Vec<Value>>,
    ) -> BoxResult<()> {
        let mut tx = c.start_transaction(mysql::TxOpts::default())?;
        let full = tx.prep(format!(
            "INSERT INTO {table} ({columns}) VALUES {}",
            values(columns, ROWS)
        ))?;
        let mut start = 0;
        while start < n {
            let k = ROWS.min(n - start);
            let mut params = Vec::with_capacity(k * 3);
            for i in start..start + k {
                params.extend(row(i)?);
            }
            if k == ROWS {
                tx.exec_drop(&full, Params::Positional(params))?;
            } else {
                let part = tx.prep(format!(
                    "INSERT INTO {table} ({columns}) VALUES {}",
                    values(columns, k)
                ))?;
                tx.exec_drop(&part, Params::Positional(params))?;
            }
            start += k;
        }
        tx.commit()?;
        Ok(())
    }

    /// The floor: one transaction of prepared multi-row INSERTs.
    pub fn floor_insert(c: &mut Conn, n: usize) -> BoxResult<()> {
        insert_rows(c, "customer", "name, description", n, |i| {
            Ok(vec![name(i).into(), description(i).into()])
        })
    }

    /// `LOAD DATA LOCAL INFILE` of every row, encoded as tab-separated text: the counterpart
    /// of PostgreSQL's COPY.
    pub fn floor_load_data(c: &mut Conn, n: usize) -> BoxResult<()> {
        use std::io::Write;
        let mut data = Vec::with_capacity(n * 48);
        for i in 0..n {
            // The names hold no tab, newline or backslash: nothing to escape.
            writeln!(data, "{}\t{}", name(i), description(i))?;
        }
        let data = std::sync::Arc::new(data);
        let handler = mysql::LocalInfileHandler::new(move |_, out| out.write_all(&data));
        c.set_local_infile_handler(Some(handler));
        let mut tx = c.start_transaction(mysql::TxOpts::default())?;
        tx.query_drop(
            "LOAD DATA LOCAL INFILE 'rows' INTO TABLE customer \
             CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' (name, description)",
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The graph floor: customers and orders with keys the program assigns itself.
    pub fn floor_graph(c: &mut Conn, n: usize) -> BoxResult<()> {
        use super::ORDERS_PER_CUSTOMER as PER;
        insert_rows(c, "graph_customer", "id, name, description", n / PER, |i| {
            Ok(vec![
                (i64::try_from(i)? + 1).into(),
                name(i).into(),
                description(i).into(),
            ])
        })?;
        insert_rows(c, "graph_order", "id, customer_id, total, note", n, |i| {
            let o = super::graph_order(i);
            Ok(vec![
                (i64::try_from(i)? + 1).into(),
                (i64::try_from(i / PER)? + 1).into(),
                o.total.into(),
                o.note.into(),
            ])
        })
    }

    pub fn floor_uuid(c: &mut Conn, n: usize) -> BoxResult<()> {
        insert_rows(c, "customer_uuid", "id, name, description", n, |i| {
            let id = orm_session::uuid_v7();
            Ok(vec![
                id.as_bytes().to_vec().into(),
                name(i).into(),
                description(i).into(),
            ])
        })
    }

    pub fn count(c: &mut Conn, table: &str) -> BoxResult<usize> {
        let n: Option<i64> = c.query_first(format!("SELECT count(*) FROM {table}"))?;
        Ok(usize::try_from(n.unwrap_or(-1))?)
    }

    pub fn load(c: &mut Conn) -> BoxResult<Vec<Customer>> {
        let stmt = c.prep("SELECT id, name, description FROM customer")?;
        let rows: Vec<(i64, String, String)> = c.exec(&stmt, ())?;
        Ok(rows
            .into_iter()
            .map(|(id, name, description)| Customer {
                id: Some(id),
                name,
                description,
            })
            .collect())
    }

    /// One transaction of statements, each for `BATCH` rows (ids `start + 1 ..= end`), built
    /// by `sql(k)` and bound by `params`, which must change them all.
    fn in_batches(
        c: &mut Conn,
        n: usize,
        sql: impl Fn(usize) -> String,
        params: impl Fn(std::ops::Range<usize>) -> Vec<Value>,
    ) -> BoxResult<()> {
        let mut tx = c.start_transaction(mysql::TxOpts::default())?;
        let full = tx.prep(sql(BATCH))?;
        let mut start = 0;
        while start < n {
            let end = (start + BATCH).min(n);
            let stmt = if end - start == BATCH {
                full.clone()
            } else {
                tx.prep(sql(end - start))?
            };
            tx.exec_drop(&stmt, Params::Positional(params(start..end)))?;
            if tx.affected_rows() != (end - start) as u64 {
                return Err(fail(format!("rows {start}..{end} not all changed")));
            }
            start = end;
        }
        tx.commit()?;
        Ok(())
    }

    /// The batched update floor: `UPDATE … SET description = CASE id WHEN ? THEN ? … END
    /// WHERE id IN (…)`, one statement per 1,000 rows: the fastest of the UPDATE forms
    /// measured here (a join with a derived table of `SELECT ? AS id, ? AS d UNION ALL …`
    /// took 1.4 times as long). `INSERT … ON DUPLICATE KEY UPDATE` is faster still, but it
    /// inserts the rows that are missing: not an update.
    pub fn update_batched(c: &mut Conn, n: usize) -> BoxResult<()> {
        in_batches(
            c,
            n,
            |k| {
                format!(
                    "UPDATE customer SET description = CASE id {}END WHERE id IN ({})",
                    "WHEN ? THEN ? ".repeat(k),
                    vec!["?"; k].join(", ")
                )
            },
            |rows| {
                let mut p: Vec<Value> = rows
                    .clone()
                    .flat_map(|i| [Value::from(row_id(i)), format!("updated {i}").into()])
                    .collect();
                p.extend(rows.map(|i| Value::from(row_id(i))));
                p
            },
        )
    }

    /// The update floor: one transaction, a prepared UPDATE per row.
    pub fn update(c: &mut Conn, n: usize) -> BoxResult<()> {
        let mut tx = c.start_transaction(mysql::TxOpts::default())?;
        let stmt = tx.prep("UPDATE customer SET description = ? WHERE id = ?")?;
        for i in 0..n {
            let id = i64::try_from(i + 1)?;
            tx.exec_drop(&stmt, (format!("updated {i}"), id))?;
            if tx.affected_rows() != 1 {
                return Err(fail(format!("row {id} not updated")));
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The per-row delete floor: a prepared `DELETE` per row, one transaction.
    pub fn delete(c: &mut Conn, n: usize) -> BoxResult<()> {
        let mut tx = c.start_transaction(mysql::TxOpts::default())?;
        let stmt = tx.prep("DELETE FROM customer WHERE id = ?")?;
        for i in 0..n {
            let id = i64::try_from(i + 1)?;
            tx.exec_drop(&stmt, (id,))?;
            if tx.affected_rows() != 1 {
                return Err(fail(format!("row {id} not deleted")));
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The batched delete floor: `DELETE … WHERE id IN (…)` per 1,000 rows.
    /// The key of row `i` (keys start at 1).
    fn row_id(i: usize) -> i64 {
        i64::try_from(i).map_or(i64::MAX, |i| i + 1)
    }

    pub fn delete_batched(c: &mut Conn, n: usize) -> BoxResult<()> {
        in_batches(
            c,
            n,
            |k| {
                format!(
                    "DELETE FROM customer WHERE id IN ({})",
                    vec!["?"; k].join(", ")
                )
            },
            |rows| rows.map(|i| Value::from(row_id(i))).collect(),
        )
    }
}

/// A fresh database for one run.
struct Fresh {
    engine: Engine,
    /// The raw rusqlite connection of the floors, on the same database.
    raw: rusqlite::Connection,
    /// The raw `postgres` client of the floors, on the engine's schema.
    #[cfg(feature = "postgres")]
    pg: Option<postgres::Client>,
    /// The raw `mysql` connection of the floors, on the engine's database.
    #[cfg(feature = "mysql")]
    my: Option<mysql::Conn>,
    _dir: Option<tempfile::TempDir>,
}

fn fresh(db: Db) -> BoxResult<Fresh> {
    #[cfg(feature = "postgres")]
    let mut pg = None;
    #[cfg(feature = "mysql")]
    let mut my = None;
    let (engine, raw, dir) = match db {
        Db::SqliteFile => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("bench.db");
            let engine = Engine::sqlite_file(&path)?;
            let raw = raw_open(&path)?;
            (engine, raw, Some(dir))
        }
        Db::SqliteMemory => {
            let engine = Engine::sqlite_memory()?;
            // The floors get a private in-memory database of their own, enforcing foreign keys
            // as the engine's connections do.
            let raw = rusqlite::Connection::open_in_memory()?;
            raw.pragma_update(None, "foreign_keys", true)?;
            (engine, raw, None)
        }
        #[cfg(feature = "postgres")]
        Db::Postgres => {
            let mut client = pg::client()?;
            client.batch_execute(
                "DROP TABLE IF EXISTS customer, customer_uuid, graph_order, graph_customer",
            )?;
            pg = Some(client);
            let engine = Engine::postgres_with(
                &pg::url(),
                orm_session::PgOptions::default().schema(pg::schema()),
            )?;
            (engine, rusqlite::Connection::open_in_memory()?, None)
        }
        #[cfg(feature = "mysql")]
        Db::MySql => {
            let mut conn = my::conn()?;
            mysql::prelude::Queryable::query_drop(
                &mut conn,
                "DROP TABLE IF EXISTS customer, customer_uuid, graph_order, graph_customer",
            )?;
            my = Some(conn);
            let engine = Engine::mysql_with(
                &my::url(),
                orm_session::MySqlOptions::default().database(my::database()),
            )?;
            (engine, rusqlite::Connection::open_in_memory()?, None)
        }
    };
    engine.create_table::<Customer>()?;
    engine.create_table::<CustomerUuid>()?;
    engine.create_all(&[GraphOrder::META, GraphCustomer::META])?;
    if db == Db::SqliteMemory {
        raw.execute_batch(
            "CREATE TABLE customer (id integer PRIMARY KEY, name text NOT NULL, description text NOT NULL); \
             CREATE TABLE graph_customer (id integer PRIMARY KEY, name text NOT NULL, description text NOT NULL); \
             CREATE TABLE graph_order (id integer PRIMARY KEY, customer_id bigint REFERENCES graph_customer (id), \
                 total double NOT NULL, note text NOT NULL)",
        )?;
    }
    Ok(Fresh {
        engine,
        raw,
        #[cfg(feature = "postgres")]
        pg,
        #[cfg(feature = "mysql")]
        my,
        _dir: dir,
    })
}

fn raw_open(path: &Path) -> BoxResult<rusqlite::Connection> {
    let raw = rusqlite::Connection::open(path)?;
    raw.busy_timeout(Duration::from_secs(5))?;
    raw.pragma_update(None, "foreign_keys", true)?;
    Ok(raw)
}

/// Which connection holds the rows a floor case wrote, for verification.
fn raw_count(raw: &rusqlite::Connection) -> BoxResult<usize> {
    let n: i64 = raw.query_row("SELECT count(*) FROM customer", [], |r| r.get(0))?;
    Ok(usize::try_from(n)?)
}

fn verify_rows(f: &mut Fresh, n: usize, via_raw: bool) -> BoxResult<()> {
    // MySQL's floors write the engine's database: the engine reads them back.
    #[cfg(feature = "mysql")]
    let via_raw = via_raw && f.my.is_none();
    #[cfg(feature = "postgres")]
    if let (true, Some(c)) = (via_raw, f.pg.as_mut()) {
        let count = pg::count(c, "customer")?;
        if count != n {
            return Err(fail(format!("expected {n} rows, found {count}")));
        }
        for i in [0, n / 2, n - 1] {
            let (nm, ds) = pg::row(c, i64::try_from(i + 1)?)?;
            if nm != name(i) || ds != description(i) {
                return Err(fail(format!("row {} holds {nm:?}/{ds:?}", i + 1)));
            }
        }
        return Ok(());
    }
    let count = if via_raw {
        raw_count(&f.raw)?
    } else {
        usize::try_from(f.engine.connect()?.count::<Customer>(None)?)?
    };
    if count != n {
        return Err(fail(format!("expected {n} rows, found {count}")));
    }
    for i in [0, n / 2, n - 1] {
        let (nm, ds): (String, String) = if via_raw {
            f.raw.query_row(
                "SELECT name, description FROM customer WHERE id = ?",
                [i64::try_from(i + 1)?],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
        } else {
            let c = f
                .engine
                .connect()?
                .find::<Customer>(&Key::Int(i64::try_from(i + 1)?))?;
            let c = c.ok_or_else(|| fail(format!("row {} missing", i + 1)))?;
            (c.name, c.description)
        };
        if nm != name(i) || ds != description(i) {
            return Err(fail(format!("row {} holds {nm:?}/{ds:?}", i + 1)));
        }
    }
    Ok(())
}

/// Every key selects the row of its own input index.
fn verify_keys(f: &Fresh, keys: impl Iterator<Item = Option<Key>>) -> BoxResult<()> {
    let conn = f.engine.connect()?;
    for (i, key) in keys.enumerate() {
        let key = key.ok_or_else(|| fail(format!("object {i} has no key")))?;
        let row = conn
            .find::<Customer>(&key)?
            .ok_or_else(|| fail(format!("key {key} selects no row")))?;
        if row.name != name(i) {
            return Err(fail(format!(
                "object {i} holds key {key} of row {:?}",
                row.name
            )));
        }
    }
    Ok(())
}

/// The raw floor: multi-row `INSERT … VALUES` of 100 rows per statement, prepared once, in
/// one transaction. `make` builds row `i` (inside the timed region, as for every case) and
/// `bind` binds a row's `ncols` values from parameter index `first`.
fn raw_insert<R>(
    raw: &mut rusqlite::Connection,
    head: &str,
    ncols: usize,
    n: usize,
    make: impl Fn(usize) -> R,
    bind: impl Fn(&mut rusqlite::Statement<'_>, usize, &R) -> rusqlite::Result<()>,
) -> BoxResult<()> {
    let group = format!("({})", vec!["?"; ncols].join(", "));
    raw_batched(
        raw,
        n,
        |k| format!("{head} VALUES {}", vec![group.as_str(); k].join(", ")),
        |stmt, j, i| bind(stmt, ncols * j + 1, &make(i)),
    )
}

fn floor_insert(raw: &mut rusqlite::Connection, n: usize) -> BoxResult<()> {
    raw_insert(
        raw,
        "INSERT INTO customer (name, description)",
        2,
        n,
        |i| (name(i), description(i)),
        |stmt, p, (a, b)| {
            stmt.raw_bind_parameter(p, a)?;
            stmt.raw_bind_parameter(p + 1, b)
        },
    )
}

/// [`floor_insert`]'s statements, each row's struct kept after it is bound, in an `Arc` of
/// its own: the memory an identity map cannot do without and nothing else (no lock, no key
/// written back, no map), so that what merely keeping `n` objects costs (allocating them
/// apart, and the cache they take) shows against the floor.
fn floor_held(
    raw: &mut rusqlite::Connection,
    n: usize,
) -> BoxResult<Vec<std::sync::Arc<Customer>>> {
    let held = std::cell::RefCell::new(Vec::with_capacity(n));
    let group = "(?, ?)";
    raw_batched(
        raw,
        n,
        |k| {
            format!(
                "INSERT INTO customer (name, description) VALUES {}",
                vec![group; k].join(", ")
            )
        },
        |stmt, j, i| {
            let c = customer(i);
            stmt.raw_bind_parameter(2 * j + 1, &c.name)?;
            stmt.raw_bind_parameter(2 * j + 2, &c.description)?;
            held.borrow_mut().push(std::sync::Arc::new(c));
            Ok(())
        },
    )?;
    Ok(held.into_inner())
}

/// The graph floor on SQLite: multi-row VALUES into both tables, keys assigned by the
/// program.
fn floor_graph(raw: &mut rusqlite::Connection, n: usize) -> BoxResult<()> {
    let tx = raw.transaction()?;
    // `raw_insert` commits its own transaction: both tables go in one here, as the session
    // does, so the rows are bound by hand.
    {
        let customers = n / ORDERS_PER_CUSTOMER;
        multi_row(
            &tx,
            "INSERT INTO graph_customer (id, name, description)",
            3,
            customers,
            |stmt, p, i| {
                stmt.raw_bind_parameter(p, i64::try_from(i)? + 1)?;
                stmt.raw_bind_parameter(p + 1, name(i))?;
                stmt.raw_bind_parameter(p + 2, description(i))?;
                Ok(())
            },
        )?;
        multi_row(
            &tx,
            "INSERT INTO graph_order (id, customer_id, total, note)",
            4,
            n,
            |stmt, p, i| {
                let o = graph_order(i);
                stmt.raw_bind_parameter(p, i64::try_from(i)? + 1)?;
                stmt.raw_bind_parameter(p + 1, i64::try_from(i / ORDERS_PER_CUSTOMER)? + 1)?;
                stmt.raw_bind_parameter(p + 2, o.total)?;
                stmt.raw_bind_parameter(p + 3, o.note)?;
                Ok(())
            },
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Multi-row `INSERT … VALUES` of 100 rows per statement, prepared once, binding row `i`
/// with `bind` from parameter `p`.
fn multi_row(
    tx: &rusqlite::Transaction<'_>,
    head: &str,
    ncols: usize,
    n: usize,
    bind: impl Fn(&mut rusqlite::Statement<'_>, usize, usize) -> BoxResult<()>,
) -> BoxResult<()> {
    const PER: usize = 100;
    let group = format!("({})", vec!["?"; ncols].join(", "));
    let sql = |k: usize| format!("{head} VALUES {}", vec![group.as_str(); k].join(", "));
    let mut full = tx.prepare(&sql(PER))?;
    let mut start = 0;
    while start < n {
        let k = PER.min(n - start);
        let mut part;
        let stmt = if k == PER {
            &mut full
        } else {
            part = tx.prepare(&sql(k))?;
            &mut part
        };
        for j in 0..k {
            bind(stmt, ncols * j + 1, start + j)?;
        }
        stmt.raw_execute()?;
        start += k;
    }
    Ok(())
}

/// Checks the graph: `n` orders, `n / 10` customers, and every order linked to the customer
/// whose name its note holds.
fn verify_graph(f: &mut Fresh, n: usize, via_raw: bool) -> BoxResult<()> {
    #[cfg(feature = "mysql")]
    let via_raw = via_raw && f.my.is_none();
    const LINKED: &str = "SELECT (SELECT count(*) FROM graph_customer), (SELECT count(*) FROM graph_order), \
         (SELECT count(*) FROM graph_order o JOIN graph_customer c ON c.id = o.customer_id WHERE c.name = o.note)";
    let counts: (i64, i64, i64) = {
        #[cfg(feature = "postgres")]
        if let Some(c) = f.pg.as_mut() {
            let r = c.query_one(LINKED, &[])?;
            (r.get(0), r.get(1), r.get(2))
        } else if via_raw {
            f.raw
                .query_row(LINKED, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        } else {
            let v = f.engine.connect()?.query_values(LINKED, &[])?;
            let int = |x: &Value| if let Value::I64(i) = x { *i } else { -1 };
            (int(&v[0][0]), int(&v[0][1]), int(&v[0][2]))
        }
        #[cfg(not(feature = "postgres"))]
        if via_raw {
            f.raw
                .query_row(LINKED, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        } else {
            let v = f.engine.connect()?.query_values(LINKED, &[])?;
            let int = |x: &Value| if let Value::I64(i) = x { *i } else { -1 };
            (int(&v[0][0]), int(&v[0][1]), int(&v[0][2]))
        }
    };
    let want = (
        i64::try_from(n / ORDERS_PER_CUSTOMER)?,
        i64::try_from(n)?,
        i64::try_from(n)?,
    );
    if counts != want {
        return Err(fail(format!(
            "graph: (customers, orders, linked) = {counts:?}, expected {want:?}"
        )));
    }
    Ok(())
}

/// Row `i` as a typed mapping.
fn mapping(i: usize) -> Mapping<Customer> {
    Mapping::from([
        Customer::NAME.to(name(i)),
        Customer::DESCRIPTION.to(description(i)),
    ])
}

/// Writes the `n` rows a load or update case starts from. Afterwards the floor reads through
/// a connection opened anew, so that neither side starts with the rows in its page cache.
fn populate(f: &mut Fresh, n: usize, db: Db) -> BoxResult<()> {
    #[cfg(feature = "postgres")]
    if let Some(c) = f.pg.as_mut() {
        // One table that both sides read; VACUUM ANALYZE so neither pays for hint bits.
        pg::floor_insert(c, n)?;
        c.batch_execute("VACUUM ANALYZE customer")?;
        return Ok(());
    }
    #[cfg(feature = "mysql")]
    if let Some(c) = f.my.as_mut() {
        my::floor_insert(c, n)?;
        mysql::prelude::Queryable::query_drop(c, "ANALYZE TABLE customer")?;
        return Ok(());
    }
    floor_insert(&mut f.raw, n)?;
    match db {
        Db::SqliteFile => {
            let path = f
                .raw
                .path()
                .map(PathBuf::from)
                .ok_or_else(|| fail("no path".into()))?;
            f.raw = raw_open(&path)?;
        }
        Db::SqliteMemory => {
            // The floor's private database keeps its rows; the engine's gets its own copy.
            f.engine.connect()?.insert_many((0..n).map(customer))?;
        }
        #[cfg(feature = "postgres")]
        Db::Postgres => {}
        #[cfg(feature = "mysql")]
        Db::MySql => {}
    }
    Ok(())
}

/// The batched cases and the per-row floors they are also compared with.
const PER_ROW: [(&str, &str); 3] = [
    ("update_all", "floor_update"),
    ("bulk_update_mappings", "floor_update"),
    ("delete_all", "floor_delete"),
];

/// One case: returns the timed duration of one run.
type CaseFn = fn(db: Db, n: usize) -> BoxResult<Duration>;

struct Case {
    name: &'static str,
    what: &'static str,
    floor: &'static str,
    run: CaseFn,
}

fn timed(f: impl FnOnce() -> BoxResult<()>) -> BoxResult<Duration> {
    let cpu = Cpu::start();
    let start = Instant::now();
    f()?;
    let t = start.elapsed();
    cpu.stop();
    Ok(t)
}

thread_local! {
    /// The CPU time of this thread in the timed region of the last run (see [`Cpu`]).
    static LAST_CPU: std::cell::Cell<Option<f64>> = const { std::cell::Cell::new(None) };
}

/// The time this thread spends on a CPU over a timed region, from Linux's
/// `/proc/thread-self/schedstat` (nanoseconds): the client's own work, which on a server
/// backend is the part of a case the database's time does not hide (the `postgres` and
/// `mysql` clients run on the calling thread). Elsewhere it is not shown.
struct Cpu(Option<u64>);

impl Cpu {
    fn now() -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    fn start() -> Self {
        LAST_CPU.with(|c| c.set(None));
        Cpu(Self::now())
    }

    fn stop(self) {
        if let (Some(a), Some(b)) = (self.0, Self::now()) {
            #[allow(clippy::cast_precision_loss)]
            LAST_CPU.with(|c| c.set(Some(b.saturating_sub(a) as f64 / 1e9)));
        }
    }
}

/// A case on a fresh session: `work` is timed, then `check` verifies the rows and what
/// `work` returned (keys, handles).
fn session_case<R>(
    db: Db,
    n: usize,
    work: impl FnOnce(&Session) -> BoxResult<R>,
    check: impl FnOnce(&Fresh, &Session, R) -> BoxResult<()>,
) -> BoxResult<Duration> {
    let mut f = fresh(db)?;
    let s = f.engine.session();
    let cpu = Cpu::start();
    let start = Instant::now();
    let out = work(&s)?;
    let t = start.elapsed();
    cpu.stop();
    verify_rows(&mut f, n, false)?;
    check(&f, &s, out)?;
    Ok(t)
}

/// Checks an identity-tracked insert: every handle holds its own row's key and the identity
/// map holds them all.
fn check_handles(f: &Fresh, s: &Session, handles: &[Handle<Customer>]) -> BoxResult<()> {
    if s.identity_len() != handles.len() {
        return Err(fail(format!("identity map holds {}", s.identity_len())));
    }
    verify_keys(f, handles.iter().map(Handle::key))
}

/// Whether `db` is PostgreSQL (cases that only it has are left out elsewhere).
fn db_is_postgres(db: Db) -> bool {
    #[cfg(feature = "postgres")]
    if db == Db::Postgres {
        return true;
    }
    let _ = db;
    false
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "floor",
            what: "raw driver: SQLite multi-row VALUES of 100 rows, prepared once; PostgreSQL binary COPY; MySQL multi-row VALUES of 2,000 rows (ORM_BENCH_MY_FLOOR=load: LOAD DATA LOCAL INFILE)",
            floor: "floor",
            run: |db, n| {
                let mut f = fresh(db)?;
                let t = timed(|| {
                    #[cfg(feature = "postgres")]
                    if let Some(c) = f.pg.as_mut() {
                        return pg::floor_insert(c, n);
                    }
                    #[cfg(feature = "mysql")]
                    if let Some(c) = f.my.as_mut() {
                        return if std::env::var("ORM_BENCH_MY_FLOOR").as_deref() == Ok("load") {
                            my::floor_load_data(c, n)
                        } else {
                            my::floor_insert(c, n)
                        };
                    }
                    floor_insert(&mut f.raw, n)
                })?;
                verify_rows(&mut f, n, true)?;
                Ok(t)
            },
        },
        Case {
            name: "floor_held",
            what: "the raw SQLite floor that also keeps every row's struct, each in an Arc of its own, as an identity map keeps its objects (SQLite only)",
            floor: "floor",
            run: |db, n| {
                if !matches!(db, Db::SqliteFile | Db::SqliteMemory) {
                    return Err(fail("floor_held runs on SQLite only".into()));
                }
                let mut f = fresh(db)?;
                let mut held: Vec<std::sync::Arc<Customer>> = Vec::new();
                let t = timed(|| {
                    held = floor_held(&mut f.raw, n)?;
                    Ok(())
                })?;
                verify_rows(&mut f, n, true)?;
                if held.len() != n || held[n - 1].name != name(n - 1) {
                    return Err(fail("floor_held kept the wrong rows".into()));
                }
                Ok(t)
            },
        },
        Case {
            name: "core_insert",
            what: "B5 Connection::insert_many of structs",
            floor: "floor",
            run: |db, n| {
                let mut f = fresh(db)?;
                let conn = f.engine.connect()?;
                let t = timed(|| {
                    conn.insert_many((0..n).map(customer))?;
                    Ok(())
                })?;
                verify_rows(&mut f, n, false)?;
                Ok(t)
            },
        },
        Case {
            name: "bulk_insert_mappings",
            what: "B3 typed mappings, no keys back",
            floor: "floor",
            run: |db, n| {
                session_case(
                    db,
                    n,
                    |s| {
                        s.bulk_insert_mappings((0..n).map(mapping), BulkOptions::default())?;
                        Ok(s.commit()?)
                    },
                    |_, _, ()| Ok(()),
                )
            },
        },
        Case {
            name: "bulk_insert_mappings_returning",
            what: "B3 with return_defaults",
            floor: "floor",
            run: |db, n| {
                session_case(
                    db,
                    n,
                    |s| {
                        let opts = BulkOptions::default().return_defaults(true);
                        let keys = s.bulk_insert_mappings((0..n).map(mapping), opts)?.keys;
                        s.commit()?;
                        Ok(keys)
                    },
                    |f, _, keys| verify_keys(f, keys.into_iter().map(Some)),
                )
            },
        },
        Case {
            name: "bulk_save",
            what: "B2 bulk_save of structs, no keys back",
            floor: "floor",
            run: |db, n| {
                session_case(
                    db,
                    n,
                    |s| {
                        let mut objs: Vec<Customer> = (0..n).map(customer).collect();
                        s.bulk_save(objs.iter_mut(), BulkOptions::default())?;
                        Ok(s.commit()?)
                    },
                    |_, _, ()| Ok(()),
                )
            },
        },
        Case {
            name: "bulk_save_returning",
            what: "B2 with return_defaults (keys written into the structs)",
            floor: "floor",
            run: |db, n| {
                session_case(
                    db,
                    n,
                    |s| {
                        let mut objs: Vec<Customer> = (0..n).map(customer).collect();
                        s.bulk_save(
                            objs.iter_mut(),
                            BulkOptions::default().return_defaults(true),
                        )?;
                        s.commit()?;
                        Ok(objs)
                    },
                    |f, _, objs| verify_keys(f, objs.iter().map(|o| o.id.map(Key::Int))),
                )
            },
        },
        Case {
            name: "add_all",
            what: "B1 add_all + commit: keys and identity map",
            floor: "floor",
            run: |db, n| {
                session_case(
                    db,
                    n,
                    |s| {
                        let handles = s.add_all((0..n).map(customer))?;
                        s.commit()?;
                        Ok(handles)
                    },
                    |f, s, handles| check_handles(f, s, &handles),
                )
            },
        },
        Case {
            name: "floor_graph",
            what: "raw driver: n/10 customers and n orders, keys assigned by the program (multi-row VALUES; PostgreSQL two binary COPYs)",
            floor: "floor_graph",
            run: |db, n| {
                let mut f = fresh(db)?;
                let t = timed(|| {
                    #[cfg(feature = "postgres")]
                    if let Some(c) = f.pg.as_mut() {
                        return pg::floor_graph(c, n);
                    }
                    #[cfg(feature = "mysql")]
                    if let Some(c) = f.my.as_mut() {
                        return my::floor_graph(c, n);
                    }
                    floor_graph(&mut f.raw, n)
                })?;
                verify_graph(&mut f, n, true)?;
                Ok(t)
            },
        },
        Case {
            name: "add_graph",
            what: "add_all of n/10 customers and n orders, each linked before any key exists, + commit",
            floor: "floor_graph",
            run: |db, n| {
                let mut f = fresh(db)?;
                let s = f.engine.session();
                let t = timed(|| {
                    let customers = s.add_all((0..n / ORDERS_PER_CUSTOMER).map(graph_customer))?;
                    let orders = s.add_all((0..n).map(graph_order))?;
                    for (i, o) in orders.iter().enumerate() {
                        s.link(o, GraphOrder::CUSTOMER, &customers[i / ORDERS_PER_CUSTOMER])?;
                    }
                    s.commit()?;
                    Ok(())
                })?;
                verify_graph(&mut f, n, false)?;
                Ok(t)
            },
        },
        Case {
            name: "add_flush_1000",
            what: "add one at a time, flush every 1000, commit",
            floor: "floor",
            run: |db, n| {
                session_case(
                    db,
                    n,
                    |s| {
                        let mut handles = Vec::with_capacity(n);
                        for i in 0..n {
                            handles.push(s.add(customer(i))?);
                            if (i + 1) % 1000 == 0 {
                                s.flush()?;
                            }
                        }
                        s.commit()?;
                        Ok(handles)
                    },
                    |f, s, handles| check_handles(f, s, &handles),
                )
            },
        },
        Case {
            name: "floor_uuid",
            what: "raw driver: the UUIDv7-keyed table, multi-row VALUES (PostgreSQL binary COPY), keys made by the caller",
            floor: "floor",
            run: |db, n| {
                let mut f = fresh(db)?;
                #[cfg(feature = "postgres")]
                if let Some(c) = f.pg.as_mut() {
                    let t = timed(|| pg::floor_uuid(c, n))?;
                    if pg::count(c, "customer_uuid")? != n {
                        return Err(fail("floor_uuid row count".into()));
                    }
                    return Ok(t);
                }
                #[cfg(feature = "mysql")]
                if let Some(c) = f.my.as_mut() {
                    let t = timed(|| my::floor_uuid(c, n))?;
                    if my::count(c, "customer_uuid")? != n {
                        return Err(fail("floor_uuid row count".into()));
                    }
                    return Ok(t);
                }
                if db == Db::SqliteMemory {
                    f.raw.execute_batch(
                        "CREATE TABLE customer_uuid (id blob PRIMARY KEY, name text NOT NULL, description text NOT NULL) WITHOUT ROWID",
                    )?;
                }
                let t = timed(|| {
                    raw_insert(
                        &mut f.raw,
                        "INSERT INTO customer_uuid (id, name, description)",
                        3,
                        n,
                        |i| (orm_session::uuid_v7(), name(i), description(i)),
                        |stmt, p, (id, a, b)| {
                            stmt.raw_bind_parameter(p, &id.as_bytes()[..])?;
                            stmt.raw_bind_parameter(p + 1, a)?;
                            stmt.raw_bind_parameter(p + 2, b)
                        },
                    )
                })?;
                let count: i64 =
                    f.raw
                        .query_row("SELECT count(*) FROM customer_uuid", [], |r| r.get(0))?;
                if count != i64::try_from(n)? {
                    return Err(fail(format!("floor_uuid wrote {count} rows")));
                }
                Ok(t)
            },
        },
        Case {
            name: "add_all_uuid",
            what: "B1 with client-generated UUIDv7 keys",
            floor: "floor",
            run: |db, n| {
                let f = fresh(db)?;
                let s = f.engine.session();
                let mut handles = Vec::new();
                let t = timed(|| {
                    handles = s.add_all((0..n).map(|i| CustomerUuid {
                        id: uuid::Uuid::nil(), // generated client-side at flush
                        name: name(i),
                        description: description(i),
                    }))?;
                    s.commit()?;
                    Ok(())
                })?;
                let conn = f.engine.connect()?;
                if conn.count::<CustomerUuid>(None)? != n as u64 {
                    return Err(fail("customer_uuid count".into()));
                }
                for (i, h) in handles.iter().enumerate().step_by((n / 1000).max(1)) {
                    let key = h
                        .key()
                        .ok_or_else(|| fail(format!("object {i} has no key")))?;
                    let row = conn
                        .find::<CustomerUuid>(&key)?
                        .ok_or_else(|| fail(format!("no row for {key}")))?;
                    if row.name != name(i) {
                        return Err(fail(format!("object {i} holds key of {:?}", row.name)));
                    }
                }
                Ok(t)
            },
        },
        Case {
            name: "floor_load",
            what: "raw driver: SELECT all rows into structs",
            floor: "floor_load",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                let mut rows = Vec::new();
                let t = timed(|| {
                    #[cfg(feature = "postgres")]
                    if let Some(c) = f.pg.as_mut() {
                        rows = pg::load(c)?;
                        return Ok(());
                    }
                    #[cfg(feature = "mysql")]
                    if let Some(c) = f.my.as_mut() {
                        rows = my::load(c)?;
                        return Ok(());
                    }
                    let mut stmt = f
                        .raw
                        .prepare("SELECT id, name, description FROM customer")?;
                    rows = stmt
                        .query_map([], |r| {
                            Ok(Customer {
                                id: r.get(0)?,
                                name: r.get(1)?,
                                description: r.get(2)?,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok(())
                })?;
                if rows.len() != n || rows[n - 1].name != name(n - 1) {
                    return Err(fail("floor_load read the wrong rows".into()));
                }
                Ok(t)
            },
        },
        Case {
            name: "load_all",
            what: "query all rows into the session (identity map filled)",
            floor: "floor_load",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                let s = f.engine.session();
                let mut all = Vec::new();
                let t = timed(|| {
                    all = s.query::<Customer>().all()?;
                    Ok(())
                })?;
                if all.len() != n || s.identity_len() != n || all[n - 1].read()?.name != name(n - 1)
                {
                    return Err(fail("load_all read the wrong rows".into()));
                }
                Ok(t)
            },
        },
        Case {
            name: "floor_update",
            what: "raw driver: prepared UPDATE per row, one transaction",
            floor: "floor_update",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                #[cfg(feature = "postgres")]
                if let Some(c) = f.pg.as_mut() {
                    let t = timed(|| pg::update(c, n))?;
                    verify_updated(&f, n)?;
                    return Ok(t);
                }
                #[cfg(feature = "mysql")]
                if let Some(c) = f.my.as_mut() {
                    let t = timed(|| my::update(c, n))?;
                    verify_updated(&f, n)?;
                    return Ok(t);
                }
                let t = timed(|| {
                    let tx = f.raw.transaction()?;
                    {
                        let mut stmt =
                            tx.prepare("UPDATE customer SET description = ? WHERE id = ?")?;
                        for i in 0..n {
                            stmt.execute(rusqlite::params![
                                format!("updated {i}"),
                                i64::try_from(i + 1)?
                            ])?;
                        }
                    }
                    tx.commit()?;
                    Ok(())
                })?;
                verify_raw_updated(&f.raw, n)?;
                Ok(t)
            },
        },
        Case {
            name: "floor_update_batched",
            what: "raw driver: batched UPDATE (PostgreSQL: FROM unnest of arrays, 10,000 rows a statement; SQLite: FROM (VALUES …) of 100 rows; MySQL: SET … = CASE id WHEN … END of 1,000)",
            floor: "floor_update_batched",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                #[cfg(feature = "postgres")]
                if let Some(c) = f.pg.as_mut() {
                    let t = timed(|| pg::update_batched(c, n))?;
                    verify_updated(&f, n)?;
                    return Ok(t);
                }
                #[cfg(feature = "mysql")]
                if let Some(c) = f.my.as_mut() {
                    let t = timed(|| my::update_batched(c, n))?;
                    verify_updated(&f, n)?;
                    return Ok(t);
                }
                let t = timed(|| {
                    raw_batched(
                        &mut f.raw,
                        n,
                        |k| {
                            format!(
                                "UPDATE customer SET description = v.column2 FROM (VALUES {}) AS v \
                                 WHERE customer.id = v.column1",
                                vec!["(?, ?)"; k].join(", ")
                            )
                        },
                        |stmt, j, i| {
                            stmt.raw_bind_parameter(2 * j + 1, i64::try_from(i + 1).unwrap_or(0))?;
                            stmt.raw_bind_parameter(2 * j + 2, format!("updated {i}"))
                        },
                    )
                })?;
                verify_raw_updated(&f.raw, n)?;
                Ok(t)
            },
        },
        Case {
            name: "floor_update_copy",
            what: "raw driver, PostgreSQL only: one binary COPY of every row's new value into a temporary table, then one UPDATE … FROM it",
            floor: "floor_update_batched",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                #[cfg(feature = "postgres")]
                if let Some(c) = f.pg.as_mut() {
                    let t = timed(|| pg::update_copy(c, n))?;
                    verify_updated(&f, n)?;
                    return Ok(t);
                }
                Err(fail("floor_update_copy runs on PostgreSQL only".into()))
            },
        },
        Case {
            name: "update_all",
            what: "change one field of every loaded object, flush + commit",
            floor: "floor_update_batched",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                let s = f.engine.session();
                let all = s
                    .query::<Customer>()
                    .order_by(Customer::ID, Order::Asc)
                    .all()?;
                let t = timed(|| {
                    for (i, h) in all.iter().enumerate() {
                        h.write()?.description = format!("updated {i}");
                    }
                    s.commit()?;
                    Ok(())
                })?;
                verify_updated(&f, n)?;
                Ok(t)
            },
        },
        Case {
            name: "bulk_update_mappings",
            what: "B4 bulk_update_mappings by key",
            floor: "floor_update_batched",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                let s = f.engine.session();
                let t = timed(|| {
                    let rows = (0..n).map(|i| {
                        Mapping::from([
                            Customer::ID.to(i64::try_from(i + 1).unwrap_or(i64::MAX)),
                            Customer::DESCRIPTION.to(format!("updated {i}")),
                        ])
                    });
                    s.bulk_update_mappings(rows)?;
                    s.commit()?;
                    Ok(())
                })?;
                verify_updated(&f, n)?;
                Ok(t)
            },
        },
        Case {
            name: "floor_delete",
            what: "raw driver: prepared DELETE per row, one transaction",
            floor: "floor_delete",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                #[cfg(feature = "postgres")]
                if let Some(c) = f.pg.as_mut() {
                    let t = timed(|| pg::delete(c, n))?;
                    verify_deleted(&f)?;
                    return Ok(t);
                }
                #[cfg(feature = "mysql")]
                if let Some(c) = f.my.as_mut() {
                    let t = timed(|| my::delete(c, n))?;
                    verify_deleted(&f)?;
                    return Ok(t);
                }
                let t = timed(|| {
                    let tx = f.raw.transaction()?;
                    {
                        let mut stmt = tx.prepare("DELETE FROM customer WHERE id = ?")?;
                        for i in 0..n {
                            if stmt.execute([i64::try_from(i + 1)?])? != 1 {
                                return Err(fail(format!("row {} not deleted", i + 1)));
                            }
                        }
                    }
                    tx.commit()?;
                    Ok(())
                })?;
                verify_raw_deleted(&f.raw)?;
                Ok(t)
            },
        },
        Case {
            name: "floor_delete_batched",
            what: "raw driver: batched DELETE (PostgreSQL: id = ANY of an array, 10,000 rows a statement; SQLite: id IN (…) of 100; MySQL: of 1,000)",
            floor: "floor_delete_batched",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                #[cfg(feature = "postgres")]
                if let Some(c) = f.pg.as_mut() {
                    let t = timed(|| pg::delete_batched(c, n))?;
                    verify_deleted(&f)?;
                    return Ok(t);
                }
                #[cfg(feature = "mysql")]
                if let Some(c) = f.my.as_mut() {
                    let t = timed(|| my::delete_batched(c, n))?;
                    verify_deleted(&f)?;
                    return Ok(t);
                }
                let t = timed(|| {
                    raw_batched(
                        &mut f.raw,
                        n,
                        |k| {
                            format!(
                                "DELETE FROM customer WHERE id IN ({})",
                                vec!["?"; k].join(", ")
                            )
                        },
                        |stmt, j, i| {
                            stmt.raw_bind_parameter(j + 1, i64::try_from(i + 1).unwrap_or(0))
                        },
                    )
                })?;
                verify_raw_deleted(&f.raw)?;
                Ok(t)
            },
        },
        Case {
            name: "delete_all",
            what: "delete every loaded object, flush + commit",
            floor: "floor_delete_batched",
            run: |db, n| {
                let mut f = fresh(db)?;
                populate(&mut f, n, db)?;
                let s = f.engine.session();
                let all = s
                    .query::<Customer>()
                    .order_by(Customer::ID, Order::Asc)
                    .all()?;
                let t = timed(|| {
                    for h in &all {
                        s.delete(h)?;
                    }
                    s.commit()?;
                    Ok(())
                })?;
                verify_deleted(&f)?;
                Ok(t)
            },
        },
    ]
}

/// A batched SQLite floor: rows `0..n` in statements of 100 (`sql(k)` for `k` rows), row
/// `i` bound as the `j`-th of its statement by `bind`; every statement must change all its
/// rows. One transaction.
fn raw_batched(
    raw: &mut rusqlite::Connection,
    n: usize,
    sql: impl Fn(usize) -> String,
    bind: impl Fn(&mut rusqlite::Statement<'_>, usize, usize) -> rusqlite::Result<()>,
) -> BoxResult<()> {
    const PER: usize = 100;
    let tx = raw.transaction()?;
    {
        let mut full = tx.prepare(&sql(PER))?;
        let mut start = 0;
        while start < n {
            let k = PER.min(n - start);
            let mut part;
            let stmt = if k == PER {
                &mut full
            } else {
                part = tx.prepare(&sql(k))?;
                &mut part
            };
            for j in 0..k {
                bind(stmt, j, start + j)?;
            }
            if stmt.raw_execute()? != k {
                return Err(fail(format!("rows from {start} not all changed")));
            }
            start += k;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The SQLite floors' check: on `sqlite-memory` their rows are in a database of their own.
fn verify_raw_updated(raw: &rusqlite::Connection, n: usize) -> BoxResult<()> {
    let updated: i64 = raw.query_row(
        "SELECT count(*) FROM customer WHERE description LIKE 'updated %'",
        [],
        |r| r.get(0),
    )?;
    if updated != i64::try_from(n)? {
        return Err(fail(format!("{updated} of {n} rows updated")));
    }
    Ok(())
}

fn verify_raw_deleted(raw: &rusqlite::Connection) -> BoxResult<()> {
    let left: i64 = raw.query_row("SELECT count(*) FROM customer", [], |r| r.get(0))?;
    if left != 0 {
        return Err(fail(format!("{left} rows left")));
    }
    Ok(())
}

fn verify_deleted(f: &Fresh) -> BoxResult<()> {
    let left = f.engine.connect()?.count::<Customer>(None)?;
    if left != 0 {
        return Err(fail(format!("{left} rows left")));
    }
    Ok(())
}

fn verify_updated(f: &Fresh, n: usize) -> BoxResult<()> {
    let conn = f.engine.connect()?;
    let updated = conn.count(Some(Customer::DESCRIPTION.like("updated %")))?;
    if updated != n as u64 {
        return Err(fail(format!("{updated} of {n} rows updated")));
    }
    let last = conn
        .find::<Customer>(&Key::Int(i64::try_from(n)?))?
        .ok_or_else(|| fail("last row".into()))?;
    if last.description != format!("updated {}", n - 1) {
        return Err(fail(format!("last row holds {:?}", last.description)));
    }
    Ok(())
}

/// Resident set size of this process, in bytes.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<usize>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Run in a child process: the RSS growth of holding `n` customers, either in a plain
/// `Vec` (the structs themselves), in a `Vec` whose rows were written untracked
/// (`bulk_save`), or tracked by a session after `add_all` + commit.
fn measure_memory(what: &str, n: usize) -> BoxResult<usize> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::sqlite_file(dir.path().join("mem.db"))?.expire_on_commit(false);
    engine.create_table::<Customer>()?;
    let s = engine.session();
    let before = rss();
    let grown = match what {
        "vec" => {
            let v: Vec<Customer> = (0..n).map(customer).collect();
            let g = rss() - before;
            drop(std::hint::black_box(v));
            g
        }
        // The same structs, their rows written and committed without tracking: what the
        // database connection itself holds after N rows (SQLite's page cache) is in both.
        "written" => {
            let mut v: Vec<Customer> = (0..n).map(customer).collect();
            s.bulk_save(v.iter_mut(), BulkOptions::default().return_defaults(true))?;
            s.commit()?;
            let g = rss() - before;
            drop(std::hint::black_box(v));
            g
        }
        _ => {
            let handles = s.add_all((0..n).map(customer))?;
            s.commit()?;
            let g = rss() - before;
            drop(std::hint::black_box(handles));
            g
        }
    };
    Ok(grown)
}

/// Peak resident set size of this process, in bytes.
fn peak_rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<usize>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// Run in a child process: streams `n` rows through `bulk_insert_mappings` (B7) and reports
/// the peak RSS.
fn measure_stream(n: usize) -> BoxResult<usize> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::sqlite_file(dir.path().join("stream.db"))?;
    engine.create_table::<Customer>()?;
    let s = engine.session();
    let rows = (0..n).map(mapping);
    let r = s.bulk_insert_mappings(rows, BulkOptions::default())?;
    s.commit()?;
    if r.inserted != n as u64 {
        return Err(fail(format!("streamed {} of {n} rows", r.inserted)));
    }
    Ok(peak_rss())
}

/// Run in a child process on the database its parent filled (`path` for SQLite, the
/// parent's schema on PostgreSQL): reads every customer through the session, either
/// streamed a page at a time or into a `Vec`, touching each. Prints the peak RSS, the RSS
/// before the read, the seconds the read took and the rows read.
fn measure_read(how: &str, db: Db, path: Option<&str>) -> BoxResult<String> {
    let engine = match db {
        #[cfg(feature = "postgres")]
        Db::Postgres => Engine::postgres_with(
            &pg::url(),
            orm_session::PgOptions::default().schema(pg::schema()),
        )?,
        #[cfg(feature = "mysql")]
        Db::MySql => Engine::mysql_with(
            &my::url(),
            orm_session::MySqlOptions::default().database(my::database()),
        )?,
        _ => Engine::sqlite_file(path.ok_or_else(|| fail("--path needed".into()))?)?,
    };
    let s = engine.session();
    let before = rss();
    let start = Instant::now();
    let mut n = 0usize;
    let mut chars = 0usize;
    if how == "stream" {
        for h in s.query::<Customer>().yield_per(1000).iter()? {
            chars += h?.read()?.name.len();
            n += 1;
        }
    } else {
        let all = s.query::<Customer>().all()?;
        for h in &all {
            chars += h.read()?.name.len();
            n += 1;
        }
    }
    std::hint::black_box(chars);
    Ok(format!(
        "{} {before} {:.3} {n}",
        peak_rss(),
        start.elapsed().as_secs_f64()
    ))
}

/// Fills a database with `n` customers, then reads them in two children (streamed, and
/// into a `Vec`) and prints each one's peak RSS.
fn read_check(db: Db, n: usize) -> BoxResult<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("read.db");
    let engine = match db {
        #[cfg(feature = "postgres")]
        Db::Postgres => {
            let mut c = pg::client()?;
            c.batch_execute("DROP TABLE IF EXISTS customer")?;
            Engine::postgres_with(
                &pg::url(),
                orm_session::PgOptions::default().schema(pg::schema()),
            )?
        }
        #[cfg(feature = "mysql")]
        Db::MySql => {
            let mut c = my::conn()?;
            mysql::prelude::Queryable::query_drop(&mut c, "DROP TABLE IF EXISTS customer")?;
            Engine::mysql_with(
                &my::url(),
                orm_session::MySqlOptions::default().database(my::database()),
            )?
        }
        _ => Engine::sqlite_file(&path)?,
    };
    engine.create_table::<Customer>()?;
    let s = engine.session();
    s.bulk_insert_mappings((0..n).map(mapping), BulkOptions::default())?;
    s.commit()?;
    drop(s);
    let mut line = format!("Q4 reading {n} customers on {}:", db.name());
    for how in ["stream", "vec"] {
        let out = std::process::Command::new(std::env::current_exe()?)
            .args(["--measure-read", how, "--db", db.name(), "--path"])
            .arg(&path)
            .env("ORM_BENCH_SCHEMA", pg_schema_name())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [peak, before, secs, rows] = fields[..] else {
            return Err(fail(format!(
                "read child said {text:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        };
        if rows.parse::<usize>()? != n {
            return Err(fail(format!("the {how} child read {rows} of {n} rows")));
        }
        let (peak, before): (usize, usize) = (peak.parse()?, before.parse()?);
        line.push_str(&format!(
            " {} peak RSS {:.1} MiB (+{:.1} MiB over the {:.1} MiB before it), {secs} s;",
            if how == "stream" {
                "yield_per(1000).iter():"
            } else {
                "all() into a Vec:"
            },
            mib(peak),
            mib(peak.saturating_sub(before)),
            mib(before)
        ));
    }
    println!("{}", line.trim_end_matches(';'));
    #[cfg(feature = "postgres")]
    if db == Db::Postgres {
        pg::drop_schema()?;
    }
    #[cfg(feature = "mysql")]
    if db == Db::MySql {
        my::drop_database()?;
    }
    Ok(())
}

fn pg_schema_name() -> String {
    pg_schema_default()
}

/// The schema (PostgreSQL) or database (MySQL) of this run: `ORM_BENCH_SCHEMA`, which the
/// parent of a measuring child sets, or one named after the process.
fn pg_schema_default() -> String {
    std::env::var("ORM_BENCH_SCHEMA")
        .unwrap_or_else(|_| format!("orm_bench_{}", std::process::id()))
}

fn child_memory(what: &str, n: usize) -> BoxResult<usize> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--measure-memory", what, "--rows", &n.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .map_err(|_| fail(format!("memory child said {text:?}")))
}

struct Args {
    rows: usize,
    db: Db,
    repeat: usize,
    json: Option<PathBuf>,
    measure: Option<String>,
    only: Option<Vec<String>>,
    stream_check: bool,
    read_check: bool,
    measure_read: Option<String>,
    path: Option<String>,
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn args() -> BoxResult<Args> {
    let mut a = Args {
        rows: 100_000,
        db: Db::SqliteFile,
        repeat: 5,
        json: None,
        measure: None,
        stream_check: false,
        read_check: false,
        measure_read: None,
        path: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| fail(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--rows" => a.rows = value()?.parse()?,
            "--repeat" => a.repeat = value()?.parse::<usize>()?.max(1),
            "--json" => a.json = Some(value()?.into()),
            "--only" => a.only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--measure-memory" => a.measure = Some(value()?),
            "--stream-check" => a.stream_check = true,
            "--read-check" => a.read_check = true,
            "--measure-read" => a.measure_read = Some(value()?),
            "--path" => a.path = Some(value()?),
            "--db" => {
                a.db =
                    match value()?.as_str() {
                        "sqlite-file" => Db::SqliteFile,
                        "sqlite-memory" => Db::SqliteMemory,
                        #[cfg(feature = "postgres")]
                        "postgres" => Db::Postgres,
                        #[cfg(feature = "mysql")]
                        "mysql" => Db::MySql,
                        #[cfg(not(feature = "mysql"))]
                        "mysql" => return Err(fail(
                            "--db mysql needs the `mysql` feature: \
                             cargo run --release --example bulk_inserts --features mysql -- --db mysql"
                                .into(),
                        )),
                        #[cfg(not(feature = "postgres"))]
                        "postgres" => return Err(fail(
                            "--db postgres needs the `postgres` feature: \
                             cargo run --release --example bulk_inserts --features postgres -- --db postgres"
                                .into(),
                        )),
                        other => {
                            return Err(fail(format!(
                                "unknown --db {other}: sqlite-file, sqlite-memory or postgres"
                            )));
                        }
                    }
            }
            "-h" | "--help" => {
                println!(
                    "bulk_inserts --rows N --db sqlite-file|sqlite-memory|postgres --repeat K [--json FILE] [--only a,b] [--stream-check] [--read-check]"
                );
                std::process::exit(0);
            }
            other => return Err(fail(format!("unknown argument {other}"))),
        }
    }
    if a.rows == 0 {
        return Err(fail("--rows must be at least 1".into()));
    }
    Ok(a)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

fn main() -> BoxResult<()> {
    let a = args()?;
    if let Some(what) = &a.measure {
        let bytes = if what == "stream" {
            measure_stream(a.rows)?
        } else {
            measure_memory(what, a.rows)?
        };
        println!("{bytes}");
        return Ok(());
    }
    if let Some(how) = &a.measure_read {
        println!("{}", measure_read(how, a.db, a.path.as_deref())?);
        return Ok(());
    }
    if a.read_check {
        return read_check(a.db, a.rows);
    }
    if a.stream_check {
        let small = child_memory("stream", a.rows)?;
        let large = child_memory("stream", a.rows * 100)?;
        println!(
            "B7 streaming: peak RSS {:.1} MiB for {} rows, {:.1} MiB for {} rows through bulk_insert_mappings",
            mib(small),
            a.rows,
            mib(large),
            a.rows * 100
        );
        return Ok(());
    }
    let mut cases = cases();
    cases.retain(|c| c.name != "floor_update_copy" || db_is_postgres(a.db));
    cases.retain(|c| c.name != "floor_held" || matches!(a.db, Db::SqliteFile | Db::SqliteMemory));
    if let Some(only) = &a.only {
        // The cases asked for, the floors they are measured against, and the per-row floors
        // of the batched cases (for the speedup lines).
        let asked = |name: &str| only.iter().any(|o| o == name);
        let needed: Vec<&str> = cases
            .iter()
            .filter(|c| asked(c.name))
            .flat_map(|c| {
                let per_row = PER_ROW
                    .iter()
                    .filter(|(case, _)| *case == c.name)
                    .map(|(_, floor)| *floor);
                std::iter::once(c.floor).chain(per_row)
            })
            .collect();
        cases.retain(|c| asked(c.name) || needed.contains(&c.name));
    }
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for rep in 1..=a.repeat {
        for case in &cases {
            eprint!("\r[{rep}/{}] {:<32}", a.repeat, case.name);
            LAST_CPU.with(|c| c.set(None));
            let t = (case.run)(a.db, a.rows).map_err(|e| fail(format!("{}: {e}", case.name)))?;
            times.entry(case.name).or_default().push(t.as_secs_f64());
            if let Some(c) = LAST_CPU.with(std::cell::Cell::get) {
                cpu.entry(case.name).or_default().push(c);
            }
        }
    }
    eprintln!("\r{:<50}", "");
    #[cfg(feature = "postgres")]
    if a.db == Db::Postgres {
        pg::drop_schema()?;
    }
    #[cfg(feature = "mysql")]
    if a.db == Db::MySql {
        my::drop_database()?;
    }
    let medians: BTreeMap<&str, f64> = times
        .iter()
        .map(|(k, v)| (*k, median(&mut v.clone())))
        .collect();
    let cpu_medians: BTreeMap<&str, f64> = cpu
        .iter()
        .filter(|(k, v)| v.len() == times[*k].len())
        .map(|(k, v)| (*k, median(&mut v.clone())))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let rows = a.rows as f64;
    println!(
        "{} rows, {}, {} interleaved runs per case (SQLite {})",
        a.rows,
        a.db.name(),
        a.repeat,
        rusqlite::version()
    );
    println!(
        "{:<31} {:>9} {:>9} {:>12} {:>7} {:>7} {:>7} {:>6}  what",
        "case", "min s", "median s", "rows/s", "ratio", "min×", "cpu s", "cpu×"
    );
    let mut json = String::from("[");
    for case in &cases {
        let v = &times[case.name];
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let med = medians[case.name];
        let ratio = med / medians[case.floor];
        let floor_min = times[case.floor]
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let min_ratio = min / floor_min;
        // The median CPU time of this thread in the timed region, and its ratio to the
        // floor's: "-" where it was not measured.
        let (cpu_s, cpu_ratio) = match (cpu_medians.get(case.name), cpu_medians.get(case.floor)) {
            (Some(c), Some(f)) => (format!("{c:.3}"), format!("{:.2}", c / f)),
            (Some(c), None) => (format!("{c:.3}"), "-".into()),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "{:<31} {:>9.3} {:>9.3} {:>12.0} {:>7.2} {:>7.2} {:>7} {:>6}  {} (vs {})",
            case.name,
            min,
            med,
            rows / med,
            ratio,
            min_ratio,
            cpu_s,
            cpu_ratio,
            case.what,
            case.floor
        );
        if json.len() > 1 {
            json.push(',');
        }
        write!(
            json,
            "\n  {{\"db\": \"{}\", \"case\": \"{}\", \"rows\": {}, \"min_s\": {min:.6}, \"median_s\": {med:.6}, \"ratio\": {ratio:.4}, \"min_ratio\": {min_ratio:.4}}}",
            a.db.name(),
            case.name,
            a.rows
        )?;
    }
    json.push_str("\n]\n");
    // The batched paths against the per-row floors (BENCH.md: at least 10 times faster on
    // PostgreSQL).
    for (case, per_row) in PER_ROW {
        if let (Some(c), Some(p)) = (medians.get(case), medians.get(per_row)) {
            println!(
                "{case}: {:.2}× the time of {per_row}, the per-row floor ({:.1} times as fast; medians)",
                c / p,
                p / c
            );
        }
    }
    if a.only.is_none()
        || a.only
            .as_ref()
            .is_some_and(|o| o.iter().any(|c| c == "memory"))
    {
        let base = child_memory("vec", a.rows)?;
        let written = child_memory("written", a.rows)?;
        let tracked = child_memory("session", a.rows)?;
        #[allow(clippy::cast_precision_loss)]
        let (per, per_rows) = (
            (tracked as f64 - written as f64) / rows,
            (tracked as f64 - base as f64) / rows,
        );
        println!(
            "memory: {per:.0} bytes per tracked object beyond the struct and its row (RSS growth of \
             add_all + commit of {} objects, {tracked} B, minus the same structs in a Vec whose rows \
             bulk_save wrote untracked, {written} B); {per_rows:.0} bytes beyond a plain Vec of \
             the structs ({base} B), which leaves out the database's own cache; both include the \
             caller's Vec of handles",
            a.rows
        );
    }
    if let Some(path) = &a.json {
        std::fs::write(path, json)?;
    }
    Ok(())
}
