//! `#[derive(FieldEnum)]`: a Rust enum of unit variants stored in one column, as text (the
//! variant's name, or `#[orm(rename = "…")]`) or as an integer (`#[orm(repr = "i32")]`, the
//! variant's discriminant).

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Repr {
    Text,
    I32,
    I64,
}

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(t) => t,
        Err(e) => e.to_compile_error(),
    }
}

fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let mut repr = Repr::Text;
    let mut krate = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("orm")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("repr") {
                let lit: LitStr = meta.value()?.parse()?;
                repr = match lit.value().as_str() {
                    "text" => Repr::Text,
                    "i32" => Repr::I32,
                    "i64" => Repr::I64,
                    _ => {
                        return Err(syn::Error::new(
                            lit.span(),
                            "expected `repr = \"text\"`, `\"i32\"` or `\"i64\"`",
                        ));
                    }
                };
                Ok(())
            } else if meta.path.is_ident("crate") {
                krate = Some(crate::manifest::crate_attr(&meta)?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown attribute; expected `#[orm(repr = \"text\" | \"i32\" | \"i64\")]`",
                ))
            }
        })?;
    }
    let krate = krate.unwrap_or_else(crate::manifest::core_path);
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(FieldEnum)] applies to enums whose variants carry no data",
        ));
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(FieldEnum)] does not support generic enums",
        ));
    }
    let ident = &input.ident;
    let mut names = Vec::new();
    let mut variants = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new(
                v.fields.span(),
                "a variant stored in a column carries no data",
            ));
        }
        let mut name = v.ident.to_string();
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("orm")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let lit: LitStr = meta.value()?.parse()?;
                    name = lit.value();
                    Ok(())
                } else {
                    Err(meta.error("unknown attribute; expected `#[orm(rename = \"name\")]`"))
                }
            })?;
        }
        if names.contains(&name) {
            return Err(syn::Error::new(
                v.ident.span(),
                format!("two variants are stored as `{name}`"),
            ));
        }
        names.push(name);
        variants.push(&v.ident);
    }
    let type_name = ident.to_string();
    let expected = names.join(", ");
    let (sql_type, to_sql, from_sql) = match repr {
        Repr::Text => (
            quote!(#krate::SqlType::Text),
            quote! {
                #krate::ValueRef::Text(::std::borrow::Cow::Borrowed(match self {
                    #(Self::#variants => #names,)*
                }))
            },
            quote! {
                let text = <::std::string::String as #krate::Field>::from_sql(value)?;
                match text.as_str() {
                    #(#names => ::core::result::Result::Ok(Self::#variants),)*
                    other => ::core::result::Result::Err(#krate::FromSqlError::Invalid {
                        message: ::std::format!(
                            "`{}` is not a {}; expected one of: {}", other, #type_name, #expected
                        ),
                    }),
                }
            },
        ),
        Repr::I32 | Repr::I64 => {
            let (int, variant, sql) = if repr == Repr::I32 {
                (quote!(i32), quote!(I32), quote!(#krate::SqlType::I32))
            } else {
                (quote!(i64), quote!(I64), quote!(#krate::SqlType::I64))
            };
            (
                sql,
                quote!(#krate::ValueRef::#variant(match self { #(Self::#variants => Self::#variants as #int,)* })),
                quote! {
                    let n = <#int as #krate::Field>::from_sql(value)?;
                    #(if n == Self::#variants as #int {
                        return ::core::result::Result::Ok(Self::#variants);
                    })*
                    ::core::result::Result::Err(#krate::FromSqlError::Invalid {
                        message: ::std::format!("{} is not a {}", n, #type_name),
                    })
                },
            )
        }
    };
    Ok(quote! {
        #[automatically_derived]
        impl #krate::Field for #ident {
            const SQL_TYPE: #krate::SqlType = #sql_type;
            fn to_sql(&self) -> #krate::ValueRef<'_> {
                #to_sql
            }
            fn from_sql(
                value: #krate::ValueRef<'_>,
            ) -> ::core::result::Result<Self, #krate::FromSqlError> {
                #from_sql
            }
        }
    })
}
