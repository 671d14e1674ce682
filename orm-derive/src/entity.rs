//! parse → model → check → expand.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Type};

/// Collects every error so that one compile shows all problems at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        let e = syn::Error::new(span, msg);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Generated {
    No,
    AutoIncrement,
    UuidV7,
}

struct FieldDef {
    ident: syn::Ident,
    ty: Type,
    column: String,
    column_span: Span,
    primary_key: Option<Span>,
    generated: Generated,
    generated_span: Span,
    unique: bool,
    index: bool,
    version: Option<Span>,
}

struct EntityDef {
    ident: syn::Ident,
    vis: syn::Visibility,
    table: String,
    fields: Vec<FieldDef>,
}

const FIELD_SYNTAX: &str = "expected one of `#[orm(primary_key)]`, `#[orm(auto_increment)]`, \
     `#[orm(uuid_v7)]`, `#[orm(column = \"name\")]`, `#[orm(unique)]`, `#[orm(index)]`, \
     `#[orm(version)]`";
const TABLE_SYNTAX: &str = "expected `#[orm(table = \"name\")]`";

/// The derive's entry point, on `proc_macro2` tokens so that it can be unit tested.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    let model = parse(&input, &mut errors);
    if let Some(model) = &model {
        check(model, &mut errors);
    }
    if let Some(e) = errors.0 {
        return e.to_compile_error();
    }
    match model {
        Some(m) => expand(&m),
        None => TokenStream::new(),
    }
}

fn parse(input: &DeriveInput, errors: &mut Errors) -> Option<EntityDef> {
    let mut table = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("orm")) {
        let r = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                let lit: LitStr = meta
                    .value()
                    .and_then(|v| v.parse())
                    .map_err(|e| syn::Error::new(e.span(), TABLE_SYNTAX))?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "the table name is empty; expected `#[orm(table = \"name\")]`",
                    ));
                }
                table = Some(lit.value());
                Ok(())
            } else {
                Err(meta.error(format!("unknown container attribute; {TABLE_SYNTAX}")))
            }
        });
        if let Err(e) = r {
            errors.at(e.span(), e);
        }
    }
    if !input.generics.params.is_empty() {
        errors.at(
            input.generics.span(),
            "#[derive(Entity)] does not support generic structs",
        );
    }
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(n) => &n.named,
            other => {
                errors.at(other.span(), "#[derive(Entity)] needs a struct with named fields, e.g. `struct Customer { id: i64 }`");
                return None;
            }
        },
        _ => {
            errors.at(
                input.ident.span(),
                "#[derive(Entity)] applies to structs with named fields only",
            );
            return None;
        }
    };
    let fields = named
        .iter()
        .filter_map(|f| parse_field(f, errors))
        .collect();
    Some(EntityDef {
        ident: input.ident.clone(),
        vis: input.vis.clone(),
        table: table.unwrap_or_else(|| snake_case(&input.ident.to_string())),
        fields,
    })
}

fn parse_field(f: &syn::Field, errors: &mut Errors) -> Option<FieldDef> {
    let ident = f.ident.clone()?;
    let name = ident.to_string();
    let mut def = FieldDef {
        column: name.strip_prefix("r#").unwrap_or(&name).to_owned(),
        column_span: ident.span(),
        ident,
        ty: f.ty.clone(),
        primary_key: None,
        generated: Generated::No,
        generated_span: Span::call_site(),
        unique: false,
        index: false,
        version: None,
    };
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("orm")) {
        let r = attr.parse_nested_meta(|meta| {
            let p = &meta.path;
            let flag = |meta: &syn::meta::ParseNestedMeta<'_>| -> syn::Result<Span> {
                if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                    let name = meta
                        .path
                        .get_ident()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    return Err(meta.error(format!(
                        "`{name}` takes no value; expected `#[orm({name})]`"
                    )));
                }
                Ok(meta.path.span())
            };
            if p.is_ident("primary_key") {
                def.primary_key = Some(flag(&meta)?);
            } else if p.is_ident("auto_increment") {
                def.generated_span = flag(&meta)?;
                def.generated = Generated::AutoIncrement;
            } else if p.is_ident("uuid_v7") {
                def.generated_span = flag(&meta)?;
                def.generated = Generated::UuidV7;
            } else if p.is_ident("unique") {
                flag(&meta)?;
                def.unique = true;
            } else if p.is_ident("index") {
                flag(&meta)?;
                def.index = true;
            } else if p.is_ident("version") {
                def.version = Some(flag(&meta)?);
            } else if p.is_ident("column") {
                let lit: LitStr = meta.value().and_then(|v| v.parse()).map_err(|e| {
                    syn::Error::new(e.span(), "expected `#[orm(column = \"name\")]`")
                })?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "the column name is empty; expected `#[orm(column = \"name\")]`",
                    ));
                }
                def.column = lit.value();
                def.column_span = lit.span();
            } else {
                return Err(meta.error(format!("unknown field attribute; {FIELD_SYNTAX}")));
            }
            Ok(())
        });
        if let Err(e) = r {
            errors.at(e.span(), e);
        }
    }
    Some(def)
}

/// The last path segment of a type and its single generic argument, if any:
/// `Option<i64>` → ("Option", Some(i64)).
fn type_parts(ty: &Type) -> Option<(String, Option<&Type>)> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    let arg = match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|a| match a {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    };
    Some((seg.ident.to_string(), arg))
}

fn is_named(ty: &Type, names: &[&str]) -> bool {
    type_parts(ty).is_some_and(|(n, _)| names.contains(&n.as_str()))
}

fn option_of(ty: &Type) -> Option<&Type> {
    match type_parts(ty) {
        Some((n, Some(inner))) if n == "Option" => Some(inner),
        _ => None,
    }
}

fn check(m: &EntityDef, errors: &mut Errors) {
    let keys: Vec<&FieldDef> = m
        .fields
        .iter()
        .filter(|f| f.primary_key.is_some())
        .collect();
    match keys.as_slice() {
        [] => errors.at(
            m.ident.span(),
            format!(
                "`{}` has no primary key; mark one field `#[orm(primary_key)]`, e.g. \
                 `#[orm(primary_key, auto_increment)] id: Option<i64>`",
                m.ident
            ),
        ),
        [_] => {}
        [_, rest @ ..] => {
            for f in rest {
                errors.at(
                    f.primary_key.unwrap_or_else(Span::call_site),
                    format!(
                        "`{}` has more than one `#[orm(primary_key)]`; composite keys are not \
                         supported, keep exactly one",
                        m.ident
                    ),
                );
            }
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for f in &m.fields {
        if seen.contains(&f.column.as_str()) {
            errors.at(
                f.column_span,
                format!(
                    "two fields map to column `{}`; give one another name with \
                     `#[orm(column = \"other\")]`",
                    f.column
                ),
            );
        }
        seen.push(&f.column);
        match f.generated {
            Generated::No => {}
            _ if f.primary_key.is_none() => errors.at(
                f.generated_span,
                "`auto_increment` and `uuid_v7` apply to the primary key only; \
                 expected `#[orm(primary_key, auto_increment)]`",
            ),
            Generated::AutoIncrement => {
                if !option_of(&f.ty).is_some_and(|t| is_named(t, &["i64", "i32"])) {
                    errors.at(
                        f.ty.span(),
                        "an `auto_increment` key must be `Option<i64>` or `Option<i32>`: it is \
                         `None` until the database assigns it",
                    );
                }
            }
            Generated::UuidV7 => {
                let inner = option_of(&f.ty).unwrap_or(&f.ty);
                if !is_named(inner, &["Uuid"]) {
                    errors.at(
                        f.ty.span(),
                        "a `uuid_v7` key must be `uuid::Uuid` or `Option<uuid::Uuid>`",
                    );
                }
            }
        }
        if let Some(span) = f.version
            && (f.primary_key.is_some() || !is_named(&f.ty, &["i64", "i32"]))
        {
            errors.at(
                span,
                "`#[orm(version)]` goes on a non-key `i64` or `i32` field",
            );
        }
    }
    let versions: Vec<&FieldDef> = m.fields.iter().filter(|f| f.version.is_some()).collect();
    if let [_, rest @ ..] = versions.as_slice() {
        for f in rest {
            errors.at(
                f.version.unwrap_or_else(Span::call_site),
                "only one field may be `#[orm(version)]`",
            );
        }
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn expand(m: &EntityDef) -> TokenStream {
    let ident = &m.ident;
    let vis = &m.vis;
    let name = ident.to_string();
    let table = &m.table;
    let pk = m
        .fields
        .iter()
        .position(|f| f.primary_key.is_some())
        .unwrap_or(0);

    let metas = m.fields.iter().map(|f| {
        let ty = &f.ty;
        let column = &f.column;
        let field = f.ident.to_string();
        let field = field.strip_prefix("r#").unwrap_or(&field);
        let pk = f.primary_key.is_some();
        let generated = match f.generated {
            Generated::No => quote!(::orm_core::Generated::No),
            Generated::AutoIncrement => quote!(::orm_core::Generated::AutoIncrement),
            Generated::UuidV7 => quote!(::orm_core::Generated::UuidV7),
        };
        let (unique, index, version) = (f.unique, f.index, f.version.is_some());
        quote! {
            ::orm_core::ColumnMeta {
                name: #column,
                field: #field,
                sql_type: <#ty as ::orm_core::Field>::SQL_TYPE,
                nullable: <#ty as ::orm_core::Field>::NULLABLE,
                primary_key: #pk,
                generated: #generated,
                unique: #unique,
                index: #index,
                version: #version,
            }
        }
    });
    let idx: Vec<usize> = (0..m.fields.len()).collect();
    let idents: Vec<&syn::Ident> = m.fields.iter().map(|f| &f.ident).collect();
    let types: Vec<&Type> = m.fields.iter().map(|f| &f.ty).collect();
    let asserts = m.fields.iter().map(|f| {
        let ty = &f.ty;
        quote_spanned! {ty.span()=> __orm_assert_field::<#ty>(); }
    });
    let consts = m.fields.iter().enumerate().map(|(i, f)| {
        let field = f.ident.to_string();
        let field = field.strip_prefix("r#").unwrap_or(&field);
        let cname = format_ident!("{}", field.to_uppercase(), span = f.ident.span());
        let ty = &f.ty;
        let column = &f.column;
        let doc = format!("The column `{column}` (field `{field}`).");
        quote! {
            #[doc = #doc]
            #vis const #cname: ::orm_core::Column<#ident, #ty> = ::orm_core::Column::new(#i, #column);
        }
    });
    let ncols = m.fields.len();

    quote! {
        const _: () = {
            #[allow(dead_code)]
            fn __orm_assert_field<T: ::orm_core::Field>() {}
            #[allow(dead_code)]
            fn __orm_assert_all() {
                #(#asserts)*
            }

            #[automatically_derived]
            impl ::orm_core::Entity for #ident {
                const META: &'static ::orm_core::EntityMeta = &::orm_core::EntityMeta {
                    name: #name,
                    table: #table,
                    columns: &[#(#metas),*],
                    primary_key: #pk,
                };

                #[inline]
                fn column(&self, index: usize) -> ::orm_core::ValueRef<'_> {
                    match index {
                        #(#idx => ::orm_core::Field::to_sql(&self.#idents),)*
                        _ => ::core::panic!("{} has {} columns; index {} is out of range", #name, #ncols, index),
                    }
                }

                fn set_column(
                    &mut self,
                    index: usize,
                    value: ::orm_core::ValueRef<'_>,
                ) -> ::core::result::Result<(), ::orm_core::FromSqlError> {
                    match index {
                        #(#idx => ::orm_core::assign(&mut self.#idents, value),)*
                        _ => ::core::panic!("{} has {} columns; index {} is out of range", #name, #ncols, index),
                    }
                }

                fn from_row(row: &dyn ::orm_core::RowValues) -> ::orm_core::Result<Self> {
                    ::core::result::Result::Ok(Self {
                        #(#idents: ::orm_core::read_column::<#types>(row, <Self as ::orm_core::Entity>::META, #idx)?,)*
                    })
                }
            }

            #[automatically_derived]
            impl ::orm_core::AsEntity for #ident {
                type Entity = Self;
                #[inline]
                fn as_entity(&self) -> &Self {
                    self
                }
            }

            #[automatically_derived]
            #[allow(missing_docs)]
            impl #ident {
                #(#consts)*
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(input: TokenStream) -> String {
        derive(input).to_string()
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("Customer"), "customer");
        assert_eq!(snake_case("CustomerOrder"), "customer_order");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let out = errors_of(quote! {
            struct Bad {
                #[orm(nope)]
                a: i64,
                #[orm(column = "a")]
                b: i64,
            }
        });
        assert!(out.contains("unknown field attribute"), "{out}");
        assert!(out.contains("two fields map to column"), "{out}");
        assert!(out.contains("has no primary key"), "{out}");
    }

    #[test]
    fn expands_a_valid_entity() {
        let out = errors_of(quote! {
            #[orm(table = "t")]
            struct Ok { #[orm(primary_key, auto_increment)] id: Option<i64>, name: String }
        });
        assert!(out.contains("impl :: orm_core :: Entity for Ok"), "{out}");
        assert!(out.contains("const NAME"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }
}
