//! Comma-separated `key=value` fields as buildx reads them (one CSV record: a field may be
//! double-quoted to hold commas, `""` is a literal quote).

/// A malformed field list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldsError {
    #[error("unterminated quote in {0:?}")]
    Unterminated(String),
    #[error("field {field:?} in {spec:?} is not key=value")]
    NotKeyValue { spec: String, field: String },
}

/// Splits `spec` into `(lowercased key, value)` pairs, in order.
pub fn key_values(spec: &str) -> Result<Vec<(String, String)>, FieldsError> {
    let mut out = Vec::new();
    for field in split_csv(spec)? {
        let Some((k, v)) = field.split_once('=') else {
            return Err(FieldsError::NotKeyValue {
                spec: spec.to_owned(),
                field,
            });
        };
        out.push((k.trim().to_ascii_lowercase(), v.to_owned()));
    }
    Ok(out)
}

fn split_csv(spec: &str) -> Result<Vec<String>, FieldsError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err(FieldsError::Unterminated(spec.to_owned()));
    }
    out.push(cur);
    Ok(out.into_iter().filter(|f| !f.trim().is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_quotes() {
        assert_eq!(
            key_values(r#"type=registry,"ref=a,b",Mode=max"#).unwrap(),
            vec![
                ("type".into(), "registry".into()),
                ("ref".into(), "a,b".into()),
                ("mode".into(), "max".into())
            ]
        );
        assert_eq!(
            key_values(r#"a="x""y""#).unwrap(),
            vec![("a".into(), "x\"y".into())]
        );
        assert!(matches!(
            key_values("a=1,b"),
            Err(FieldsError::NotKeyValue { .. })
        ));
        assert!(matches!(
            key_values("a=\"1"),
            Err(FieldsError::Unterminated(_))
        ));
        assert_eq!(key_values("").unwrap(), vec![]);
    }
}
