//! Whether the PostgreSQL tests run: with `DATABASE_URL` set when the tests are built, they
//! do; without it they are compiled as ignored, so the runner counts them as ignored rather
//! than as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(orm_postgres)");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    if std::env::var("DATABASE_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=orm_postgres");
    }
}
