//! Decimal text without floats: JSON number literals (`1.2e-05`) to plain decimals (`0.000012`).
//!
//! Upstream costs arrive as JSON numbers; we keep their exact text rather than an `f64`.

use alloc::string::String;

/// Rewrites a JSON number literal as a plain decimal: `"1.2e-05"` → `"0.000012"`, `"7"` → `"7"`,
/// `"-0.5"` → `"-0.5"`. Trailing fractional zeros are dropped. `None` if it is not a number.
pub fn plain(literal: &str) -> Option<String> {
    let literal = literal.trim();
    let (negative, body) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || exponent.unsigned_abs() > 400 {
        return None;
    }
    let mut digits = String::with_capacity(whole.len() + frac.len());
    digits.push_str(whole);
    digits.push_str(frac);
    // The decimal point sits after `point` digits.
    let point = whole.len() as i64 + i64::from(exponent);
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if point <= 0 {
        out.push_str("0.");
        for _ in 0..(-point) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    // Normalise: no leading zeros in the whole part, no trailing zeros in the fraction.
    let sign = usize::from(negative);
    if out.contains('.') {
        while out.ends_with('0') {
            out.pop();
        }
        if out.ends_with('.') {
            out.pop();
        }
    }
    while out.len() > sign + 1 && out.as_bytes()[sign] == b'0' && out.as_bytes()[sign + 1] != b'.' {
        out.remove(sign);
    }
    if out == "-0" {
        out.remove(0);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn rewrites_exponents_exactly() {
        let cases = [
            ("1.2e-05", "0.000012"),
            ("0.01058775", "0.01058775"),
            ("0.0076509169000000005", "0.0076509169000000005"),
            ("7", "7"),
            ("0", "0"),
            ("0.0", "0"),
            ("2.5E3", "2500"),
            ("1e-20", "0.00000000000000000001"),
            ("-0.5", "-0.5"),
            ("007.50", "7.5"),
        ];
        for (literal, expected) in cases {
            assert_eq!(plain(literal).as_deref(), Some(expected), "{literal}");
        }
    }

    #[test]
    fn refuses_non_numbers() {
        for literal in ["", "null", "\"1\"", "1e", ".5", "1.2.3", "true"] {
            assert_eq!(plain(literal), None, "{literal}");
        }
    }
}
