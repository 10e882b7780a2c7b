//! Image references as Docker normalises them: `busybox` → `docker.io/library/busybox:latest`.

use crate::error::{Error, ErrorKind};

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `127.0.0.1:5000`, …
    pub domain: String,
    /// `library/busybox`.
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:…`.
    pub digest: Option<String>,
}

fn invalid(reference: &str, reason: &str) -> Error {
    Error::new(ErrorKind::InvalidReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    })
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl Reference {
    /// Parses and normalises `s` (Docker's `ParseNormalizedNamed`).
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(invalid(
                s,
                "repository name must have at least one component",
            ));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let (algo, hex) = d
                    .split_once(':')
                    .ok_or_else(|| invalid(s, "invalid digest format"))?;
                let hex_ok = !hex.is_empty()
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
                if algo.is_empty() || !hex_ok || (algo == "sha256" && hex.len() != 64) {
                    return Err(invalid(s, "invalid digest format"));
                }
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if last_slash.is_none_or(|sl| i > sl) => {
                (&name_tag[..i], Some(name_tag[i + 1..].to_string()))
            }
            _ => (name_tag, None),
        };
        if let Some(t) = &tag {
            let tb = t.as_bytes();
            let ok = !tb.is_empty()
                && tb.len() <= 128
                && (tb[0].is_ascii_alphanumeric() || tb[0] == b'_')
                && tb
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b));
            if !ok {
                return Err(invalid(s, "invalid tag format"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            "docker.io".to_string()
        } else {
            domain
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(s, "repository name must be lowercase"));
        }
        if !path.split('/').all(valid_component) {
            return Err(invalid(s, "invalid reference format"));
        }
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// Adds `latest` when there is neither a tag nor a digest (`TagNameOnly`).
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }

    /// Pins the reference to a manifest digest, keeping the tag.
    pub fn with_digest(mut self, digest: &str) -> Self {
        self.digest = Some(digest.to_string());
        self
    }

    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s)
            .expect("valid")
            .with_default_tag()
            .to_string()
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("user/img:1.0"), "docker.io/user/img:1.0");
        assert_eq!(
            norm("127.0.0.1:5000/library/busybox:latest"),
            "127.0.0.1:5000/library/busybox:latest"
        );
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(
            norm("index.docker.io/library/alpine"),
            "docker.io/library/alpine:latest"
        );
        let d = format!("alpine@sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&d),
            format!("docker.io/library/alpine@sha256:{}", "a".repeat(64))
        );
        assert!(Reference::parse("Busybox").is_err());
        assert!(Reference::parse("a b").is_err());
        assert!(Reference::parse("x:").is_err());
        assert!(Reference::parse("x@sha256:zz").is_err());
    }
}
