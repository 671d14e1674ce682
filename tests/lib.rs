//! Helpers shared by the integration tests: database fixtures and a recorded log of the
//! SQL statements sent (target `orm::sql`).

use std::sync::Arc;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// The statements recorded while a [`SqlLog`] is active on this thread.
#[derive(Clone, Default)]
pub struct SqlLog {
    statements: Arc<Mutex<Vec<String>>>,
}

/// Keeps a [`SqlLog`] recording until dropped.
pub struct SqlLogGuard {
    previous: Option<SqlLog>,
}

impl Drop for SqlLogGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = self.previous.take());
    }
}

thread_local! {
    /// The log that statements sent on this thread go to.
    static CURRENT: std::cell::RefCell<Option<SqlLog>> = const { std::cell::RefCell::new(None) };
}

/// One process-wide subscriber routes each `orm::sql` event to the log of the thread that
/// sent it. (A subscriber per thread, set with `set_default`, races with the interest cache
/// of `tracing`'s call sites when tests run in parallel, and loses events.)
struct Recorder;

struct SqlField(Option<String>);

impl Visit for SqlField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "sql" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "sql" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "orm::sql" {
            return;
        }
        let Some(log) = CURRENT.with(|c| c.borrow().clone()) else {
            return;
        };
        let mut f = SqlField(None);
        event.record(&mut f);
        if let Some(sql) = f.0 {
            log.statements.lock().push(sql);
        }
    }
}

impl SqlLog {
    /// Starts recording the statements this thread sends.
    pub fn start() -> (SqlLog, SqlLogGuard) {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(Recorder.with_filter(
                tracing_subscriber::filter::filter_fn(|m| {
                    m.target() == "orm::sql" && *m.level() <= tracing::Level::DEBUG
                }),
            ));
            tracing::subscriber::set_global_default(subscriber)
                .expect("the test log is the only global subscriber");
        });
        let log = SqlLog::default();
        let previous = CURRENT.with(|c| c.borrow_mut().replace(log.clone()));
        (log, SqlLogGuard { previous })
    }

    /// Every statement so far. MySQL's identifiers in backticks are shown in double quotes
    /// (the sessions run with `ANSI_QUOTES`, where both mean the same), so that one expected
    /// text fits every backend.
    pub fn statements(&self) -> Vec<String> {
        self.statements
            .lock()
            .iter()
            .map(|s| s.replace('`', "\""))
            .collect()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.statements.lock().clear();
    }

    /// Statements that start with `prefix` (case-insensitive), e.g. `"UPDATE"`.
    pub fn starting_with(&self, prefix: &str) -> Vec<String> {
        self.statements()
            .into_iter()
            .filter(|s| {
                s.to_ascii_uppercase()
                    .starts_with(&prefix.to_ascii_uppercase())
            })
            .collect()
    }
}

/// A temporary directory holding a database file; removed on drop.
pub struct TempDb {
    /// The directory.
    pub dir: tempfile::TempDir,
}

impl TempDb {
    /// A new empty directory.
    pub fn new() -> Self {
        TempDb {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The path of the database file in it.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("test.db")
    }
}

impl Default for TempDb {
    fn default() -> Self {
        Self::new()
    }
}

/// Entities shared by the session tests.
pub mod model {
    use orm_session::Entity;

    /// The benchmark's customer.
    #[derive(Entity, Debug, Clone, PartialEq)]
    #[orm(table = "customer")]
    pub struct Customer {
        /// Database-generated key.
        #[orm(primary_key, auto_increment)]
        pub id: Option<i64>,
        /// Name.
        #[orm(unique)]
        pub name: String,
        /// Description.
        #[orm(column = "descr")]
        pub description: Option<String>,
        /// Age.
        pub age: i32,
    }

    impl Customer {
        /// A new, unsaved customer.
        pub fn new(name: &str, age: i32) -> Self {
            Customer {
                id: None,
                name: name.to_owned(),
                description: None,
                age,
            }
        }
    }
}

/// An engine on a fresh in-memory database with the `customer` table.
pub fn memory_engine() -> orm_session::Engine {
    let engine = orm_session::Engine::sqlite_memory().expect("in-memory engine");
    engine
        .create_table::<model::Customer>()
        .expect("create table");
    engine
}

/// Set by `.ci/run`: PostgreSQL tests fail instead of skipping when `DATABASE_URL` is unset.
pub const REQUIRE_POSTGRES: &str = "ORM_REQUIRE_POSTGRES";

/// The PostgreSQL server the tests use, from `DATABASE_URL`. `None` (after saying so on
/// stderr, once) when it is not set; a panic when it is not set but [`REQUIRE_POSTGRES`] is.
pub fn database_url() -> Option<String> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os(REQUIRE_POSTGRES).is_some() => panic!(
            "{REQUIRE_POSTGRES} is set but DATABASE_URL is not: the PostgreSQL tests cannot run"
        ),
        // Built with DATABASE_URL, so these tests are not marked ignored: they must run.
        _ if cfg!(orm_postgres) => panic!(
            "the tests were built with DATABASE_URL set, and it is not set now: set it again, \
             or rebuild without it (the PostgreSQL tests are then reported as ignored)"
        ),
        _ => {
            WARNED.call_once(|| {
                // Written to the real stderr, past the test harness's capture, so that the
                // skip shows in every run, not only when a test fails.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** DATABASE_URL is not set: the PostgreSQL half of the integration tests \
                     is IGNORED. Set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test when \
                     building and running the tests to run it. ***\n"
                );
            });
            None
        }
    }
}

/// Set by `.ci/run`: MySQL/MariaDB tests fail instead of skipping when `MYSQL_URL` is unset.
pub const REQUIRE_MYSQL: &str = "ORM_REQUIRE_MYSQL";

/// The MySQL or MariaDB server the tests use, from `MYSQL_URL`. `None` (after saying so on
/// stderr, once) when it is not set; a panic when it is not set but [`REQUIRE_MYSQL`] is.
pub fn mysql_url() -> Option<String> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    match std::env::var("MYSQL_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os(REQUIRE_MYSQL).is_some() => {
            panic!("{REQUIRE_MYSQL} is set but MYSQL_URL is not: the MySQL tests cannot run")
        }
        _ if cfg!(orm_mysql) => panic!(
            "the tests were built with MYSQL_URL set, and it is not set now: set it again, \
             or rebuild without it (the MySQL tests are then reported as ignored)"
        ),
        _ => {
            WARNED.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** MYSQL_URL is not set: the MySQL/MariaDB third of the integration \
                     tests is IGNORED. Set MYSQL_URL=mysql://root@127.0.0.1:3306/test when \
                     building and running the tests to run it. ***\n"
                );
            });
            None
        }
    }
}

/// What a [`TestDb`] made on a server, dropped with it.
enum Scratch {
    /// A PostgreSQL schema: the server's URL and the schema's name.
    PgSchema(String, String),
    /// A MySQL database: the server's URL and the database's name.
    MyDatabase(String, String),
}

/// A name for one test's schema or database, unique across processes and runs.
fn scratch_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "orm_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

/// A database for one test: a fresh in-memory SQLite database, a schema of its own on the
/// PostgreSQL server, or a database of its own on the MySQL server (either dropped with the
/// `TestDb`), each with the `customer` table. The same test body runs on all three through
/// [`backends!`].
pub struct TestDb {
    engine: orm_session::Engine,
    schema: Option<Scratch>,
}

impl TestDb {
    /// A fresh in-memory SQLite database.
    pub fn sqlite() -> TestDb {
        TestDb {
            engine: memory_engine(),
            schema: None,
        }
    }

    /// A fresh schema on the PostgreSQL server of `DATABASE_URL`, or `None` when that is not
    /// set (see [`database_url`]). Panics when the server cannot be reached.
    pub fn postgres() -> Option<TestDb> {
        let url = database_url()?;
        let schema = scratch_name();
        let engine = orm_session::Engine::postgres_with(
            &url,
            orm_session::PgOptions::default().schema(schema.clone()),
        )
        .unwrap_or_else(|e| panic!("DATABASE_URL is set but PostgreSQL is unreachable: {e}"));
        engine
            .create_table::<model::Customer>()
            .expect("create table");
        Some(TestDb {
            engine,
            schema: Some(Scratch::PgSchema(url, schema)),
        })
    }

    /// A fresh database on the MySQL or MariaDB server of `MYSQL_URL`, or `None` when that
    /// is not set (see [`mysql_url`]). Panics when the server cannot be reached.
    pub fn mysql() -> Option<TestDb> {
        Self::mysql_with(|o| o)
    }

    /// [`mysql`](Self::mysql) with the options `options` makes of the defaults (the test
    /// database is set afterwards).
    pub fn mysql_with(
        options: impl FnOnce(orm_session::MySqlOptions) -> orm_session::MySqlOptions,
    ) -> Option<TestDb> {
        let url = mysql_url()?;
        let name = scratch_name();
        let engine = orm_session::Engine::mysql_with(
            &url,
            options(orm_session::MySqlOptions::default()).database(name.clone()),
        )
        .unwrap_or_else(|e| panic!("MYSQL_URL is set but the server is unreachable: {e}"));
        engine
            .create_table::<model::Customer>()
            .expect("create table");
        Some(TestDb {
            engine,
            schema: Some(Scratch::MyDatabase(url, name)),
        })
    }

    /// The engine (a clone: configure it freely).
    pub fn engine(&self) -> orm_session::Engine {
        self.engine.clone()
    }

    /// A connection outside any session ("another writer").
    pub fn connect(&self) -> orm_session::PooledConnection {
        self.engine.connect().expect("connect")
    }

    /// The backend under test.
    pub fn backend(&self) -> orm_session::Backend {
        self.engine.backend()
    }

    /// Whether this is the PostgreSQL run.
    pub fn is_postgres(&self) -> bool {
        self.backend() == orm_session::Backend::Postgres
    }

    /// Whether this is the MySQL/MariaDB run.
    pub fn is_mysql(&self) -> bool {
        self.backend() == orm_session::Backend::MySql
    }

    /// Whether this is the SQLite run.
    pub fn is_sqlite(&self) -> bool {
        self.backend() == orm_session::Backend::Sqlite
    }

    /// Raw SQL written with `?` placeholders, in this backend's dialect (`$1`, `$2`, … on
    /// PostgreSQL). `?` inside quotes is left alone.
    pub fn sql(&self, sql: &str) -> String {
        if !self.is_postgres() {
            return sql.to_owned();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let (mut n, mut quote) = (0, None);
        for c in sql.chars() {
            match (c, quote) {
                ('\'' | '"', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                ('?', None) => {
                    n += 1;
                    out.push_str(&format!("${n}"));
                    continue;
                }
                _ => {}
            }
            out.push(c);
        }
        out
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (conn, sql, name) = match &self.schema {
            None => return,
            Some(Scratch::PgSchema(url, schema)) => (
                orm_session::Connection::open_postgres(url),
                format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
                schema,
            ),
            Some(Scratch::MyDatabase(url, name)) => (
                orm_session::Connection::open_mysql(url),
                format!("DROP DATABASE IF EXISTS \"{name}\""),
                name,
            ),
        };
        if let Ok(conn) = conn {
            let dropped = conn.execute(&sql, &[]);
            if let Err(e) = dropped
                && !std::thread::panicking()
            {
                panic!("dropping the test schema {name}: {e}");
            }
        }
    }
}

/// What a skipped server test returns: `()` or `Ok(())`.
pub trait Skipped {
    /// The value that reports success without running.
    fn skipped() -> Self;
}

impl Skipped for () {
    fn skipped() -> Self {}
}

impl<E> Skipped for Result<(), E> {
    fn skipped() -> Self {
        Ok(())
    }
}

/// Runs each test body on every backend: `fn name(db) -> Result<()> { … }` becomes the tests
/// `name::sqlite`, `name::postgres` and `name::mysql`, each calling the body with a fresh
/// [`TestDb`].
#[macro_export]
macro_rules! backends {
    ($( $(#[$meta:meta])* fn $name:ident($db:ident) $(-> $ret:ty)? $body:block )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($db: &$crate::TestDb) $(-> $ret)? $body

            $(#[$meta])*
            #[test]
            fn sqlite() $(-> $ret)? {
                body(&$crate::TestDb::sqlite())
            }

            $(#[$meta])*
            #[test]
            #[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
            fn postgres() $(-> $ret)? {
                match $crate::TestDb::postgres() {
                    Some(db) => body(&db),
                    None => $crate::Skipped::skipped(),
                }
            }

            $(#[$meta])*
            #[test]
            #[cfg_attr(not(orm_mysql), ignore = "needs MYSQL_URL at build time")]
            fn mysql() $(-> $ret)? {
                match $crate::TestDb::mysql() {
                    Some(db) => body(&db),
                    None => $crate::Skipped::skipped(),
                }
            }
        }
    )*};
}

/// [`backends!`] for a behaviour MySQL does not have (a deferred constraint, which makes a
/// `COMMIT` itself fail): the tests `name::sqlite` and `name::postgres` only.
#[macro_export]
macro_rules! sqlite_and_postgres {
    ($( $(#[$meta:meta])* fn $name:ident($db:ident) $(-> $ret:ty)? $body:block )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($db: &$crate::TestDb) $(-> $ret)? $body

            $(#[$meta])*
            #[test]
            fn sqlite() $(-> $ret)? {
                body(&$crate::TestDb::sqlite())
            }

            $(#[$meta])*
            #[test]
            #[cfg_attr(not(orm_postgres), ignore = "needs DATABASE_URL at build time")]
            fn postgres() $(-> $ret)? {
                match $crate::TestDb::postgres() {
                    Some(db) => body(&db),
                    None => $crate::Skipped::skipped(),
                }
            }
        }
    )*};
}

/// Runs `f` on a thread of its own and fails if it has not finished within `secs` seconds
/// (a deadlock), passing on its panic if it panicked.
pub fn watchdog<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(()) => worker.join().expect("worker"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("no answer within {secs} s: deadlock")
        }
    }
}
