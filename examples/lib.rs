//! Helpers shared by the examples.

/// Prints every SQL statement (target `orm::sql`) to stderr, inside the spans of the session
/// steps that sent it (target `orm::session`).
pub fn log_sql() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `RUST_LOG` in the `target=level,…` form overrides the default.
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_target("orm::sql", tracing::Level::DEBUG)
                .with_target("orm::session", tracing::Level::DEBUG)
        });
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .without_time()
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .try_init();
}
