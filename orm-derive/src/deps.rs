//! The dependencies a `Cargo.toml` declares, read without a TOML library (the derive stays
//! light). Plain `std`: the integration tests include this file to test it, so that the
//! derive crate itself needs no unit-test build.

/// A dependency found in a manifest: the name the crate is known by in code, and the
/// package it is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Dependency {
    pub(crate) name: String,
    pub(crate) package: String,
}

/// The dependencies a manifest declares, in any dependency table (normal, dev, build,
/// per target), inline (`name = …`, `name.workspace = true`) or as a table
/// (`[dependencies.name]`), with `package = "…"` renames.
pub(crate) fn dependencies(manifest: &str) -> Vec<Dependency> {
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
