//! Errors name the entity, the table and the placeholder SQL.

use orm_core::{Connection, Entity, ErrorKind, OptionalExt, Result};

#[derive(Entity, Debug, Clone)]
pub struct Gadget {
    #[orm(primary_key)]
    pub id: i64,
    pub name: String,
}

#[test]
fn opening_a_file_that_is_not_a_database_fails_clearly() {
    let db = orm_tests::TempDb::new();
    std::fs::write(
        db.path(),
        b"this is not a database, just some text that is long enough to be a header",
    )
    .unwrap();
    let err = Connection::open_sqlite(db.path())
        .and_then(|c| c.create_table::<Gadget>())
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Database),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("test.db") || err.to_string().contains("not a database"),
        "{err}"
    );
}

orm_tests::both! {
fn a_missing_table_names_the_table_and_sql(db) -> Result<()> {
    let conn = db.connect();
    let err = conn.select_all::<Gadget>().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`gadget`") && msg.contains("Gadget") && msg.contains("SELECT"),
        "{msg}"
    );
    Ok(())
}
}

orm_tests::both! {
fn optional_turns_not_found_into_none(db) -> Result<()> {
    let conn = db.connect();
    let r = conn.query_i64("SELECT 1 WHERE 1 = 0", &[]).optional()?;
    assert_eq!(r, None);
    Ok(())
}
}
