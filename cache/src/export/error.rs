//! Errors of image assembly, exporters and pushes, each naming the blob, path or option.

use std::io;
use std::path::PathBuf;

use cairn_llb::Digest;

use crate::content::{ContentError, ProviderError};
use crate::registry::RegistryError;

/// A `--output` value that cannot be used, with the offending part named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("output spec is empty")]
    Empty,
    #[error("output spec {spec:?}: field {field:?} is not key=value")]
    NotKeyValue { spec: String, field: String },
    #[error("output spec {spec:?}: unterminated quote")]
    Unterminated { spec: String },
    #[error("output spec {spec:?} has no type= field")]
    MissingType { spec: String },
    #[error("unknown output type {got:?}; did you mean {suggestion:?}?")]
    UnknownTypeSuggest {
        got: String,
        suggestion: &'static str,
    },
    #[error("unknown output type {got:?} (known: local, tar, oci, docker, image, registry)")]
    UnknownType { got: String },
    #[error("output type {kind}: unknown key {key:?}")]
    UnknownKey { kind: &'static str, key: String },
    #[error("output type {kind}: key {key:?} given twice")]
    Duplicate { kind: &'static str, key: String },
    #[error("output type {kind}: {key}= is required")]
    Missing {
        kind: &'static str,
        key: &'static str,
    },
    #[error("output type {kind}: {key}={value:?} is not {expected}")]
    BadValue {
        kind: &'static str,
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("output type {kind}: {reason}")]
    Conflict { kind: &'static str, reason: String },
}

/// What went wrong assembling, writing or pushing an image.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("base image config is not a JSON object")]
    BaseConfigNotObject,
    #[error("base image config is not valid JSON")]
    BaseConfig(#[source] serde_json::Error),
    #[error("encoding the {what} as JSON")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("image config field {field:?}: {reason}")]
    BadConfigField { field: &'static str, reason: String },
    #[error("layer {index} ({digest}) has media type {media_type:?}, which is not a layer")]
    NotALayer {
        index: usize,
        digest: Digest,
        media_type: String,
    },
    #[error("layer {digest} decompresses to {actual}, not its declared diff id {declared}")]
    DiffIdMismatch {
        digest: Digest,
        declared: Digest,
        actual: Digest,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing export output {what}")]
    Output {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("reading blob {digest} for export")]
    Provider {
        digest: Digest,
        #[source]
        source: Box<ProviderError>,
    },
    #[error(
        "blob {expected} failed verification during export: got {size} bytes hashing to {actual}, expected {expected_size} bytes"
    )]
    BlobMismatch {
        expected: Digest,
        expected_size: u64,
        actual: Digest,
        size: u64,
    },
    #[error("content store")]
    Content(#[from] ContentError),
    #[error("computing layer from {upper}")]
    Layer {
        upper: PathBuf,
        #[source]
        source: Box<cairn_snapshot::SnapshotError>,
    },
    #[error("writing the files of {src} as a tar")]
    TarFiles {
        src: PathBuf,
        #[source]
        source: Box<cairn_snapshot::SnapshotError>,
    },
    #[error("{path} is a {kind}, which a local export cannot copy")]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("invalid image name {name:?}")]
    Name {
        name: String,
        #[source]
        source: Box<crate::reference::ReferenceError>,
    },
    #[error("pushing {what} to {target}")]
    Push {
        what: String,
        target: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("SOURCE_DATE_EPOCH={value:?} is not a non-negative integer number of seconds")]
    BadEpoch { value: String },
    #[error("output {kind} does not take an image; export the result's files instead")]
    NotAnImageOutput { kind: &'static str },
    #[error("push=true needs a registry client")]
    NoRegistryClient,
    #[error("export task failed")]
    Join(#[source] tokio::task::JoinError),
}

impl ExportError {
    /// Shorthand keeping the operation and path that failed.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> ExportError {
        let path = path.into();
        move |source| ExportError::Io { op, path, source }
    }
}
