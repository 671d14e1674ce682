//! Quickstart: map a struct, create its table on embedded SQLite, insert, read back.
//!
//! Run with `cargo run --example quickstart`.

use orm_core::{Connection, Entity, Result};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "customer")]
struct Customer {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
    #[orm(column = "descr")]
    description: Option<String>,
}

fn main() -> Result<()> {
    examples::log_sql();
    let conn = Connection::open_sqlite_memory()?;
    conn.create_table::<Customer>()?;
    println!("created table `{}`", Customer::META.table);

    let rows = (1..=5).map(|i| Customer {
        id: None,
        name: format!("customer {i}"),
        description: (i % 2 == 0).then(|| format!("even customer {i}")),
    });
    let inserted = conn.insert_many(rows)?;
    println!("inserted {inserted} rows in one multi-row INSERT");

    let third = conn.find::<Customer>(&3.into())?;
    println!("row with key 3: {third:?}");

    let described = conn.count(Some(Customer::DESCRIPTION.is_not_null()))?;
    println!("{described} customers have a description");

    for c in conn.select_all::<Customer>()? {
        println!(
            "  {:>2}  {:<12} {}",
            c.id.unwrap_or_default(),
            c.name,
            c.description.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
