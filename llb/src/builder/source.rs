//! Source ops: container images, local directories, and any other identifier.

use std::collections::BTreeMap;

use crate::pb::{self, OpKind, OpMetadata, Platform};

use super::state::{Output, State, Vertex, cap};

/// How an image reference is resolved (`image.resolvemode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResolveMode {
    /// Use a local copy if there is one, else pull.
    #[default]
    Default,
    /// Always ask the registry.
    ForcePull,
    /// Only use local copies.
    PreferLocal,
}

impl ResolveMode {
    fn as_attr(self) -> &'static str {
        match self {
            ResolveMode::Default => "default",
            ResolveMode::ForcePull => "pull",
            ResolveMode::PreferLocal => "local",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ImageOptions {
    /// Platform to pull (default: the host's).
    pub platform: Option<Platform>,
    /// Written only when not `Default`, as the Go client does.
    pub resolve_mode: ResolveMode,
    /// Use only the first N layers.
    pub layer_limit: Option<u32>,
    /// Cache record type (`image.recordtype`).
    pub record_type: Option<String>,
}

/// A container image, e.g. `image("busybox")` → `docker-image://docker.io/library/busybox:latest`.
pub fn image(reference: &str) -> State {
    image_with(reference, ImageOptions::default())
}

/// A container image with options.
pub fn image_with(reference: &str, opts: ImageOptions) -> State {
    let mut metadata = OpMetadata::default();
    cap(&mut metadata, "source.image");
    let mut attrs = BTreeMap::new();
    if opts.resolve_mode != ResolveMode::Default {
        attrs.insert(
            "image.resolvemode".to_owned(),
            opts.resolve_mode.as_attr().to_owned(),
        );
        if opts.resolve_mode == ResolveMode::ForcePull {
            cap(&mut metadata, "source.image.resolvemode");
        }
    }
    if let Some(t) = opts.record_type {
        attrs.insert("image.recordtype".to_owned(), t);
    }
    if let Some(n) = opts.layer_limit {
        attrs.insert("image.layerlimit".to_owned(), n.to_string());
        cap(&mut metadata, "source.image.layerlimit");
    }
    let identifier = format!("docker-image://{}", normalize_image_ref(reference));
    let platform = opts.platform.unwrap_or_else(Platform::host);
    let state = source_op(identifier, attrs, Some(platform.clone()), metadata);
    state.platform(platform)
}

/// Options of a local directory source (`local://NAME`).
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// Only these patterns are transferred.
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    /// Paths (and their symlink targets) to transfer, for a minimal context.
    pub follow_paths: Vec<String>,
    /// Lets transfers of the same directory under different names share a cache.
    pub shared_key_hint: Option<String>,
    pub session_id: Option<String>,
    /// `local.unique`, written when there is no session. The Go client uses a random ID;
    /// cairn defaults to the empty string so the bytes are deterministic.
    pub unique_id: Option<String>,
    /// `local.differ`: `none` or `metadata`.
    pub differ: Option<String>,
}

/// A directory the client provides, e.g. `local("context", …)`.
pub fn local(name: &str, opts: LocalOptions) -> State {
    let mut metadata = OpMetadata::default();
    let mut attrs = BTreeMap::new();
    // Go's json.Marshal of a string slice, HTML-escaped as Go does.
    let json_list =
        |v: &[String]| crate::dump::go_json_escape(&serde_json::to_string(v).unwrap_or_default());
    if let Some(s) = &opts.session_id {
        attrs.insert("local.session".to_owned(), s.clone());
        cap(&mut metadata, "source.local.sessionid");
    }
    if !opts.include_patterns.is_empty() {
        attrs.insert(
            "local.includepattern".to_owned(),
            json_list(&opts.include_patterns),
        );
        cap(&mut metadata, "source.local.includepatterns");
    }
    if !opts.follow_paths.is_empty() {
        attrs.insert(
            "local.followpaths".to_owned(),
            json_list(&opts.follow_paths),
        );
        cap(&mut metadata, "source.local.followpaths");
    }
    if !opts.exclude_patterns.is_empty() {
        attrs.insert(
            "local.excludepatterns".to_owned(),
            json_list(&opts.exclude_patterns),
        );
        cap(&mut metadata, "source.local.excludepatterns");
    }
    if let Some(h) = &opts.shared_key_hint {
        attrs.insert("local.sharedkeyhint".to_owned(), h.clone());
        cap(&mut metadata, "source.local.sharedkeyhint");
    }
    if let Some(d) = &opts.differ {
        attrs.insert("local.differ".to_owned(), d.clone());
    }
    cap(&mut metadata, "source.local");
    if opts.session_id.is_none() {
        attrs.insert(
            "local.unique".to_owned(),
            opts.unique_id.clone().unwrap_or_default(),
        );
        cap(&mut metadata, "source.local.unique");
    }
    // Local sources are not platform specific.
    source_op(format!("local://{name}"), attrs, None, metadata)
}

/// Any source identifier (`git://…`, `https://…`, `oci-layout://…`) with raw attributes.
/// Only `docker-image://` and `oci-layout://` sources carry a platform, as in BuildKit.
pub fn source(
    identifier: &str,
    attrs: BTreeMap<String, String>,
    platform: Option<Platform>,
) -> State {
    let specific =
        identifier.starts_with("docker-image://") || identifier.starts_with("oci-layout://");
    let platform = if specific {
        Some(platform.unwrap_or_else(Platform::host))
    } else {
        None
    };
    source_op(
        identifier.to_owned(),
        attrs,
        platform,
        OpMetadata::default(),
    )
}

fn source_op(
    identifier: String,
    attrs: BTreeMap<String, String>,
    platform: Option<Platform>,
    metadata: OpMetadata,
) -> State {
    let op = pb::Op {
        op: Some(OpKind::Source(pb::SourceOp { identifier, attrs })),
        platform,
        constraints: Some(pb::WorkerConstraints::default()),
        ..Default::default()
    };
    State::from_output(Output {
        vertex: Vertex::new(op, Vec::new(), metadata),
        index: 0,
    })
}

/// Docker's short-name normalisation: `busybox` → `docker.io/library/busybox:latest`;
/// a reference without tag or digest gets `:latest`.
pub(crate) fn normalize_image_ref(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let (first, rest) = match name.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (name, None),
    };
    let is_domain = |s: &str| s.contains('.') || s.contains(':') || s == "localhost";
    let mut full = match rest {
        Some(rest) if is_domain(first) => format!("{first}/{rest}"),
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    };
    if let Some(path) = full.strip_prefix("index.docker.io/") {
        full = format!("docker.io/{path}");
    }
    let last = full.rsplit('/').next().unwrap_or("");
    let has_tag = last.contains(':');
    match digest {
        Some(d) => format!("{full}@{d}"),
        None if has_tag => full,
        None => format!("{full}:latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_image_ref as n;

    #[test]
    fn image_references_normalise_like_docker() {
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            n("127.0.0.1:5000/library/busybox:latest"),
            "127.0.0.1:5000/library/busybox:latest"
        );
        assert_eq!(n("localhost/x"), "localhost/x:latest");
        assert_eq!(n("ghcr.io/a/b@sha256:00"), "ghcr.io/a/b@sha256:00");
        assert_eq!(n("127.0.0.1:5000/x"), "127.0.0.1:5000/x:latest");
    }
}
