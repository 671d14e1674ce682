struct Plain {
    id: i64,
}

fn main() {
    let conn = orm_core::Connection::open_sqlite_memory().unwrap();
    let _ = conn.create_table::<Plain>();
}
