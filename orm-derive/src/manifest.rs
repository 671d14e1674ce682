//! Which path the generated code names `orm_core` by: a crate that depends only on
//! `orm-session` has no `orm_core` in scope, so the derive looks in the manifest of the crate
//! being compiled for a dependency on `orm-session` (under any name) and goes through its
//! re-export, else on `orm-core`. `#[orm(crate = "…")]` overrides it.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::deps::dependencies;

/// The path of `orm_core` that `#[orm(crate = "path::to::orm_session")]` names.
pub(crate) fn crate_attr(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<TokenStream> {
    let lit: syn::LitStr = meta.value().and_then(|v| v.parse()).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected `#[orm(crate = \"path::to::orm_session\")]`",
        )
    })?;
    let path: syn::Path = lit.parse()?;
    Ok(quote!(#path::__private::orm_core))
}

/// The path of `orm_core` for the crate being compiled.
pub(crate) fn core_path() -> TokenStream {
    let deps = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|dir| std::path::Path::new(&dir).join("Cargo.toml"))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| dependencies(&text))
        .unwrap_or_default();
    let find = |package: &str| deps.iter().find(|d| d.package == package);
    if let Some(d) = find("orm-session") {
        let name = syn::Ident::new(&d.name.replace('-', "_"), Span::call_site());
        return quote!(::#name::__private::orm_core);
    }
    if let Some(d) = find("orm-core") {
        let name = syn::Ident::new(&d.name.replace('-', "_"), Span::call_site());
        return quote!(::#name);
    }
    // `orm-core` itself (its own tests and doctests), through `extern crate self as orm_core`.
    quote!(::orm_core)
}
