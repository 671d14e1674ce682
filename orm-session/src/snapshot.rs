//! The values of a tracked object as last loaded or flushed: what a flush compares the
//! object with to find the columns to UPDATE.
//!
//! A snapshot is taken on the first `write()` of every changed object, and dropped when the
//! flush has sent the change, so a loop that changes a field of 100,000 loaded objects
//! takes 100,000 of them. They are packed into one allocation each (a tag byte per column,
//! then its bytes), not a slice of owned values: a slice costs one allocation more per text
//! or blob column, to make and to free, and a wider pointer in every tracked object. A value
//! the packing cannot hold (a kind it does not know, a text of 4 GiB or more) is recorded as
//! unknown, which compares as changed: its column is written whenever the object is.

use std::borrow::Cow;

use orm_core::{Entity, Value, ValueRef};
use uuid::Uuid;

/// The packed values of one object's columns, in column order.
pub(crate) struct Snapshot(Box<[u8]>);

const NULL: u8 = 0;
const I16: u8 = 1;
const I32: u8 = 2;
const I64: u8 = 3;
const F32: u8 = 4;
const F64: u8 = 5;
const FALSE: u8 = 6;
const TRUE: u8 = 7;
const TEXT: u8 = 8;
const BLOB: u8 = 9;
const UUID: u8 = 10;
const DATE: u8 = 11;
const TIME: u8 = 12;
const DATETIME: u8 = 13;
const TIMESTAMP: u8 = 14;
/// A value the packing cannot hold: never the same as any value.
const UNKNOWN: u8 = 15;

/// The packed size of a value.
fn packed_len(v: &ValueRef<'_>) -> usize {
    1 + match v {
        ValueRef::Null | ValueRef::Bool(_) => 0,
        ValueRef::I16(_) => 2,
        ValueRef::I32(_) | ValueRef::F32(_) | ValueRef::Date(_) => 4,
        ValueRef::I64(_)
        | ValueRef::F64(_)
        | ValueRef::Time(_)
        | ValueRef::DateTime(_)
        | ValueRef::Timestamp(_) => 8,
        ValueRef::Uuid(_) => 16,
        ValueRef::Text(t) if u32::try_from(t.len()).is_ok() => 4 + t.len(),
        ValueRef::Blob(b) if u32::try_from(b.len()).is_ok() => 4 + b.len(),
        _ => 0,
    }
}

/// Appends a value (`UNKNOWN` for one the packing cannot hold: see `packed_len`).
fn pack(out: &mut Vec<u8>, v: &ValueRef<'_>) {
    let (tag, bytes): (u8, &[u8]) = match v {
        ValueRef::Null => (NULL, &[]),
        ValueRef::Bool(false) => (FALSE, &[]),
        ValueRef::Bool(true) => (TRUE, &[]),
        ValueRef::I16(x) => return fixed(out, I16, &x.to_le_bytes()),
        ValueRef::I32(x) => return fixed(out, I32, &x.to_le_bytes()),
        ValueRef::I64(x) => return fixed(out, I64, &x.to_le_bytes()),
        ValueRef::F32(x) => return fixed(out, F32, &x.to_bits().to_le_bytes()),
        ValueRef::F64(x) => return fixed(out, F64, &x.to_bits().to_le_bytes()),
        ValueRef::Date(x) => return fixed(out, DATE, &x.to_le_bytes()),
        ValueRef::Time(x) => return fixed(out, TIME, &x.to_le_bytes()),
        ValueRef::DateTime(x) => return fixed(out, DATETIME, &x.to_le_bytes()),
        ValueRef::Timestamp(x) => return fixed(out, TIMESTAMP, &x.to_le_bytes()),
        ValueRef::Uuid(u) => return fixed(out, UUID, u.as_bytes()),
        ValueRef::Text(t) => (TEXT, t.as_bytes()),
        ValueRef::Blob(b) => (BLOB, b.as_ref()),
        _ => (UNKNOWN, &[]),
    };
    match u32::try_from(bytes.len()) {
        Ok(len) if tag == TEXT || tag == BLOB => {
            out.push(tag);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(bytes);
        }
        Err(_) => out.push(UNKNOWN),
        Ok(_) => out.push(tag),
    }
}

fn fixed(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(bytes);
}

/// The packed size of the value at the start of `buf`.
fn size_at(buf: &[u8]) -> usize {
    1 + match buf[0] {
        I16 => 2,
        I32 | F32 | DATE => 4,
        I64 | F64 | TIME | DATETIME | TIMESTAMP => 8,
        UUID => 16,
        TEXT | BLOB => 4 + text_at(buf).0.len(),
        _ => 0,
    }
}

/// Reads the value at the start of `buf`; returns it and the bytes after it.
fn unpack(buf: &[u8]) -> (ValueRef<'_>, &[u8]) {
    fn take<const N: usize>(buf: &[u8]) -> ([u8; N], &[u8]) {
        let (head, rest) = buf.split_at(N);
        let mut a = [0; N];
        a.copy_from_slice(head);
        (a, rest)
    }
    let (tag, rest) = (buf[0], &buf[1..]);
    match tag {
        // An unknown value is read as NULL: only a version column's value is ever read
        // back, and that is an integer.
        NULL | UNKNOWN => (ValueRef::Null, rest),
        FALSE => (ValueRef::Bool(false), rest),
        TRUE => (ValueRef::Bool(true), rest),
        I16 => {
            let (b, rest) = take::<2>(rest);
            (ValueRef::I16(i16::from_le_bytes(b)), rest)
        }
        I32 | DATE => {
            let (b, rest) = take::<4>(rest);
            let x = i32::from_le_bytes(b);
            let v = if tag == I32 {
                ValueRef::I32(x)
            } else {
                ValueRef::Date(x)
            };
            (v, rest)
        }
        F32 => {
            let (b, rest) = take::<4>(rest);
            (ValueRef::F32(f32::from_bits(u32::from_le_bytes(b))), rest)
        }
        F64 => {
            let (b, rest) = take::<8>(rest);
            (ValueRef::F64(f64::from_bits(u64::from_le_bytes(b))), rest)
        }
        I64 | TIME | DATETIME | TIMESTAMP => {
            let (b, rest) = take::<8>(rest);
            let x = i64::from_le_bytes(b);
            let v = match tag {
                I64 => ValueRef::I64(x),
                TIME => ValueRef::Time(x),
                DATETIME => ValueRef::DateTime(x),
                _ => ValueRef::Timestamp(x),
            };
            (v, rest)
        }
        UUID => {
            let (b, rest) = take::<16>(rest);
            (ValueRef::Uuid(Uuid::from_bytes(b)), rest)
        }
        _ => {
            let (len, rest) = take::<4>(rest);
            let (bytes, rest) = rest.split_at(u32::from_le_bytes(len) as usize);
            let v = if tag == TEXT {
                // Packed from a `str` by `pack`: always UTF-8.
                ValueRef::Text(String::from_utf8_lossy(bytes))
            } else {
                ValueRef::Blob(Cow::Borrowed(bytes))
            };
            (v, rest)
        }
    }
}

/// Whether the value `v` (of the live object) equals the packed value at the start of
/// `buf`, without copying either; returns the bytes after the packed value.
fn same_packed<'b>(v: &ValueRef<'_>, buf: &'b [u8]) -> (bool, &'b [u8]) {
    let tag = buf[0];
    if tag == TEXT || tag == BLOB {
        let (bytes, rest) = text_at(buf);
        let same = match v {
            ValueRef::Text(t) => tag == TEXT && t.as_bytes() == bytes,
            ValueRef::Blob(b) => tag == BLOB && b.as_ref() == bytes,
            _ => false,
        };
        return (same, rest);
    }
    let (packed, rest) = unpack(buf);
    (tag != UNKNOWN && same(v, &packed), rest)
}

/// The bytes of the packed text or blob at the start of `buf`, and the bytes after it.
fn text_at(buf: &[u8]) -> (&[u8], &[u8]) {
    let mut len = [0; 4];
    len.copy_from_slice(&buf[1..5]);
    buf[5..].split_at(u32::from_le_bytes(len) as usize)
}

/// Equality as a flush sees it: floats by their bits (a NaN that stays NaN is no change,
/// and -0.0 replacing 0.0 is one).
fn same(a: &ValueRef<'_>, b: &ValueRef<'_>) -> bool {
    match (a, b) {
        (ValueRef::F32(x), ValueRef::F32(y)) => x.to_bits() == y.to_bits(),
        (ValueRef::F64(x), ValueRef::F64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

impl Snapshot {
    /// The current values of `value`.
    pub(crate) fn of<E: Entity>(value: &E) -> Snapshot {
        Snapshot::take(E::META.columns.len(), |c| value.column(c))
    }

    /// The values of columns `0..n`, as `column` gives them.
    fn take<'v>(n: usize, column: impl Fn(usize) -> ValueRef<'v>) -> Snapshot {
        let len = (0..n).map(|c| packed_len(&column(c))).sum();
        let mut out = Vec::with_capacity(len);
        for c in 0..n {
            pack(&mut out, &column(c));
        }
        Snapshot(out.into_boxed_slice())
    }

    /// The value of column `c`.
    pub(crate) fn get(&self, c: usize) -> Value {
        let mut rest: &[u8] = &self.0;
        for _ in 0..c {
            rest = &rest[size_at(rest)..];
        }
        unpack(rest).0.to_owned_value()
    }

    /// Records `v` as the value of column `c` (a reload or an UPDATE by filter brought it).
    pub(crate) fn set(&mut self, c: usize, v: ValueRef<'_>) {
        let mut out = Vec::with_capacity(self.0.len() + packed_len(&v));
        let mut rest: &[u8] = &self.0;
        let mut i = 0;
        while !rest.is_empty() {
            let (this, next) = rest.split_at(size_at(rest));
            if i == c {
                pack(&mut out, &v);
            } else {
                out.extend_from_slice(this);
            }
            rest = next;
            i += 1;
        }
        self.0 = out.into_boxed_slice();
    }

    /// Calls `changed(c)` for each column `c` of `value` that differs from the snapshot, in
    /// column order, skipping the columns `skip` says to.
    pub(crate) fn for_each_change<E: Entity>(
        &self,
        value: &E,
        skip: impl Fn(usize) -> bool,
        changed: impl FnMut(usize),
    ) {
        self.compare(E::META.columns.len(), |c| value.column(c), skip, changed);
    }

    /// [`for_each_change`](Self::for_each_change) of the values `column` gives.
    fn compare<'v>(
        &self,
        n: usize,
        column: impl Fn(usize) -> ValueRef<'v>,
        skip: impl Fn(usize) -> bool,
        mut changed: impl FnMut(usize),
    ) {
        let mut rest: &[u8] = &self.0;
        for c in 0..n {
            let (same, r) = same_packed(&column(c), rest);
            rest = r;
            if !skip(c) && !same {
                changed(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Value> {
        vec![
            Value::Null,
            Value::I16(i16::MIN),
            Value::I32(-7),
            Value::I64(i64::MAX),
            Value::F32(-0.0),
            Value::F64(f64::NAN),
            Value::Bool(false),
            Value::Bool(true),
            Value::Text(String::new()),
            Value::Text("grüße, 世界".into()),
            Value::Blob(Vec::new()),
            Value::Blob(vec![0, 255, 7]),
            Value::Uuid(Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677)),
            Value::Date(-719_162),
            Value::Time(86_399_999_999),
            Value::DateTime(i64::MIN),
            Value::Timestamp(1_700_000_000_000_000),
        ]
    }

    fn changes(snap: &Snapshot, now: &[Value]) -> Vec<usize> {
        let mut out = Vec::new();
        snap.compare(now.len(), |c| now[c].as_ref(), |_| false, |c| out.push(c));
        out
    }

    fn same_value(a: &Value, b: &Value) -> bool {
        a.as_ref().same_as(b)
    }

    #[test]
    fn every_kind_is_packed_and_read_back_as_it_was() {
        let values = every_kind();
        let snap = Snapshot::take(values.len(), |c| values[c].as_ref());
        assert_eq!(
            snap.0.len(),
            values
                .iter()
                .map(|v| packed_len(&v.as_ref()))
                .sum::<usize>()
        );
        for (c, v) in values.iter().enumerate() {
            assert!(same_value(&snap.get(c), v), "column {c}: {v:?}");
        }
        assert_eq!(changes(&snap, &values), Vec::<usize>::new());
    }

    #[test]
    fn each_changed_column_is_found_and_no_other() {
        let values = every_kind();
        let snap = Snapshot::take(values.len(), |c| values[c].as_ref());
        // A change of each column, to a value a careless comparison would call equal.
        let changed: Vec<Value> = vec![
            Value::I64(0),
            Value::I16(i16::MAX),
            Value::I64(-7),
            Value::I64(i64::MAX - 1),
            Value::F32(0.0),
            Value::F64(1.0),
            Value::Null,
            Value::Bool(false),
            Value::Blob(Vec::new()),
            Value::Text("grüße, 世界!".into()),
            Value::Text(String::new()),
            Value::Blob(vec![0, 255, 8]),
            Value::Uuid(Uuid::nil()),
            Value::I32(-719_162),
            Value::Timestamp(86_399_999_999),
            Value::DateTime(i64::MIN + 1),
            Value::DateTime(1_700_000_000_000_000),
        ];
        assert_eq!(changed.len(), values.len());
        for c in 0..values.len() {
            let mut now = values.clone();
            now[c] = changed[c].clone();
            assert_eq!(
                changes(&snap, &now),
                vec![c],
                "{:?} -> {:?}",
                values[c],
                now[c]
            );
        }
        assert_eq!(
            changes(&snap, &changed),
            (0..values.len()).collect::<Vec<_>>()
        );
        let mut skipped = Vec::new();
        snap.compare(
            changed.len(),
            |c| changed[c].as_ref(),
            |c| c % 2 == 0,
            |c| {
                skipped.push(c);
            },
        );
        assert!(skipped.iter().all(|c| c % 2 == 1) && skipped.len() == values.len() / 2);
    }

    #[test]
    fn a_column_set_is_read_back_and_the_others_are_kept() {
        let values = every_kind();
        let mut snap = Snapshot::take(values.len(), |c| values[c].as_ref());
        let long = "x".repeat(10_000);
        snap.set(9, ValueRef::Text(long.as_str().into()));
        snap.set(3, ValueRef::Null);
        let mut now = values.clone();
        now[9] = Value::Text(long);
        now[3] = Value::Null;
        assert_eq!(changes(&snap, &now), Vec::<usize>::new());
        assert_eq!(changes(&snap, &values), vec![3, 9]);
    }

    #[test]
    fn an_unknown_value_is_always_changed_until_a_known_one_replaces_it() {
        let mut buf = vec![UNKNOWN, I32];
        buf.extend_from_slice(&7i32.to_le_bytes());
        let mut snap = Snapshot(buf.into_boxed_slice());
        let now = [Value::Null, Value::I32(7)];
        assert_eq!(changes(&snap, &now), vec![0]);
        snap.set(1, ValueRef::I32(8));
        assert_eq!(
            changes(&snap, &now),
            vec![0, 1],
            "still unknown after another set"
        );
        snap.set(0, ValueRef::Null);
        snap.set(1, ValueRef::I32(7));
        assert_eq!(changes(&snap, &now), Vec::<usize>::new());
        assert!(same_value(&snap.get(1), &Value::I32(7)));
    }
}
