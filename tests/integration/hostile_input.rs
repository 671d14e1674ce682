//! R3: values are always bound and identifiers always quoted.

use orm_core::{Entity, Result};

/// Table and column names that need quoting, including a quote character.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "order \"items\"; DROP TABLE x")]
pub struct Weird {
    #[orm(primary_key, column = "select")]
    pub id: i64,
    #[orm(column = "group by")]
    pub text: String,
    #[orm(column = "a\"b")]
    pub other: Option<String>,
}

const HOSTILE: &[&str] = &[
    "'; DROP TABLE \"order \"\"items\"\"; DROP TABLE x\"; --",
    "Robert'); DROP TABLE Students;--",
    "semi;colon",
    "quote\"double",
    "nul\0byte",
    "back\\slash",
    "%_like_wildcards%",
    "",
];

// R3
orm_tests::backends! {
fn r3_hostile_values_and_identifiers_round_trip(db) -> Result<()> {
    let conn = db.connect();
    conn.create_table::<Weird>()?;
    // PostgreSQL text cannot hold a NUL character: the server refuses it (checked below).
    let rows: Vec<Weird> = HOSTILE
        .iter()
        .filter(|s| !(db.is_postgres() && s.contains('\0')))
        .enumerate()
        .map(|(i, s)| Weird {
            id: i as i64,
            text: (*s).to_owned(),
            other: Some(format!("{s}{s}")),
        })
        .collect();
    conn.insert_many(rows.iter())?;
    assert_eq!(conn.select_all::<Weird>()?, rows);
    for row in &rows {
        let found: Vec<Weird> = conn.select(&orm_core::SelectSpec {
            filter: Some(Weird::TEXT.eq(row.text.as_str()).into_condition()),
            ..Default::default()
        })?;
        assert_eq!(found, vec![row.clone()]);
    }
    // The statement text never carries a value.
    let (log, _g) = orm_tests::SqlLog::start();
    conn.insert_many([Weird {
        id: 99,
        text: "Robert'); DROP TABLE Students;--".into(),
        other: None,
    }])?;
    assert!(log.statements().iter().all(|s| !s.contains("Robert")));
    assert_eq!(conn.count::<Weird>(None)?, rows.len() as u64 + 1);
    if db.is_postgres() {
        let nul = |id| Weird {
            id,
            text: "nul\0byte".into(),
            other: None,
        };
        for n in [1, 100] {
            let err = conn.insert_many((200..200 + n).map(nul)).unwrap_err();
            assert_eq!(err.kind(), orm_core::ErrorKind::TypeMismatch, "{err}");
            assert_eq!(conn.count::<Weird>(None)?, rows.len() as u64 + 1);
        }
    }
    Ok(())
}
}
