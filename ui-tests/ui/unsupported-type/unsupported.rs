use orm_core::Entity;

struct Money(u128);

#[derive(Entity)]
struct Invoice {
    #[orm(primary_key)]
    id: i64,
    total: Money,
    count: u32,
}

fn main() {}
