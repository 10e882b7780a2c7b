//! Sizes (`10GB`, `512MiB`) and durations (`48h`, `1h30m`) as users write them in
//! `buildkitd.toml` and `buildctl prune` flags.

use std::time::Duration;

/// A size or duration string that does not parse, with what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error(
        "{got:?} is not a size: expected a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. \"10GB\""
    )]
    Size { got: String },
    #[error(
        "{got:?} is not a duration: expected numbers with units (ms, s, m, h, d), e.g. \"48h\" or \"1h30m\""
    )]
    Duration { got: String },
}

/// Parses a byte size. Units are case-insensitive; `KB`/`MB`/… are powers of 1000 and
/// `KiB`/`MiB`/… powers of 1024, as in BuildKit's `units.RAMInBytes`-free parsing of
/// `keepBytes` strings. Fractions are allowed (`1.5GB`).
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Size { got: s.to_owned() };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(err());
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return Err(err()),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(err);
    }
    let f: f64 = num.parse().map_err(|_| err())?;
    let bytes = f * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

/// Parses a Go-style duration (`48h`, `1h30m`, `90s`, `500ms`), plus `d` for days since
/// GC policies are usually counted in days.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let err = || UnitError::Duration { got: s.to_owned() };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, tail) = rest.split_at(n_end);
        let u_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u_end);
        let secs: f64 = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(err()),
        };
        let n: f64 = num.parse().map_err(|_| err())?;
        let part = Duration::try_from_secs_f64(n * secs).map_err(|_| err())?;
        total = total.checked_add(part).ok_or_else(err)?;
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("10gb"), Ok(10_000_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5KB"), Ok(1500));
        assert_eq!(parse_size("42"), Ok(42));
        assert_eq!(parse_size(" 3 kib "), Ok(3072));
        for bad in [
            "",
            "GB",
            "10XB",
            "1.2.3MB",
            "-5MB",
            "99999999999999999999TB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(
            parse_size("ten")
                .unwrap_err()
                .to_string()
                .contains("\"10GB\"")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("48h"), Ok(Duration::from_secs(48 * 3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "48", "h", "48x", "1h30", "--1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
