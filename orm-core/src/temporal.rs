//! Dates and times as the ORM carries them: integers counted from the Unix epoch, at
//! microsecond precision (PostgreSQL's), whatever crate the field comes from. SQLite stores
//! them as ISO 8601 text (`2024-02-29`, `13:45:00.250000`, `2024-02-29 13:45:00.250000`, and
//! with `+00:00` for an instant), which sorts correctly for years 0000 to 9999.

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

pub(crate) fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    if (0..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!("{y:+05}-{m:02}-{d:02}")
    }
}

pub(crate) fn format_time(micros: i64) -> String {
    let s = micros.div_euclid(1_000_000);
    let f = micros.rem_euclid(1_000_000);
    format!("{:02}:{:02}:{:02}.{f:06}", s / 3600, s / 60 % 60, s % 60)
}

pub(crate) fn format_datetime(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rest = micros.rem_euclid(MICROS_PER_DAY);
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    format!("{} {}", format_date(days), format_time(rest))
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(crate) fn parse_date(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let mut parts = rest.splitn(3, '-');
    let y = sign * num(parts.next()?)?;
    let m = u32::try_from(num(parts.next()?)?).ok()?;
    let d = u32::try_from(num(parts.next()?)?).ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject dates that do not exist (2023-02-29): they do not come back the same.
    (civil_from_days(days) == (y, m, d)).then_some(())?;
    i32::try_from(days).ok()
}

pub(crate) fn parse_time(s: &str) -> Option<i64> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut parts = hms.splitn(3, ':');
    let h = num(parts.next()?)?;
    let m = num(parts.next()?)?;
    let sec = parts.next().map_or(Some(0), num)?;
    if h > 23 || m > 59 || sec > 59 || frac.len() > 9 {
        return None;
    }
    let micros = if frac.is_empty() {
        0
    } else {
        let digits = num(frac)?;
        let scale = 10_i64.pow(u32::try_from(frac.len()).ok()?);
        digits * 1_000_000 / scale
    };
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + micros)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, also with `T` and a trailing `Z` or `+00:00`.
pub(crate) fn parse_datetime(s: &str) -> Option<i64> {
    let s = s
        .strip_suffix("+00:00")
        .or_else(|| s.strip_suffix('Z'))
        .unwrap_or(s);
    let split = s.rfind([' ', 'T'])?;
    let days = i64::from(parse_date(&s[..split])?);
    let time = parse_time(&s[split + 1..])?;
    days.checked_mul(MICROS_PER_DAY)?.checked_add(time)
}

/// What a temporal field says about a value of another kind.
#[cfg(any(feature = "chrono", feature = "time"))]
fn wrong(expected: crate::SqlType, found: &crate::ValueRef<'_>) -> crate::FromSqlError {
    match found {
        crate::ValueRef::Null => crate::FromSqlError::UnexpectedNull,
        other => crate::FromSqlError::WrongType {
            expected,
            found: other.describe(),
        },
    }
}

/// `Field` for a temporal type: `$to` makes the carried integer from `&Self`, `$from` the
/// value back from it.
#[cfg(any(feature = "chrono", feature = "time"))]
macro_rules! temporal_field {
    ($doc:literal, $t:ty, $variant:ident, $to:expr, $from:expr) => {
        #[doc = $doc]
        impl Field for $t {
            const SQL_TYPE: SqlType = SqlType::$variant;
            fn to_sql(&self) -> ValueRef<'_> {
                ValueRef::$variant($to(self))
            }
            fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
                match value {
                    ValueRef::$variant(v) => $from(v),
                    other => Err(super::wrong(SqlType::$variant, &other)),
                }
            }
        }
    };
}

#[cfg(feature = "chrono")]
mod chrono_fields {
    use super::{MICROS_PER_DAY, civil_from_days, days_from_civil};
    use crate::value::{Field, FromSqlError, SqlType, ValueRef};
    use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

    fn out_of_range(what: &str) -> FromSqlError {
        FromSqlError::Invalid {
            message: format!("{what} out of the range chrono represents"),
        }
    }

    fn date_days(d: NaiveDate) -> i32 {
        let days = days_from_civil(i64::from(d.year()), d.month(), d.day());
        i32::try_from(days).unwrap_or(i32::MAX)
    }

    fn days_date(days: i64) -> Result<NaiveDate, FromSqlError> {
        let (y, m, d) = civil_from_days(days);
        i32::try_from(y)
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, m, d))
            .ok_or_else(|| out_of_range("a date"))
    }

    fn time_micros(t: NaiveTime) -> i64 {
        i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000)
    }

    fn micros_time(m: i64) -> Result<NaiveTime, FromSqlError> {
        let s = u32::try_from(m.div_euclid(1_000_000)).map_err(|_| out_of_range("a time"))?;
        let nanos = u32::try_from(m.rem_euclid(1_000_000) * 1000).unwrap_or(0);
        NaiveTime::from_num_seconds_from_midnight_opt(s, nanos)
            .ok_or_else(|| out_of_range("a time"))
    }

    fn datetime_micros(dt: NaiveDateTime) -> i64 {
        i64::from(date_days(dt.date())) * MICROS_PER_DAY + time_micros(dt.time())
    }

    fn micros_datetime(m: i64) -> Result<NaiveDateTime, FromSqlError> {
        let date = days_date(m.div_euclid(MICROS_PER_DAY))?;
        Ok(date.and_time(micros_time(m.rem_euclid(MICROS_PER_DAY))?))
    }

    temporal_field!(
        "A calendar date (`date`).",
        NaiveDate,
        Date,
        |d: &NaiveDate| date_days(*d),
        |d: i32| days_date(i64::from(d))
    );
    temporal_field!(
        "A time of day (`time`), to the microsecond.",
        NaiveTime,
        Time,
        |t: &NaiveTime| time_micros(*t),
        micros_time
    );
    temporal_field!(
        "A date and time without a zone (`timestamp`), to the microsecond.",
        NaiveDateTime,
        DateTime,
        |t: &NaiveDateTime| datetime_micros(*t),
        micros_datetime
    );
    temporal_field!(
        "An instant, stored as UTC (`timestamptz`), to the microsecond.",
        DateTime<Utc>,
        Timestamp,
        |t: &DateTime<Utc>| datetime_micros(t.naive_utc()),
        |m: i64| micros_datetime(m).map(|dt| dt.and_utc())
    );
}

#[cfg(feature = "time")]
mod time_fields {
    use super::MICROS_PER_DAY;
    use crate::value::{Field, FromSqlError, SqlType, ValueRef};
    use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

    /// The Julian day number of 1970-01-01.
    const UNIX_JULIAN: i32 = 2_440_588;

    fn out_of_range(what: &str) -> FromSqlError {
        FromSqlError::Invalid {
            message: format!("{what} out of the range the time crate represents"),
        }
    }

    fn date_days(d: Date) -> i32 {
        d.to_julian_day() - UNIX_JULIAN
    }

    fn days_date(days: i64) -> Result<Date, FromSqlError> {
        i32::try_from(days + i64::from(UNIX_JULIAN))
            .ok()
            .and_then(|j| Date::from_julian_day(j).ok())
            .ok_or_else(|| out_of_range("a date"))
    }

    fn time_micros(t: Time) -> i64 {
        let (h, m, s, us) = t.as_hms_micro();
        ((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(s)) * 1_000_000 + i64::from(us)
    }

    fn micros_time(micros: i64) -> Result<Time, FromSqlError> {
        let s = micros.div_euclid(1_000_000);
        let us = u32::try_from(micros.rem_euclid(1_000_000)).unwrap_or(0);
        let part = |v: i64| u8::try_from(v).map_err(|_| out_of_range("a time"));
        Time::from_hms_micro(part(s / 3600)?, part(s / 60 % 60)?, part(s % 60)?, us)
            .map_err(|_| out_of_range("a time"))
    }

    fn datetime_micros(dt: PrimitiveDateTime) -> i64 {
        i64::from(date_days(dt.date())) * MICROS_PER_DAY + time_micros(dt.time())
    }

    fn micros_datetime(m: i64) -> Result<PrimitiveDateTime, FromSqlError> {
        Ok(PrimitiveDateTime::new(
            days_date(m.div_euclid(MICROS_PER_DAY))?,
            micros_time(m.rem_euclid(MICROS_PER_DAY))?,
        ))
    }

    fn offset_micros(t: &OffsetDateTime) -> i64 {
        let utc = t.to_offset(UtcOffset::UTC);
        datetime_micros(PrimitiveDateTime::new(utc.date(), utc.time()))
    }

    temporal_field!(
        "A calendar date (`date`).",
        Date,
        Date,
        |d: &Date| date_days(*d),
        |d: i32| days_date(i64::from(d))
    );
    temporal_field!(
        "A time of day (`time`), to the microsecond.",
        Time,
        Time,
        |t: &Time| time_micros(*t),
        micros_time
    );
    temporal_field!(
        "A date and time without a zone (`timestamp`), to the microsecond.",
        PrimitiveDateTime,
        DateTime,
        |t: &PrimitiveDateTime| datetime_micros(*t),
        micros_datetime
    );
    temporal_field!(
        "An instant (`timestamptz`), stored as UTC and read back with the UTC offset.",
        OffsetDateTime,
        Timestamp,
        offset_micros,
        |m: i64| micros_datetime(m).map(PrimitiveDateTime::assume_utc)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip_over_a_wide_range() {
        for days in (-1_000_000..1_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn text_forms_parse_back() {
        for days in [-719_528_i32, -1, 0, 19_782, 2_932_896] {
            assert_eq!(
                parse_date(&format_date(days)),
                Some(days),
                "{}",
                format_date(days)
            );
        }
        for micros in [0, 1, 86_399_999_999] {
            assert_eq!(parse_time(&format_time(micros)), Some(micros));
        }
        let m = 1_709_210_096_123_456;
        assert_eq!(parse_datetime(&format_datetime(m)), Some(m));
        assert_eq!(
            parse_datetime("2024-02-29T13:45:00Z"),
            Some(1_709_214_300_000_000)
        );
        assert_eq!(parse_date("2023-02-29"), None);
    }
}
