//! Errors of the content store. Cloneable (I/O errors are shared behind `Arc`) because one
//! single-flight ingest hands the same outcome to every waiter.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_llb::Digest;

use crate::flight::FlightError;
use crate::lock::LockError;

/// Where a provider's bytes could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The source does not have the blob.
    #[error("blob {digest} not found at {location}")]
    NotFound { digest: Digest, location: String },
    /// The source cannot start in the middle of the blob; the caller restarts from 0.
    #[error("blob {digest} at {location} cannot be read from offset {offset}")]
    RangeNotSupported {
        digest: Digest,
        location: String,
        offset: u64,
    },
    /// Transport failure (HTTP, registry protocol, local I/O) reading the blob.
    #[error("reading blob {digest} from {location}")]
    Transport {
        digest: Digest,
        location: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Errors of the content store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ContentError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("content store lock")]
    Lock(#[source] Arc<LockError>),
    /// The bytes received do not hash to the digest they were fetched as.
    #[error("blob {expected} failed verification: its {size} bytes hash to {actual}")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    /// The bytes received are not as long as the descriptor says. `actual` is a lower bound
    /// when the source sent too much (reading stops at the first byte too many).
    #[error("blob {digest} has the wrong size: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("fetching blob {digest}")]
    Provider {
        digest: Digest,
        #[source]
        source: Arc<ProviderError>,
    },
    #[error("blob {digest} is not in the content store")]
    NotFound { digest: Digest },
    #[error("ingest of blob {digest}")]
    Flight {
        digest: Digest,
        #[source]
        source: FlightError,
    },
}

impl ContentError {
    /// Shorthand keeping the operation and path that failed.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> ContentError {
        let path = path.into();
        move |source| ContentError::Io {
            op,
            path,
            source: Arc::new(source),
        }
    }
}

impl From<LockError> for ContentError {
    fn from(e: LockError) -> Self {
        ContentError::Lock(Arc::new(e))
    }
}
