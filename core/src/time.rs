//! RFC 3339 timestamps from Unix milliseconds (the host supplies the clock; the core has none).

use alloc::{format, string::String};

/// `1764051296123` → `"2025-11-25T06:14:56.123Z"`.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// `"2026-11-25T02:00:00Z"` (optionally with a fraction, or `+00:00`) → Unix milliseconds; `None`
/// for anything else (other offsets included: times here are UTC) or before 1970.
pub fn parse_rfc3339_millis(text: &str) -> Option<u64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix('z'))
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once(['T', 't'])?;
    let number = |s: &str, len: usize| -> Option<u32> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let mut date_parts = date.split('-');
    let (y, m, d) = (
        number(date_parts.next()?, 4)?,
        number(date_parts.next()?, 2)?,
        number(date_parts.next()?, 2)?,
    );
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.split(':');
    let (hh, mm, ss) = (
        number(clock_parts.next()?, 2)?,
        number(clock_parts.next()?, 2)?,
        number(clock_parts.next()?, 2)?,
    );
    let valid_date = (1..=12).contains(&m) && (1..=31).contains(&d) && y >= 1970;
    if date_parts.next().is_some() || clock_parts.next().is_some() || !valid_date {
        return None;
    }
    if hh > 23 || mm > 59 || ss > 60 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let days = days_from_civil(i64::from(y), m, d);
    if civil_from_days(days) != (i64::from(y), m, d) {
        return None; // e.g. February 30th
    }
    let millis: u64 = fraction
        .bytes()
        .chain(core::iter::repeat(b'0'))
        .take(3)
        .fold(0, |acc, b| acc * 10 + u64::from(b - b'0'));
    let secs = u64::try_from(days).ok()? * 86_400
        + u64::from(hh) * 3600
        + u64::from(mm) * 60
        + u64::from(ss);
    Some(secs * 1000 + millis)
}

/// Minutes after midnight UTC of a Unix time in milliseconds (0..1440).
pub fn minute_of_day(unix_ms: u64) -> u16 {
    (unix_ms / 60_000 % 1440) as u16
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01, the inverse of [`civil_from_days`].
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::{civil_from_days, days_from_civil, parse_rfc3339_millis, rfc3339_millis};

    #[test]
    fn parses_what_it_formats_and_nothing_else() {
        for ms in [0, 951_782_400_000, 1_764_051_296_123, 1_795_564_800_000] {
            assert_eq!(parse_rfc3339_millis(&rfc3339_millis(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339_millis("2026-11-25T02:00:00Z"),
            Some(1_795_564_800_000 + 2 * 3_600_000)
        );
        assert_eq!(
            parse_rfc3339_millis("2026-11-25T02:00:00.5+00:00"),
            Some(1_795_572_000_500)
        );
        for bad in [
            "2026-11-25T02:00:00",
            "2026-11-25T02:00:00+01:00",
            "2026-02-30T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25 02:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-25T02:00Z",
            "2026-11-25T02:00:00.x1Z",
        ] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_and_dates_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2026, 11, 25), 20_782);
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_764_051_296_123),
            "2025-11-25T06:14:56.123Z"
        );
    }
}
