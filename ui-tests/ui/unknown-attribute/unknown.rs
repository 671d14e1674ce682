use orm_core::Entity;

#[derive(Entity)]
#[orm(tabel = "customer")]
struct Customer {
    #[orm(primary_key, autoincrement)]
    id: Option<i64>,
}

fn main() {}
