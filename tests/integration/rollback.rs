//! S9 rollback.

use orm_session::prelude::*;
use orm_tests::model::Customer;

// S9
orm_tests::backends! {
fn s9_rollback_resets_added_deleted_and_changed_objects(db) -> Result<()> {
    let engine = db.engine().expire_on_commit(false);
    let s = engine.session();
    let kept = s.add(Customer::new("kept", 1))?;
    let doomed = s.add(Customer::new("doomed", 2))?;
    s.commit()?;

    let flushed_new = s.add(Customer::new("flushed", 3))?;
    s.flush()?;
    assert_eq!(flushed_new.read()?.id, Some(3));
    let pending_new = s.add(Customer::new("pending", 4))?;
    kept.write()?.age = 100;
    s.delete(&doomed)?;
    s.flush()?;
    assert_eq!(doomed.state(), ObjectState::Deleted);

    s.rollback()?;

    // Added in the transaction: transient again, database-generated key gone.
    assert_eq!(flushed_new.state(), ObjectState::Transient);
    assert_eq!(flushed_new.read()?.id, None);
    assert_eq!(flushed_new.key(), None);
    assert_eq!(pending_new.state(), ObjectState::Transient);
    // Deleted in the transaction: persistent again.
    assert_eq!(doomed.state(), ObjectState::Persistent);
    assert!(s.get::<Customer>(2)?.expect("restored") == doomed);
    // The rest is expired and reloads the committed values.
    assert!(kept.is_expired());
    assert_eq!(kept.read()?.age, 1);
    let conn = engine.connect()?;
    assert_eq!(conn.count::<Customer>(None)?, 2);

    // The transient objects can be added again.
    s.add_handle(&flushed_new)?;
    s.commit()?;
    assert_eq!(flushed_new.state(), ObjectState::Persistent);
    assert_eq!(conn.count::<Customer>(None)?, 3);
    Ok(())
}
}

// S9
orm_tests::backends! {
fn s9_rollback_forgets_generated_uuid_keys_but_keeps_given_ones(db) -> Result<()> {
    #[derive(Entity, Debug, Clone)]
    struct Doc {
        #[orm(primary_key, uuid_v7)]
        id: uuid::Uuid,
        title: String,
    }
    let engine = db.engine();
    engine.create_table::<Doc>()?;
    let s = engine.session();
    let generated = s.add(Doc {
        id: uuid::Uuid::nil(),
        title: "g".into(),
    })?;
    let given_id = uuid::Uuid::now_v7();
    let given = s.add(Doc {
        id: given_id,
        title: "u".into(),
    })?;
    s.flush()?;
    assert!(!generated.read()?.id.is_nil());
    assert_eq!(generated.read()?.id.get_version_num(), 7);
    s.rollback()?;
    assert!(generated.read()?.id.is_nil());
    assert_eq!(given.read()?.id, given_id);
    Ok(())
}
}
