//! The UTC day a record is filed under: the date of its `ts`, else the day it arrived.

use std::time::{SystemTime, UNIX_EPOCH};

/// A validated `YYYY-MM-DD` date (safe to put in a file name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day([u8; 10]);

impl Day {
    /// The date at the start of an RFC 3339 timestamp (`2026-08-19T…`, or a bare date); `None`
    /// for anything else, including impossible dates such as `2026-02-30`.
    pub fn from_timestamp(ts: &str) -> Option<Day> {
        let b = ts.as_bytes();
        let date: [u8; 10] = b.get(..10)?.try_into().ok()?;
        if !matches!(b.get(10), None | Some(b'T' | b't' | b' ')) {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            date[r].iter().try_fold(0u32, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        };
        if date[4] != b'-' || date[7] != b'-' {
            return None;
        }
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let last = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=last).contains(&day).then_some(Day(date))
    }

    /// Today in UTC.
    pub fn today() -> Day {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let ts = llm_cost_core::time::rfc3339_millis(ms);
        // rfc3339_millis always starts with a valid date; the fallback is unreachable.
        Day::from_timestamp(&ts).unwrap_or(Day(*b"1970-01-01"))
    }

    /// `YYYY-MM-DD`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and dashes are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("0000-00-00")
    }
}

#[cfg(test)]
mod tests {
    use super::Day;

    #[test]
    fn takes_the_date_of_a_timestamp() {
        let d = Day::from_timestamp("2026-08-19T23:59:59.999Z").map(|d| d.as_str().to_owned());
        assert_eq!(d.as_deref(), Some("2026-08-19"));
        assert!(Day::from_timestamp("2024-02-29").is_some());
    }

    #[test]
    fn refuses_anything_else() {
        for ts in [
            "",
            "2026-08-1",
            "2026-08-19X",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-00-10",
            "../../etc/pa",
            "2026/08/19",
            "２０２６-08-19",
        ] {
            assert!(Day::from_timestamp(ts).is_none(), "{ts}");
        }
    }

    #[test]
    fn today_is_a_valid_day() {
        assert!(Day::from_timestamp(Day::today().as_str()).is_some());
    }
}
