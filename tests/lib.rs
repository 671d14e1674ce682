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
    _guard: tracing::subscriber::DefaultGuard,
}

struct Recorder(SqlLog);

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
        if event.metadata().target() == "orm::sql" {
            let mut f = SqlField(None);
            event.record(&mut f);
            if let Some(sql) = f.0 {
                self.0.statements.lock().push(sql);
            }
        }
    }
}

impl SqlLog {
    /// Starts recording the statements this thread sends.
    pub fn start() -> (SqlLog, SqlLogGuard) {
        let log = SqlLog::default();
        let subscriber = tracing_subscriber::registry().with(
            Recorder(log.clone()).with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
        );
        let guard = tracing::subscriber::set_default(subscriber);
        (log, SqlLogGuard { _guard: guard })
    }

    /// Every statement so far.
    pub fn statements(&self) -> Vec<String> {
        self.statements.lock().clone()
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
