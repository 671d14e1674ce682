use orm_core::Entity;

#[derive(Entity)]
struct Customer {
    id: i64,
    name: String,
}

fn main() {}
