use orm_session::prelude::*;

#[derive(Entity, Debug, Clone)]
struct Customer {
    #[orm(primary_key)]
    id: i64,
    name: String,
    age: i32,
}

#[derive(FromRow)]
struct IdAndAge {
    id: i64,
    age: i32,
}

fn main() -> Result<()> {
    let engine = Engine::sqlite_memory()?;
    let s = engine.session();
    // The selection's types, in order, must be the struct's fields.
    let _: Vec<IdAndAge> = s.query::<Customer>().select((Customer::ID, Customer::NAME)).all_as()?;
    let _: Vec<IdAndAge> = s.query::<Customer>().select((Customer::AGE, Customer::ID)).all_as()?;
    Ok(())
}
