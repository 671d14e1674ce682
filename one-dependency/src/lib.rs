//! A crate with `orm-session` as its only dependency, as the README's setup has it: the code
//! `#[derive(Entity)]` generates must name everything through that one crate. Built and
//! tested by `cargo test --workspace`, so this cannot break unnoticed.

use orm_session::prelude::*;

/// A customer.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(has_many(orders = Order::CUSTOMER, cascade = "all"))]
pub struct Customer {
    /// Key.
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    /// Name.
    pub name: String,
}

/// An order of a customer. (`crate = "…"` names the facade explicitly, as a crate that
/// renamed its dependency would.)
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "orders", crate = "orm_session")]
pub struct Order {
    /// Key.
    #[orm(primary_key, uuid_v7)]
    pub id: Option<orm_session::Uuid>,
    /// The customer.
    #[orm(references = Customer, on_delete = "cascade")]
    pub customer_id: Option<i64>,
    /// Amount.
    pub total: f64,
}

/// A struct whose table takes its name: `line_item`.
#[derive(Entity, Debug, Clone, PartialEq)]
pub struct LineItem {
    /// Key.
    #[orm(primary_key)]
    pub id: i32,
}

/// How a customer pays.
#[derive(FieldEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payment {
    /// By card.
    Card,
    /// On invoice.
    #[orm(rename = "invoice")]
    Invoice,
}

/// A record with every optional field type, named through the facade alone.
#[derive(Entity, Debug, Clone, PartialEq)]
pub struct Profile {
    /// Key.
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    /// chrono.
    pub born: orm_session::chrono::NaiveDate,
    /// time.
    pub seen: orm_session::time::OffsetDateTime,
    /// Exact money.
    pub balance: orm_session::rust_decimal::Decimal,
    /// JSON.
    pub prefs: orm_session::serde_json::Value,
    /// An enum.
    pub payment: Payment,
}

/// Saves a customer with two orders and reads them back.
///
/// # Errors
/// Database errors.
pub fn round_trip(engine: &Engine) -> Result<(Customer, Vec<Order>)> {
    engine.create_all(&[Order::META, Customer::META])?;
    let s = engine.session();
    let c = s.add(Customer {
        id: None,
        name: "Ada".into(),
    })?;
    for total in [1.5, 2.5] {
        let o = s.add(Order {
            id: None,
            customer_id: None,
            total,
        })?;
        s.link(&o, Order::CUSTOMER, &c)?;
    }
    s.commit()?;
    let s = engine.session();
    let c = s.query::<Customer>().one()?;
    let orders = s
        .related(&c, Customer::ORDERS)?
        .iter()
        .map(Handle::get)
        .collect::<Result<Vec<_>>>()?;
    Ok((c.get()?, orders))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_and_round_trips_through_the_facade_alone() -> Result<()> {
        let (c, mut orders) = round_trip(&Engine::sqlite_memory()?)?;
        assert_eq!(c.name, "Ada");
        orders.sort_by(|a, b| a.total.total_cmp(&b.total));
        assert_eq!(
            orders.iter().map(|o| o.total).collect::<Vec<_>>(),
            [1.5, 2.5]
        );
        assert!(
            orders
                .iter()
                .all(|o| o.customer_id == c.id && o.id.is_some())
        );
        Ok(())
    }
}
