//! `Engine`: where connections come from (a pool), and the defaults of the sessions it makes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use orm_core::{Connection, Entity, Error, Result, SqliteOptions};
use parking_lot::Mutex;

use crate::session::Session;

/// Connections an engine's pool holds at most, unless set with
/// [`Engine::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long a checkout waits for a free connection, unless set with
/// [`Engine::checkout_timeout`].
pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);

/// One thread, shared by every engine, for the pools' housekeeping (closing connections
/// idle too long).
static POOL_THREAD: LazyLock<Arc<scheduled_thread_pool::ScheduledThreadPool>> =
    LazyLock::new(|| {
        Arc::new(
            scheduled_thread_pool::ScheduledThreadPool::builder()
                .num_threads(1)
                .thread_name_pattern("orm-pool-{}")
                .build(),
        )
    });

#[derive(Clone)]
enum Target {
    File {
        path: PathBuf,
        options: SqliteOptions,
    },
    /// A memdb database shared by this engine's connections; the anchor keeps it alive.
    Memory {
        name: String,
        _anchor: Arc<Mutex<Connection>>,
    },
    /// A PostgreSQL server.
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        /// The URL without its password.
        shown: String,
        options: orm_core::PgOptions,
    },
    /// A MySQL or MariaDB server.
    #[cfg(feature = "mysql")]
    MySql {
        url: String,
        /// The URL without its password.
        shown: String,
        options: orm_core::MySqlOptions,
    },
}

/// Opens, checks and resets an engine's connections for its pool (r2d2's
/// `ManageConnection`). A connection given back is rolled back if a transaction is open,
/// and reset after raw SQL ([`Connection::reset`]); one that is lost or fails either is
/// dropped. Before a connection that sat idle for a while is handed out, one round trip
/// checks it ([`Connection::validate`]).
pub struct ConnectionManager {
    target: Target,
}

impl ConnectionManager {
    fn open(&self) -> Result<Connection> {
        match &self.target {
            Target::File { path, options } => Connection::open_sqlite_with(path, options),
            Target::Memory { name, .. } => Connection::open_sqlite_shared_memory(name),
            #[cfg(feature = "postgres")]
            Target::Postgres { url, options, .. } => Connection::open_postgres_with(url, options),
            #[cfg(feature = "mysql")]
            Target::MySql { url, options, .. } => Connection::open_mysql_with(url, options),
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = Connection;
    type Error = Error;

    fn connect(&self) -> Result<Connection> {
        self.open()
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<()> {
        conn.validate()
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        match conn.reset() {
            Ok(()) => false,
            Err(e) => {
                tracing::debug!(target: "orm::pool", error = %e, "dropping a connection that cannot be reset");
                true
            }
        }
    }
}

/// A connection checked out of an engine's pool; it goes back when dropped.
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

struct Inner {
    target: Target,
    pool: r2d2::Pool<ConnectionManager>,
    /// Entities whose mapping was checked against the live table (by its
    /// [`identity`](orm_core::EntityMeta::identity)): each is checked once, before its first
    /// write through this engine.
    checked: Mutex<std::collections::HashSet<(&'static str, &'static str, u64)>>,
    max_connections: u32,
    checkout_timeout: Duration,
}

/// A source of connections and the defaults for the sessions made from it.
///
/// `Engine` is `Send + Sync + Clone`: share one across threads and give each thread its own
/// [`Session`]. Connections are pooled and reused, with their prepared statements.
///
/// ```
/// use orm_session::Engine;
/// # fn main() -> orm_session::Result<()> {
/// let engine = Engine::sqlite_memory()?.expire_on_commit(false);
/// let for_thread = engine.clone();
/// std::thread::spawn(move || drop(for_thread.session())).join().unwrap();
/// assert!(!engine.session().expire_on_commit());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    expire_on_commit: bool,
    autoflush: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.inner.target {
            Target::File { path, .. } => path.display().to_string(),
            Target::Memory { name, .. } => format!("memory:{name}"),
            #[cfg(feature = "postgres")]
            Target::Postgres { shown, .. } => shown.clone(),
            #[cfg(feature = "mysql")]
            Target::MySql { shown, .. } => shown.clone(),
        };
        let state = self.inner.pool.state();
        f.debug_struct("Engine")
            .field("target", &target)
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .field("max_connections", &self.inner.max_connections)
            .finish_non_exhaustive()
    }
}

impl Engine {
    fn new(target: Target, max_connections: u32, checkout_timeout: Duration) -> Self {
        let pool = r2d2::Pool::builder()
            .max_size(max_connections.max(1))
            .min_idle(Some(0))
            .connection_timeout(checkout_timeout)
            .idle_timeout(Some(Duration::from_secs(600)))
            .thread_pool(Arc::clone(&POOL_THREAD))
            .build_unchecked(ConnectionManager {
                target: target.clone(),
            });
        Engine {
            inner: Arc::new(Inner {
                target,
                pool,
                checked: Mutex::default(),
                max_connections: max_connections.max(1),
                checkout_timeout,
            }),
            expire_on_commit: true,
            autoflush: true,
        }
    }

    /// An engine on a SQLite file (created if missing) with default options.
    ///
    /// # Errors
    /// [`Error::Open`](orm_core::Error::Open) when the file cannot be opened.
    pub fn sqlite_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::sqlite_file_with(path, SqliteOptions::default())
    }

    /// An engine on a SQLite file with options (WAL, busy timeout, …).
    ///
    /// # Errors
    /// [`Error::Open`](orm_core::Error::Open) when the file cannot be opened.
    pub fn sqlite_file_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // Opened now, so that a path that cannot be a database fails here.
        drop(Connection::open_sqlite_with(&path, &options)?);
        Ok(Self::new(
            Target::File { path, options },
            DEFAULT_MAX_CONNECTIONS,
            DEFAULT_CHECKOUT_TIMEOUT,
        ))
    }

    /// An engine on a new in-memory SQLite database that all its sessions share. The
    /// database lives as long as the engine (or one of its clones).
    ///
    /// # Errors
    /// [`Error::Open`](orm_core::Error::Open) if SQLite cannot create it.
    pub fn sqlite_memory() -> Result<Self> {
        let name = format!("orm-{}", uuid::Uuid::now_v7());
        let anchor = Connection::open_sqlite_shared_memory(&name)?;
        Ok(Self::new(
            Target::Memory {
                name,
                _anchor: Arc::new(Mutex::new(anchor)),
            },
            DEFAULT_MAX_CONNECTIONS,
            DEFAULT_CHECKOUT_TIMEOUT,
        ))
    }

    /// An engine on a PostgreSQL server, from a URL (`postgres://user@host:5432/db`) or a
    /// key-value string (`host=… user=… dbname=…`). One connection is opened now, so a wrong
    /// address fails here.
    ///
    /// ```no_run
    /// use orm_session::Engine;
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::postgres("postgres://postgres@127.0.0.1:5432/test")?;
    /// let mut session = engine.session();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Open`](orm_core::Error::Open) when the server cannot be reached or refuses
    /// the login.
    #[cfg(feature = "postgres")]
    pub fn postgres(url: &str) -> Result<Self> {
        Self::postgres_with(url, orm_core::PgOptions::default())
    }

    /// An engine on a PostgreSQL server with options: with a schema, every connection puts
    /// it first on its `search_path` (created if missing), so tables are created and found
    /// there.
    ///
    /// # Errors
    /// As [`postgres`](Self::postgres), and when the schema cannot be created or set.
    #[cfg(feature = "postgres")]
    pub fn postgres_with(url: &str, options: orm_core::PgOptions) -> Result<Self> {
        Self::server(Target::Postgres {
            url: url.to_owned(),
            shown: orm_core::display_url(url),
            options,
        })
    }

    /// An engine on a database server; one connection is opened at once, so that a wrong
    /// address fails here (the pool would retry until its checkout timeout).
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    fn server(target: Target) -> Result<Self> {
        let engine = Self::new(target, DEFAULT_MAX_CONNECTIONS, DEFAULT_CHECKOUT_TIMEOUT);
        drop(
            ConnectionManager {
                target: engine.inner.target.clone(),
            }
            .open()?,
        );
        Ok(engine)
    }

    /// An engine on a MySQL or MariaDB server (`mysql://user:password@host:port/database`);
    /// one connection is opened at once, so that a wrong address fails here.
    ///
    /// ```no_run
    /// use orm_session::Engine;
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::mysql("mysql://root@127.0.0.1:3306/test")?;
    /// let mut session = engine.session();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Open`](orm_core::Error::Open) when the server cannot be reached or refuses
    /// the login.
    #[cfg(feature = "mysql")]
    pub fn mysql(url: &str) -> Result<Self> {
        Self::mysql_with(url, orm_core::MySqlOptions::default())
    }

    /// An engine on a MySQL or MariaDB server with options: with a database, every
    /// connection uses it (created if missing).
    ///
    /// # Errors
    /// As [`mysql`](Self::mysql), and when the database cannot be created or used.
    #[cfg(feature = "mysql")]
    pub fn mysql_with(url: &str, options: orm_core::MySqlOptions) -> Result<Self> {
        Self::server(Target::MySql {
            url: url.to_owned(),
            shown: orm_core::display_mysql_url(url),
            options,
        })
    }

    /// This engine with a pool of at most `n` connections (default
    /// [`DEFAULT_MAX_CONNECTIONS`]). A session holds a connection only from its first
    /// statement to its commit, rollback or close, so many short sessions share a few.
    /// Set it before cloning the engine: clones made earlier keep the old pool.
    ///
    /// ```
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = orm_session::Engine::sqlite_memory()?.max_connections(2);
    /// assert_eq!(engine.pool_size(), 2);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn max_connections(self, n: u32) -> Self {
        let timeout = self.inner.checkout_timeout;
        self.rebuilt(n, timeout)
    }

    /// This engine with checkouts that wait at most `timeout` for a free connection
    /// (default [`DEFAULT_CHECKOUT_TIMEOUT`]) before failing with `ErrorKind::Connection`.
    #[must_use]
    pub fn checkout_timeout(self, timeout: Duration) -> Self {
        let max = self.inner.max_connections;
        self.rebuilt(max, timeout)
    }

    fn rebuilt(self, max_connections: u32, checkout_timeout: Duration) -> Self {
        let mut engine = Self::new(self.inner.target.clone(), max_connections, checkout_timeout);
        engine.expire_on_commit = self.expire_on_commit;
        engine.autoflush = self.autoflush;
        engine
    }

    /// Compares `E`'s mapping with its live table and reports every mismatch at once, each
    /// naming table, column, the field's type and the column's type
    /// ([`Connection::check_schema`]). Sessions run the same check once per entity and
    /// engine before the entity's first write, so a table made by a migration tool that does
    /// not fit fails clearly before anything is written.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Item { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.connect()?.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name VARCHAR(40))", &[])?;
    /// engine.check_schema::<Item>()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Schema`](orm_core::Error::Schema); database errors.
    pub fn check_schema<E: Entity>(&self) -> Result<()> {
        let conn = self.connect()?;
        conn.check_schema::<E>()?;
        self.inner.checked.lock().insert(E::META.identity());
        Ok(())
    }

    /// Checks `meta`'s mapping on `conn` unless this engine did already.
    pub(crate) fn ensure_checked(
        &self,
        meta: &'static orm_core::EntityMeta,
        conn: &Connection,
    ) -> Result<()> {
        let id = meta.identity();
        if self.inner.checked.lock().contains(&id) {
            return Ok(());
        }
        conn.check_mapping(meta)?;
        self.inner.checked.lock().insert(id);
        Ok(())
    }

    /// The most connections this engine's pool holds.
    pub fn pool_size(&self) -> u32 {
        self.inner.max_connections
    }

    /// Connections the pool has open now, checked out or idle.
    ///
    /// ```
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = orm_session::Engine::sqlite_memory()?;
    /// let conn = engine.connect()?;
    /// assert_eq!(engine.open_connections(), 1);
    /// # Ok(()) }
    /// ```
    pub fn open_connections(&self) -> u32 {
        self.inner.pool.state().connections
    }

    /// The SQL dialect of this engine's database.
    pub fn backend(&self) -> orm_core::Backend {
        match &self.inner.target {
            Target::File { .. } | Target::Memory { .. } => orm_core::Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Target::Postgres { .. } => orm_core::Backend::Postgres,
            #[cfg(feature = "mysql")]
            Target::MySql { .. } => orm_core::Backend::MySql,
        }
    }

    /// Whether sessions expire every object at commit (default `true`), as SQLAlchemy's
    /// `expire_on_commit`.
    #[must_use]
    pub fn expire_on_commit(mut self, on: bool) -> Self {
        self.expire_on_commit = on;
        self
    }

    /// Whether sessions flush pending changes before a query sends SQL (default `true`).
    #[must_use]
    pub fn autoflush(mut self, on: bool) -> Self {
        self.autoflush = on;
        self
    }

    /// A new session.
    pub fn session(&self) -> Session {
        Session::new(self.clone(), self.expire_on_commit, self.autoflush)
    }

    /// A connection of this engine's database from its pool, outside any session (for raw
    /// SQL, DDL, or to play "another writer" in a test). It goes back to the pool when
    /// dropped (or given to [`release`](Self::release)), rolled back and reset.
    ///
    /// # Errors
    /// [`Error::Open`](orm_core::Error::Open) when a new connection cannot be opened;
    /// `ErrorKind::Connection` when none is free within the checkout timeout.
    pub fn connect(&self) -> Result<PooledConnection> {
        self.inner.pool.get().map_err(|e| Error::Open {
            target: format!("{self:?}"),
            source: format!(
                "no connection within {:?} (pool of {}): {e}",
                self.inner.checkout_timeout, self.inner.max_connections
            )
            .into(),
        })
    }

    /// Gives a connection back to the pool (the same as dropping it).
    pub fn release(&self, conn: PooledConnection) {
        drop(conn);
    }

    /// `CREATE TABLE IF NOT EXISTS` for `E`.
    ///
    /// # Errors
    /// [`Error::Database`](orm_core::Error::Database).
    pub fn create_table<E: Entity>(&self) -> Result<()> {
        let conn = self.connect()?;
        let r = conn.create_table::<E>();
        self.release(conn);
        r
    }

    /// `CREATE TABLE IF NOT EXISTS` for a set of entities, referenced tables first, whatever
    /// the order given (SQLAlchemy's `create_all`); see [`Connection::create_all`].
    ///
    /// [`Connection::create_all`]: orm_core::Connection::create_all
    ///
    /// # Errors
    /// [`Error::Database`](orm_core::Error::Database).
    pub fn create_all(&self, metas: &[&'static orm_core::EntityMeta]) -> Result<()> {
        let conn = self.connect()?;
        let r = conn.create_all(metas);
        self.release(conn);
        r
    }

    /// `DROP TABLE IF EXISTS` for `E`.
    ///
    /// # Errors
    /// [`Error::Database`](orm_core::Error::Database).
    pub fn drop_table<E: Entity>(&self) -> Result<()> {
        let conn = self.connect()?;
        let r = conn.drop_table::<E>();
        self.release(conn);
        r
    }
}
