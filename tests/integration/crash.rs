//! R2: a process killed during a large bulk insert leaves every committed batch and nothing
//! of the uncommitted one.
//!
//! The parent test re-runs this test binary as a child (`r2_child`, ignored in normal runs),
//! which streams rows through `bulk_insert_mappings` in ten transactions (25,000 rows each;
//! `ORM_R2_ROWS` sets another size), and kills it with SIGKILL at random moments.
//! `ORM_R2_TRIALS` sets the number of trials (default 16).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orm_session::prelude::*;
use orm_tests::TempDb;
use orm_tests::model::Customer;

const BATCHES: i32 = 10;

/// Rows per committed batch: `ORM_R2_ROWS`, else 25,000.
fn per_batch() -> i32 {
    std::env::var("ORM_R2_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25_000)
}

fn options(wal: bool) -> SqliteOptions {
    let mut o = SqliteOptions::default();
    o.wal = wal;
    o
}

/// The child's work: ten committed batches; `age` holds the batch number.
#[test]
#[ignore = "the child process of r2_killed_bulk_inserts_leave_whole_batches"]
fn r2_child() -> Result<()> {
    let Some(path) = std::env::var_os("ORM_R2_DB") else {
        return Ok(());
    };
    let wal = std::env::var_os("ORM_R2_WAL").is_some();
    let engine = Engine::sqlite_file_with(&path, options(wal))?;
    engine.create_table::<Customer>()?;
    let s = engine.session();
    for batch in 0..BATCHES {
        let rows = (0..per_batch()).map(|i| {
            Mapping::from([
                Customer::NAME.to(format!("b{batch}-{i}")),
                Customer::AGE.to(batch),
            ])
        });
        s.bulk_insert_mappings(rows, BulkOptions::default())?;
        s.commit()?;
    }
    Ok(())
}

fn run_child(db: &std::path::Path, wal: bool) -> std::io::Result<std::process::Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "--exact",
        "crash::r2_child",
        "--ignored",
        "--test-threads",
        "1",
    ])
    .env("ORM_R2_DB", db)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if wal {
        cmd.env("ORM_R2_WAL", "1");
    }
    cmd.spawn()
}

/// Reopens the database and returns the number of whole batches; fails on a partial batch
/// or a failed integrity check.
fn committed_batches(db: &std::path::Path, wal: bool) -> Result<i32> {
    let conn = Connection::open_sqlite_with(db, &options(wal))?;
    let ok = conn.query_values("PRAGMA integrity_check", &[])?;
    assert_eq!(ok, vec![vec![Value::Text("ok".into())]], "integrity_check");
    let tables = conn.query_i64(
        "SELECT count(*) FROM sqlite_master WHERE name = 'customer'",
        &[],
    )?;
    if tables == 0 {
        return Ok(0); // killed before the table was created
    }
    let groups = conn.query_values(
        "SELECT age, count(*) FROM customer GROUP BY age ORDER BY age",
        &[],
    )?;
    for (expected, row) in groups.iter().enumerate() {
        let expected = i64::try_from(expected).unwrap_or(-1);
        assert_eq!(
            row[0],
            Value::I64(expected),
            "batches are committed in order, none missing"
        );
        assert_eq!(
            row[1],
            Value::I64(i64::from(per_batch())),
            "batch {expected} is whole"
        );
    }
    Ok(i32::try_from(groups.len()).unwrap_or(i32::MAX))
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// R2
#[test]
fn r2_killed_bulk_inserts_leave_whole_batches() -> Result<()> {
    let trials: u32 = std::env::var("ORM_R2_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    // A full run first: it must commit all ten batches, and it tells how long one takes.
    let full = TempDb::new();
    let start = Instant::now();
    let status = run_child(&full.path(), false)
        .expect("spawn")
        .wait()
        .expect("wait");
    let full_time = start.elapsed();
    assert!(status.success(), "the child's full run failed: {status}");
    assert_eq!(committed_batches(&full.path(), false)?, BATCHES);

    let mut seed =
        u64::from(std::process::id()) ^ u64::try_from(start.elapsed().as_nanos()).unwrap_or(7);
    let mut seen = Vec::new();
    for trial in 0..trials {
        let wal = trial % 2 == 1;
        let db = TempDb::new();
        let mut child = run_child(&db.path(), wal).expect("spawn");
        let max_ms = u64::try_from(full_time.as_millis())
            .unwrap_or(10_000)
            .max(50);
        let at = Duration::from_millis(splitmix(&mut seed) % max_ms);
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL; the child may have finished already
        let _ = child.wait();
        let batches = committed_batches(&db.path(), wal)?;
        seen.push(batches);
        eprintln!(
            "R2 trial {trial:2} ({}): killed after {:>5} ms, {batches:2} whole batches, 0 partial, integrity ok",
            if wal { "WAL    " } else { "journal" },
            at.as_millis()
        );
    }
    eprintln!(
        "R2: {trials} kills over a {} ms run; whole batches found: {seen:?}; rows of uncommitted batches found: 0",
        full_time.as_millis()
    );
    Ok(())
}
