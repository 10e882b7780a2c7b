//! Docker image references, parsed and normalised the way `docker pull` does.
//!
//! `busybox` is `docker.io/library/busybox:latest`; `host:5000/a/b:t@sha256:…` keeps both
//! tag and digest (the digest wins when resolving). A first path component is a registry
//! host only when it contains `.` or `:` or is `localhost`, as in Docker's
//! `splitDockerDomain`; otherwise the name lives on Docker Hub. Every part is validated
//! against the distribution grammar so a bad name fails here, with the reason, instead of
//! as an opaque 404 from a registry.

use std::fmt;
use std::str::FromStr;

use cairn_llb::{Digest, DigestError};

/// The registry Docker Hub names normalise to (and the key used in config files).
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves the Docker Hub API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A fully normalised image reference: a registry host, a repository path, and a tag
/// and/or a digest (at least one after [`Reference::parse`], which adds `latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    host: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference {reference:?}: repository name must be lowercase")]
    Uppercase { reference: String },
    #[error("image reference {reference:?}: invalid registry host {host:?}")]
    BadHost { reference: String, host: String },
    #[error(
        "image reference {reference:?}: invalid path component {component:?} (lowercase \
         letters and digits, separated by '.', '_', '__' or '-')"
    )]
    BadPathComponent {
        reference: String,
        component: String,
    },
    #[error(
        "image reference {reference:?}: invalid tag {tag:?} (1-128 of [A-Za-z0-9_.-], not \
         starting with '.' or '-')"
    )]
    BadTag { reference: String, tag: String },
    #[error("image reference {reference:?}: invalid digest")]
    BadDigest {
        reference: String,
        #[source]
        source: DigestError,
    },
    #[error("image reference {reference:?}: repository name is longer than 255 characters")]
    TooLong { reference: String },
    #[error(
        "image reference {reference:?}: a bare 64-character hex string is an image ID, not \
         a name"
    )]
    LooksLikeId { reference: String },
}

impl Reference {
    /// Parses and normalises `s`. Without tag or digest the tag becomes `latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// Parses and normalises `s` without adding a default tag (for contexts such as a
    /// repository to push into, or a cross-repo mount source).
    pub fn parse_named(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let err_ref = || s.to_owned();
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::LooksLikeId {
                reference: err_ref(),
            });
        }

        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|source| ReferenceError::BadDigest {
                    reference: err_ref(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/': a ':' before a '/' is a
        // host port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_owned()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(ReferenceError::BadTag {
                reference: err_ref(),
                tag: t.clone(),
            });
        }

        let (host, path) = split_domain(name);
        if !host_is_valid(&host) {
            return Err(ReferenceError::BadHost {
                reference: err_ref(),
                host,
            });
        }
        if path.is_empty() {
            return Err(ReferenceError::BadPathComponent {
                reference: err_ref(),
                component: String::new(),
            });
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                reference: err_ref(),
            });
        }
        for c in path.split('/') {
            if !valid_path_component(c) {
                return Err(ReferenceError::BadPathComponent {
                    reference: err_ref(),
                    component: c.to_owned(),
                });
            }
        }
        if host.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong {
                reference: err_ref(),
            });
        }
        Ok(Reference {
            host,
            repository: path,
            tag,
            digest,
        })
    }

    /// The registry host as users write it and config files key it (`docker.io`,
    /// `127.0.0.1:5000`). See [`Reference::api_host`] for the host to connect to.
    pub fn registry_host(&self) -> &str {
        &self.host
    }

    /// The host serving the registry API: Docker Hub's is not `docker.io`.
    pub fn api_host(&self) -> &str {
        api_host(&self.host)
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `host/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    /// What to ask the registry's manifest endpoint for: the digest when there is one,
    /// else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same repository with `digest` pinned (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::BadTag {
                reference: self.to_string(),
                tag: tag.into(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository on another host (used for mirrors).
    pub fn on_host(&self, host: &str) -> Reference {
        Reference {
            host: host.to_owned(),
            ..self.clone()
        }
    }

    /// Docker's short form for display: `busybox:latest` for Hub library images.
    pub fn familiar(&self) -> String {
        let mut s = if self.host == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            self.name()
        };
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_ref());
        s
    }
}

/// The host serving the registry API for a config/reference host name.
pub fn api_host(host: &str) -> &str {
    if host == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        host
    }
}

fn push_suffix(s: &mut String, tag: Option<&str>, digest: Option<&Digest>) {
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(d.as_str());
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_ref());
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

/// Splits off the registry host, normalising Docker Hub names.
fn split_domain(name: &str) -> (String, String) {
    let (host, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DOCKER_HUB.to_owned(), name.to_owned()),
    };
    let host = if host == "index.docker.io" {
        DOCKER_HUB.to_owned()
    } else {
        host
    };
    let path = if host == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    (host, path)
}

/// `domain-component(.domain-component)*(:port)?` or a bracketed IPv6 address.
fn host_is_valid(host: &str) -> bool {
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if host.starts_with('[') {
        return true;
    }
    !name.is_empty()
        && name.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
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

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn short_names_normalise_to_docker_hub_library() {
        let r = p("busybox");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.registry_host(), "docker.io");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(p("user/app:1.0").to_string(), "docker.io/user/app:1.0");
        assert_eq!(
            p("index.docker.io/library/alpine").to_string(),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(p("docker.io/alpine").repository(), "library/alpine");
    }

    #[test]
    fn host_port_tag_and_digest() {
        let dg = Digest::of_bytes(b"m");
        let r = p(&format!("127.0.0.1:5000/a/b-c:v1.2@{dg}"));
        assert_eq!(r.registry_host(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "a/b-c");
        assert_eq!(r.tag(), Some("v1.2"));
        assert_eq!(r.digest(), Some(&dg));
        assert_eq!(r.manifest_reference(), dg.to_string());
        let r = p("localhost/x");
        assert_eq!(r.registry_host(), "localhost");
        let r = p("localhost:5000/x");
        assert_eq!(
            (r.registry_host(), r.tag()),
            ("localhost:5000", Some("latest"))
        );
        let r = p(&format!("busybox@{dg}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{dg}"));
        let r = p("[::1]:5000/x:t");
        assert_eq!(r.registry_host(), "[::1]:5000");
        assert_eq!(
            p("reg.example.com/x").on_host("m:1").to_string(),
            "m:1/x:latest"
        );
    }

    #[test]
    fn parse_named_keeps_no_tag() {
        let r = Reference::parse_named("127.0.0.1:5000/a").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_reference(), "latest");
    }

    #[test]
    fn rejects_bad_references_with_reasons() {
        use ReferenceError as E;
        assert_eq!(Reference::parse(""), Err(E::Empty));
        assert!(matches!(
            Reference::parse("Busybox"),
            Err(E::Uppercase { .. })
        ));
        assert!(matches!(Reference::parse("a/b:"), Err(E::BadTag { .. })));
        assert!(matches!(Reference::parse("a/b:-x"), Err(E::BadTag { .. })));
        assert!(matches!(
            Reference::parse(&format!("a:{}", "t".repeat(129))),
            Err(E::BadTag { .. })
        ));
        assert!(matches!(
            Reference::parse("a@sha256:zz"),
            Err(E::BadDigest { .. })
        ));
        assert!(matches!(
            Reference::parse("a//b"),
            Err(E::BadPathComponent { .. })
        ));
        assert!(matches!(
            Reference::parse("a/b_"),
            Err(E::BadPathComponent { .. })
        ));
        assert!(matches!(
            Reference::parse("a/b___c"),
            Err(E::BadPathComponent { .. })
        ));
        assert!(matches!(
            Reference::parse("a/b.-c"),
            Err(E::BadPathComponent { .. })
        ));
        assert!(matches!(
            Reference::parse("host:port/x"),
            Err(E::BadHost { .. })
        ));
        assert!(matches!(
            Reference::parse("-bad.com/x"),
            Err(E::BadHost { .. })
        ));
        assert!(matches!(
            Reference::parse("h.com/"),
            Err(E::BadPathComponent { .. })
        ));
        assert!(matches!(
            Reference::parse(&"a".repeat(300)),
            Err(E::TooLong { .. })
        ));
        assert!(matches!(
            Reference::parse(&"ab".repeat(32)),
            Err(E::LooksLikeId { .. })
        ));
        // Valid separators.
        assert!(Reference::parse("a/b__c/d--e/f.g_h").is_ok());
        let msg = Reference::parse("Busybox").unwrap_err().to_string();
        assert!(
            msg.contains("Busybox") && msg.contains("lowercase"),
            "{msg}"
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "@", ":", "/", "a@", "[", "[::1", "[]:1/x", "a:b:c", "::/x", "é", "a/é:t", "x:@",
        ] {
            let _ = Reference::parse(s);
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = Reference::parse(&s);
        }

        // Without a host, a first path component containing '.' is read as a host (as
        // Docker does), so generated paths keep dots out of it.
        #[test]
        fn display_round_trips(
            host in proptest::option::of("[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z]{2,5})(:[0-9]{1,5})?"),
            path in "[a-z0-9]{1,8}([_-][a-z0-9]{1,8}){0,2}(/[a-z0-9]{1,8}([._-][a-z0-9]{1,8})?){0,2}",
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in proptest::option::of("[0-9a-f]{64}"),
        ) {
            let mut s = match &host { Some(h) => format!("{h}/{path}"), None => path.clone() };
            if let Some(t) = &tag { s.push(':'); s.push_str(t); }
            if let Some(d) = &digest { s.push_str("@sha256:"); s.push_str(d); }
            let r = Reference::parse(&s).unwrap();
            proptest::prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r.clone());
            proptest::prop_assert_eq!(r.tag().map(str::to_owned), tag.or(if digest.is_some() { None } else { Some("latest".to_owned()) }));
        }
    }
}
