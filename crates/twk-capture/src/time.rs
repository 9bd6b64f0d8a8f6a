//! Time bounds for queries (`--since`, `--until`) and RFC 3339 output.
//!
//! Accepted inputs:
//! - RFC 3339 / ISO 8601 with an offset: `2018-01-31T23:59:59.999Z`, `2018-01-31T12:00:00+01:00`;
//! - a calendar date, taken in UTC: `2018-01-31` (the start of the day for `since`, its last
//!   millisecond for `until`, so `--since 2018-01-01 --until 2018-01-31` is all of January);
//! - a relative age before now: `30s`, `30m`, `2h`, `3d`, `1w`, or combinations like `1h30m`;
//! - `now`.

use crate::error::{CaptureError, Result};
use jiff::Timestamp;

/// Which end of a range a bound is for (matters only for bare dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Lower bound (inclusive): a bare date means 00:00:00.000 UTC.
    Since,
    /// Upper bound (inclusive): a bare date means 23:59:59.999 UTC.
    Until,
}

/// Parses a `--since`/`--until` value relative to `now`.
pub fn parse_time(input: &str, bound: Bound, now: Timestamp) -> Result<Timestamp> {
    let bad = || CaptureError::BadTime {
        input: input.to_owned(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(ms) = parse_relative_ms(s) {
        return now
            .checked_sub(jiff::SignedDuration::from_millis(ms))
            .map_err(|_| bad());
    }
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(date) = s.parse::<jiff::civil::Date>() {
        let start = date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|_| bad())?
            .timestamp();
        return match bound {
            Bound::Since => Ok(start),
            Bound::Until => date
                .tomorrow()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
                .map(|z| z.timestamp())
                .and_then(|t| t.checked_sub(jiff::SignedDuration::from_millis(1)))
                .map_err(|_| bad()),
        };
    }
    Err(bad())
}

/// `30m`, `2h`, `3d`, `1w`, `1h30m`, `45s` → milliseconds. `None` if not of that shape.
fn parse_relative_ms(s: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    let mut any = false;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(
                num.unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(i64::from(d))?,
            );
            continue;
        }
        let unit_ms: i64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 604_800_000,
            _ => return None,
        };
        total = total.checked_add(num.take()?.checked_mul(unit_ms)?)?;
        any = true;
    }
    // A trailing bare number ("30") is ambiguous: reject.
    if num.is_some() || !any {
        return None;
    }
    Some(total)
}

/// Formats Unix milliseconds as RFC 3339 UTC with millisecond precision
/// (`2018-01-31T23:59:59.999Z`). Out-of-range values print as the raw number.
pub fn rfc3339_ms(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => ms.to_string(),
    }
}

/// Current time as Unix milliseconds (the one clock, `twk_protocol::now_ms`).
pub use twk_protocol::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-10T12:00:00Z".parse().expect("valid")
    }

    fn p(s: &str, b: Bound) -> String {
        match parse_time(s, b, now()) {
            Ok(t) => format!("{t:.3}"),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn relative_forms() {
        assert_eq!(p("2h", Bound::Since), "2024-05-10T10:00:00.000Z");
        assert_eq!(p("3d", Bound::Since), "2024-05-07T12:00:00.000Z");
        assert_eq!(p("30m", Bound::Since), "2024-05-10T11:30:00.000Z");
        assert_eq!(p("45s", Bound::Since), "2024-05-10T11:59:15.000Z");
        assert_eq!(p("1w", Bound::Since), "2024-05-03T12:00:00.000Z");
        assert_eq!(p("1h30m", Bound::Since), "2024-05-10T10:30:00.000Z");
        assert_eq!(p("now", Bound::Until), "2024-05-10T12:00:00.000Z");
    }

    #[test]
    fn rfc3339_and_dates() {
        assert_eq!(
            p("2018-01-31T23:59:59.999Z", Bound::Until),
            "2018-01-31T23:59:59.999Z"
        );
        assert_eq!(
            p("2018-01-01T01:00:00+01:00", Bound::Since),
            "2018-01-01T00:00:00.000Z"
        );
        assert_eq!(p("2018-01-01", Bound::Since), "2018-01-01T00:00:00.000Z");
        assert_eq!(p("2018-01-31", Bound::Until), "2018-01-31T23:59:59.999Z");
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2",
            "h",
            "2x",
            "yesterday",
            "2h-",
            "99999999999999999999d",
        ] {
            assert!(p(s, Bound::Since).starts_with("error"), "{s:?} accepted");
        }
    }

    #[test]
    fn formats_ms() {
        assert_eq!(rfc3339_ms(1_517_443_199_999), "2018-01-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
