//! R3: property tests. Arbitrary values round-trip through every write path and through
//! filters; arbitrary column-name input to the dynamic bulk insert writes exactly what is
//! valid and nothing of a call that has anything invalid.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use orm_session::prelude::*;
use orm_tests::model::Customer;
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "prop")]
pub struct Prop {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    pub text: String,
    pub blob: Vec<u8>,
    pub big: i64,
    pub small: i32,
    pub real: f64,
    pub flag: bool,
    pub maybe: Option<String>,
}

fn prop_strategy() -> impl Strategy<Value = Prop> {
    let real = prop_oneof![
        any::<f64>().prop_filter("SQLite cannot store NaN", |f| !f.is_nan()),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN_POSITIVE),
    ];
    (
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<i64>(),
        any::<i32>(),
        real,
        any::<bool>(),
        proptest::option::of(".*"),
    )
        .prop_map(|(text, blob, big, small, real, flag, maybe)| Prop {
            id: None,
            text,
            blob,
            big,
            small,
            real,
            flag,
            maybe,
        })
}

/// Writes `p` through every write path into a fresh `prop` table and reads it back through
/// `select_all` and four filters.
fn round_trip(engine: &Engine, p: &Prop) -> Result<()> {
    engine.drop_table::<Prop>()?;
    engine.create_table::<Prop>()?;
    let s = engine.session();
    // add_all + flush, bulk_save, bulk_insert_mappings, core insert: four copies.
    let h = s.add(p.clone())?;
    s.flush()?;
    let mut saved = [p.clone()];
    s.bulk_save(
        saved.iter_mut(),
        BulkOptions::default().return_defaults(true),
    )?;
    let mapping = Mapping::of(p);
    s.bulk_insert_mappings([mapping], BulkOptions::default())?;
    s.with_connection(|c| c.insert_many([p]).map(drop))?;
    s.commit()?;

    let conn = engine.connect()?;
    let all: Vec<Prop> = conn.select_all()?;
    assert_eq!(all.len(), 4);
    for row in &all {
        assert_eq!(
            &Prop {
                id: row.id,
                ..p.clone()
            },
            row
        );
    }
    assert_eq!(h.read()?.id, Some(1));
    assert_eq!(saved[0].id, Some(2));
    // Filters bind the same values and find all four rows.
    let by_text = s
        .query::<Prop>()
        .filter(Prop::TEXT.eq(p.text.as_str()))
        .count()?;
    let by_blob = s
        .query::<Prop>()
        .filter(Prop::BLOB.eq(p.blob.as_slice()))
        .count()?;
    let by_numbers = s
        .query::<Prop>()
        .filter(
            Prop::BIG
                .eq(p.big)
                .and(Prop::SMALL.eq(p.small))
                .and(Prop::REAL.eq(p.real)),
        )
        .count()?;
    let by_maybe = match &p.maybe {
        Some(m) => s
            .query::<Prop>()
            .filter(Prop::MAYBE.eq(m.as_str()))
            .count()?,
        None => s.query::<Prop>().filter(Prop::MAYBE.is_null()).count()?,
    };
    assert_eq!((by_text, by_blob, by_numbers, by_maybe), (4, 4, 4, 4));
    Ok(())
}

/// Runs a property with `cases` cases; a failure panics with the smallest failing input.
fn check<S: Strategy>(
    cases: u32,
    strategy: &S,
    test: impl Fn(S::Value) -> std::result::Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    if let Err(e) = runner.run(strategy, test) {
        panic!("{e}");
    }
}

orm_tests::backends! {
// R3
fn r3_values_round_trip_through_every_write_path_and_filter(db) {
    let engine = db.engine();
    // PostgreSQL text cannot hold NUL (refused with an error: see hostile_input).
    let pg = db.is_postgres();
    // MySQL's DOUBLE holds no infinity (mapping::every_supported_type_round_trips checks
    // that it is refused).
    let my = db.is_mysql();
    let strategy = prop_strategy().prop_map(move |mut p| {
        if pg {
            p.text = p.text.replace('\0', "");
            p.maybe = p.maybe.map(|m| m.replace('\0', ""));
        }
        if my && p.real.is_infinite() {
            p.real = p.real.signum() * f64::MAX;
        }
        p
    });
    check(64, &strategy, |p| {
        round_trip(&engine, &p).map_err(|e| TestCaseError::fail(e.to_string()))
    });
}
}

fn column_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name".to_owned()),
        Just("descr".to_owned()),
        Just("age".to_owned()),
        Just("id".to_owned()),
        "[a-z_\"' ;()-]{0,8}",
    ]
}

/// Values for any column. Integers stay at or below zero (or are `i64::MAX`): an explicit
/// `id` then never collides with a key the database assigns to another row of the same call,
/// which the model below cannot predict (plain SQL would fail there too).
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-c]{1,2}".prop_map(Value::Text),
        (-3i64..=0).prop_map(Value::I64),
        Just(Value::I64(i64::MAX)),
        Just(Value::Null),
        Just(Value::F64(1.5)),
    ]
}

/// A row: either arbitrary pairs, or a valid base (a name and an age) with arbitrary pairs
/// after it, so that calls that must succeed are generated as often as calls that must fail.
fn row() -> impl Strategy<Value = Vec<(String, Value)>> {
    let arbitrary = proptest::collection::vec((column_name(), value()), 0..5);
    let based = (
        "[a-z]{6}",
        -100i64..100,
        proptest::collection::vec((column_name(), value()), 0..2),
    )
        .prop_map(|(name, age, extra)| {
            let mut r = vec![
                ("name".to_owned(), Value::Text(name)),
                ("age".to_owned(), Value::I64(age)),
            ];
            r.extend(extra);
            r
        });
    prop_oneof![1 => arbitrary, 3 => based]
}

/// An independent model of what the dynamic bulk insert must accept, into an empty table.
/// On MySQL a key is generated above the largest key in the table: after a row keyed
/// `i64::MAX` there is none to generate.
fn expected_valid(rows: &[Vec<(String, Value)>], mysql: bool) -> bool {
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for row in rows {
        let mut fin: BTreeMap<&str, &Value> = BTreeMap::new();
        for (name, v) in row {
            let ok = match (name.as_str(), v) {
                ("name", Value::Text(_)) => true,
                ("descr", Value::Text(_) | Value::Null) => true,
                ("age", Value::I64(i)) => i32::try_from(*i).is_ok(),
                ("id", Value::I64(_) | Value::Null) => true,
                _ => false,
            };
            if !ok {
                return false;
            }
            fin.insert(name, v);
        }
        let (Some(Value::Text(name)), Some(_)) = (fin.get("name"), fin.get("age")) else {
            return false;
        };
        if !names.insert(name.clone()) {
            return false; // `name` is UNIQUE
        }
        if let Some(Value::I64(id)) = fin.get("id")
            && !ids.insert(*id)
        {
            return false; // duplicate key
        }
    }
    !mysql || keys_left_to_generate(rows)
}

/// MySQL generates a key past the largest one in the table: once a row keyed `i64::MAX` is
/// in, a row that leaves its key to the database fails. Whether one comes after it depends
/// on the order the rows are sent in: the call groups rows by the columns they carry and,
/// for so few rows (under one statement's worth), sends the groups in the order each first
/// appears.
fn keys_left_to_generate(rows: &[Vec<(String, Value)>]) -> bool {
    let mut groups: Vec<(BTreeSet<&str>, Vec<Option<i64>>)> = Vec::new();
    for row in rows {
        let mut fin: BTreeMap<&str, &Value> = BTreeMap::new();
        for (name, v) in row {
            fin.insert(name, v);
        }
        let key = match fin.get("id") {
            Some(Value::I64(id)) => Some(*id),
            _ => None,
        };
        // A NULL key is a key left to the database: such a row goes with the rows that
        // carry no key at all.
        let columns: BTreeSet<&str> = fin
            .keys()
            .copied()
            .filter(|&c| c != "id" || key.is_some())
            .collect();
        match groups.iter_mut().find(|(c, _)| *c == columns) {
            Some((_, keys)) => keys.push(key),
            None => groups.push((columns, vec![key])),
        }
    }
    let mut at_end = false;
    for key in groups.iter().flat_map(|(_, keys)| keys) {
        match key {
            Some(id) => at_end |= *id == i64::MAX,
            None if at_end => return false,
            None => {}
        }
    }
    true
}

orm_tests::backends! {
// R3: the model's rule for a row keyed i64::MAX, checked against the database on the cases
// that tell the orders apart (the property test below meets them only now and then).
fn r3_the_largest_key_blocks_generated_keys_only_after_it(db) -> Result<()> {
    let engine = db.engine();
    engine.create_table::<Customer>()?;
    let row = |name: &str, id: Option<i64>| {
        let mut r = vec![
            ("name".to_owned(), Value::Text(name.into())),
            ("age".to_owned(), Value::I64(1)),
        ];
        if let Some(id) = id {
            r.push(("id".to_owned(), Value::I64(id)));
        }
        r
    };
    let cases = [
        vec![row("a", None), row("b", Some(i64::MAX)), row("c", None)],
        vec![row("a", Some(i64::MAX)), row("b", None)],
        vec![row("a", Some(7)), row("b", Some(i64::MAX)), row("c", None)],
        vec![row("a", None), row("b", Some(i64::MAX))],
    ];
    let empty = if db.is_postgres() { "TRUNCATE customer RESTART IDENTITY" } else if db.is_mysql() { "TRUNCATE customer" } else { "DELETE FROM customer" };
    for rows in cases {
        engine.connect()?.execute(empty, &[])?;
        let s = engine.session();
        let result = s.bulk_insert_dynamic::<Customer, _, _>(rows.clone(), BulkOptions::default());
        s.commit()?;
        let valid = expected_valid(&rows, db.is_mysql());
        assert_eq!(result.is_ok(), valid, "rows {rows:?} gave {result:?}");
        let count = engine.connect()?.count::<Customer>(None)?;
        assert_eq!(count, if valid { rows.len() as u64 } else { 0 }, "{rows:?}");
    }
    Ok(())
}
}

orm_tests::backends! {
// R3, B3: every call writes all its rows or none, exactly as an independent model predicts,
// and the generator covers both outcomes.
fn r3_dynamic_rows_write_exactly_what_is_valid(db) {
    let engine = db.engine();
    let empty = if db.is_postgres() {
        "TRUNCATE customer RESTART IDENTITY"
    } else if db.is_mysql() {
        // A row keyed i64::MAX leaves AUTO_INCREMENT at its end until TRUNCATE.
        "TRUNCATE customer"
    } else {
        "DELETE FROM customer"
    };
    let outcomes = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    check(200, &proptest::collection::vec(row(), 1..6), |rows| {
        engine.connect().and_then(|c| c.execute(empty, &[])).map_err(fail)?;
        let s = engine.session();
        let result = s.bulk_insert_dynamic::<Customer, _, _>(rows.clone(), BulkOptions::default());
        s.commit().map_err(fail)?;
        let count = engine.connect().and_then(|c| c.count::<Customer>(None)).map_err(fail)?;
        let valid = expected_valid(&rows, db.is_mysql());
        outcomes[usize::from(valid)].fetch_add(1, Ordering::Relaxed);
        prop_assert_eq!(result.is_ok(), valid, "rows {:?} gave {:?}", rows, result);
        prop_assert_eq!(count, if valid { rows.len() as u64 } else { 0 });
        Ok(())
    });
    let rejected = outcomes[0].load(Ordering::Relaxed);
    let accepted = outcomes[1].load(Ordering::Relaxed);
    assert!(
        rejected >= 20 && accepted >= 20,
        "accepted {accepted}, rejected {rejected}"
    );
}
}
