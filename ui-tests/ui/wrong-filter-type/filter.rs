use orm_core::Entity;

#[derive(Entity)]
struct Customer {
    #[orm(primary_key)]
    id: i64,
    name: String,
}

fn main() {
    let _ = Customer::NAME.eq(42);
}
