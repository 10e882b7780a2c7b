//! Text BuildKit writes into step names and history entries, reproduced exactly: Go's
//! `%q` and `%v` of string slices, Go duration strings, and path normalisation.

use crate::parser::go_quote;

/// Go's `fmt.Sprintf("%q", []string{…})`: `["a" "b"]`.
pub fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `fmt.Sprintf("%v", []string{…})`: `[a b]`.
pub fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `time.Duration.String()` for nanoseconds: `1m30s`, `300ms`, `0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", frac(u, div));
    }
    let total_secs = u / 1_000_000_000;
    let nanos = u % 1_000_000_000;
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s = total_secs % 60;
    let secs = frac(s * 1_000_000_000 + nanos, 1_000_000_000);
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h{m}m"));
    } else if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{secs}s"));
    out
}

/// `v / div` with the fraction's trailing zeros removed.
fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rest = v % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Unix seconds as RFC 3339 in UTC (`2024-01-31T12:00:00Z`), as Go writes a `time.Time`
/// without fractional seconds.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    cairn_llb::go::clean_path(p)
}

/// BuildKit's `system.NormalizePath`: `p` joined to `parent` unless absolute, cleaned;
/// with `keep_slash`, a trailing `/` (or `/.`) of `p` survives, because it means "into
/// this directory".
pub fn normalize_path(parent: &str, p: &str, keep_slash: bool) -> String {
    let joined = if p.starts_with('/') {
        clean(p)
    } else {
        clean(&format!("{parent}/{p}"))
    };
    let joined = if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    };
    if keep_slash && (p.ends_with('/') || p.ends_with("/.") || p == ".") && !joined.ends_with('/') {
        return format!("{joined}/");
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(
            go_quoted_list(&["/bin/sh".into(), "-c".into(), "echo \"x\"".into()]),
            r#"["/bin/sh" "-c" "echo \"x\""]"#
        );
        assert_eq!(go_list(&["/a".into(), "/b".into()]), "[/a /b]");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(300_000_000), "300ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/", "file.txt", true), "/file.txt");
        assert_eq!(normalize_path("/app", ".", true), "/app/");
        assert_eq!(normalize_path("/app", "sub/", true), "/app/sub/");
        assert_eq!(normalize_path("/app", "/out/", true), "/out/");
        assert_eq!(normalize_path("/", "../x", false), "/x");
        assert_eq!(normalize_path("/", "/", true), "/");
    }
}
