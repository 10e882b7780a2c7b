//! Timestamps as image configs carry them (RFC 3339, UTC), and `SOURCE_DATE_EPOCH`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::error::ExportError;

/// Reads `SOURCE_DATE_EPOCH`: `None` when unset or empty, an error when it is not a
/// non-negative integer (a typo must not silently make a build irreproducible).
pub fn source_date_epoch_from_env() -> Result<Option<i64>, ExportError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => parse_epoch(&v).map(Some),
        Err(_) => Ok(None),
    }
}

pub(crate) fn parse_epoch(v: &str) -> Result<i64, ExportError> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 0)
        .ok_or_else(|| ExportError::BadEpoch {
            value: v.to_owned(),
        })
}

/// The current time, or `epoch` when given, as `(seconds, nanoseconds)`.
pub(crate) fn build_time(epoch: Option<i64>) -> (i64, u32) {
    match epoch {
        Some(s) => (s, 0),
        None => {
            let d = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            )
        }
    }
}

/// `secs.nanos` since the epoch as Go's `time.RFC3339Nano` prints a UTC time
/// (`2024-01-02T03:04:05.5Z`; trailing zeros of the fraction dropped).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Seconds since the epoch of an RFC 3339 time (`2020-01-02T03:04:05.123Z`,
/// `…+01:00`); `None` when it does not parse. The fraction is ignored: callers compare
/// whole seconds against `SOURCE_DATE_EPOCH`.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let o = rest.get(1..3)?.parse::<i64>().ok()? * 3600
                + rest.get(4..6)?.parse::<i64>().ok()? * 60;
            if rest.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Proleptic Gregorian date to days since 1970-01-01 (inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (the well-known era-based method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z");
        assert_eq!(
            rfc3339(4_107_542_399, 123),
            "2100-02-28T23:59:59.000000123Z"
        );
    }

    #[test]
    fn parses_rfc3339_back() {
        for secs in [0, 951_782_400, 1_700_000_000, 4_107_542_399] {
            assert_eq!(parse_rfc3339(&rfc3339(secs, 0)), Some(secs));
            assert_eq!(parse_rfc3339(&rfc3339(secs, 5)), Some(secs));
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T21:13:20-01:00"),
            Some(1_700_000_000)
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-13-14T00:00:00Z",
            "2023-11-14T00:00:00",
            "2023-11-14T00:00:00.Z",
            "2023-11-14T00:00:00+1",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn epoch_values_are_validated() {
        assert_eq!(parse_epoch("1700000000").unwrap(), 1_700_000_000);
        assert!(matches!(
            parse_epoch("-1"),
            Err(ExportError::BadEpoch { .. })
        ));
        assert!(matches!(
            parse_epoch("yesterday"),
            Err(ExportError::BadEpoch { .. })
        ));
        assert_eq!(build_time(Some(5)), (5, 0));
    }
}
