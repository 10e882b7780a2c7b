//! Immutable refs: a leased handle on a finished record. Clones share one lease; the lease
//! is released when the last clone drops, after which the record is collectable unless
//! something else (another ref, a child's ref, a named lease) still reaches it.

use std::sync::Arc;

use cairn_snapshot::{Mounts, SnapshotId};

use super::diff::{diff_inputs, is_one_layer};
use super::handlers::DescHandlers;
use super::manager::Inner;
use super::manager::Inner as ManagerInner;
use super::remote::{Remote, remote_of};
use super::unlazy::unlazy;
use crate::error::CacheError;
use crate::metadata::{LeaseId, Record, RecordId, RecordKind};

/// A leased, immutable result.
#[derive(Clone)]
pub struct ImmutableRef {
    handle: Arc<Handle>,
}

struct Handle {
    mgr: Arc<Inner>,
    record: Record,
    lease: LeaseId,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.mgr.db.release_lease(self.lease) {
            // The lease carries this process's owner id, so the next sweep after this
            // process exits releases it anyway.
            tracing::warn!(record = %self.record.id, error = %e, "releasing lease");
        }
    }
}

impl std::fmt::Debug for ImmutableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImmutableRef")
            .field("id", &self.handle.record.id)
            .field("kind", &self.handle.record.kind)
            .finish_non_exhaustive()
    }
}

impl ImmutableRef {
    pub(crate) fn new(mgr: Arc<Inner>, record: Record, lease: LeaseId) -> ImmutableRef {
        ImmutableRef {
            handle: Arc::new(Handle { mgr, record, lease }),
        }
    }

    pub(crate) fn manager(&self) -> &Arc<Inner> {
        &self.handle.mgr
    }

    pub fn id(&self) -> &RecordId {
        &self.handle.record.id
    }

    /// The record as it was when this ref was made (its `local` flag may be stale: use
    /// [`ImmutableRef::is_lazy`]).
    pub fn record(&self) -> &Record {
        &self.handle.record
    }

    /// The snapshot holding this ref's files once it is local.
    pub fn snapshot_id(&self) -> Result<SnapshotId, CacheError> {
        let sid = &self.handle.record.snapshot_id;
        SnapshotId::new(sid).map_err(CacheError::snapshot("naming", sid))
    }

    /// The layer records this ref's files are made of, bottom first: a layer's chain is
    /// its parent's plus itself; a merge's is its inputs' chains one after the other (so a
    /// merged ref exports its inputs' blobs as they are); a diff is one layer (see
    /// `refs::diff`).
    pub fn layer_chain(&self) -> Result<Vec<Record>, CacheError> {
        // Read afresh: an export may have given the layer its blob since this ref was made.
        let top = self
            .handle
            .mgr
            .db
            .record(self.id())?
            .unwrap_or_else(|| self.handle.record.clone());
        layer_chain_of(&self.handle.mgr, &top)
    }

    /// Whether this ref's snapshot still has to be made (fetched, extracted or merged).
    pub fn is_lazy(&self) -> Result<bool, CacheError> {
        Ok(!self
            .handle
            .mgr
            .db
            .snapshot_committed(&self.handle.record.snapshot_id)?)
    }

    /// Gives this ref's snapshot files on disk: fetches missing blobs through `handlers`,
    /// verifies them, extracts all layers in parallel (one blocking task each), commits
    /// them bottom-up and materialises merges. Fails with
    /// [`CacheError::NeedsRemoteProviders`] before doing any work if some blob is neither
    /// stored nor covered by a handler.
    ///
    /// Concurrent calls (any refs, any processes) build each snapshot once; cancelling one
    /// caller does not cancel the others.
    pub async fn extract(&self, handlers: &DescHandlers) -> Result<(), CacheError> {
        unlazy(
            Arc::clone(&self.handle.mgr),
            self.handle.record.clone(),
            handlers.clone(),
        )
        .await?;
        self.handle.mgr.db.touch(self.id())?;
        Ok(())
    }

    /// How to mount this ref read-only, extracting it first if it is lazy.
    pub async fn mounts(&self, handlers: &DescHandlers) -> Result<Mounts, CacheError> {
        self.extract(handlers).await?;
        let sn = Arc::clone(&self.handle.mgr.snapshotter);
        let sid = self.snapshot_id()?;
        let name = sid.to_string();
        tokio::task::spawn_blocking(move || sn.mounts(&sid))
            .await
            .map_err(CacheError::task(format!("mounting {name}")))?
            .map_err(CacheError::snapshot("mounting", name))
    }

    /// The layer descriptors of this ref and a provider for their bytes. Nothing is
    /// downloaded here: for a blob not in the content store, the provider streams from the
    /// handler's source when (and only when) someone reads it, so a push that mounts the
    /// blob across repositories never downloads it.
    pub fn get_remote(&self, handlers: &DescHandlers) -> Result<Remote, CacheError> {
        let chain = self.layer_chain()?;
        remote_of(&self.handle.mgr, &chain, handlers)
    }
}

/// See [`ImmutableRef::layer_chain`]. Walks layer parents iteratively (chains can be
/// thousands of layers deep); only merges nest by recursion.
pub(crate) fn layer_chain_of(mgr: &ManagerInner, top: &Record) -> Result<Vec<Record>, CacheError> {
    let mut above = Vec::new();
    let mut cur = top.clone();
    let below = loop {
        match cur.kind {
            RecordKind::Layer => {
                let parent = cur.parent.clone();
                above.push(cur);
                match parent {
                    None => break Vec::new(),
                    Some(p) => {
                        cur = mgr
                            .db
                            .record(&p)?
                            .ok_or(CacheError::NoSuchRecord { record: p })?;
                    }
                }
            }
            RecordKind::Merge => {
                let mut chain = Vec::new();
                for p in &cur.parents {
                    let input = mgr
                        .db
                        .record(p)?
                        .ok_or_else(|| CacheError::NoSuchRecord { record: p.clone() })?;
                    chain.extend(layer_chain_of(mgr, &input)?);
                }
                break chain;
            }
            RecordKind::Diff => {
                // One layer: the upper layer itself when it sits right on the lower input
                // (its blob is the diff), else the diff's own, computed blob.
                let (lower, upper) = diff_inputs(mgr, &cur)?;
                above.push(if is_one_layer(&lower, &upper) {
                    upper
                } else {
                    cur
                });
                break Vec::new();
            }
            other => {
                return Err(CacheError::Unsupported {
                    record: cur.id.clone(),
                    reason: format!("layer chains of {other:?} records are not implemented"),
                });
            }
        }
    };
    above.reverse();
    Ok(below.into_iter().chain(above).collect())
}
