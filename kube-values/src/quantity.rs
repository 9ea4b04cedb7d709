//! Kubernetes resource quantities (`500m`, `2`, `1Gi`, `1.5e3`) parsed exactly into integer
//! nano-units, and formatted back the way the API server prints quota usage.

/// A quantity in units of 10⁻⁹ (so `1` is 1_000_000_000 and `1m` is 1_000_000).
pub type Nanos = i128;

const NANO: i128 = 1_000_000_000;

/// The suffix family a quantity was written in; usage is printed in the family of its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    BinarySi,
    DecimalSi,
}

/// Parses a quantity; `None` when it is not one Kubernetes accepts.
pub fn parse(s: &str) -> Option<(Nanos, Format)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (sign, rest) = match s.as_bytes()[0] {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{int_part}{frac_part}");
    if digits.len() > 30 {
        return None;
    }
    let mantissa: i128 = digits.parse().ok()?;
    let frac_len = u32::try_from(frac_part.len()).ok()?;
    // value = mantissa / 10^frac_len * multiplier, where multiplier = num / den.
    let (num, den, format): (i128, i128, Format) = match suffix {
        "" => (1, 1, Format::DecimalSi),
        "n" => (1, NANO, Format::DecimalSi),
        "u" => (1, 1_000_000, Format::DecimalSi),
        "m" => (1, 1000, Format::DecimalSi),
        "k" => (1000, 1, Format::DecimalSi),
        "M" => (10i128.pow(6), 1, Format::DecimalSi),
        "G" => (10i128.pow(9), 1, Format::DecimalSi),
        "T" => (10i128.pow(12), 1, Format::DecimalSi),
        "P" => (10i128.pow(15), 1, Format::DecimalSi),
        "E" => (10i128.pow(18), 1, Format::DecimalSi),
        "Ki" => (1 << 10, 1, Format::BinarySi),
        "Mi" => (1 << 20, 1, Format::BinarySi),
        "Gi" => (1 << 30, 1, Format::BinarySi),
        "Ti" => (1 << 40, 1, Format::BinarySi),
        "Pi" => (1 << 50, 1, Format::BinarySi),
        "Ei" => (1 << 60, 1, Format::BinarySi),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            if exp.unsigned_abs() > 18 {
                return None;
            }
            if exp >= 0 {
                (10i128.pow(exp.unsigned_abs()), 1, Format::DecimalSi)
            } else {
                (1, 10i128.pow(exp.unsigned_abs()), Format::DecimalSi)
            }
        }
        _ => return None,
    };
    let numerator = mantissa.checked_mul(num)?.checked_mul(NANO)?;
    let denominator = den.checked_mul(10i128.pow(frac_len))?;
    // Kubernetes rounds up anything finer than a nano-unit.
    let value = (numerator + denominator - 1) / denominator;
    Some((sign * value, format))
}

/// Parses a quantity, ignoring its format.
pub fn nanos(s: &str) -> Option<Nanos> {
    parse(s).map(|(v, _)| v)
}

/// Formats a value canonically in the given suffix family (`1536Mi`, `500m`, `2`, `0`).
pub fn format(value: Nanos, format: Format) -> String {
    if value == 0 {
        return "0".to_string();
    }
    if value % NANO != 0 {
        return if value % 1_000_000 == 0 {
            format!("{}m", value / 1_000_000)
        } else if value % 1000 == 0 {
            format!("{}u", value / 1000)
        } else {
            format!("{value}n")
        };
    }
    let whole = value / NANO;
    match format {
        Format::BinarySi => {
            for (suffix, shift) in [
                ("Ei", 60),
                ("Pi", 50),
                ("Ti", 40),
                ("Gi", 30),
                ("Mi", 20),
                ("Ki", 10),
            ] {
                let unit = 1i128 << shift;
                if whole % unit == 0 {
                    return format!("{}{suffix}", whole / unit);
                }
            }
            whole.to_string()
        }
        Format::DecimalSi => {
            for (suffix, exp) in [
                ("E", 18),
                ("P", 15),
                ("T", 12),
                ("G", 9),
                ("M", 6),
                ("k", 3),
            ] {
                let unit = 10i128.pow(exp);
                if whole % unit == 0 {
                    return format!("{}{suffix}", whole / unit);
                }
            }
            whole.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_kubernetes_accepts() {
        assert_eq!(nanos("500m"), Some(500_000_000));
        assert_eq!(nanos("2"), Some(2 * NANO));
        assert_eq!(nanos("1.5"), Some(1_500_000_000));
        assert_eq!(nanos("1Gi"), Some((1i128 << 30) * NANO));
        assert_eq!(nanos("1.5Gi"), Some(3 * (1i128 << 29) * NANO));
        assert_eq!(nanos("1e3"), Some(1000 * NANO));
        assert_eq!(nanos("5E-3"), Some(5_000_000));
        assert_eq!(nanos("128974848"), Some(128_974_848 * NANO));
        for bad in ["", "abc", "1.2.3", "1Xi", "m", "1 Gi", "."] {
            assert_eq!(nanos(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn formats_in_the_family_of_the_limit() {
        assert_eq!(
            format(nanos("1536Mi").unwrap_or_default(), Format::BinarySi),
            "1536Mi"
        );
        assert_eq!(
            format(nanos("2Gi").unwrap_or_default(), Format::BinarySi),
            "2Gi"
        );
        assert_eq!(
            format(nanos("1500m").unwrap_or_default(), Format::DecimalSi),
            "1500m"
        );
        assert_eq!(
            format(nanos("3").unwrap_or_default(), Format::DecimalSi),
            "3"
        );
        assert_eq!(
            format(nanos("2000").unwrap_or_default(), Format::DecimalSi),
            "2k"
        );
        assert_eq!(format(0, Format::BinarySi), "0");
    }
}
