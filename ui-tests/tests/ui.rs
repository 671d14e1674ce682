//! Compile-fail tests of `#[derive(Entity)]`: every misuse is an error with a span and the
//! correct syntax. Regenerate the expected output with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*/*.rs");
}
