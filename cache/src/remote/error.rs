//! What can go wrong reading or writing a remote cache, naming the cache and the part.

use crate::export::ExportError;
use crate::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum RemoteCacheError {
    #[error("cache {location}: {reason}")]
    Invalid { location: String, reason: String },
    #[error("cache {location}: not found")]
    NotFound { location: String },
    #[error("cache {location}: reading {what}")]
    Io {
        location: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cache {location}: {what}")]
    Registry {
        location: String,
        what: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("cache {location}: writing")]
    Write {
        location: String,
        #[source]
        source: Box<ExportError>,
    },
}

impl RemoteCacheError {
    pub(crate) fn invalid(location: &str, reason: impl Into<String>) -> RemoteCacheError {
        RemoteCacheError::Invalid {
            location: location.to_owned(),
            reason: reason.into(),
        }
    }
}
