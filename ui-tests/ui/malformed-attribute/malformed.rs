use orm_core::Entity;

#[derive(Entity)]
#[orm(table)]
struct Customer {
    #[orm(primary_key = true)]
    id: i64,
    #[orm(column = 5)]
    name: String,
    #[orm(column = "")]
    other: String,
}

fn main() {}
