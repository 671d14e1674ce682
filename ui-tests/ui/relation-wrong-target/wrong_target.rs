use orm_session::prelude::*;

#[derive(Entity)]
struct Customer { #[orm(primary_key)] id: i64 }

#[derive(Entity)]
struct Order { #[orm(primary_key)] id: i64, #[orm(references = Customer)] customer_id: i64 }

// `Order::CUSTOMER` leads to `Customer`, not to `Shop`.
#[derive(Entity)]
#[orm(has_many(orders = Order::CUSTOMER))]
struct Shop { #[orm(primary_key)] id: i64 }

fn main() -> orm_session::Result<()> {
    let engine = Engine::sqlite_memory()?;
    let s = engine.session();
    let o = s.add(Order { id: 1, customer_id: 1 })?;
    let shop = s.add(Shop { id: 1 })?;
    // A shop is not the order's customer.
    s.link(&o, Order::CUSTOMER, &shop)?;
    // A misspelt relation.
    let _ = Order::CUSTOMR;
    Ok(())
}
