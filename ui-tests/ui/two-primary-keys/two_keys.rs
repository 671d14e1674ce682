use orm_core::Entity;

#[derive(Entity)]
struct Customer {
    #[orm(primary_key)]
    id: i64,
    #[orm(primary_key)]
    code: String,
}

fn main() {}
