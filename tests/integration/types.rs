//! Field types beyond the first seven: `i16` (`smallint`) and `f32` (`real`), through every
//! path — flush, core insert, bulk mappings (binary COPY on PostgreSQL), filters, ordering —
//! with their edge values, on both backends.

use orm_session::prelude::*;
use orm_tests::backends;

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "narrow")]
struct Narrow {
    #[orm(primary_key)]
    id: i64,
    small: i16,
    maybe_small: Option<i16>,
    single: f32,
    maybe_single: Option<f32>,
}

fn rows() -> Vec<Narrow> {
    let smalls = [i16::MIN, -1, 0, 1, i16::MAX];
    let singles = [
        f32::MIN,
        -1.5,
        -0.0,
        f32::MIN_POSITIVE,
        f32::EPSILON,
        1.0e-40, // subnormal
        0.1,
        f32::MAX,
    ];
    (0..smalls.len() * singles.len())
        .map(|i| Narrow {
            id: i64::try_from(i).expect("small"),
            small: smalls[i % smalls.len()],
            maybe_small: (i % 3 != 0).then(|| smalls[(i + 2) % smalls.len()]),
            single: singles[i % singles.len()],
            maybe_single: (i % 4 != 0).then(|| singles[(i + 3) % singles.len()]),
        })
        .collect()
}

fn mapping(n: &Narrow) -> Mapping<Narrow> {
    Mapping::new()
        .set(Narrow::ID, n.id)
        .set(Narrow::SMALL, n.small)
        .set(Narrow::MAYBE_SMALL, n.maybe_small)
        .set(Narrow::SINGLE, n.single)
        .set(Narrow::MAYBE_SINGLE, n.maybe_single)
}

/// Floats compare bit for bit (a subnormal stays itself), except that SQLite stores a REAL
/// with no fractional part as an integer, so -0.0 comes back as 0.0 there (as it does for
/// `f64`; SQLite's documented storage rule).
fn same(a: &[Narrow], b: &[Narrow], sqlite: bool) {
    let bits = |f: f32| if sqlite && f == 0.0 { 0 } else { f.to_bits() };
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (x.id, x.small, x.maybe_small),
            (y.id, y.small, y.maybe_small)
        );
        assert_eq!(bits(x.single), bits(y.single), "row {}", x.id);
        assert_eq!(
            x.maybe_single.map(bits),
            y.maybe_single.map(bits),
            "row {}",
            x.id
        );
    }
}

backends! {
    // i16 and f32 round-trip exactly through the flush, the core insert and the bulk mappings
    // (COPY on PostgreSQL), and the columns have the narrow types.
    fn i16_and_f32_round_trip_on_every_write_path(db) -> Result<()> {
        let engine = db.engine();
        engine.create_table::<Narrow>()?;
        let want = rows();
        for path in ["flush", "core", "mappings"] {
            engine.connect()?.execute("DELETE FROM narrow", &[])?;
            let s = engine.session();
            match path {
                "flush" => {
                    s.add_all(want.clone())?;
                    s.commit()?;
                }
                "core" => {
                    engine.connect()?.insert_many(want.iter())?;
                }
                _ => {
                    s.bulk_insert_mappings(want.iter().map(mapping), BulkOptions::default())?;
                    s.commit()?;
                }
            }
            let got: Vec<Narrow> = engine.connect()?.select_all()?;
            let mut got = got;
            got.sort_by_key(|n| n.id);
            same(&got, &want, !db.is_postgres());
        }
        if db.is_postgres() {
            let types = engine.connect()?.query_values(
                "SELECT data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = 'narrow' ORDER BY ordinal_position",
                &[],
            )?;
            let types: Vec<String> = types.into_iter().map(|r| match &r[0] { Value::Text(t) => t.clone(), v => panic!("{v:?}") }).collect();
            assert_eq!(types, ["bigint", "smallint", "smallint", "real", "real"]);
        }
        Ok(())
    }

    // Filters and ordering on i16 and f32 columns.
    fn i16_and_f32_filter_and_order(db) -> Result<()> {
        let engine = db.engine();
        engine.create_table::<Narrow>()?;
        let s = engine.session();
        s.add_all(rows())?;
        s.commit()?;
        let max = s.query::<Narrow>().filter(Narrow::SMALL.eq(i16::MAX)).count()?;
        assert_eq!(max, 8);
        let negative = s.query::<Narrow>().filter(Narrow::SMALL.lt(0_i16)).count()?;
        assert_eq!(negative, 16);
        let tiny = s
            .query::<Narrow>()
            .filter(Narrow::SINGLE.gt(0.0_f32).and(Narrow::SINGLE.lt(1.0e-30_f32)))
            .count()?;
        assert_eq!(tiny, 10, "MIN_POSITIVE and the subnormal, 5 rows each");
        let ordered = s.query::<Narrow>().order_by(Narrow::SINGLE, Order::Desc).limit(5).all()?;
        for h in &ordered {
            assert_eq!(h.read()?.single, f32::MAX);
        }
        let nulls = s.query::<Narrow>().filter(Narrow::MAYBE_SMALL.is_null()).count()?;
        assert_eq!(nulls, 14);
        Ok(())
    }

    // A value that does not fit is refused before anything is written: an integer out of
    // i16's range given by name to a bulk mapping.
    fn an_out_of_range_i16_is_refused_before_writing(db) -> Result<()> {
        let engine = db.engine();
        engine.create_table::<Narrow>()?;
        let _s = engine.session();
        let bad = Mapping::<Narrow>::from_names([
            ("id", Value::I64(1)),
            ("small", Value::I64(40_000)),
            ("single", Value::F32(1.0)),
        ]);
        assert_eq!(bad.expect_err("40000 is no i16").kind(), ErrorKind::TypeMismatch);
        assert_eq!(engine.connect()?.query_i64("SELECT COUNT(*) FROM narrow", &[])?, 0);
        Ok(())
    }
}

#[derive(FieldEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    #[orm(rename = "on hold ⏸")]
    OnHold,
    Closed,
}

#[derive(FieldEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[orm(repr = "i32")]
enum Priority {
    Low = -1,
    Normal = 0,
    High = 10,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "ticket")]
struct Ticket {
    #[orm(primary_key)]
    id: i64,
    status: Status,
    priority: Priority,
    previous: Option<Status>,
}

fn tickets() -> Vec<Ticket> {
    let statuses = [Status::Active, Status::OnHold, Status::Closed];
    let priorities = [Priority::Low, Priority::Normal, Priority::High];
    (0..30)
        .map(|i: usize| Ticket {
            id: i64::try_from(i).expect("small"),
            status: statuses[i % 3],
            priority: priorities[(i / 3) % 3],
            previous: i.is_multiple_of(2).then_some(statuses[(i + 1) % 3]),
        })
        .collect()
}

backends! {
    // Enums stored as text and as integers: every write path, filters, ordering by the
    // integer, and a value in the table that names no variant is a conversion error naming
    // the enum.
    fn enums_round_trip_filter_and_refuse_unknown_values(db) -> Result<()> {
        let engine = db.engine();
        engine.create_table::<Ticket>()?;
        let want = tickets();
        let s = engine.session();
        s.add_all(want[..10].to_vec())?;
        s.commit()?;
        engine.connect()?.insert_many(want[10..20].iter())?;
        let rows = want[20..].iter().map(|t| {
            Mapping::new()
                .set(Ticket::ID, t.id)
                .set(Ticket::STATUS, t.status)
                .set(Ticket::PRIORITY, t.priority)
                .set(Ticket::PREVIOUS, t.previous)
        });
        s.bulk_insert_mappings(rows, BulkOptions::default())?;
        s.commit()?;
        let mut got: Vec<Ticket> = engine.connect()?.select_all()?;
        got.sort_by_key(|t| t.id);
        assert_eq!(got, want);
        let on_hold = s.query::<Ticket>().filter(Ticket::STATUS.eq(Status::OnHold)).count()?;
        assert_eq!(on_hold, 10);
        let urgent = s
            .query::<Ticket>()
            .filter(Ticket::PRIORITY.ge(Priority::Normal).and(Ticket::PREVIOUS.is_null()))
            .count()?;
        assert_eq!(urgent, 9);
        let first = s.query::<Ticket>().order_by(Ticket::PRIORITY, Order::Asc).first()?.expect("row");
        assert_eq!(first.read()?.priority, Priority::Low);
        // Stored as the names and numbers, readable by any SQL.
        let raw = engine.connect()?.query_values(
            &db.sql("SELECT status, priority FROM ticket WHERE id = ?"),
            &[Value::I64(1)],
        )?;
        assert_eq!(raw[0][0], Value::Text("on hold ⏸".into()));
        assert!(matches!(raw[0][1], Value::I64(-1) | Value::I32(-1)), "{:?}", raw[0][1]);
        // Someone else writes a status the enum does not have.
        engine.connect()?.execute(
            &db.sql("UPDATE ticket SET status = ? WHERE id = ?"),
            &[Value::Text("archived".into()), Value::I64(2)],
        )?;
        let s = engine.session();
        let e = s.get::<Ticket>(2).expect_err("no such variant");
        assert_eq!(e.kind(), ErrorKind::Conversion);
        let msg = e.to_string();
        assert!(msg.contains("archived") && msg.contains("Status") && msg.contains("Closed"), "{msg}");
        Ok(())
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct Settings {
    theme: String,
    sizes: Vec<u32>,
    nested: Option<Box<Settings>>,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "doc")]
struct Doc {
    #[orm(primary_key)]
    id: i64,
    body: serde_json::Value,
    settings: orm_session::Json<Settings>,
    extra: Option<serde_json::Value>,
}

fn docs() -> Vec<Doc> {
    let nested = |i: i64| Settings {
        theme: format!("dark ☾ {i}"),
        sizes: vec![1, 2, u32::MAX],
        nested: Some(Box::new(Settings {
            theme: "inner \"quoted\" \\ ".into(),
            sizes: vec![],
            nested: None,
        })),
    };
    (0..12)
        .map(|i| Doc {
            id: i,
            body: serde_json::json!({
                "name": format!("doc {i}"),
                "tags": ["a", "ü", "日本", "😀"],
                "deep": {"x": [1, 2.5, null, true, {"y": -1e300}]},
                "n": i,
            }),
            settings: orm_session::Json(nested(i)),
            extra: (i % 2 == 0).then(|| serde_json::json!([i, "even"])),
        })
        .collect()
}

backends! {
    // JSON documents (nested, unicode, escapes) and serde structs round-trip through the
    // flush, the core insert and the bulk mappings (binary COPY into jsonb on PostgreSQL),
    // and filter by equality; text that is not the JSON a field takes is a conversion error.
    fn json_round_trips_on_every_write_path(db) -> Result<()> {
        let engine = db.engine();
        engine.create_table::<Doc>()?;
        let want = docs();
        let s = engine.session();
        s.add_all(want[..4].to_vec())?;
        s.commit()?;
        engine.connect()?.insert_many(want[4..8].iter())?;
        let rows = want[8..].iter().map(|d| {
            Mapping::new()
                .set(Doc::ID, d.id)
                .set(Doc::BODY, d.body.clone())
                .set(Doc::SETTINGS, d.settings.clone())
                .set(Doc::EXTRA, d.extra.clone())
        });
        s.bulk_insert_mappings(rows, BulkOptions::default())?;
        s.commit()?;
        let mut got: Vec<Doc> = engine.connect()?.select_all()?;
        got.sort_by_key(|d| d.id);
        assert_eq!(got, want);
        let one = s.query::<Doc>().filter(Doc::BODY.eq(want[5].body.clone())).all()?;
        assert!(one.len() == 1 && one[0].read()?.id == 5);
        assert_eq!(s.query::<Doc>().filter(Doc::EXTRA.is_null()).count()?, 6);
        if db.is_postgres() {
            let t = engine.connect()?.query_values(
                "SELECT data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = 'doc' AND column_name = 'body'",
                &[],
            )?;
            assert_eq!(t[0][0], Value::Text("jsonb".into()));
            // The server reads it as JSON.
            let n = engine.connect()?.query_i64("SELECT (body->>'n')::bigint FROM doc WHERE id = 7", &[])?;
            assert_eq!(n, 7);
        }
        // A document that is not a `Settings`.
        engine.connect()?.execute(
            &db.sql(if db.is_postgres() {
                "UPDATE doc SET settings = '{\"theme\": 3}'::jsonb WHERE id = ?"
            } else {
                "UPDATE doc SET settings = '{\"theme\": 3}' WHERE id = ?"
            }),
            &[Value::I64(3)],
        )?;
        let e = engine.session().get::<Doc>(3).expect_err("not a Settings");
        assert_eq!(e.kind(), ErrorKind::Conversion);
        Ok(())
    }
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "event")]
struct Event {
    #[orm(primary_key)]
    id: i64,
    day: chrono::NaiveDate,
    at: chrono::NaiveTime,
    local: chrono::NaiveDateTime,
    instant: chrono::DateTime<chrono::Utc>,
    due: Option<chrono::NaiveDate>,
}

fn events() -> Vec<Event> {
    use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
    let days = [
        NaiveDate::from_ymd_opt(1, 1, 1),
        NaiveDate::from_ymd_opt(1900, 2, 28),
        NaiveDate::from_ymd_opt(1969, 12, 31),
        NaiveDate::from_ymd_opt(1970, 1, 1),
        NaiveDate::from_ymd_opt(2000, 2, 29),
        NaiveDate::from_ymd_opt(2024, 2, 29),
        NaiveDate::from_ymd_opt(9999, 12, 31),
    ]
    .map(|d| d.expect("date"));
    let times = [
        NaiveTime::from_hms_opt(0, 0, 0),
        NaiveTime::from_hms_micro_opt(12, 34, 56, 789_012),
        NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999),
    ]
    .map(|t| t.expect("time"));
    (0..21)
        .map(|i: usize| {
            let day = days[i % days.len()];
            let at = times[i % times.len()];
            // A zone other than UTC: stored as the same instant, read back in UTC.
            let offset = chrono::FixedOffset::east_opt(5 * 3600 + 1800).expect("offset");
            let instant = offset
                .from_local_datetime(&day.and_time(at))
                .single()
                .expect("instant")
                .with_timezone(&Utc);
            Event {
                id: i64::try_from(i).expect("small"),
                day,
                at,
                local: day.and_time(at),
                instant,
                due: i.is_multiple_of(2).then(|| days[(i + 3) % days.len()]),
            }
        })
        .collect()
}

backends! {
    // chrono dates and times, leap days, far past and future, sub-second precision and a
    // non-UTC instant, through the flush, the core insert and COPY; filters and ordering.
    fn chrono_values_round_trip_filter_and_order(db) -> Result<()> {
        use chrono::NaiveDate;
        let engine = db.engine();
        engine.create_table::<Event>()?;
        let want = events();
        let s = engine.session();
        s.add_all(want[..7].to_vec())?;
        s.commit()?;
        engine.connect()?.insert_many(want[7..14].iter())?;
        let rows = want[14..].iter().map(|e| {
            Mapping::new()
                .set(Event::ID, e.id)
                .set(Event::DAY, e.day)
                .set(Event::AT, e.at)
                .set(Event::LOCAL, e.local)
                .set(Event::INSTANT, e.instant)
                .set(Event::DUE, e.due)
        });
        s.bulk_insert_mappings(rows, BulkOptions::default())?;
        s.commit()?;
        let mut got: Vec<Event> = engine.connect()?.select_all()?;
        got.sort_by_key(|e| e.id);
        assert_eq!(got, want);
        let leap = NaiveDate::from_ymd_opt(2024, 2, 29).expect("date");
        assert_eq!(s.query::<Event>().filter(Event::DAY.eq(leap)).count()?, 3);
        let before_epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
        assert_eq!(s.query::<Event>().filter(Event::DAY.lt(before_epoch)).count()?, 9);
        let latest = s.query::<Event>().order_by(Event::LOCAL, Order::Desc).first()?.expect("row");
        assert_eq!(latest.read()?.day, NaiveDate::from_ymd_opt(9999, 12, 31).expect("date"));
        let earliest = s.query::<Event>().order_by(Event::INSTANT, Order::Asc).first()?.expect("row");
        assert_eq!(earliest.read()?.day, NaiveDate::from_ymd_opt(1, 1, 1).expect("date"));
        if db.is_postgres() {
            let t = engine.connect()?.query_values(
                "SELECT data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = 'event' ORDER BY ordinal_position",
                &[],
            )?;
            let t: Vec<Value> = t.into_iter().map(|r| r[0].clone()).collect();
            assert_eq!(
                t,
                ["bigint", "date", "time without time zone", "timestamp without time zone", "timestamp with time zone", "date"]
                    .map(|x| Value::Text(x.into()))
            );
        }
        Ok(())
    }
}

/// The same table as `Event`, mapped with the `time` crate's types.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "event")]
struct TimeEvent {
    #[orm(primary_key)]
    id: i64,
    day: time::Date,
    at: time::Time,
    local: time::PrimitiveDateTime,
    instant: time::OffsetDateTime,
    due: Option<time::Date>,
}

fn to_time(e: &Event) -> TimeEvent {
    use chrono::{Datelike, Timelike};
    let date = |d: chrono::NaiveDate| {
        let month = time::Month::try_from(u8::try_from(d.month()).expect("month")).expect("month");
        time::Date::from_calendar_date(d.year(), month, u8::try_from(d.day()).expect("day"))
            .expect("date")
    };
    let at = |t: chrono::NaiveTime| {
        time::Time::from_hms_micro(
            u8::try_from(t.hour()).expect("h"),
            u8::try_from(t.minute()).expect("m"),
            u8::try_from(t.second()).expect("s"),
            t.nanosecond() / 1000,
        )
        .expect("time")
    };
    let utc = e.instant.naive_utc();
    TimeEvent {
        id: e.id,
        day: date(e.day),
        at: at(e.at),
        local: time::PrimitiveDateTime::new(date(e.local.date()), at(e.local.time())),
        instant: time::PrimitiveDateTime::new(date(utc.date()), at(utc.time())).assume_utc(),
        due: e.due.map(date),
    }
}

backends! {
    // The `time` crate's types map to the same columns as chrono's: rows written with one
    // are read with the other, both ways, through the flush and COPY.
    fn time_crate_values_share_chrono_columns(db) -> Result<()> {
        let engine = db.engine();
        engine.create_table::<Event>()?;
        let chrono_rows = events();
        let time_rows: Vec<TimeEvent> = chrono_rows.iter().map(to_time).collect();
        let s = engine.session();
        s.add_all(chrono_rows.clone())?;
        s.commit()?;
        let mut read: Vec<TimeEvent> = engine.connect()?.select_all()?;
        read.sort_by_key(|e| e.id);
        assert_eq!(read, time_rows);
        engine.connect()?.execute("DELETE FROM event", &[])?;
        let rows = time_rows.iter().map(|e| {
            Mapping::new()
                .set(TimeEvent::ID, e.id)
                .set(TimeEvent::DAY, e.day)
                .set(TimeEvent::AT, e.at)
                .set(TimeEvent::LOCAL, e.local)
                .set(TimeEvent::INSTANT, e.instant)
                .set(TimeEvent::DUE, e.due)
        });
        s.bulk_insert_mappings(rows, BulkOptions::default())?;
        s.commit()?;
        let mut back: Vec<Event> = engine.connect()?.select_all()?;
        back.sort_by_key(|e| e.id);
        assert_eq!(back, chrono_rows);
        let leap = time::macros::date!(2024 - 02 - 29);
        assert_eq!(s.query::<TimeEvent>().filter(TimeEvent::DAY.eq(leap)).count()?, 3);
        Ok(())
    }
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "ledger")]
struct Ledger {
    #[orm(primary_key)]
    id: i64,
    amount: rust_decimal::Decimal,
    fee: Option<rust_decimal::Decimal>,
}

backends! {
    // Decimals stay exact to 28 digits (the largest, the smallest step, negative, zero)
    // through the flush, the core insert and COPY (binary numeric on PostgreSQL), and filter
    // by equality; on PostgreSQL they also order as numbers.
    fn decimals_round_trip_exactly(db) -> Result<()> {
        use std::str::FromStr;
        let engine = db.engine();
        engine.create_table::<Ledger>()?;
        let values = [
            "0", "1.5", "-1.50", "0.0000000000000000000000000001", "-0.0000000000000000000000000001",
            "79228162514264337593543950335", "-79228162514264337593543950335",
            "1234567890.123456789012345678", "10000", "0.1", "99999999.9999",
        ]
        .map(|t| rust_decimal::Decimal::from_str(t).expect("decimal"));
        let want: Vec<Ledger> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Ledger {
                id: i64::try_from(i).expect("small"),
                amount: *v,
                fee: (i % 2 == 1).then(|| values[(i + 5) % values.len()]),
            })
            .collect();
        let s = engine.session();
        s.add_all(want[..4].to_vec())?;
        s.commit()?;
        engine.connect()?.insert_many(want[4..8].iter())?;
        let rows = want[8..].iter().map(|l| {
            Mapping::new().set(Ledger::ID, l.id).set(Ledger::AMOUNT, l.amount).set(Ledger::FEE, l.fee)
        });
        s.bulk_insert_mappings(rows, BulkOptions::default())?;
        s.commit()?;
        let mut got: Vec<Ledger> = engine.connect()?.select_all()?;
        got.sort_by_key(|l| l.id);
        assert_eq!(got, want);
        let one_and_a_half = rust_decimal::Decimal::from_str("1.500").expect("decimal");
        assert_eq!(s.query::<Ledger>().filter(Ledger::AMOUNT.eq(one_and_a_half)).count()?, 1);
        if db.is_postgres() {
            let top = s.query::<Ledger>().order_by(Ledger::AMOUNT, Order::Desc).first()?.expect("row");
            assert_eq!(top.read()?.amount, rust_decimal::Decimal::MAX);
            let sum = engine.connect()?.query_values("SELECT sum(amount)::text FROM ledger WHERE id IN (1, 2)", &[])?;
            assert_eq!(sum[0][0], Value::Text("0.0".into()));
        }
        Ok(())
    }
}

/// Every loaded object takes the other fields of the next row, and one flush writes them
/// all: batched `UPDATE`s, one per set of changed columns (one array per column type on PostgreSQL).
/// Then every other object is deleted in one batched `DELETE`. Returns what the table holds.
fn batched_writes<E>(
    db: &orm_tests::TestDb,
    want: &[E],
    rekey: impl Fn(&E, &E) -> E,
) -> Result<Vec<E>>
where
    E: Entity + Clone + PartialEq + std::fmt::Debug,
{
    let engine = db.engine();
    let s = engine.session();
    s.add_all(want.to_vec())?;
    s.commit()?;
    let position = |v: &E| {
        want.iter()
            .position(|w| w.key() == v.key())
            .expect("a row of want")
    };
    let mut expected = want.to_vec();
    let (log, _g) = orm_tests::SqlLog::start();
    let handles = s.query::<E>().all()?;
    for h in &handles {
        let j = position(&*h.read()?);
        let new = rekey(&want[(j + 1) % want.len()], &want[j]);
        *h.write()? = new.clone();
        expected[j] = new;
    }
    s.commit()?;
    // One statement per set of changed columns (a row whose neighbour holds the same value
    // in a column changes fewer columns).
    let updates = log.starting_with("UPDATE").len();
    assert!(
        updates > 0 && updates < handles.len() / 2,
        "{:?}",
        log.statements()
    );
    let read = |engine: &Engine| -> Result<Vec<E>> {
        let got: Vec<E> = engine.connect()?.select_all()?;
        let mut sorted: Vec<E> = Vec::with_capacity(got.len());
        for w in want {
            sorted.extend(got.iter().filter(|g| g.key() == w.key()).cloned());
        }
        Ok(sorted)
    };
    assert_eq!(read(&engine)?, expected);
    for h in handles.iter().step_by(2) {
        s.delete(h)?;
    }
    s.commit()?;
    assert_eq!(
        log.starting_with("DELETE").len(),
        1,
        "{:?}",
        log.statements()
    );
    read(&engine)
}

backends! {
    // Every field type goes through the batched UPDATE and DELETE of a flush.
    fn every_field_type_goes_through_batched_updates_and_deletes(db) -> Result<()> {
        let engine = db.engine();
        engine.create_table::<Narrow>()?;
        engine.create_table::<Ticket>()?;
        engine.create_table::<Doc>()?;
        engine.create_table::<Event>()?;
        engine.create_table::<Ledger>()?;
        let narrow = rows();
        let left = batched_writes(db, &narrow, |n, k| Narrow { id: k.id, ..n.clone() })?;
        assert_eq!(left.len(), narrow.len() / 2);
        let tickets = tickets();
        let left = batched_writes(db, &tickets, |t, k| Ticket { id: k.id, ..t.clone() })?;
        assert_eq!(left.len(), tickets.len() / 2);
        let docs = docs();
        let left = batched_writes(db, &docs, |d, k| Doc { id: k.id, ..d.clone() })?;
        assert_eq!(left.len(), docs.len() / 2);
        let events = events();
        let left = batched_writes(db, &events, |e, k| Event { id: k.id, ..e.clone() })?;
        assert_eq!(left.len(), events.len() / 2);
        let ledger: Vec<Ledger> = (0..10)
            .map(|i| Ledger {
                id: i,
                amount: rust_decimal::Decimal::new(i * 1_000_000_007 - 3, 9),
                fee: (i % 3 != 0).then_some(rust_decimal::Decimal::MAX),
            })
            .collect();
        let left = batched_writes(db, &ledger, |l, k| Ledger { id: k.id, ..l.clone() })?;
        assert_eq!(left.len(), ledger.len() / 2);
        Ok(())
    }
}
