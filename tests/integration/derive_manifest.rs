//! The derive's reader of `Cargo.toml` dependencies (`orm-derive/src/deps.rs`, included here so
//! that the proc-macro crate needs no unit-test build of its own).

#[path = "../../orm-derive/src/deps.rs"]
#[allow(dead_code, unreachable_pub)]
mod deps;

use deps::dependencies;

fn found(manifest: &str) -> Vec<(String, String)> {
    dependencies(manifest)
        .into_iter()
        .map(|d| (d.name, d.package))
        .collect()
}

#[test]
fn finds_dependencies_in_every_form() {
    let m = r#"
[package]
name = "app"
version = "0.1.0"

[dependencies]
orm-session = { path = "../orm-session" }   # the facade
serde.workspace = true
db = { version = "0.1", package = "orm-core" }

[dev-dependencies.renamed]
package = "orm-session"
version = "0.1"

[target.'cfg(unix)'.dependencies]
libc = "0.2"
"#;
    let deps = found(m);
    assert!(
        deps.contains(&("orm-session".into(), "orm-session".into())),
        "{deps:?}"
    );
    assert!(deps.contains(&("db".into(), "orm-core".into())), "{deps:?}");
    assert!(
        deps.contains(&("renamed".into(), "orm-session".into())),
        "{deps:?}"
    );
    assert!(deps.contains(&("serde".into(), "serde".into())), "{deps:?}");
    assert!(
        !deps.iter().any(|(n, _)| n == "name" || n == "version"),
        "{deps:?}"
    );
}
