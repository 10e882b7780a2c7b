//! Number formats shared by the renderers, matching what BuildKit prints.

use std::time::Duration;

/// `1.2s`: BuildKit's `%.1fs` for step durations.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The seconds-since-start prefix of an output line: three decimals under 10 s, two under
/// 100 s, one above (BuildKit's plain printer).
pub fn log_elapsed(secs: f64) -> String {
    let prec = if secs < 10.0 {
        3
    } else if secs < 100.0 {
        2
    } else {
        1
    };
    format!("{secs:.prec$}")
}

/// Decimal byte sizes with two decimals (`14.68MB`, `220B`), as BuildKit's `units.Bytes`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

/// [`bytes`] of a signed counter; negative values (never sent by a correct producer)
/// show as zero.
pub fn bytes_i64(n: i64) -> String {
    bytes(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_buildkit() {
        assert_eq!(secs(Duration::from_millis(3_249)), "3.2s");
        assert_eq!(secs(Duration::ZERO), "0.0s");
        assert_eq!(log_elapsed(0.123), "0.123");
        assert_eq!(log_elapsed(12.3456), "12.35");
        assert_eq!(log_elapsed(123.45), "123.5");
        assert_eq!(bytes(220), "220B");
        assert_eq!(bytes(14_680_000), "14.68MB");
        assert_eq!(bytes(2_150_000), "2.15MB");
        assert_eq!(bytes(1_000), "1.00kB");
        assert_eq!(bytes(u64::MAX), "18.45EB");
        assert_eq!(bytes_i64(-5), "0B");
    }
}
