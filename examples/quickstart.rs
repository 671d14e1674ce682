//! Quickstart: map a struct, create its table on embedded SQLite, add objects through a
//! session, query them, change one, and read it back. Every SQL statement is printed.
//!
//! Run with `cargo run --example quickstart`.

use orm_session::prelude::*;

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "customer")]
struct Customer {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
    #[orm(column = "descr")]
    description: Option<String>,
}

fn main() -> Result<()> {
    examples::log_sql();
    let engine = Engine::sqlite_memory()?;
    engine.create_table::<Customer>()?;
    println!("created table `{}`", Customer::META.table);

    // Add objects: nothing is sent until flush or commit.
    let session = engine.session();
    let customers = session.add_all((1..=5).map(|i| Customer {
        id: None,
        name: format!("customer {i}"),
        description: (i % 2 == 0).then(|| format!("even customer {i}")),
    }))?;
    session.commit()?;
    let keys: Vec<_> = customers.iter().filter_map(Handle::key).collect();
    println!(
        "committed {} customers; their keys: {keys:?}",
        customers.len()
    );

    // Query with typed columns; results are the same objects the session already tracks.
    let described = session
        .query::<Customer>()
        .filter(Customer::DESCRIPTION.is_not_null())
        .all()?;
    println!("{} customers have a description", described.len());
    assert!(described[0] == customers[1], "one object per row");

    // Change a field: the session finds the change and updates that column only.
    customers[0].write()?.description = Some("our first customer".into());
    println!(
        "dirty objects before commit: {}",
        session.dirty_objects()?.len()
    );
    session.commit()?;

    // Read everything back, on a plain connection this time.
    let conn = engine.connect()?;
    for c in conn.select_all::<Customer>()? {
        println!(
            "  {:>2}  {:<12} {}",
            c.id.unwrap_or_default(),
            c.name,
            c.description.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
