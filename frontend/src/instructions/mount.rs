//! `RUN --mount=…`: the CSV option list and its rules per mount type.

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::suggest;

/// The kind of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    const ALL: [(&'static str, MountType); 5] = [
        ("bind", MountType::Bind),
        ("cache", MountType::Cache),
        ("tmpfs", MountType::Tmpfs),
        ("secret", MountType::Secret),
        ("ssh", MountType::Ssh),
    ];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("bind", |(n, _)| n)
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub kind: MountType,
    /// A stage or image name for bind/cache mounts.
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: bool,
    /// Bytes, tmpfs only.
    pub size_limit: Option<u64>,
    /// Cache or secret ID.
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub required: bool,
    /// Secret exposed as an environment variable.
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

const KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Mount(msg.into()))
}

/// Splits one CSV record: fields separated by commas, `"…"` quoting with `""` for a quote.
fn csv_fields(s: &str) -> Result<Vec<String>, Error> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut at_field_start = true;
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                at_field_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut cur));
                at_field_start = true;
            }
            _ => {
                cur.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return Err(err(format!(
            "failed to parse csv mounts: unterminated quote in {s:?}"
        )));
    }
    fields.push(cur);
    Ok(fields)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(err(format!("invalid value for {key}: {value}"))),
    }
}

/// Docker's `RAMInBytes`: a number with an optional binary unit (`b`, `k`, `m`, `g`, `t`,
/// `p`, optionally followed by `b`/`ib`), case-insensitive.
fn ram_in_bytes(value: &str) -> Option<u64> {
    let lower = value.trim().to_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let num: f64 = num.parse().ok()?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0_f64.powi(4),
        "p" => 1024.0_f64.powi(5),
        _ => return None,
    };
    let bytes = num * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return None;
    }
    Some(bytes as u64)
}

/// A `$` anywhere but at the end starts a variable reference.
fn uses_expansion(v: &str) -> bool {
    v.find('$').is_some_and(|i| i != v.len() - 1)
}

/// The raw `from=` of a `--mount` value, read before variables are known (it may not use
/// them: stage dependencies must be known up front).
pub fn mount_from(value: &str) -> Result<Option<String>, Error> {
    let mut from = None;
    for field in csv_fields(value)? {
        if let Some((k, v)) = field.split_once('=')
            && k.eq_ignore_ascii_case("from")
        {
            if uses_expansion(v) {
                return Err(err(
                    "'from' doesn't support variable expansion, define alias stage instead",
                ));
            }
            from = Some(v.to_string());
        }
    }
    Ok(from)
}

/// Parses one `--mount` value; `expand` expands each value (the converter passes the
/// stage's variables).
pub fn parse_mount(
    value: &str,
    expand: &dyn Fn(&str) -> Result<String, Error>,
) -> Result<Mount, Error> {
    let mut m = Mount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        read_only: false,
        size_limit: None,
        id: None,
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut ro_auto = true;
    for field in csv_fields(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(val) = val else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true
                }
                "required" => {
                    return Err(err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.name()
                    )));
                }
                _ => {
                    return Err(err(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )));
                }
            }
            continue;
        };
        if key == "from" && uses_expansion(val) {
            return Err(err(format!(
                "'{key}' doesn't support variable expansion, define alias stage instead"
            )));
        }
        let val = expand(val)?;
        match key.as_str() {
            "type" => {
                let lower = val.to_lowercase();
                let Some((_, t)) = MountType::ALL.iter().find(|(n, _)| *n == lower) else {
                    let s = suggest::closest(&val, MountType::ALL.iter().map(|(n, _)| *n), true);
                    return Err(err(format!("unsupported mount type {val:?}")).suggest(s));
                };
                m.kind = *t;
            }
            "from" => m.from = Some(val),
            "source" | "src" => m.source = Some(val),
            "target" | "dst" | "destination" => m.target = Some(val),
            "readonly" | "ro" => {
                m.read_only = parse_bool(&key, &val)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_bool(&key, &val)?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.name()
                    )));
                }
                m.required = parse_bool(&key, &val)?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.name()
                    )));
                }
                m.size_limit = Some(
                    ram_in_bytes(&val)
                        .ok_or_else(|| err(format!("invalid value for {key}: {val}")))?,
                );
            }
            "id" => m.id = Some(val),
            "sharing" => {
                m.sharing = Some(match val.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        let s = suggest::closest(&val, ["shared", "private", "locked"], true);
                        return Err(err(format!("unsupported sharing value {val:?}")).suggest(s));
                    }
                });
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&val, 8)
                        .map_err(|_| err(format!("invalid value {val} for mode")))?,
                );
            }
            "uid" => {
                m.uid = Some(
                    val.parse()
                        .map_err(|_| err(format!("invalid value {val} for uid")))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    val.parse()
                        .map_err(|_| err(format!("invalid value {val} for gid")))?,
                )
            }
            "env" => m.env = Some(val),
            _ => {
                let s = suggest::closest(&key, KEYS, true);
                return Err(err(format!("unexpected key '{key}' in '{field}'")).suggest(s));
            }
        }
    }

    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (set, what) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(err(format!(
                    "{what} not allowed for {:?} type mounts",
                    m.kind.name()
                )));
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err(err("secret mount should not have a from"));
        }
        if m.sharing.is_some() {
            return Err(err("secret mount should not define sharing"));
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err(err("invalid secret mount. one of source, target required"));
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(err("both source and id can't be set"));
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(err(format!(
            "invalid cache sharing set for {} mount",
            m.kind.name()
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: &str) -> Result<String, Error> {
        Ok(v.to_string())
    }

    #[test]
    fn defaults_per_type() {
        let m = parse_mount("target=/src", &plain).expect("bind");
        assert_eq!((m.kind, m.read_only), (MountType::Bind, true));
        let m = parse_mount(
            "type=cache,target=/root/.cache,sharing=locked,id=go,mode=0755,uid=1",
            &plain,
        )
        .expect("cache");
        assert_eq!(
            (m.kind, m.read_only, m.sharing, m.mode, m.uid),
            (
                MountType::Cache,
                false,
                Some(Sharing::Locked),
                Some(0o755),
                Some(1)
            )
        );
        let m = parse_mount("type=tmpfs,dst=/t,size=64m", &plain).expect("tmpfs");
        assert_eq!(m.size_limit, Some(64 * 1024 * 1024));
        let m = parse_mount("type=secret,id=tok,required,env=TOKEN", &plain).expect("secret");
        assert!(m.required && m.read_only);
        let m = parse_mount("type=bind,from=builder,source=/out,target=/in,rw", &plain)
            .expect("bind rw");
        assert!(!m.read_only);
        assert_eq!(m.from.as_deref(), Some("builder"));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse_mount("type=cahce,target=/x", &plain).expect_err("typo");
        assert_eq!(e.suggestion.as_deref(), Some("cache"));
        let e = parse_mount("type=cache,taget=/x", &plain).expect_err("typo");
        assert_eq!(e.suggestion.as_deref(), Some("target"));
        assert!(parse_mount("type=bind,mode=0700,target=/x", &plain).is_err());
        assert!(parse_mount("type=cache,required,target=/x", &plain).is_err());
        assert!(parse_mount("type=secret,from=x,id=a", &plain).is_err());
        assert!(parse_mount("type=secret", &plain).is_err());
        assert!(parse_mount("type=bind,sharing=locked,target=/x", &plain).is_err());
        assert!(parse_mount("from=$STAGE,target=/x", &plain).is_err());
        assert!(
            parse_mount("\"target=/a,b\"", &plain)
                .is_ok_and(|m| m.target.as_deref() == Some("/a,b"))
        );
    }
}
