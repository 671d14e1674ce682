//! Mapping a table the ORM did not create: a migration tool wrote it with narrower types than
//! the struct's, and `check_schema` says whether the mapping fits before anything is written.
//!
//! Run with `cargo run --example existing_table`.

use orm_session::prelude::*;

/// The struct uses `i64` for the key and the quantity; the table has 32-bit `INT` columns and
/// a `VARCHAR` name, as a migration might have written them.
#[derive(Entity, Debug, Clone)]
#[orm(table = "stock")]
struct Stock {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    sku: String,
    quantity: i64,
}

/// The same table read through a mapping that does not fit: a missing column and a type
/// that cannot hold the field's values.
#[derive(Entity, Debug, Clone)]
#[orm(table = "stock")]
struct WrongStock {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    sku: f64,
    warehouse: String,
}

fn main() -> Result<()> {
    let engine = Engine::sqlite_memory()?;
    engine.connect()?.execute(
        "CREATE TABLE stock (id INTEGER PRIMARY KEY, sku VARCHAR(32) NOT NULL, \
         quantity INT NOT NULL DEFAULT 0, updated_by TEXT)",
        &[],
    )?;

    engine.check_schema::<Stock>()?;
    println!("Stock fits table `stock`.");

    let session = engine.session();
    let items = session.add_all([
        Stock {
            id: None,
            sku: "A-1".into(),
            quantity: 5,
        },
        Stock {
            id: None,
            sku: "B-2".into(),
            quantity: 7,
        },
    ])?;
    session.commit()?;
    for h in &items {
        let s = h.read()?;
        println!("  saved {} with key {:?}", s.sku, s.id);
    }

    let unfit = |what: &str| Error::InvalidState {
        message: format!("WrongStock {what}, but its mapping does not fit the table"),
    };
    match engine.check_schema::<WrongStock>() {
        Ok(()) => return Err(unfit("passed the check")),
        Err(e) => println!("WrongStock does not fit ({:?}):\n{e}", e.kind()),
    }
    let session = engine.session();
    session.add(WrongStock {
        id: None,
        sku: 1.5,
        warehouse: "north".into(),
    })?;
    let refused = session.commit();
    println!(
        "Writing a WrongStock: {}",
        match refused {
            Ok(()) => "written (it should not be)".to_owned(),
            Err(e) => format!("refused before anything was written ({:?})", e.kind()),
        }
    );
    Ok(())
}
