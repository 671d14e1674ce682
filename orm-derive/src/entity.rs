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
    /// `#[orm(references = Target)]`.
    references: Option<syn::Path>,
    /// `#[orm(on_delete = "...")]`, checked.
    on_delete: Option<(String, Span)>,
    /// `#[orm(relation = "name")]`.
    relation: Option<(String, Span)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RelKind {
    HasMany,
    HasOne,
    ManyToMany,
}

/// A relation declared on the container: `has_many(name = Child::REL, cascade = "...")`,
/// `has_one(...)`, `many_to_many(name = Target, via = (Assoc::TO_SELF, Assoc::TO_TARGET))`.
struct RelationDef {
    kind: RelKind,
    name: syn::Ident,
    /// has_many / has_one: the child's many-to-one back to this entity.
    via: Option<syn::Path>,
    /// many_to_many: the target type and the association's two many-to-ones.
    target: Option<syn::Type>,
    pair: Option<(syn::Path, syn::Path)>,
    cascade: u8,
}

struct EntityDef {
    ident: syn::Ident,
    vis: syn::Visibility,
    /// The path generated code names `orm_core` by (`#[orm(crate = "…")]`, or found in the
    /// crate's manifest).
    krate: TokenStream,
    table: String,
    fields: Vec<FieldDef>,
    relations: Vec<RelationDef>,
}

const FIELD_SYNTAX: &str = "expected one of `#[orm(primary_key)]`, `#[orm(auto_increment)]`, \
     `#[orm(uuid_v7)]`, `#[orm(column = \"name\")]`, `#[orm(unique)]`, `#[orm(index)]`, \
     `#[orm(version)]`, `#[orm(references = Entity)]`, `#[orm(on_delete = \"cascade\")]`, \
     `#[orm(relation = \"name\")]`";
const TABLE_SYNTAX: &str = "expected `#[orm(table = \"name\")]`, \
     `#[orm(has_many(name = Child::RELATION))]`, `#[orm(has_one(name = Child::RELATION))]` or \
     `#[orm(many_to_many(name = Target, via = (Assoc::TO_SELF, Assoc::TO_TARGET)))]`";
const ON_DELETE: &[(&str, &str)] = &[
    ("no action", "NoAction"),
    ("restrict", "Restrict"),
    ("cascade", "Cascade"),
    ("set null", "SetNull"),
];

/// SQLAlchemy's cascade words, as the bits of `orm_core::Cascade`.
fn parse_cascade(lit: &LitStr) -> syn::Result<u8> {
    let mut bits = 0;
    for word in lit
        .value()
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        bits |= match word {
            "save-update" => 1,
            "delete" => 2,
            "delete-orphan" => 4,
            "all" => 3,
            "none" => 0,
            other => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "unknown cascade `{other}`; expected a list of save-update, delete, \
                         delete-orphan, all, none"
                    ),
                ));
            }
        };
    }
    Ok(bits)
}

fn parse_relation(
    kind: RelKind,
    meta: &syn::meta::ParseNestedMeta<'_>,
) -> syn::Result<RelationDef> {
    let mut def = RelationDef {
        kind,
        name: format_ident!("_"),
        via: None,
        target: None,
        pair: None,
        cascade: 1,
    };
    let mut named = false;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("cascade") {
            let lit: LitStr = inner.value()?.parse()?;
            def.cascade = parse_cascade(&lit)?;
        } else if inner.path.is_ident("via") && kind == RelKind::ManyToMany {
            let tuple: syn::ExprTuple = inner.value()?.parse()?;
            let paths: Vec<syn::Path> = tuple
                .elems
                .iter()
                .filter_map(|e| match e {
                    syn::Expr::Path(p) => Some(p.path.clone()),
                    _ => None,
                })
                .collect();
            let [a, b] = paths.as_slice() else {
                return Err(syn::Error::new(
                    tuple.span(),
                    "expected `via = (Assoc::TO_SELF, Assoc::TO_TARGET)`: the association \
                     entity's two many-to-one relations",
                ));
            };
            def.pair = Some((a.clone(), b.clone()));
        } else if let Some(name) = inner.path.get_ident() {
            if named {
                return Err(inner.error("one relation per `has_many(...)`; repeat the attribute"));
            }
            named = true;
            def.name = name.clone();
            if kind == RelKind::ManyToMany {
                def.target = Some(inner.value()?.parse()?);
            } else {
                let p: syn::ExprPath = inner.value()?.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "expected `name = Child::RELATION`, the child's many-to-one relation",
                    )
                })?;
                def.via = Some(p.path);
            }
        } else {
            return Err(inner.error("expected `name = ...` or `cascade = \"...\"`"));
        }
        Ok(())
    })?;
    if !named {
        return Err(meta.error(
            "the relation has no name: expected e.g. `has_many(orders = Order::CUSTOMER)`",
        ));
    }
    if kind == RelKind::ManyToMany && def.pair.is_none() {
        return Err(meta.error(
            "expected `many_to_many(name = Target, via = (Assoc::TO_SELF, Assoc::TO_TARGET))`",
        ));
    }
    if let Some(p) = &def.via
        && p.segments.len() < 2
    {
        return Err(syn::Error::new(
            p.span(),
            "expected `Child::RELATION`, a path through the child type",
        ));
    }
    Ok(def)
}

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
    let mut krate = None;
    let mut relations = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("orm")) {
        let r = attr.parse_nested_meta(|meta| {
            let kind = if meta.path.is_ident("has_many") {
                Some(RelKind::HasMany)
            } else if meta.path.is_ident("has_one") {
                Some(RelKind::HasOne)
            } else if meta.path.is_ident("many_to_many") {
                Some(RelKind::ManyToMany)
            } else {
                None
            };
            if let Some(kind) = kind {
                relations.push(parse_relation(kind, &meta)?);
                return Ok(());
            }
            if meta.path.is_ident("crate") {
                krate = Some(crate::manifest::crate_attr(&meta)?);
                return Ok(());
            }
            if meta.path.is_ident("table") {
                let lit: LitStr = meta.value().and_then(|v| v.parse()).map_err(|e| {
                    syn::Error::new(e.span(), "expected `#[orm(table = \"name\")]`")
                })?;
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
        krate: krate.unwrap_or_else(crate::manifest::core_path),
        fields,
        relations,
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
        references: None,
        on_delete: None,
        relation: None,
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
            } else if p.is_ident("references") {
                let path: syn::Path = meta.value().and_then(|v| v.parse()).map_err(|e| {
                    syn::Error::new(e.span(), "expected `#[orm(references = Entity)]`")
                })?;
                def.references = Some(path);
            } else if p.is_ident("on_delete") {
                let lit: LitStr = meta.value().and_then(|v| v.parse())?;
                let v = lit.value().to_lowercase();
                if !ON_DELETE.iter().any(|(w, _)| *w == v) {
                    return Err(syn::Error::new(
                        lit.span(),
                        "expected `on_delete = \"cascade\"`, `\"set null\"`, `\"restrict\"` or \
                         `\"no action\"`",
                    ));
                }
                def.on_delete = Some((v, lit.span()));
            } else if p.is_ident("relation") {
                let lit: LitStr = meta.value().and_then(|v| v.parse())?;
                def.relation = Some((lit.value(), lit.span()));
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
    for f in &m.fields {
        if f.references.is_none() {
            for (what, span) in [("on_delete", &f.on_delete), ("relation", &f.relation)]
                .iter()
                .filter_map(|(w, o)| o.as_ref().map(|(_, s)| (w, s)))
            {
                errors.at(
                    *span,
                    format!("`{what}` needs `references = Entity` on the same field"),
                );
            }
            continue;
        }
        if let Some((_, span)) = &f.on_delete
            && f.on_delete.as_ref().is_some_and(|(v, _)| v == "set null")
            && option_of(&f.ty).is_none()
        {
            errors.at(
                *span,
                "`on_delete = \"set null\"` needs a nullable foreign key (an `Option` field)",
            );
        }
        if relation_name(f).is_none() {
            errors.at(
                f.ident.span(),
                "name the relation of this foreign key: `#[orm(relation = \"name\")]` (a field \
                 called `<name>_id` names it `<name>`)",
            );
        }
    }
    let mut consts: Vec<String> = m.fields.iter().map(|f| const_name(&f.ident)).collect();
    let rel_names = m
        .fields
        .iter()
        .filter(|f| f.references.is_some())
        .filter_map(|f| {
            relation_name(f).map(|n| (n, f.relation.as_ref().map_or(f.ident.span(), |r| r.1)))
        })
        .chain(
            m.relations
                .iter()
                .map(|r| (r.name.to_string(), r.name.span())),
        );
    for (name, span) in rel_names {
        let c = name.to_uppercase();
        if consts.contains(&c) {
            errors.at(
                span,
                format!(
                    "the relation constant `{c}` would collide with another constant of `{}`; \
                     choose another name",
                    m.ident
                ),
            );
        }
        consts.push(c);
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

/// The constant name of a field: `customer_id` → `CUSTOMER_ID`.
fn const_name(ident: &syn::Ident) -> String {
    let field = ident.to_string();
    field.strip_prefix("r#").unwrap_or(&field).to_uppercase()
}

/// The many-to-one relation's name of a foreign-key field: `relation = "..."`, else the
/// field's name without `_id`.
fn relation_name(f: &FieldDef) -> Option<String> {
    if let Some((n, _)) = &f.relation {
        return Some(n.clone());
    }
    let field = f.ident.to_string();
    let field = field.strip_prefix("r#").unwrap_or(&field);
    field
        .strip_suffix("_id")
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// `Child::RELATION` → `Child`.
fn owner_type(path: &syn::Path) -> syn::Path {
    let mut p = path.clone();
    p.segments.pop_pair();
    if let Some(last) = p.segments.pop_pair() {
        p.segments.push_value(last.into_value());
    }
    p
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
    let krate = &m.krate;
    let ident = &m.ident;
    let vis = &m.vis;
    let name = ident.to_string();
    let table = &m.table;
    let pk = m
        .fields
        .iter()
        .position(|f| f.primary_key.is_some())
        .unwrap_or(0);
    let pk_ty = &m.fields[pk].ty;
    let id_ty = quote_spanned! {pk_ty.span()=> <#pk_ty as #krate::KeyField>::Id };

    let metas = m.fields.iter().map(|f| {
        let ty = &f.ty;
        let column = &f.column;
        let field = f.ident.to_string();
        let field = field.strip_prefix("r#").unwrap_or(&field);
        let pk = f.primary_key.is_some();
        let generated = match f.generated {
            Generated::No => quote!(#krate::Generated::No),
            Generated::AutoIncrement => quote!(#krate::Generated::AutoIncrement),
            Generated::UuidV7 => quote!(#krate::Generated::UuidV7),
        };
        let (unique, index, version) = (f.unique, f.index, f.version.is_some());
        let references = match &f.references {
            Some(target) => {
                let word = f
                    .on_delete
                    .as_ref()
                    .map_or("no action", |(v, _)| v.as_str());
                let action = ON_DELETE
                    .iter()
                    .find(|(w, _)| *w == word)
                    .map_or("NoAction", |(_, a)| a);
                let action = format_ident!("{}", action);
                quote! {
                    ::core::option::Option::Some(#krate::ForeignKey {
                        target: #krate::meta_of::<#target>,
                        on_delete: #krate::OnDelete::#action,
                    })
                }
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            #krate::ColumnMeta {
                name: #column,
                field: #field,
                sql_type: <#ty as #krate::Field>::SQL_TYPE,
                nullable: <#ty as #krate::Field>::NULLABLE,
                primary_key: #pk,
                generated: #generated,
                unique: #unique,
                index: #index,
                version: #version,
                references: #references,
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
            #vis const #cname: #krate::Column<#ident, #ty> = #krate::Column::new(#i, #column);
        }
    });
    let ncols = m.fields.len();

    // Many-to-one relations of foreign keys, and a check that each key's type is the
    // referenced key's.
    let many_to_one = m.fields.iter().enumerate().filter_map(|(i, f)| {
        let target = f.references.as_ref()?;
        let name = relation_name(f)?;
        let cname = format_ident!("{}", name.to_uppercase(), span = f.ident.span());
        let doc = format!("The many-to-one relation `{name}` of the foreign key `{}`.", f.column);
        Some(quote! {
            #[doc = #doc]
            #vis const #cname: #krate::ManyToOne<#ident, #target> = #krate::ManyToOne::new(#i, #name);
        })
    });
    let fk_checks = m.fields.iter().filter_map(|f| {
        let target = f.references.as_ref()?;
        let ty = &f.ty;
        let msg = format!(
            "the type of foreign key `{}::{}` differs from the primary key of the entity it references",
            m.ident, f.ident
        );
        Some(quote_spanned! {ty.span()=>
            const _: () = ::core::assert!(
                <#ty as #krate::Field>::SQL_TYPE as u8
                    == <#target as #krate::Entity>::META.columns[<#target as #krate::Entity>::META.primary_key].sql_type as u8,
                #msg
            );
        })
    });
    let relation_consts = m.relations.iter().enumerate().map(|(ri, r)| {
        let cname = format_ident!("{}", r.name.to_string().to_uppercase(), span = r.name.span());
        let doc = format!("The relation `{}`.", r.name);
        match (r.kind, &r.via, &r.target, &r.pair) {
            (RelKind::HasMany, Some(via), _, _) => {
                let child = owner_type(via);
                quote! {
                    #[doc = #doc]
                    #vis const #cname: #krate::OneToMany<#ident, #child> = #krate::OneToMany::new(#ri, #via);
                }
            }
            (RelKind::HasOne, Some(via), _, _) => {
                let child = owner_type(via);
                quote! {
                    #[doc = #doc]
                    #vis const #cname: #krate::OneToOne<#ident, #child> = #krate::OneToOne::new(#ri, #via);
                }
            }
            (_, _, Some(target), Some((a, b))) => quote! {
                #[doc = #doc]
                #vis const #cname: #krate::ManyToMany<#ident, #target> = #krate::ManyToMany::new(#ri, #a, #b);
            },
            _ => TokenStream::new(),
        }
    });
    let relation_metas = m.relations.iter().map(|r| {
        let name = r.name.to_string();
        let cascade = r.cascade;
        match (r.kind, &r.via, &r.target, &r.pair) {
            (RelKind::ManyToMany, _, Some(target), Some((a, b))) => {
                let assoc = owner_type(a);
                quote! {
                    #krate::RelationMeta {
                        name: #name,
                        kind: #krate::RelationKind::ManyToMany,
                        target: #krate::meta_of::<#target>,
                        remote_column: #a.column(),
                        through: ::core::option::Option::Some((#krate::meta_of::<#assoc>, #b.column())),
                        cascade: #krate::Cascade::from_bits(#cascade),
                    }
                }
            }
            (kind, Some(via), _, _) => {
                let child = owner_type(via);
                let kind = if kind == RelKind::HasOne {
                    quote!(#krate::RelationKind::OneToOne)
                } else {
                    quote!(#krate::RelationKind::OneToMany)
                };
                quote! {
                    #krate::RelationMeta {
                        name: #name,
                        kind: #kind,
                        target: #krate::meta_of::<#child>,
                        remote_column: #via.column(),
                        through: ::core::option::Option::None,
                        cascade: #krate::Cascade::from_bits(#cascade),
                    }
                }
            }
            _ => TokenStream::new(),
        }
    });
    let visit_arms = m.relations.iter().enumerate().filter_map(|(ri, r)| {
        let target = match (&r.via, &r.target) {
            (Some(via), _) => {
                let child = owner_type(via);
                quote!(#child)
            }
            (None, Some(t)) => quote!(#t),
            _ => return None,
        };
        Some(quote! { #ri => ::core::option::Option::Some(visitor.visit::<#target>()), })
    });
    let visit = if m.relations.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            fn visit_relation<V: #krate::TypeVisitor>(
                relation: usize,
                visitor: V,
            ) -> ::core::option::Option<V::Output> {
                match relation {
                    #(#visit_arms)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    };

    quote! {
        const _: () = {
            #[allow(dead_code)]
            fn __orm_assert_field<T: #krate::Field>() {}
            #[allow(dead_code)]
            fn __orm_assert_all() {
                #(#asserts)*
            }

            #[automatically_derived]
            impl #krate::Entity for #ident {
                type Id = #id_ty;

                const META: &'static #krate::EntityMeta = &#krate::EntityMeta {
                    name: #name,
                    table: #table,
                    columns: &[#(#metas),*],
                    primary_key: #pk,
                    relations: &[#(#relation_metas),*],
                };

                #visit

                #[inline]
                fn column(&self, index: usize) -> #krate::ValueRef<'_> {
                    match index {
                        #(#idx => #krate::Field::to_sql(&self.#idents),)*
                        _ => ::core::panic!("{} has {} columns; index {} is out of range", #name, #ncols, index),
                    }
                }

                fn set_column(
                    &mut self,
                    index: usize,
                    value: #krate::ValueRef<'_>,
                ) -> ::core::result::Result<(), #krate::FromSqlError> {
                    match index {
                        #(#idx => #krate::assign(&mut self.#idents, value),)*
                        _ => ::core::panic!("{} has {} columns; index {} is out of range", #name, #ncols, index),
                    }
                }

                fn from_row(row: &dyn #krate::RowValues) -> #krate::Result<Self> {
                    ::core::result::Result::Ok(Self {
                        #(#idents: #krate::read_column::<#types>(row, <Self as #krate::Entity>::META, #idx)?,)*
                    })
                }
            }

            #[automatically_derived]
            impl #krate::AsEntity for #ident {
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
                #(#many_to_one)*
                #(#relation_consts)*
            }

            #(#fk_checks)*
        };
    }
}
