//! Exact money: USD as an integer count of 10⁻³⁰ USD.
//!
//! Prices arrive as decimal strings per token ("0.00000008333333333333334"); every product and sum
//! stays an integer, so no rounding happens anywhere until [`Usd::to_micros`] is asked for one.
//! Floats never touch money here.

use alloc::string::String;
use core::fmt;

/// Decimal places kept. Every price seen in real pricing data has at most 23.
pub const SCALE: u32 = 30;
const ONE: u128 = 10u128.pow(SCALE);
const MICRO: u128 = 10u128.pow(SCALE - 6);

/// An exact, non-negative amount of US dollars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u128);

/// Why a decimal string is not a usable price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoneyError {
    /// Not a plain non-negative decimal such as `0.0000025`.
    NotADecimal,
    /// More than [`SCALE`] decimal places: it could not be held exactly.
    TooPrecise,
    /// The amount (or a product or sum) does not fit.
    Overflow,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoneyError::NotADecimal => f.write_str("not a non-negative decimal number"),
            MoneyError::TooPrecise => write!(f, "more than {SCALE} decimal places"),
            MoneyError::Overflow => f.write_str("amount too large"),
        }
    }
}

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd(0);

    /// Parses a plain decimal (`"3"`, `"0.0000025"`, `".5"`, `"1e-6"` is refused).
    pub fn parse(text: &str) -> Result<Usd, MoneyError> {
        let text = text.trim();
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        if (whole.is_empty() && frac.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(MoneyError::NotADecimal);
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > SCALE as usize {
            return Err(MoneyError::TooPrecise);
        }
        let mut units: u128 = 0;
        for b in whole.bytes() {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(u128::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        units = units.checked_mul(ONE).ok_or(MoneyError::Overflow)?;
        let mut place = ONE;
        for b in frac.bytes() {
            place /= 10;
            units = units
                .checked_add(u128::from(b - b'0') * place)
                .ok_or(MoneyError::Overflow)?;
        }
        Ok(Usd(units))
    }

    /// The raw count of 10⁻³⁰ USD.
    pub fn units(self) -> u128 {
        self.0
    }

    /// The amount of `units` × 10⁻³⁰ USD (the inverse of [`Usd::units`]).
    pub const fn from_units(units: u128) -> Usd {
        Usd(units)
    }

    /// `self + other`, capped at the largest amount.
    pub fn saturating_add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }

    /// `self − other`, never below zero.
    pub fn saturating_sub(self, other: Usd) -> Usd {
        Usd(self.0.saturating_sub(other.0))
    }

    /// `self × count`, e.g. a per-token price times a token count.
    pub fn checked_mul(self, count: u64) -> Result<Usd, MoneyError> {
        self.0
            .checked_mul(u128::from(count))
            .map(Usd)
            .ok_or(MoneyError::Overflow)
    }

    /// `self + other`.
    pub fn checked_add(self, other: Usd) -> Result<Usd, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Usd)
            .ok_or(MoneyError::Overflow)
    }

    /// `self × numerator / denominator`, rounded half up (used for markups such as 110/100).
    pub fn scaled(self, numerator: u64, denominator: u64) -> Result<Usd, MoneyError> {
        if denominator == 0 {
            return Err(MoneyError::Overflow);
        }
        let product = self
            .0
            .checked_mul(u128::from(numerator))
            .ok_or(MoneyError::Overflow)?;
        let d = u128::from(denominator);
        Ok(Usd(product / d + u128::from(product % d * 2 >= d)))
    }

    /// `self × (1 + basis_points / 10 000)`, rounded half up: a markup (> 0) or discount (< 0).
    pub fn scaled_signed_bp(self, basis_points: i64) -> Result<Usd, MoneyError> {
        let factor = 10_000i64
            .checked_add(basis_points)
            .ok_or(MoneyError::Overflow)?;
        let factor = u64::try_from(factor).map_err(|_| MoneyError::Overflow)?;
        self.scaled(factor, 10_000)
    }

    /// Whole micro-USD, rounded to the nearest, halves rounded up (0.0000015 → 2).
    pub fn to_micros(self) -> u64 {
        let micros = self.0 / MICRO + u128::from(self.0 % MICRO >= MICRO / 2);
        u64::try_from(micros).unwrap_or(u64::MAX)
    }

    /// The exact decimal, without trailing zeros: `"0.01058775"`, `"0"`, `"12.5"`.
    pub fn to_decimal_string(self) -> String {
        // At most 9 whole digits (u128::MAX / 10³⁰ < 10⁹), a point and 30 fraction digits. One
        // u128 division splits the whole part off, one more the fraction into two halves of 15
        // digits that fit a u64 each: the digits are then written with 64-bit arithmetic only.
        const HALF: u128 = 10u128.pow(SCALE / 2);
        let mut buf = [0u8; 40];
        let whole = self.0 / ONE;
        let frac = self.0 % ONE;
        let mut len = write_digits(&mut buf, u64::try_from(whole).unwrap_or(u64::MAX));
        if frac != 0 {
            buf[len] = b'.';
            len += 1;
            let (hi, lo) = ((frac / HALF) as u64, (frac % HALF) as u64);
            let digits = &mut buf[len..len + SCALE as usize];
            write_padded(&mut digits[..15], hi);
            write_padded(&mut digits[15..], lo);
            let kept = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
            len += kept;
        }
        // Only ASCII digits and `.` were written, so this is never the empty fallback.
        core::str::from_utf8(&buf[..len])
            .map(String::from)
            .unwrap_or_default()
    }
}

/// Writes `n` in decimal at the start of `buf` (at least 20 bytes); returns the length.
fn write_digits(buf: &mut [u8], n: u64) -> usize {
    let mut tmp = [0u8; 20];
    let digits = decimal_digits(&mut tmp, n).as_bytes();
    buf[..digits.len()].copy_from_slice(digits);
    digits.len()
}

/// `n` in decimal, written into the end of `buf` (no allocation; the record and the decimal
/// strings above both write their integers with it).
pub(crate) fn decimal_digits(buf: &mut [u8; 20], mut n: u64) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    core::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// Writes `n` in decimal into all of `out`, zero-padded on the left (`n` < 10^`out.len()`).
fn write_padded(out: &mut [u8], mut n: u64) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exact_decimals() {
        for text in [
            "0",
            "3",
            "0.0000025",
            "0.00000008333333333333334",
            "12.5",
            "0.01058775",
        ] {
            assert_eq!(Usd::parse(text).unwrap().to_decimal_string(), text);
        }
        assert_eq!(Usd::parse(".5").unwrap().to_decimal_string(), "0.5");
        assert_eq!(Usd::parse("1.50000").unwrap().to_decimal_string(), "1.5");
    }

    /// The formatting `to_decimal_string` had before its u64 fast path, as the reference.
    fn reference_decimal(usd: Usd) -> String {
        use core::fmt::Write;
        let mut out = String::new();
        let _ = write!(out, "{}", usd.0 / ONE);
        let frac = usd.0 % ONE;
        if frac != 0 {
            let mut digits = String::new();
            let _ = write!(digits, "{frac:0width$}", width = SCALE as usize);
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out
    }

    #[test]
    fn decimal_string_matches_the_reference_at_the_edges() {
        let mut amounts = alloc::vec![0, 1, 9, 10, ONE - 1, ONE, ONE + 1, u128::MAX, u128::MAX - 1];
        for k in 0..=38u32 {
            let p = 10u128.pow(k);
            amounts.extend([p, p - 1, p + 1, p.saturating_mul(7) / 3]);
        }
        // A deterministic spread of 128-bit values (xorshift), every digit position exercised.
        let mut x: u128 = 0x2545_f491_4f6c_dd1d_9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            amounts.push(x);
            amounts.push(x >> (x % 128) as u32);
        }
        for units in amounts {
            let usd = Usd(units);
            assert_eq!(usd.to_decimal_string(), reference_decimal(usd), "{units}");
        }
        assert_eq!(
            Usd(u128::MAX).to_decimal_string(),
            "340282366.920938463463374607431768211455"
        );
    }

    #[test]
    fn refuses_what_is_not_a_plain_non_negative_decimal() {
        for text in ["", ".", "-1", "1e-6", "0x10", "1.2.3", "abc", "NaN"] {
            assert_eq!(Usd::parse(text), Err(MoneyError::NotADecimal), "{text}");
        }
        let too_precise = "0.0000000000000000000000000000001";
        assert_eq!(Usd::parse(too_precise), Err(MoneyError::TooPrecise));
    }

    #[test]
    fn multiplies_tokens_without_rounding() {
        let price = Usd::parse("0.00000008333333333333334").unwrap();
        let cost = price.checked_mul(3).unwrap();
        assert_eq!(cost.to_decimal_string(), "0.00000025000000000000002");
    }

    #[test]
    fn micros_round_half_up() {
        assert_eq!(Usd::parse("0.0000015").unwrap().to_micros(), 2);
        assert_eq!(Usd::parse("0.0000014999").unwrap().to_micros(), 1);
        assert_eq!(Usd::parse("0.01058775").unwrap().to_micros(), 10588);
        assert_eq!(Usd::ZERO.to_micros(), 0);
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let big = Usd::parse("300000000").unwrap();
        assert_eq!(big.checked_mul(u64::MAX), Err(MoneyError::Overflow));
        // The largest whole part that fits, with a fraction that takes it past u128::MAX.
        assert_eq!(Usd::parse("340282366.99"), Err(MoneyError::Overflow));
        assert!(Usd::parse("340282366.92").is_ok());
    }

    #[test]
    fn scaled_applies_markup_exactly() {
        let cost = Usd::parse("0.001").unwrap();
        assert_eq!(cost.scaled(110, 100).unwrap().to_decimal_string(), "0.0011");
        assert_eq!(
            cost.scaled_signed_bp(-1250).unwrap().to_decimal_string(),
            "0.000875"
        );
        assert_eq!(cost.scaled_signed_bp(-10_000).unwrap(), Usd::ZERO);
    }
}
