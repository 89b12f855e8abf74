//! Byte sizes on the command line.
//!
//! The rule, stated once and repeated in `--help`: a bare number is bytes; `K`, `M`, `G`, `T`
//! and `KiB`, `MiB`, `GiB`, `TiB` are powers of 1024 (as in fio, dd and DeepSpeed's tools);
//! `KB`, `MB`, `GB`, `TB` are powers of 1000. Suffixes are case-insensitive except that a lone
//! `b` is bytes. Fractions are refused: a block size of `1.5M` is almost always a typo.

use std::fmt;

/// The `--help` text that states the rule.
pub const SIZE_RULE: &str =
    "Sizes: bare number = bytes; K/M/G/T and KiB/MiB/GiB/TiB = powers of 1024; KB/MB/GB/TB = powers of 1000";

/// Why a size could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a size: {why} ({SIZE_RULE})")]
pub struct SizeError {
    input: String,
    why: &'static str,
}

/// Parses `4K`, `1M`, `1GiB`, `1GB`, `4096` into bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |why| SizeError {
        input: input.to_string(),
        why,
    };
    let s = input.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(err("it does not start with a whole number"));
    }
    let value: u64 = number.parse().map_err(|_| err("the number is too large"))?;
    if suffix.starts_with('.') {
        return Err(err("fractions are not accepted (write 1536K, not 1.5M)"));
    }
    let multiplier: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(err("unknown suffix")),
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| err("the size overflows 64 bits"))
}

/// A byte count printed the way a person reads it back: exact binary units when they fit
/// (`1MiB`, `4KiB`), else the plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, unit) in UNITS {
            if self.0 >= unit && self.0 % unit == 0 {
                return write!(f, "{}{}", self.0 / unit, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("4K").unwrap(), 4096);
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("2MB").unwrap(), 2_000_000);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        assert_eq!(parse_size("17b").unwrap(), 17);
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "M",
            "1.5M",
            "-1",
            "1X",
            "1 MiBs",
            "99999999999999999999",
            "20000000T",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.to_string().contains("is not a size"), "{bad}: {e}");
        }
    }

    #[test]
    fn fractions_say_so() {
        assert!(parse_size("1.5M")
            .unwrap_err()
            .to_string()
            .contains("fractions are not accepted"));
    }

    #[test]
    fn display_round_trips_exact_units() {
        assert_eq!(Bytes(1 << 20).to_string(), "1MiB");
        assert_eq!(Bytes(3 << 30).to_string(), "3GiB");
        assert_eq!(Bytes(4097).to_string(), "4097B");
        for s in ["4KiB", "1MiB", "8GiB", "100B"] {
            assert_eq!(Bytes(parse_size(s).unwrap()).to_string(), s);
        }
    }
}
