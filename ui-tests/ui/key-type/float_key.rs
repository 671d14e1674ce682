use orm_core::Entity;

// A float cannot be a primary key.
#[derive(Entity)]
struct Reading {
    #[orm(primary_key)]
    value: f64,
}

fn main() {}
