//! Whether the server tests run: with `DATABASE_URL` (PostgreSQL) or `MYSQL_URL` (MySQL,
//! MariaDB) set when the tests are built, they
//! do; without it they are compiled as ignored, so the runner counts them as ignored rather
//! than as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(orm_postgres)");
    println!("cargo::rustc-check-cfg=cfg(orm_mysql)");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    println!("cargo::rerun-if-env-changed=MYSQL_URL");
    if std::env::var("MYSQL_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=orm_mysql");
    }
    if std::env::var("DATABASE_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=orm_postgres");
    }
}
