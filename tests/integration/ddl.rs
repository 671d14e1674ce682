//! DDL generated from entities.

use orm_core::{Connection, Entity, ErrorKind, Result, Value};

#[derive(Entity, Debug, Clone, PartialEq)]
pub struct Account {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    #[orm(unique)]
    pub email: String,
    #[orm(index)]
    pub city: Option<String>,
    pub age: i32,
}

#[test]
fn table_name_defaults_to_snake_case() {
    #[derive(Entity)]
    struct OrderLine {
        #[orm(primary_key)]
        id: i32,
    }
    assert_eq!(OrderLine::META.table, "order_line");
    assert_eq!(Account::META.table, "account");
}

#[test]
fn ddl_has_not_null_unique_index_and_a_rowid_key() -> Result<()> {
    let conn = Connection::open_sqlite_memory()?;
    conn.create_table::<Account>()?;
    conn.create_table::<Account>()?; // idempotent
    let sql = conn.query_values("SELECT sql FROM sqlite_master WHERE name = 'account'", &[])?;
    let Value::Text(ddl) = &sql[0][0] else {
        panic!("no DDL: {sql:?}")
    };
    assert!(ddl.contains("\"id\" integer PRIMARY KEY"), "{ddl}");
    assert!(!ddl.contains("AUTOINCREMENT"), "{ddl}");
    assert!(ddl.contains("\"email\" text NOT NULL UNIQUE"), "{ddl}");
    assert!(
        ddl.contains("\"city\" text,") || ddl.contains("\"city\" text ,"),
        "{ddl}"
    );
    let idx = conn.query_values("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'account' AND sql IS NOT NULL", &[])?;
    assert_eq!(idx, vec![vec![Value::Text("ix_account_city".into())]]);

    // NOT NULL is enforced by the table, and reported as such.
    let err = conn
        .execute("INSERT INTO account (email, age) VALUES (NULL, 1)", &[])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotNullViolation);
    conn.insert_many([Account {
        id: None,
        email: "a@x".into(),
        city: None,
        age: 1,
    }])?;
    let err = conn
        .insert_many([Account {
            id: None,
            email: "a@x".into(),
            city: None,
            age: 2,
        }])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation);
    conn.drop_table::<Account>()?;
    assert!(conn.select_all::<Account>().is_err());
    Ok(())
}

#[derive(Entity, Debug)]
pub struct Parent {
    #[orm(primary_key)]
    pub id: i64,
}

#[test]
fn foreign_keys_are_enforced() -> Result<()> {
    let conn = Connection::open_sqlite_memory()?;
    conn.create_table::<Parent>()?;
    conn.execute(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id))",
        &[],
    )?;
    let err = conn
        .execute("INSERT INTO child (parent) VALUES (42)", &[])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation);
    Ok(())
}
