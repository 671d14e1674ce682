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

orm_tests::backends! {
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

orm_tests::backends! {
fn optional_turns_not_found_into_none(db) -> Result<()> {
    let conn = db.connect();
    let r = conn.query_i64("SELECT 1 WHERE 1 = 0", &[]).optional()?;
    assert_eq!(r, None);
    Ok(())
}
}

orm_tests::backends! {
// Each misuse of the session has a kind of its own (not a catch-all), and a message that says
// what to do.
fn misuses_have_kinds_of_their_own(db) -> Result<()> {
    use orm_session::{Handle, ObjectState};
    use orm_tests::model::Customer;
    let engine = db.engine();
    let s = engine.session();
    let other = engine.session();
    let ada = s.add(Customer::new("ada", 36))?;
    s.commit()?;
    // Not in this session: another session's object, and a transient one.
    let e = other.delete(&ada).expect_err("another session's object");
    assert_eq!(e.kind(), ErrorKind::NotInSession);
    assert!(e.to_string().contains("add it"), "{e}");
    let loose = Handle::new(Customer::new("loose", 1));
    assert_eq!(loose.state(), ObjectState::Transient);
    assert_eq!(s.expunge(&loose).expect_err("transient").kind(), ErrorKind::NotInSession);
    // A second object for a row the session holds.
    let id = ada.read()?.id;
    let e = s.add(Customer { id, ..Customer::new("ada again", 1) }).expect_err("duplicate");
    assert_eq!(e.kind(), ErrorKind::DuplicateObject);
    assert!(e.to_string().contains("merge"), "{e}");
    // A live guard.
    let reading = ada.read()?;
    let Err(e) = ada.write() else {
        panic!("a read guard is alive");
    };
    assert_eq!(e.kind(), ErrorKind::Borrowed);
    assert!(e.to_string().contains("drop the guard"), "{e}");
    drop(reading);
    // Expunged and expired: it has no session to reload from.
    s.expunge(&ada)?;
    assert_eq!(ada.state(), ObjectState::Detached);
    other.close()?;
    Ok(())
}
}
