//! Errors at the solver's boundary.
//!
//! Two layers: [`OpError`] is what one op says went wrong while it worked; [`SolveError`]
//! is what a solve returns, and always names the vertex the failure belongs to, so a
//! user reading `[stage-2 3/5] RUN make: ...` knows which step to look at. Both are cheap
//! to clone (sources sit behind `Arc`) because one failure is handed to every solve that
//! shared the failing vertex.

use std::fmt;
use std::sync::Arc;

use cairn_llb::Digest;

use crate::key::CacheKey;

/// What an op reports when its work fails.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpError {
    /// The op needs the bytes of lazy results whose remote providers it was not given.
    /// The engine answers this by walking the vertex's ancestors for cache options keyed
    /// by [`crate::cache_opts::desc_handler_key`] of each digest, and retries once.
    #[error("needs remote providers for {}", join_digests(.0))]
    NeedsRemoteProviders(Vec<Digest>),
    /// The op ran and failed; `log_tail` holds the last lines of its output, if any.
    #[error("{message}")]
    Failed {
        message: String,
        log_tail: Vec<String>,
    },
    /// A failure from a lower layer (the cache, the file system, the runtime).
    #[error(transparent)]
    Other(Arc<dyn std::error::Error + Send + Sync>),
    /// The op noticed its cancellation token and stopped.
    #[error("cancelled")]
    Cancelled,
}

impl OpError {
    /// Wraps any error from a lower layer.
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> OpError {
        OpError::Other(Arc::new(e))
    }

    /// A plain failure message without output.
    pub fn failed(message: impl Into<String>) -> OpError {
        OpError::Failed {
            message: message.into(),
            log_tail: Vec::new(),
        }
    }
}

fn join_digests(d: &[Digest]) -> String {
    let parts: Vec<&str> = d.iter().map(Digest::as_str).collect();
    format!("[{}]", parts.join(", "))
}

/// Failure of a cache key storage or result store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The stored result `id` no longer exists (pruned); the engine treats it as a miss.
    #[error("result {id} is not in the store")]
    NotFound { id: String },
    /// The backend failed while reading or writing `key`.
    #[error("cache storage failed for key {key}")]
    Backend {
        key: String,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a solve produced no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SolveError {
    /// A vertex failed; `name` is its user-facing description.
    #[error("{}", VertexFailure { name, digest, source, log_tail })]
    Vertex {
        name: String,
        digest: Digest,
        #[source]
        source: OpError,
        /// The last lines the vertex wrote to its progress log (capped), for exec errors.
        log_tail: Vec<String>,
    },
    /// The cache key storage or result store failed for a vertex.
    #[error("cache lookup for [{name}] (key {key}) failed")]
    Storage {
        name: String,
        key: CacheKey,
        #[source]
        source: StorageError,
    },
    /// An op returned fewer results than a consumer asked for.
    #[error("[{name}] produced {produced} outputs but output {wanted} was requested")]
    MissingOutput {
        name: String,
        produced: usize,
        wanted: u32,
    },
    /// The requested output vertex is not in the graph.
    #[error("vertex {0:?} is not part of this graph")]
    UnknownVertex(crate::graph::VertexId),
    /// The task working on a vertex panicked (a bug in an op); the solve stops cleanly.
    #[error("internal error: the work of [{name}] panicked")]
    Panicked {
        name: String,
        digest: Option<Digest>,
    },
    /// The solve was cancelled by its caller, or a sibling failure cancelled this part.
    #[error("solve cancelled")]
    Cancelled,
}

struct VertexFailure<'a> {
    name: &'a str,
    digest: &'a Digest,
    source: &'a OpError,
    log_tail: &'a [String],
}

impl fmt::Display for VertexFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.digest, self.source)?;
        let tail: &[String] = match self.source {
            OpError::Failed { log_tail, .. } if !log_tail.is_empty() => log_tail,
            _ => self.log_tail,
        };
        if !tail.is_empty() {
            f.write_str("\nlast output:")?;
            for line in tail {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl From<cairn_cache::CacheError> for OpError {
    /// Keeps the cache's "needs remote providers" answer recognisable, so the engine can
    /// walk the ancestors for descriptor handlers and retry; anything else is a failure
    /// from below.
    fn from(e: cairn_cache::CacheError) -> OpError {
        match e {
            cairn_cache::CacheError::NeedsRemoteProviders { digests } => {
                OpError::NeedsRemoteProviders(digests)
            }
            other => OpError::other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_needs_remote_providers_maps_to_the_engine_variant() {
        let d = Digest::of_bytes(b"layer");
        let op: OpError = cairn_cache::CacheError::NeedsRemoteProviders {
            digests: vec![d.clone()],
        }
        .into();
        assert!(matches!(op, OpError::NeedsRemoteProviders(ref ds) if ds == &[d]));
    }

    #[test]
    fn vertex_errors_name_the_step_and_show_the_output_tail() {
        let e = SolveError::Vertex {
            name: "[stage-2 3/5] RUN make".into(),
            digest: Digest::of_bytes(b"x"),
            source: OpError::failed("exit code: 2"),
            log_tail: vec!["cc: error".into()],
        };
        let msg = e.to_string();
        assert!(msg.starts_with("[stage-2 3/5] RUN make (sha256:"), "{msg}");
        assert!(
            msg.ends_with(": exit code: 2\nlast output:\n  cc: error"),
            "{msg}"
        );
    }
}
