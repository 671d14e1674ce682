use orm_core::Entity;

#[derive(Entity)]
struct Customer {
    #[orm(primary_key, auto_increment)]
    id: i64,
    #[orm(auto_increment)]
    other: Option<i64>,
}

fn main() {}
