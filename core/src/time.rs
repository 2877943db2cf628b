//! Event-time helpers.
//!
//! Timestamps are `i64` nanoseconds since the Unix epoch (UTC), which keeps
//! every fraction an RFC 3339 timestamp can carry in practice, so two events a
//! microsecond apart are still ordered as the emitter said. Calendar days
//! ("today", a quarter, a daily report) are China days (UTC+8), because the
//! retailer's stores all run on China time.

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};

/// Nanoseconds since 1970-01-01T00:00:00Z.
pub type Ts = i64;

/// One second in [`Ts`] units.
pub const SECOND: Ts = 1_000_000_000;
/// One minute in [`Ts`] units.
pub const MINUTE: Ts = 60 * SECOND;
/// One hour in [`Ts`] units.
pub const HOUR: Ts = 60 * MINUTE;
/// One day in [`Ts`] units.
pub const DAY: Ts = 24 * HOUR;

/// China Standard Time offset, used for calendar days.
const CHINA_OFFSET_SECS: i32 = 8 * 3600;

/// Parses an RFC 3339 timestamp that carries an offset (`Z` or `+08:00`).
///
/// Returns `None` for anything else, including a missing `T` separator,
/// a missing offset, or a time outside the range `Ts` can hold.
pub fn parse_rfc3339(text: &str) -> Option<Ts> {
    let bytes = text.as_bytes();
    // chrono also takes a space or lower-case separator; the contract's
    // examples and RFC 3339 section 5.6 use `T`, so we insist on it.
    if bytes.len() < 20 || bytes[10] != b'T' {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .ok()?
        .timestamp_nanos_opt()
}

/// Formats a timestamp as RFC 3339 in China time, millisecond precision.
pub fn format_china(ts: Ts) -> String {
    china_datetime(ts).to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// The timestamp as a China-time `DateTime`.
pub fn china_datetime(ts: Ts) -> DateTime<FixedOffset> {
    // The offset is a constant in range, so `east_opt` cannot fail.
    #[allow(clippy::unwrap_used)]
    let offset = FixedOffset::east_opt(CHINA_OFFSET_SECS).unwrap();
    offset.from_utc_datetime(&Utc.timestamp_nanos(ts).naive_utc())
}

/// The China calendar day of a timestamp, as days since 1970-01-01.
pub fn china_day(ts: Ts) -> i32 {
    let shifted = ts + i64::from(CHINA_OFFSET_SECS) * SECOND;
    // Range: |Ts| / DAY < 2^31, so the cast is lossless.
    shifted.div_euclid(DAY) as i32
}

/// Current wall-clock time. Only the runtime calls this; processors never do.
pub fn now() -> Ts {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_fractions() {
        let a = parse_rfc3339("2026-11-25T10:15:02.120+08:00").unwrap();
        let b = parse_rfc3339("2026-11-25T02:15:02.12Z").unwrap();
        assert_eq!(a, b);
        let c = parse_rfc3339("2026-11-25T02:15:02.120000001Z").unwrap();
        assert_eq!(c - b, 1);
    }

    #[test]
    fn rejects_what_is_not_rfc3339_with_offset() {
        for bad in [
            "2026-11-25 10:15:02+08:00",
            "2026-11-25T10:15:02",
            "2026-11-25",
            "2026-13-25T10:15:02Z",
            "yesterday",
            "",
            "2026-11-25T10:15:02+0800",
            "9999999-11-25T10:15:02Z",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad} should be rejected");
        }
    }

    #[test]
    fn china_day_turns_at_local_midnight() {
        let before = parse_rfc3339("2026-11-25T23:59:59+08:00").unwrap();
        let after = parse_rfc3339("2026-11-26T00:00:00+08:00").unwrap();
        assert_eq!(china_day(after) - china_day(before), 1);
        assert_eq!(format_china(after), "2026-11-26T00:00:00.000+08:00");
    }
}

/// Serde helpers: a [`Ts`] as an RFC 3339 string in China time.
pub mod rfc3339 {
    use super::{format_china, parse_rfc3339, Ts};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as RFC 3339.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(ts: &Ts, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_china(*ts))
    }

    /// Deserialises from RFC 3339.
    ///
    /// # Errors
    /// When the string is not RFC 3339 with an offset.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ts, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
    }
}
