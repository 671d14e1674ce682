//! Compile-fail tests live in `tests/ui.rs` and `ui/`: each case is a program that must not
//! compile, with the error it must give. This package exists so that trybuild compiles only
//! `orm-session` and `orm-core` for them, not the integration tests' dependencies.
