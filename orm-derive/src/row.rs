//! `#[derive(FromRow)]`: a struct read by position from a column query or raw SQL.
//!
//! Generates `RawRow` (field `i` from column `i`, each through its `Field` type) and
//! `From` of the tuple of the field types (and, for one field, of that field's type), so
//! that `select((A::X, A::Y)).all_as::<S>()` compiles only when the selection's row type is
//! the struct's fields' types, in order.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(t) => t,
        Err(e) => e.to_compile_error(),
    }
}

fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let mut krate = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("orm")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                krate = Some(crate::manifest::crate_attr(&meta)?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown attribute; #[derive(FromRow)] takes only `#[orm(crate = \"…\")]`",
                ))
            }
        })?;
    }
    let krate = krate.unwrap_or_else(crate::manifest::core_path);
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(FromRow)] applies to structs: one field per column, in order",
        ));
    };
    let fields: Vec<&syn::Field> = data.fields.iter().collect();
    if fields.is_empty() || fields.len() > 8 {
        return Err(syn::Error::new(
            data.fields.span(),
            "#[derive(FromRow)] takes a struct of one to eight fields (a row of one to eight columns)",
        ));
    }
    let ident = &input.ident;
    let (imp, ty_generics, where_clause) = input.generics.split_for_impl();
    let types: Vec<&syn::Type> = fields.iter().map(|f| &f.ty).collect();
    let vars: Vec<syn::Ident> = (0..fields.len()).map(|i| format_ident!("v{i}")).collect();
    let reads = types.iter().enumerate().map(|(i, ty)| {
        quote! {
            #krate::RowValues::value(row, #i, <#ty as #krate::Field>::SQL_TYPE)
                .and_then(<#ty as #krate::Field>::from_sql)
                .map_err(|e| (#i, e))?
        }
    });
    let build = match &data.fields {
        Fields::Named(_) => {
            let names = fields.iter().map(|f| f.ident.as_ref());
            quote!(#ident { #(#names: #vars),* })
        }
        Fields::Unnamed(_) => quote!(#ident ( #(#vars),* )),
        Fields::Unit => unreachable!("a unit struct has no fields"),
    };
    let single = (fields.len() == 1).then(|| {
        let ty = types[0];
        let v = &vars[0];
        quote! {
            impl #imp ::core::convert::From<#ty> for #ident #ty_generics #where_clause {
                fn from(#v: #ty) -> Self {
                    #build
                }
            }
        }
    });
    Ok(quote! {
        impl #imp #krate::RawRow for #ident #ty_generics #where_clause {
            fn from_raw<R: #krate::RowValues + ?::core::marker::Sized>(
                row: &R,
            ) -> ::core::result::Result<Self, (usize, #krate::FromSqlError)> {
                #(let #vars: #types = #reads;)*
                ::core::result::Result::Ok(#build)
            }
        }

        impl #imp ::core::convert::From<( #(#types,)* )> for #ident #ty_generics #where_clause {
            fn from(( #(#vars,)* ): ( #(#types,)* )) -> Self {
                #build
            }
        }

        #single
    })
}
