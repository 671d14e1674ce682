//! Which path the generated code names `orm_core` by: a crate that depends only on
//! `orm-session` has no `orm_core` in scope, so the derive looks in the manifest of the crate
//! being compiled for a dependency on `orm-session` (under any name) and goes through its
//! re-export, else on `orm-core`. `#[orm(crate = "…")]` overrides it.

use proc_macro2::{Span, TokenStream};
use quote::quote;

/// A dependency found in a manifest: the name the crate is known by in code, and the
/// package it is.
struct Dependency {
    name: String,
    package: String,
}

/// The path of `orm_core` for the crate being compiled.
pub(crate) fn core_path() -> TokenStream {
    let deps = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|dir| std::path::Path::new(&dir).join("Cargo.toml"))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| dependencies(&text))
        .unwrap_or_default();
    let find = |package: &str| deps.iter().find(|d| d.package == package);
    if let Some(d) = find("orm-session") {
        let name = syn::Ident::new(&d.name.replace('-', "_"), Span::call_site());
        return quote!(::#name::__private::orm_core);
    }
    if let Some(d) = find("orm-core") {
        let name = syn::Ident::new(&d.name.replace('-', "_"), Span::call_site());
        return quote!(::#name);
    }
    // `orm-core` itself (its own tests and doctests), through `extern crate self as orm_core`.
    quote!(::orm_core)
}

/// The dependencies a manifest declares, in any dependency table (normal, dev, build,
/// per target), inline (`name = …`, `name.workspace = true`) or as a table
/// (`[dependencies.name]`), with `package = "…"` renames.
fn dependencies(manifest: &str) -> Vec<Dependency> {
    let mut out = Vec::new();
    // In a dependency table: `Some(None)`; in a `[dependencies.name]` table: `Some(Some(i))`
    // with the entry's position in `out`.
    let mut section: Option<Option<usize>> = None;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']').trim();
            let parts: Vec<&str> = header
                .split('.')
                .map(|p| p.trim().trim_matches('"'))
                .collect();
            let table = parts
                .iter()
                .position(|p| p.ends_with("dependencies"))
                .filter(|&i| i == 0 || parts[0] == "target");
            section = match table {
                Some(i) if i + 1 == parts.len() => Some(None),
                Some(i) if i + 2 == parts.len() => {
                    out.push(Dependency {
                        name: parts[i + 1].to_owned(),
                        package: parts[i + 1].to_owned(),
                    });
                    Some(Some(out.len() - 1))
                }
                _ => None,
            };
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        match section {
            Some(None) => {
                let name = key
                    .split('.')
                    .next()
                    .unwrap_or(key)
                    .trim()
                    .trim_matches('"');
                out.push(Dependency {
                    name: name.to_owned(),
                    package: package_of(value).unwrap_or_else(|| name.to_owned()),
                });
            }
            Some(Some(i)) if key == "package" => {
                out[i].package = value.trim().trim_matches('"').to_owned();
            }
            _ => {}
        }
    }
    out
}

/// `package = "…"` inside an inline table.
fn package_of(value: &str) -> Option<String> {
    let rest = &value[value.find("package")? + "package".len()..];
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
