use orm_core::Entity;

#[derive(Entity)]
struct Customer {
    #[orm(primary_key)]
    id: i64,
    name: String,
    #[orm(column = "name")]
    display_name: String,
}

fn main() {}
