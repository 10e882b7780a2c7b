//! `--cache-from` / `--cache-to`: `type=registry,ref=R,mode=max` and friends, as buildx
//! takes them. A bare value without `=` is a registry ref (`--cache-from user/app:cache`).
//! The type and the keys every backend needs are checked here; backend-specific keys are
//! kept for the backend to interpret.

use std::collections::BTreeMap;

use super::fields::{FieldsError, key_values};
use crate::suggest::hint;

const TYPES: [&str; 6] = ["registry", "local", "inline", "gha", "s3", "azblob"];

/// One parsed cache import or export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    /// One of `registry`, `local`, `inline`, `gha`, `s3`, `azblob`.
    pub kind: String,
    /// The other fields, keys lowercased.
    pub attrs: BTreeMap<String, String>,
}

/// Whether the spec is read (`--cache-from`) or written (`--cache-to`); the required
/// keys differ (`local` reads `src=`, writes `dest=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Import,
    Export,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheSpecError {
    #[error("cache spec {spec:?}: {source}")]
    Fields {
        spec: String,
        #[source]
        source: FieldsError,
    },
    #[error("cache spec {spec:?} has no type= (expected e.g. type=registry,ref=NAME)")]
    MissingType { spec: String },
    #[error(
        "cache spec {spec:?}: unknown type {got:?}{hint} (known: registry, local, inline, gha, s3, azblob)"
    )]
    UnknownType {
        spec: String,
        got: String,
        hint: String,
    },
    #[error("cache spec {spec:?}: type={kind} needs {key}=")]
    Missing {
        spec: String,
        kind: String,
        key: &'static str,
    },
    #[error("cache spec {spec:?}: mode={got:?} is not min or max")]
    BadMode { spec: String, got: String },
    #[error("cache spec {spec:?}: type=inline can only be exported (--cache-to)")]
    InlineImport { spec: String },
    #[error("cache spec {spec:?}: key {key:?} given twice")]
    Duplicate { spec: String, key: String },
}

impl CacheSpec {
    /// A `--cache-from` value.
    pub fn parse_import(spec: &str) -> Result<CacheSpec, CacheSpecError> {
        CacheSpec::parse(spec, Direction::Import)
    }

    /// A `--cache-to` value.
    pub fn parse_export(spec: &str) -> Result<CacheSpec, CacheSpecError> {
        CacheSpec::parse(spec, Direction::Export)
    }

    fn parse(spec: &str, dir: Direction) -> Result<CacheSpec, CacheSpecError> {
        let owned = || spec.to_owned();
        if !spec.contains('=') && !spec.trim().is_empty() {
            return Ok(CacheSpec {
                kind: "registry".into(),
                attrs: BTreeMap::from([("ref".to_owned(), spec.trim().to_owned())]),
            });
        }
        let fields = key_values(spec).map_err(|source| CacheSpecError::Fields {
            spec: owned(),
            source,
        })?;
        let mut kind = None;
        let mut attrs = BTreeMap::new();
        for (k, v) in fields {
            if k == "type" {
                kind = Some(v);
            } else if attrs.insert(k.clone(), v).is_some() {
                return Err(CacheSpecError::Duplicate {
                    spec: owned(),
                    key: k,
                });
            }
        }
        let kind = kind.ok_or_else(|| CacheSpecError::MissingType { spec: owned() })?;
        if !TYPES.contains(&kind.as_str()) {
            let hint = hint(&kind, &TYPES);
            return Err(CacheSpecError::UnknownType {
                spec: owned(),
                got: kind,
                hint,
            });
        }
        let required: Option<&'static str> = match (kind.as_str(), dir) {
            ("registry", _) => Some("ref"),
            ("local", Direction::Import) => Some("src"),
            ("local", Direction::Export) => Some("dest"),
            ("inline", Direction::Import) => {
                return Err(CacheSpecError::InlineImport { spec: owned() });
            }
            _ => None,
        };
        if let Some(key) = required
            && attrs.get(key).is_none_or(|v| v.is_empty())
        {
            return Err(CacheSpecError::Missing {
                spec: owned(),
                kind,
                key,
            });
        }
        if let Some(mode) = attrs.get("mode")
            && mode != "min"
            && mode != "max"
        {
            return Err(CacheSpecError::BadMode {
                spec: owned(),
                got: mode.clone(),
            });
        }
        Ok(CacheSpec { kind, attrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        let s = CacheSpec::parse_export("type=registry,ref=r/app:cache,mode=max").unwrap();
        assert_eq!(s.kind, "registry");
        assert_eq!(s.attrs["ref"], "r/app:cache");
        assert_eq!(s.attrs["mode"], "max");
        let bare = CacheSpec::parse_import("user/app:cache").unwrap();
        assert_eq!(
            (bare.kind.as_str(), bare.attrs["ref"].as_str()),
            ("registry", "user/app:cache")
        );
        assert_eq!(
            CacheSpec::parse_import("type=local,src=/c").unwrap().attrs["src"],
            "/c"
        );
        assert_eq!(
            CacheSpec::parse_export("type=local,dest=/c").unwrap().attrs["dest"],
            "/c"
        );
        assert_eq!(
            CacheSpec::parse_export("type=inline").unwrap().kind,
            "inline"
        );
        assert_eq!(
            CacheSpec::parse_import("type=gha,scope=main")
                .unwrap()
                .attrs["scope"],
            "main"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = CacheSpec::parse_import("type=regsitry,ref=x").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown type \"regsitry\"; did you mean \"registry\"?"),
            "{e}"
        );
        assert!(matches!(
            CacheSpec::parse_import("type=local,dest=/c"),
            Err(CacheSpecError::Missing { key: "src", .. })
        ));
        assert!(matches!(
            CacheSpec::parse_export("type=local,src=/c"),
            Err(CacheSpecError::Missing { key: "dest", .. })
        ));
        assert!(matches!(
            CacheSpec::parse_export("type=registry"),
            Err(CacheSpecError::Missing { key: "ref", .. })
        ));
        assert!(matches!(
            CacheSpec::parse_export("type=registry,ref=a,mode=all"),
            Err(CacheSpecError::BadMode { .. })
        ));
        assert!(matches!(
            CacheSpec::parse_import("type=inline"),
            Err(CacheSpecError::InlineImport { .. })
        ));
        assert!(matches!(
            CacheSpec::parse_import("ref=a"),
            Err(CacheSpecError::MissingType { .. })
        ));
        assert!(matches!(
            CacheSpec::parse_import("type=registry,ref=a,ref=b"),
            Err(CacheSpecError::Duplicate { .. })
        ));
        assert!(matches!(
            CacheSpec::parse_import(""),
            Err(CacheSpecError::MissingType { .. })
        ));
    }
}
