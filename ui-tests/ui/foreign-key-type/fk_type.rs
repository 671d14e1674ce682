use orm_session::prelude::*;

#[derive(Entity)]
struct Customer { #[orm(primary_key)] id: String }

// The foreign key is an integer; the key it references is text.
#[derive(Entity)]
struct Order { #[orm(primary_key)] id: i64, #[orm(references = Customer)] customer_id: i64 }

// A foreign key needs a relation name.
#[derive(Entity)]
struct Note { #[orm(primary_key)] id: i64, #[orm(references = Customer)] owner: String }

fn main() {}
