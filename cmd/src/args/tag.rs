//! `-t NAME[:TAG]`: checked for the mistakes a registry would reject later, after the
//! whole build had run. Full reference parsing (defaults, `docker.io` normalisation)
//! happens where the image is exported.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("image name is empty")]
    Empty,
    #[error("image name {0:?} contains whitespace")]
    Whitespace(String),
    #[error("image name {name:?}: repository {repo:?} must be lowercase")]
    Uppercase { name: String, repo: String },
    #[error(
        "image name {name:?}: tag {tag:?} must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"
    )]
    BadTag { name: String, tag: String },
}

impl Tag {
    pub fn parse(s: &str) -> Result<Tag, TagError> {
        if s.is_empty() {
            return Err(TagError::Empty);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(TagError::Whitespace(s.to_owned()));
        }
        let name = s.split_once('@').map_or(s, |(n, _)| n);
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        // The registry host (before the first '/', when it looks like a host) may have
        // capitals; the repository path may not.
        let path = match repo.split_once('/') {
            Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
            _ => repo,
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(TagError::Uppercase {
                name: s.to_owned(),
                repo: repo.to_owned(),
            });
        }
        if let Some(tag) = tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(TagError::BadTag {
                    name: s.to_owned(),
                    tag: tag.to_owned(),
                });
            }
        }
        Ok(Tag(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_names() {
        for ok in [
            "app",
            "app:1.0",
            "localhost:5000/app:V1",
            "Registry.Example:5000/team/app",
            "app@sha256:abc",
            "a/b/c:latest",
        ] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_what_registries_reject() {
        assert_eq!(Tag::parse(""), Err(TagError::Empty));
        assert!(matches!(Tag::parse("my app"), Err(TagError::Whitespace(_))));
        assert!(matches!(
            Tag::parse("MyApp:1"),
            Err(TagError::Uppercase { .. })
        ));
        assert!(matches!(Tag::parse("app:"), Err(TagError::BadTag { .. })));
        assert!(matches!(Tag::parse("app:-x"), Err(TagError::BadTag { .. })));
        assert!(matches!(
            Tag::parse("app:a+b"),
            Err(TagError::BadTag { .. })
        ));
    }
}
