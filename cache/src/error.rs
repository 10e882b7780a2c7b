//! The error of the cache's ref API. Cloneable (sources behind `Arc`) because one
//! single-flight unlazy hands the same outcome to every waiter.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_llb::Digest;
use cairn_snapshot::SnapshotError;

use crate::content::ContentError;
use crate::flight::FlightError;
use crate::lock::LockError;
use crate::metadata::{MetadataError, RecordId};

/// Errors of the cache manager and its refs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// A lazy ref's files were asked for, and these blobs are neither in the content store
    /// nor covered by a descriptor handler. The solver finds handlers for them among the
    /// vertex's ancestors and retries.
    #[error("needs remote providers for {}", list(digests))]
    NeedsRemoteProviders { digests: Vec<Digest> },
    #[error("content store")]
    Content(#[from] ContentError),
    #[error("metadata")]
    Metadata(#[source] Arc<MetadataError>),
    #[error("snapshot {snapshot}: {op}")]
    Snapshot {
        op: &'static str,
        snapshot: String,
        #[source]
        source: Arc<SnapshotError>,
    },
    #[error("lock")]
    Lock(#[source] Arc<LockError>),
    /// The layer blob unpacked fine but its tar is not the one the image config promised.
    #[error("layer {blob}: uncompressed digest is {actual}, the image says {expected}")]
    DiffIdMismatch {
        blob: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("merge: {reason}")]
    BadMerge { reason: String },
    #[error("image {image}: {reason}")]
    BadImage { image: String, reason: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("record {record} does not exist")]
    NoSuchRecord { record: RecordId },
    /// The operation needs something of the record it does not have (a blob, a snapshot).
    #[error("record {record}: {reason}")]
    Unsupported { record: RecordId, reason: String },
    #[error("{what}")]
    Flight {
        what: String,
        #[source]
        source: FlightError,
    },
    #[error("blocking task for {what} failed: {message}")]
    Task { what: String, message: String },
}

fn list(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(Digest::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<MetadataError> for CacheError {
    fn from(e: MetadataError) -> Self {
        CacheError::Metadata(Arc::new(e))
    }
}

impl From<LockError> for CacheError {
    fn from(e: LockError) -> Self {
        CacheError::Lock(Arc::new(e))
    }
}

impl CacheError {
    pub(crate) fn snapshot(
        op: &'static str,
        snapshot: impl Into<String>,
    ) -> impl FnOnce(SnapshotError) -> CacheError {
        let snapshot = snapshot.into();
        move |source| CacheError::Snapshot {
            op,
            snapshot,
            source: Arc::new(source),
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> CacheError {
        let path = path.into();
        move |source| CacheError::Io {
            op,
            path,
            source: Arc::new(source),
        }
    }

    pub(crate) fn task(
        what: impl Into<String>,
    ) -> impl FnOnce(tokio::task::JoinError) -> CacheError {
        let what = what.into();
        move |e| CacheError::Task {
            what,
            message: e.to_string(),
        }
    }
}
