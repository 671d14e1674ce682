//! The live schema: what the database says of a table, and whether an entity's mapping fits
//! it (tables made by migration tools or other programs, not by `create_table`).

use crate::connection::Connection;
use crate::entity::EntityMeta;
use crate::error::{Error, Result};
use crate::sql::Backend;
use crate::value::{SqlType, Value};

/// One column of a live table, as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveColumn {
    /// The column's name.
    pub name: String,
    /// Its type as the database names it (`bigint`, `character varying(40)`, `INTEGER`).
    pub type_name: String,
    /// Whether it refuses NULL.
    pub not_null: bool,
    /// Whether the database makes its values: an identity or serial column on PostgreSQL, a
    /// rowid alias (`INTEGER PRIMARY KEY`) on SQLite.
    pub generated: bool,
}

/// How a field's values go into a column of another declared type.
fn fits(backend: Backend, field: SqlType, column: &str) -> std::result::Result<SqlType, String> {
    let t = column.to_ascii_lowercase();
    match backend {
        Backend::Postgres => {
            let as_type = match t.as_str() {
                "bigint" => SqlType::I64,
                "integer" => SqlType::I32,
                "smallint" => SqlType::I16,
                "double precision" => SqlType::F64,
                "real" => SqlType::F32,
                "boolean" => SqlType::Bool,
                "text" | "citext" | "name" => SqlType::Text,
                "bytea" => SqlType::Blob,
                "uuid" => SqlType::Uuid,
                // `json` (without the b) keeps the text as sent, and has no binary COPY form
                // of its own: the mapping supports `jsonb`.
                "jsonb" => SqlType::Json,
                "numeric" => SqlType::Decimal,
                "date" => SqlType::Date,
                "time without time zone" | "time" => SqlType::Time,
                "timestamp without time zone" | "timestamp" => SqlType::DateTime,
                "timestamp with time zone" | "timestamptz" => SqlType::Timestamp,
                _ if t.starts_with("character") => SqlType::Text,
                _ => return Err("a type the mapping does not support".into()),
            };
            let ok = match field {
                // Integers go into any integer column wide enough for the value (checked as
                // each value is encoded).
                SqlType::I64 | SqlType::I32 | SqlType::I16 => {
                    matches!(as_type, SqlType::I64 | SqlType::I32 | SqlType::I16)
                }
                // An f32 goes exactly into a double; a double column is read back into the
                // f32 field when the value converts exactly.
                SqlType::F32 => matches!(as_type, SqlType::F32 | SqlType::F64),
                SqlType::Uuid => matches!(as_type, SqlType::Uuid | SqlType::Blob),
                other => other == as_type,
            };
            if ok {
                Ok(as_type)
            } else {
                Err("another kind of value".into())
            }
        }
        Backend::MySql => {
            // `bigint(20)`, `varchar(255)`, `tinyint(1)`, `decimal(65,28)`, `time(6)`, …
            let base = t.split('(').next().unwrap_or("").trim();
            let as_type = match base {
                "bigint" => SqlType::I64,
                "int" | "integer" | "mediumint" => SqlType::I32,
                "tinyint" if t.starts_with("tinyint(1)") => SqlType::Bool,
                "smallint" | "tinyint" => SqlType::I16,
                "double" | "real" => SqlType::F64,
                "float" => SqlType::F32,
                "varchar" | "char" | "text" | "tinytext" | "mediumtext" | "longtext" => {
                    SqlType::Text
                }
                "json" => SqlType::Json,
                "binary" if t == "binary(16)" => SqlType::Uuid,
                "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" => {
                    SqlType::Blob
                }
                "decimal" | "numeric" => SqlType::Decimal,
                "date" => SqlType::Date,
                "time" => SqlType::Time,
                "datetime" => SqlType::DateTime,
                _ => return Err("a type the mapping does not support".into()),
            };
            let ok = match field {
                SqlType::I64 | SqlType::I32 | SqlType::I16 => {
                    matches!(as_type, SqlType::I64 | SqlType::I32 | SqlType::I16)
                }
                SqlType::Bool => {
                    matches!(
                        as_type,
                        SqlType::Bool | SqlType::I16 | SqlType::I32 | SqlType::I64
                    )
                }
                SqlType::F32 => matches!(as_type, SqlType::F32 | SqlType::F64),
                SqlType::Uuid => matches!(as_type, SqlType::Uuid | SqlType::Blob),
                SqlType::Blob => matches!(as_type, SqlType::Uuid | SqlType::Blob),
                SqlType::Json => matches!(as_type, SqlType::Json | SqlType::Text),
                SqlType::Timestamp => as_type == SqlType::DateTime,
                other => other == as_type,
            };
            if ok {
                Ok(if field == SqlType::Timestamp {
                    field
                } else {
                    as_type
                })
            } else {
                Err("another kind of value".into())
            }
        }
        Backend::Sqlite => {
            // SQLite's type affinity, from the declared type's name.
            let affinity = if t.contains("int") {
                "integer"
            } else if t.contains("char") || t.contains("clob") || t.contains("text") {
                "text"
            } else if t.contains("blob") || t.is_empty() {
                "blob"
            } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
                "real"
            } else {
                "numeric"
            };
            let ok = match field {
                SqlType::I64 | SqlType::I32 | SqlType::I16 | SqlType::Bool => {
                    matches!(affinity, "integer" | "numeric")
                }
                SqlType::F64 | SqlType::F32 => matches!(affinity, "real" | "numeric"),
                // Text in a NUMERIC or INTEGER column would be turned into a number when it
                // looks like one: not lossless.
                SqlType::Text
                | SqlType::Json
                | SqlType::Date
                | SqlType::Time
                | SqlType::DateTime
                | SqlType::Timestamp
                | SqlType::Decimal => matches!(affinity, "text" | "blob"),
                SqlType::Blob | SqlType::Uuid => matches!(affinity, "blob" | "text"),
            };
            if ok {
                Ok(field)
            } else {
                Err(format!("{affinity} affinity"))
            }
        }
    }
}

impl Connection {
    /// The columns of a live table, in table order; empty when there is no such table.
    ///
    /// ```
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = orm_core::Connection::open_sqlite_memory()?;
    /// conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL)", &[])?;
    /// let cols = conn.live_columns("t")?;
    /// assert_eq!(cols[1].type_name, "VARCHAR(40)");
    /// assert!(cols[0].generated && cols[1].not_null);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The driver's error.
    pub fn live_columns(&self, table: &str) -> Result<Vec<LiveColumn>> {
        let text = |v: &Value| match v {
            Value::Text(s) => s.clone(),
            _ => String::new(),
        };
        match self.backend() {
            Backend::Sqlite => {
                let rows = self.catalog_values(
                    "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)",
                    &[Value::Text(table.into())],
                )?;
                let keys = rows
                    .iter()
                    .filter(|r| !matches!(r[3], Value::I64(0)))
                    .count();
                let without_rowid = !self
                    .catalog_values(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' \
                         AND name = ?1 COLLATE NOCASE AND upper(sql) LIKE '%WITHOUT%ROWID%'",
                        &[Value::Text(table.into())],
                    )?
                    .is_empty();
                Ok(rows
                    .iter()
                    .map(|r| {
                        let type_name = text(&r[1]);
                        let key = !matches!(r[3], Value::I64(0));
                        LiveColumn {
                            name: text(&r[0]),
                            generated: key
                                && keys == 1
                                && !without_rowid
                                && type_name.eq_ignore_ascii_case("integer"),
                            type_name,
                            not_null: matches!(r[2], Value::I64(1)) || key && without_rowid,
                        }
                    })
                    .collect())
            }
            Backend::Postgres => {
                let quoted = format!("\"{}\"", table.replace('"', "\"\""));
                let rows = self.catalog_values(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                     a.attidentity <> '' OR pg_get_serial_sequence($1, a.attname) IS NOT NULL \
                     FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 \
                     AND NOT a.attisdropped ORDER BY a.attnum",
                    &[Value::Text(quoted)],
                )?;
                Ok(rows
                    .iter()
                    .map(|r| LiveColumn {
                        name: text(&r[0]),
                        type_name: text(&r[1]),
                        not_null: matches!(r[2], Value::Bool(true)),
                        generated: matches!(r[3], Value::Bool(true)),
                    })
                    .collect())
            }
            Backend::MySql => {
                let rows = self.catalog_values(
                    "SELECT CAST(column_name AS CHAR), CAST(column_type AS CHAR), \
                     is_nullable = 'NO', extra LIKE '%auto_increment%' \
                     FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name = ? \
                     ORDER BY ordinal_position",
                    &[Value::Text(table.into())],
                )?;
                Ok(rows
                    .iter()
                    .map(|r| LiveColumn {
                        name: text(&r[0]),
                        type_name: text(&r[1]),
                        not_null: matches!(r[2], Value::I64(1)),
                        generated: matches!(r[3], Value::I64(1)),
                    })
                    .collect())
            }
        }
    }

    /// Compares the mapping `meta` with its live table and reports every mismatch at once:
    /// a missing table or column, a column whose type the field's values cannot go into
    /// without loss, an `auto_increment` key the database does not generate (PostgreSQL; on
    /// SQLite a key that is not a rowid alias gets keys the ORM computes under the write lock).
    /// An `Option` field on a `NOT NULL` column fits; a plain field on a nullable column
    /// fits too, and a NULL read into it is an error naming the column.
    ///
    /// Returns the type each column's values are sent as (the column's own, where a lossless
    /// conversion applies: an `i64` field into an `integer` column, range-checked).
    ///
    /// # Errors
    /// [`Error::Schema`] listing the problems; the driver's error.
    pub fn check_mapping(&self, meta: &'static EntityMeta) -> Result<Vec<SqlType>> {
        let live = self.live_columns(meta.table)?;
        if live.is_empty() {
            return Err(Error::Schema {
                entity: meta.name,
                table: meta.table,
                problems: vec!["the table does not exist (or has no columns)".into()],
            });
        }
        let mut problems = Vec::new();
        let mut types = Vec::with_capacity(meta.columns.len());
        for c in meta.columns {
            let field = crate::error::describe_type(c.sql_type, c.nullable);
            let Some(col) = live.iter().find(|l| l.name == c.name) else {
                problems.push(format!(
                    "column `{}` (field `{}`, {field}) is missing",
                    c.name, c.field
                ));
                types.push(c.sql_type);
                continue;
            };
            match fits(self.backend(), c.sql_type, &col.type_name) {
                Ok(t) => types.push(t),
                Err(why) => {
                    problems.push(format!(
                        "column `{}` is {} ({why}): field `{}` ({field}) cannot be stored in \
                         it without loss",
                        c.name, col.type_name, c.field
                    ));
                    types.push(c.sql_type);
                }
            }
            if c.primary_key
                && c.generated == crate::Generated::AutoIncrement
                && !col.generated
                && self.backend() != Backend::Sqlite
            {
                problems.push(format!(
                    "key column `{}` ({}) is not generated by the database, but field `{}` is \
                     `auto_increment`: declare it {}",
                    c.name,
                    col.type_name,
                    c.field,
                    if self.backend() == Backend::MySql {
                        "`AUTO_INCREMENT`"
                    } else {
                        "`GENERATED BY DEFAULT AS IDENTITY`"
                    }
                ));
            }
        }
        if problems.is_empty() {
            self.db().mapping_checked(meta, &types);
            Ok(types)
        } else {
            Err(Error::Schema {
                entity: meta.name,
                table: meta.table,
                problems,
            })
        }
    }

    /// [`check_mapping`](Self::check_mapping) for entity `E`.
    ///
    /// ```
    /// use orm_core::{Connection, Entity, ErrorKind};
    /// #[derive(Entity, Debug)]
    /// struct Item { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String }
    /// # fn main() -> orm_core::Result<()> {
    /// let conn = Connection::open_sqlite_memory()?;
    /// conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name BLOB, extra TEXT)", &[])?;
    /// conn.check_schema::<Item>()?; // text into a BLOB column is kept as it is
    /// conn.execute("DROP TABLE item", &[])?;
    /// conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, label TEXT)", &[])?;
    /// let e = conn.check_schema::<Item>().unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    /// assert!(e.to_string().contains("column `name`"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As `check_mapping`.
    pub fn check_schema<E: crate::Entity>(&self) -> Result<()> {
        self.check_mapping(E::META).map(drop)
    }
}
