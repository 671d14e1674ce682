//! Helpers shared by the examples.

/// Prints every SQL statement (target `orm::sql`) to stderr, inside the spans of the session
/// steps that sent it (target `orm::session`).
pub fn log_sql() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("orm::sql=debug,orm::session=debug")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .try_init();
}
