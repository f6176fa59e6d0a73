//! Time stamps as the sources write them, to Unix milliseconds.
//!
//! Everything here returns `None` for text it does not understand; a record
//! without a usable time still parses (ingestion then uses the receive time).

use mimamori_event::UnixMillis;
use serde_json::Value;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// A time from a JSON value: a number (epoch seconds, milliseconds,
/// microseconds or nanoseconds, told apart by size) or a string (RFC 3339,
/// ISO 8601 with or without a zone, or a number in text).
pub(crate) fn from_value(v: &Value) -> Option<UnixMillis> {
    match v {
        // The number's shortest text keeps every digit it was written with,
        // so `1521911720.865716` gives exactly 1521911720865.
        Value::Number(n) => epoch(&n.to_string()),
        Value::String(s) => from_str(s),
        _ => None,
    }
}

/// RFC 3339 / ISO 8601 (zone optional, UTC assumed) or epoch digits.
pub(crate) fn from_str(s: &str) -> Option<UnixMillis> {
    let s = s.trim();
    iso(s).or_else(|| epoch(s))
}

/// Epoch digits with an optional fraction, e.g. `1286536309.586`. The unit
/// is told by the size of the integer part: seconds below 10^11 (until the
/// year 5138), then milliseconds, microseconds, nanoseconds.
pub(crate) fn epoch(s: &str) -> Option<UnixMillis> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty()
        || int.len() > 19
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let i: i64 = int.parse().ok()?;
    let ms = if i < 100_000_000_000 {
        // seconds: take three fraction digits (truncating)
        let mut f = String::from(frac);
        f.truncate(3);
        while f.len() < 3 {
            f.push('0');
        }
        let fm: i64 = f.parse().ok()?;
        i.checked_mul(1000)?.checked_add(fm)?
    } else if i < 100_000_000_000_000 {
        i
    } else if i < 100_000_000_000_000_000 {
        i / 1000
    } else {
        i / 1_000_000
    };
    Some(if neg { -ms } else { ms })
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    if !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter()
        .try_fold(0u32, |acc, &d| Some(acc * 10 + u32::from(d - b'0')))
}

/// `YYYY-MM-DD[T ]hh:mm[:ss[.frac]][Z|±hh[:mm]| UTC]`.
pub(crate) fn iso(s: &str) -> Option<UnixMillis> {
    let b = s.as_bytes();
    if b.len() < 16 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let year = digits(b, 0, 4)? as i32;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let minute = digits(b, 14, 2)?;
    let mut i = 16;
    let mut second = 0;
    if b.get(i) == Some(&b':') {
        second = digits(b, i + 1, 2)?;
        i += 3;
    }
    let mut millis = 0i64;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i];
        let mut f = String::from(&frac[..frac.len().min(3)]);
        while f.len() < 3 {
            f.push('0');
        }
        millis = f.parse().ok()?;
    }
    let rest = s[i..].trim();
    let offset_s: i64 = match rest {
        "" | "Z" | "z" | "UTC" | "GMT" => 0,
        _ => {
            let rb = rest.as_bytes();
            let sign = match rb.first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let oh = digits(rb, 1, 2)?;
            let om = match rb.len() {
                3 => 0,
                5 => digits(rb, 3, 2)?,
                6 if rb[3] == b':' => digits(rb, 4, 2)?,
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            sign * i64::from(oh * 3600 + om * 60)
        }
    };
    let date =
        Date::from_calendar_date(year, Month::try_from(month as u8).ok()?, day as u8).ok()?;
    // A leap second is taken as the last second of its minute.
    let time = Time::from_hms(hour as u8, minute as u8, second.min(59) as u8).ok()?;
    let secs = PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp()
        - offset_s;
    Some(secs * 1000 + millis)
}

/// A month abbreviation (`Jan` … `Dec`, any case).
pub(crate) fn month(s: &str) -> Option<Month> {
    const NAMES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let l = s.get(..3)?.to_ascii_lowercase();
    let i = NAMES.iter().position(|n| *n == l)?;
    Month::try_from(i as u8 + 1).ok()
}

/// `hh:mm:ss[.frac]` to (h, m, s, ms).
pub(crate) fn clock(s: &str) -> Option<(u8, u8, u8, i64)> {
    let b = s.as_bytes();
    let h = digits(b, 0, 2)?;
    let m = digits(b, 3, 2)?;
    let sec = digits(b, 6, 2)?;
    if b.get(2) != Some(&b':') || b.get(5) != Some(&b':') {
        return None;
    }
    let mut ms = 0;
    match b.get(8) {
        None => {}
        Some(b'.' | b',') => {
            let frac = &s[9..];
            if frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let mut f = String::from(&frac[..frac.len().min(3)]);
            while f.len() < 3 {
                f.push('0');
            }
            ms = f.parse().ok()?;
        }
        _ => return None,
    }
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((h as u8, m as u8, sec.min(59) as u8, ms))
}

/// Milliseconds for a UTC calendar date and clock.
pub(crate) fn utc_ms(
    year: i32,
    month: Month,
    day: u8,
    clock: (u8, u8, u8, i64),
) -> Option<UnixMillis> {
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(clock.0, clock.1, clock.2).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp()
            * 1000
            + clock.3,
    )
}

/// The current year (UTC), for time stamps that leave it out (RFC 3164).
pub(crate) fn current_year() -> i32 {
    OffsetDateTime::now_utc().year()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_and_epoch() {
        assert_eq!(from_str("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(from_str("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(from_str("1970-01-01 00:00:01.123456789"), Some(1123));
        assert_eq!(from_str("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(from_str("1970-01-01T00:00:00-0130"), Some(5_400_000));
        assert_eq!(
            from_str("2018-03-24T17:15:20.865716Z"),
            Some(1_521_911_720_865)
        );
        assert_eq!(from_str("1521911720.865716"), Some(1_521_911_720_865));
        assert_eq!(from_str("1521911720865"), Some(1_521_911_720_865));
        assert_eq!(from_str("1521911720865716"), Some(1_521_911_720_865));
        assert_eq!(
            from_value(&serde_json::json!(1588205199.82437)),
            Some(1_588_205_199_824)
        );
        assert_eq!(
            from_value(&serde_json::json!(1588205199)),
            Some(1_588_205_199_000)
        );
        assert_eq!(from_str("redacted"), None);
        assert_eq!(from_str("2020-13-01T00:00:00Z"), None);
        assert_eq!(from_str("1.2.3"), None);
        assert_eq!(from_str(""), None);
        assert_eq!(from_str("99999999999999999999999"), None);
    }

    #[test]
    fn clocks_and_months() {
        assert_eq!(clock("10:00:00.123"), Some((10, 0, 0, 123)));
        assert_eq!(clock("10:00:00"), Some((10, 0, 0, 0)));
        assert_eq!(clock("25:00:00"), None);
        assert_eq!(month("Nov"), Some(Month::November));
        assert_eq!(month("xyz"), None);
    }
}
