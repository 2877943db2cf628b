//! Fast RFC 3339 formatting of event times in China time.
//!
//! Every generated event carries `occurred_at` like
//! `2026-11-25T10:15:02.120+08:00` (millisecond precision, `+08:00` offset,
//! as the stores' POS terminals write it). Formatting through chrono costs
//! more than the rest of a small event, so this writes the 29 bytes directly
//! with integer arithmetic (Howard Hinnant's `civil_from_days`). Years are
//! limited to 0000-9999, which [`crate::args`] enforces on `--start`.

use serde::{Serialize, Serializer};
use storepulse_core::Ts;

/// Length of a formatted timestamp: `YYYY-MM-DDTHH:MM:SS.mmm+08:00`.
pub const LEN: usize = 29;

const CHINA_OFFSET_NS: i64 = 8 * 3600 * 1_000_000_000;
const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Formats `ts` (ns since the epoch, UTC) as China time with milliseconds.
pub fn format(ts: Ts) -> [u8; LEN] {
    let local = ts.saturating_add(CHINA_OFFSET_NS);
    let days = local.div_euclid(NS_PER_DAY);
    let ns_of_day = local.rem_euclid(NS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let ms_of_day = ns_of_day / 1_000_000;
    let (h, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);

    let mut out = *b"0000-00-00T00:00:00.000+08:00";
    let year = year.clamp(0, 9999) as u32;
    put(&mut out[0..4], year);
    put(&mut out[5..7], month);
    put(&mut out[8..10], day);
    put(&mut out[11..13], h as u32);
    put(&mut out[14..16], m as u32);
    put(&mut out[17..19], s as u32);
    put(&mut out[20..23], ms as u32);
    out
}

/// Writes `value` as zero-padded decimal filling `dst`.
fn put(dst: &mut [u8], mut value: u32) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A timestamp that serialises as its RFC 3339 China-time string.
#[derive(Debug, Clone, Copy)]
pub struct ChinaTime(pub Ts);

impl Serialize for ChinaTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = format(self.0);
        // Only ASCII digits and punctuation are ever written.
        let text = std::str::from_utf8(&bytes).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use storepulse_core::time::{format_china, parse_rfc3339};

    #[test]
    fn matches_chrono_on_random_times() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // 1971 .. 2099, including leap days and ends of months.
        for _ in 0..20_000 {
            let ts: i64 = rng.gen_range(31_536_000_000_000_000..4_102_444_800_000_000_000);
            let ours = format(ts);
            let ours = std::str::from_utf8(&ours).unwrap();
            assert_eq!(ours, format_china(ts), "ts {ts}");
            let back = parse_rfc3339(ours).unwrap();
            assert_eq!(back, ts - ts.rem_euclid(1_000_000));
        }
    }

    #[test]
    fn known_value() {
        let ts = parse_rfc3339("2028-02-29T23:59:59.999+08:00").unwrap();
        assert_eq!(&format(ts), b"2028-02-29T23:59:59.999+08:00");
    }
}
