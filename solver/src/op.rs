//! The seam between the engine and the work: one [`Op`] per vertex.

use std::sync::Arc;

use cairn_llb::Digest;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::cache_opts::CacheOpts;
use crate::error::OpError;
use crate::progress::ProgressWriter;
use crate::result::ResultRef;

/// Computes a checksum of the part of an input's content an op reads (for `COPY src/ /app`
/// the bytes under `src/`), given the input's result and the dep's selector. Called only
/// when the definition-based key missed, so content is hashed only when it matters.
pub type ComputeDigest = Arc<
    dyn Fn(ResultRef, Option<String>) -> BoxFuture<'static, Result<Digest, OpError>> + Send + Sync,
>;

/// How one input takes part in the op's cache key.
#[derive(Clone, Default)]
pub struct Dep {
    /// The part of the input the op reads (BuildKit: a digest of the selected paths);
    /// two ops reading different parts of one input get different keys.
    pub selector: Option<String>,
    /// When set, the key uses a checksum of the input's content instead of its key.
    pub compute_digest: Option<ComputeDigest>,
}

impl std::fmt::Debug for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dep")
            .field("selector", &self.selector)
            .field("content_based", &self.compute_digest.is_some())
            .finish()
    }
}

/// An op's contribution to its cache key, plus options that are not part of the key.
#[derive(Debug, Clone, Default)]
pub struct CacheMap {
    /// The op's own identity; `None` means the op must never be cached (BuildKit's
    /// `random:` digests, e.g. a local source bound to one session).
    pub digest: Option<Digest>,
    /// One entry per input, in input order. Missing entries mean "key by the input's key".
    pub deps: Vec<Dep>,
    /// Data found later by descendants through the ancestor walk (descriptor handlers).
    pub opts: CacheOpts,
    /// The result depends on this machine's files (a local context's snapshot): it is
    /// never exported to a remote cache, where no other machine could use it.
    pub machine_local: bool,
}

impl CacheMap {
    /// A key of the op's digest and its inputs' keys alone (no selectors, no content
    /// checksums): BuildKit's for merge and diff, whose results depend on nothing else.
    pub fn of_digest(digest: Digest) -> CacheMap {
        CacheMap {
            digest: Some(digest),
            ..CacheMap::default()
        }
    }
}

/// What an op knows about itself while computing its cache map.
#[derive(Debug, Clone)]
pub struct OpCtx {
    pub vertex: Digest,
    pub name: String,
}

/// What an op gets while it runs.
#[derive(Debug, Clone)]
pub struct ExecCtx {
    pub vertex: Digest,
    pub name: String,
    /// Logs and sub-task statuses, fanned out to every solve waiting for this work.
    pub progress: ProgressWriter,
    /// Cancelled when no solve wants the result any more. Long blocking work checks it.
    pub cancel: CancellationToken,
    /// Options found on the vertex and its ancestors; filled on the retry after
    /// [`OpError::NeedsRemoteProviders`], else the vertex's own options.
    pub cache_opts: CacheOpts,
}

/// One kind of work. Implementations are shared between solves and must be `Sync`.
///
/// Contract: `cache_map` is cheap relative to `exec` and has no side effects a user can
/// see (it may resolve an image manifest). `exec` is called at most once per cache key
/// at a time in one process, gets one result per input in input order, and returns one
/// result per output. Dropping the `exec` future cancels it; it must leave nothing half
/// committed behind.
pub trait Op: Send + Sync {
    fn cache_map<'a>(&'a self, ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>>;

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        inputs: Vec<ResultRef>,
    ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>>;
}
