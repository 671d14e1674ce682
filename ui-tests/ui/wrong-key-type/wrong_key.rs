use orm_session::prelude::*;

#[derive(Entity)]
struct Customer {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
}

fn main() -> orm_session::Result<()> {
    let engine = Engine::sqlite_memory()?;
    let s = engine.session();
    // The key of `Customer` is an `i64`: a string does not compile.
    let _ = s.get::<Customer>("42")?;
    // Nor does a key of another entity's type.
    let id = orm_session::Uuid::nil();
    let _ = s.get::<Customer>(id)?;
    Ok(())
}
