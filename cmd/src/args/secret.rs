//! `--secret id=ID,src=PATH` or `--secret id=ID,env=VAR`, as buildx takes it. Secrets are
//! only named here; their bytes are read when a step mounts them, so they never reach
//! logs, cache keys or layers.

use std::path::PathBuf;

use super::fields::{FieldsError, key_values};
use crate::suggest::hint;

const KEYS: [&str; 5] = ["id", "src", "source", "env", "type"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub id: String,
    pub source: SecretSource,
}

/// Where a secret's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    /// Only `id=` given: BuildKit reads the environment variable named ID if it is set,
    /// else the file named ID.
    ById,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret {spec:?}: {source}")]
    Fields {
        spec: String,
        #[source]
        source: FieldsError,
    },
    #[error(
        "secret {spec:?}: unknown key {key:?}{hint} (expected id=ID,src=PATH or id=ID,env=VAR)"
    )]
    UnknownKey {
        spec: String,
        key: String,
        hint: String,
    },
    #[error("secret {spec:?}: type={got:?} is not file or env")]
    BadType { spec: String, got: String },
    #[error("secret {spec:?}: missing id= (expected id=ID,src=PATH or id=ID,env=VAR)")]
    MissingId { spec: String },
    #[error("secret {spec:?}: {key}= is empty")]
    Empty { spec: String, key: String },
    #[error("secret {spec:?}: give src= or env=, not both")]
    Both { spec: String },
}

impl Secret {
    pub fn parse(spec: &str) -> Result<Secret, SecretError> {
        let fields = key_values(spec).map_err(|source| SecretError::Fields {
            spec: spec.to_owned(),
            source,
        })?;
        let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
        for (k, v) in fields {
            if v.is_empty() {
                return Err(SecretError::Empty {
                    spec: spec.to_owned(),
                    key: k,
                });
            }
            match k.as_str() {
                "id" => id = Some(v),
                "src" | "source" => src = Some(v),
                "env" => env = Some(v),
                "type" if v == "file" || v == "env" => kind = Some(v),
                "type" => {
                    return Err(SecretError::BadType {
                        spec: spec.to_owned(),
                        got: v,
                    });
                }
                _ => {
                    let hint = hint(&k, &KEYS);
                    return Err(SecretError::UnknownKey {
                        spec: spec.to_owned(),
                        key: k,
                        hint,
                    });
                }
            }
        }
        // buildx: `type=env,src=VAR` names the variable with src=.
        if kind.as_deref() == Some("env") && env.is_none() {
            env = src.take();
        }
        let id = id.ok_or_else(|| SecretError::MissingId {
            spec: spec.to_owned(),
        })?;
        let source = match (src, env) {
            (Some(_), Some(_)) => {
                return Err(SecretError::Both {
                    spec: spec.to_owned(),
                });
            }
            (Some(p), None) => SecretSource::File(PathBuf::from(p)),
            (None, Some(e)) => SecretSource::Env(e),
            (None, None) => SecretSource::ById,
        };
        Ok(Secret { id, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        assert_eq!(
            Secret::parse("id=npm,src=/home/u/.npmrc").unwrap(),
            Secret {
                id: "npm".into(),
                source: SecretSource::File("/home/u/.npmrc".into())
            }
        );
        assert_eq!(
            Secret::parse("id=tok,source=t.txt").unwrap().source,
            SecretSource::File("t.txt".into())
        );
        assert_eq!(
            Secret::parse("id=tok,env=GH_TOKEN").unwrap().source,
            SecretSource::Env("GH_TOKEN".into())
        );
        assert_eq!(
            Secret::parse("type=env,id=tok,src=GH_TOKEN")
                .unwrap()
                .source,
            SecretSource::Env("GH_TOKEN".into())
        );
        assert_eq!(
            Secret::parse("id=GH_TOKEN").unwrap().source,
            SecretSource::ById
        );
    }

    #[test]
    fn errors_say_what_was_expected() {
        let e = Secret::parse("id=a,scr=x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret \"id=a,scr=x\": unknown key \"scr\"; did you mean \"src\"? (expected id=ID,src=PATH or id=ID,env=VAR)"
        );
        assert!(matches!(
            Secret::parse("src=x"),
            Err(SecretError::MissingId { .. })
        ));
        assert!(matches!(
            Secret::parse("id=a,src=x,env=Y"),
            Err(SecretError::Both { .. })
        ));
        assert!(matches!(
            Secret::parse("id=,src=x"),
            Err(SecretError::Empty { .. })
        ));
        assert!(matches!(
            Secret::parse("id=a,type=ssh"),
            Err(SecretError::BadType { .. })
        ));
        assert!(matches!(
            Secret::parse("id=a,src"),
            Err(SecretError::Fields { .. })
        ));
    }
}
