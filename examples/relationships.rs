//! Relationships: a small shop of customers, orders, order lines and products. Objects are
//! linked before any of them has a key; the flush inserts parents first and fills in the
//! foreign keys; deleting a customer cascades to its orders and their lines; a collection
//! loads lazily on first use or eagerly for a whole query; filters reach across relations.
//! Every SQL statement is printed.
//!
//! Run with `cargo run --example relationships`.

use orm_session::prelude::*;

#[derive(Entity, Debug, Clone)]
#[orm(has_many(orders = Order::CUSTOMER, cascade = "all, delete-orphan"))]
struct Customer {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
}

#[derive(Entity, Debug, Clone)]
#[orm(table = "orders", has_many(lines = OrderLine::ORDER, cascade = "all, delete-orphan"))]
#[orm(many_to_many(products = Product, via = (OrderLine::ORDER, OrderLine::PRODUCT)))]
struct Order {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Customer, index)]
    customer_id: Option<i64>,
    placed: String,
}

#[derive(Entity, Debug, Clone)]
struct Product {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
    price: f64,
}

#[derive(Entity, Debug, Clone)]
struct OrderLine {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Order)]
    order_id: Option<i64>,
    #[orm(references = Product)]
    product_id: Option<i64>,
    quantity: i32,
}

fn main() -> Result<()> {
    examples::log_sql();
    let engine = Engine::sqlite_memory()?;
    // Referenced tables first, whatever the order given.
    engine.create_all(&[OrderLine::META, Order::META, Product::META, Customer::META])?;
    let s = engine.session();

    println!("\n-- linking objects that have no keys yet");
    let pen = s.add(Product {
        id: None,
        name: "pen".into(),
        price: 1.5,
    })?;
    let ink = s.add(Product {
        id: None,
        name: "ink".into(),
        price: 120.0,
    })?;
    for (name, basket) in [
        ("ada", vec![(&pen, 3), (&ink, 1)]),
        ("bob", vec![(&pen, 10)]),
    ] {
        // A transient order linked to a pending customer joins the session (save-update).
        let customer = s.add(Customer {
            id: None,
            name: name.into(),
        })?;
        let order = Handle::new(Order {
            id: None,
            customer_id: None,
            placed: "2026-12-01".into(),
        });
        s.append(&customer, Customer::ORDERS, &order)?;
        for (product, quantity) in basket {
            let line = s.add(OrderLine {
                id: None,
                order_id: None,
                product_id: None,
                quantity,
            })?;
            s.link(&line, OrderLine::ORDER, &order)?;
            s.link(&line, OrderLine::PRODUCT, product)?;
        }
    }
    // Customers and products, then orders, then lines: one batched INSERT per table.
    s.commit()?;

    println!("\n-- eager (select-in) loading: two statements for every customer and order");
    let customers = s.query::<Customer>().selectin(Customer::ORDERS).all()?;
    for c in &customers {
        for o in s.related(c, Customer::ORDERS)? {
            // A lazy load: one SELECT per order, at first use.
            let products = s.related(&o, Order::PRODUCTS)?;
            let names: Vec<String> = products
                .iter()
                .map(|p| p.read().map(|p| p.name.clone()))
                .collect::<Result<_>>()?;
            // The many-to-one back to the customer is in the identity map: no SQL.
            let owner = s.related(&o, Order::CUSTOMER)?.expect("linked");
            println!("{} bought {names:?}", owner.read()?.name);
        }
    }

    println!("\n-- filters across relations (EXISTS)");
    let big_spenders = s
        .query::<Customer>()
        .filter(Customer::ORDERS.any(Order::PRODUCTS.any(Product::PRICE.gt(100.0))))
        .all()?;
    for c in &big_spenders {
        println!("bought something over 100: {}", c.read()?.name);
    }

    println!("\n-- delete cascades to orders and their lines, children first");
    let ada = s
        .query::<Customer>()
        .filter(Customer::NAME.eq("ada"))
        .one()?;
    s.delete(&ada)?;
    s.commit()?;
    println!(
        "left: {} customers, {} orders, {} lines, {} products",
        s.query::<Customer>().count()?,
        s.query::<Order>().count()?,
        s.query::<OrderLine>().count()?,
        s.query::<Product>().count()?
    );

    println!("\n-- delete-orphan: a line removed from its order is deleted");
    let order = s.query::<Order>().one()?;
    let line = s.related(&order, Order::LINES)?.pop().expect("a line");
    s.remove(&order, Order::LINES, &line)?;
    s.commit()?;
    println!("lines left: {}", s.query::<OrderLine>().count()?);
    Ok(())
}
