//! `Engine`: where connections come from, and the defaults of the sessions it makes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orm_core::{Connection, Entity, Result, SqliteOptions};
use parking_lot::Mutex;

use crate::session::Session;

/// How many idle connections an engine keeps for reuse.
const MAX_IDLE: usize = 8;

enum Target {
    File {
        path: PathBuf,
        options: SqliteOptions,
    },
    /// A memdb database shared by this engine's connections; the anchor keeps it alive.
    Memory {
        name: String,
        _anchor: Mutex<Connection>,
    },
    /// A PostgreSQL server.
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        /// The URL without its password.
        shown: String,
        options: orm_core::PgOptions,
    },
}

struct Inner {
    target: Target,
    idle: Mutex<Vec<Connection>>,
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
        };
        f.debug_struct("Engine")
            .field("target", &target)
            .finish_non_exhaustive()
    }
}

impl Engine {
    fn new(target: Target) -> Self {
        Engine {
            inner: Arc::new(Inner {
                target,
                idle: Mutex::new(Vec::new()),
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
        let first = Connection::open_sqlite_with(&path, &options)?;
        let engine = Self::new(Target::File { path, options });
        engine.inner.idle.lock().push(first);
        Ok(engine)
    }

    /// An engine on a new in-memory SQLite database that all its sessions share. The
    /// database lives as long as the engine (or one of its clones).
    ///
    /// # Errors
    /// [`Error::Open`](orm_core::Error::Open) if SQLite cannot create it.
    pub fn sqlite_memory() -> Result<Self> {
        let name = format!("orm-{}", uuid::Uuid::now_v7());
        let anchor = Connection::open_sqlite_shared_memory(&name)?;
        Ok(Self::new(Target::Memory {
            name,
            _anchor: Mutex::new(anchor),
        }))
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
        let first = Connection::open_postgres_with(url, &options)?;
        let engine = Self::new(Target::Postgres {
            url: url.to_owned(),
            shown: first.target().to_owned(),
            options,
        });
        engine.inner.idle.lock().push(first);
        Ok(engine)
    }

    /// The SQL dialect of this engine's database.
    pub fn backend(&self) -> orm_core::Backend {
        match &self.inner.target {
            Target::File { .. } | Target::Memory { .. } => orm_core::Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Target::Postgres { .. } => orm_core::Backend::Postgres,
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

    /// A connection of this engine's database, outside any session (for raw SQL, DDL, or to
    /// play "another writer" in a test). Give it back with [`release`](Self::release) to let
    /// it be reused, or drop it.
    ///
    /// # Errors
    /// [`Error::Open`](orm_core::Error::Open).
    pub fn connect(&self) -> Result<Connection> {
        if let Some(c) = self.inner.idle.lock().pop() {
            return Ok(c);
        }
        match &self.inner.target {
            Target::File { path, options } => Connection::open_sqlite_with(path, options),
            Target::Memory { name, .. } => Connection::open_sqlite_shared_memory(name),
            #[cfg(feature = "postgres")]
            Target::Postgres { url, options, .. } => Connection::open_postgres_with(url, options),
        }
    }

    /// Returns a connection to the pool. A connection still inside a transaction is rolled
    /// back first; one that cannot be is dropped.
    pub fn release(&self, conn: Connection) {
        if !conn.is_usable() || (conn.in_transaction() && conn.rollback().is_err()) {
            return;
        }
        let mut idle = self.inner.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
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
