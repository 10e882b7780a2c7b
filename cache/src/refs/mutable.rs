//! Mutable refs: a writable snapshot owned by this process, for an exec or file op to
//! write into. Committing turns it into an immutable layer; dropping it uncommitted
//! removes it (row first, then the snapshot).

use std::sync::Arc;

use cairn_snapshot::{Mounts, SnapshotId};

use super::immutable::ImmutableRef;
use super::manager::Inner;
use crate::error::CacheError;
use crate::lock::{FileLock, LockMode};
use crate::metadata::{Record, RecordId};

/// A writable scratch snapshot. Not shared, not cached; one writer (the caller).
pub struct MutableRef {
    mgr: Arc<Inner>,
    record: Record,
    mounts: Mounts,
    committed: bool,
}

impl std::fmt::Debug for MutableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutableRef")
            .field("id", &self.record.id)
            .field("snapshot", &self.record.snapshot_id)
            .finish_non_exhaustive()
    }
}

impl MutableRef {
    pub(crate) fn new(mgr: Arc<Inner>, record: Record, mounts: Mounts) -> MutableRef {
        MutableRef {
            mgr,
            record,
            mounts,
            committed: false,
        }
    }

    pub fn id(&self) -> &RecordId {
        &self.record.id
    }

    /// How to mount the writable snapshot. Unmount before [`MutableRef::commit`].
    pub fn mounts(&self) -> &Mounts {
        &self.mounts
    }

    /// Makes the snapshot immutable and returns a leased ref on the resulting layer. The
    /// layer has no blob yet; export computes one when it needs it.
    pub async fn commit(mut self) -> Result<ImmutableRef, CacheError> {
        let new_sid = format!("c-{}", RecordId::random());
        // Held from the snapshot's creation until its row commits, so no sweep takes the
        // fresh, not yet recorded snapshot for an orphan.
        let lock =
            FileLock::acquire(&self.mgr.snapshot_lock_path(&new_sid), LockMode::Exclusive).await?;
        let sn = Arc::clone(&self.mgr.snapshotter);
        let (key, name) = (self.record.snapshot_id.clone(), new_sid.clone());
        let size = tokio::task::spawn_blocking(move || {
            let key = SnapshotId::new(&key)?;
            let name = SnapshotId::new(&name)?;
            sn.commit(&name, &key)?;
            Ok::<_, cairn_snapshot::SnapshotError>(sn.usage(&name).ok().map(|u| u.bytes))
        })
        .await
        .map_err(CacheError::task(format!("committing snapshot {new_sid}")))?
        .map_err(CacheError::snapshot("committing", &new_sid))?;
        let (record, lease) =
            self.mgr
                .db
                .commit_mutable(&self.record.id, &new_sid, size, &self.mgr.owner)?;
        lock.remove_and_release()?;
        self.committed = true;
        Ok(ImmutableRef::new(Arc::clone(&self.mgr), record, lease))
    }
}

impl Drop for MutableRef {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Row first, files after. If this fails, the record stays incomplete under this
        // process's owner id and the next sweep after this process exits removes it.
        match self.mgr.db.delete_record(&self.record.id) {
            Ok(removed) => {
                if let Err(e) = self.mgr.remove_files(&removed) {
                    tracing::warn!(record = %self.record.id, error = %e, "removing abandoned snapshot");
                }
            }
            Err(e) => {
                tracing::warn!(record = %self.record.id, error = %e, "removing abandoned record")
            }
        }
    }
}
