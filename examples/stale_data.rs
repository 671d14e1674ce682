//! The stale-data scenario (DESIGN.md S10), end to end, with every SQL statement printed.
//!
//! An object loaded in a session keeps the values it was loaded with, even after another
//! connection changes its row. That is the identity map at work: within a unit of work, one
//! row is one object, and the session does not go back to the database behind your back.
//! `expire_all()` (or `refresh`, or a commit with `expire_on_commit`) marks loaded state as
//! stale, and the next access reloads it.
//!
//! Run with `cargo run --example stale_data`.

use orm_session::prelude::*;

#[derive(Entity, Debug, Clone)]
#[orm(table = "account")]
struct Account {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    owner: String,
    balance: i64,
}

fn main() -> Result<()> {
    examples::log_sql();
    let dir = tempfile::tempdir().map_err(|e| Error::InvalidState {
        message: e.to_string(),
    })?;
    let engine = Engine::sqlite_file(dir.path().join("bank.db"))?.expire_on_commit(false);
    engine.create_table::<Account>()?;

    println!("\n1. Create an account and commit it.");
    let setup = engine.session();
    setup.add(Account {
        id: None,
        owner: "ada".into(),
        balance: 100,
    })?;
    setup.commit()?;
    setup.close()?;

    println!("\n2. Load it in a new session (one SELECT).");
    let session = engine.session();
    let account = session.get::<Account>(1)?.expect("account 1");
    println!(
        "   balance seen by the session: {}",
        account.read()?.balance
    );

    println!("\n3. Another connection (another process, say) changes the row and commits.");
    let other = engine.connect()?;
    other.execute("UPDATE account SET balance = 250 WHERE id = 1", &[])?;
    let fresh = other.find::<Account>(&1.into())?.expect("row");
    println!("   balance in the database: {}", fresh.balance);

    println!("\n4. The loaded object still shows what it was loaded with (no SQL is sent):");
    println!(
        "   balance seen by the session: {}",
        account.read()?.balance
    );
    let again = session.get::<Account>(1)?.expect("account 1");
    println!(
        "   get() returns the same object ({}), still stale: {}",
        again == account,
        again.read()?.balance
    );

    println!("\n5. expire_all() marks everything stale; the next access reloads with one SELECT.");
    session.expire_all();
    println!(
        "   balance seen by the session: {}",
        account.read()?.balance
    );

    assert_eq!(account.read()?.balance, 250);
    println!("\nDone: after expire_all() the session sees the other connection's change.");
    Ok(())
}
