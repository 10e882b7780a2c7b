//! `--build-arg KEY=VALUE`, or `--build-arg KEY` to take the value from the environment
//! (as `docker buildx build` does).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildArg {
    pub key: String,
    /// `None`: `--build-arg KEY` alone, read from the environment when the build starts.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildArgError {
    #[error("build arg {0:?} has an empty name; expected KEY=VALUE")]
    EmptyKey(String),
    #[error(
        "build arg name {key:?} contains {bad:?}; names are letters, digits and _ (expected KEY=VALUE)"
    )]
    BadKey { key: String, bad: char },
}

impl BuildArg {
    pub fn parse(s: &str) -> Result<BuildArg, BuildArgError> {
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (s, None),
        };
        if key.is_empty() {
            return Err(BuildArgError::EmptyKey(s.to_owned()));
        }
        // Dockerfile ARG names are shell-variable-like; anything else can never match an
        // ARG and is almost always a quoting mistake (`--build-arg "A = 1"`).
        if let Some(bad) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.'))
        {
            return Err(BuildArgError::BadKey {
                key: key.to_owned(),
                bad,
            });
        }
        Ok(BuildArg {
            key: key.to_owned(),
            value,
        })
    }

    /// The build args as the frontend takes them: later flags win, and a key given without
    /// a value takes the environment's value or is dropped when the variable is unset.
    pub fn resolve(
        args: &[BuildArg],
        env: impl Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for a in args {
            match a.value.clone().or_else(|| env(&a.key)) {
                Some(v) => {
                    out.insert(a.key.clone(), v);
                }
                None => {
                    out.remove(&a.key);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        assert_eq!(
            BuildArg::parse("A=1").unwrap(),
            BuildArg {
                key: "A".into(),
                value: Some("1".into())
            }
        );
        assert_eq!(
            BuildArg::parse("A=x=y").unwrap().value.as_deref(),
            Some("x=y")
        );
        assert_eq!(BuildArg::parse("A=").unwrap().value.as_deref(), Some(""));
        assert_eq!(BuildArg::parse("HTTP_PROXY").unwrap().value, None);
        assert_eq!(
            BuildArg::parse("=1"),
            Err(BuildArgError::EmptyKey("=1".into()))
        );
        assert_eq!(
            BuildArg::parse("A B=1"),
            Err(BuildArgError::BadKey {
                key: "A B".into(),
                bad: ' '
            })
        );
        assert!(BuildArg::parse("").is_err());
    }

    #[test]
    fn resolve_takes_env_and_last_wins() {
        let args: Vec<BuildArg> = ["A=1", "B", "C", "A=2"]
            .iter()
            .map(|s| BuildArg::parse(s).unwrap())
            .collect();
        let env = |k: &str| (k == "B").then(|| "from-env".to_owned());
        let m = BuildArg::resolve(&args, env);
        assert_eq!(m.len(), 2);
        assert_eq!(m["A"], "2");
        assert_eq!(m["B"], "from-env");
    }
}
