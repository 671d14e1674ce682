use orm_session::prelude::*;

#[derive(Entity, Debug, Clone)]
struct Customer {
    #[orm(primary_key)]
    id: i64,
    name: String,
}

#[derive(Entity, Debug, Clone)]
struct Invoice {
    #[orm(primary_key)]
    id: i64,
    total: f64,
}

fn main() -> Result<()> {
    let engine = Engine::sqlite_memory()?;
    let s = engine.session();
    // A column of another entity does not select.
    let _ = s.query::<Customer>().select((Customer::ID, Invoice::TOTAL)).all()?;
    // Nor does a row type that is not the columns'.
    let _: Vec<(i64, i64)> = s.query::<Customer>().select((Customer::ID, Customer::NAME)).all()?;
    Ok(())
}
