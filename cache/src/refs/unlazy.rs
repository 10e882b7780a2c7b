//! Unlazy: giving a record's snapshot files on disk, fetching and extracting lazy layers
//! and materialising merges on the way.
//!
//! Every caller joins one single-flight per missing snapshot of the record's tree (keyed by
//! snapshot id), all in parallel, so every caller sees every layer's progress and a
//! cancelled caller leaves the others' work running. One record's work:
//!
//! 1. Take the snapshot's lock (`crate::lock`): another process building the same snapshot
//!    makes us wait and then find it done.
//! 2. A layer: in parallel, fetch its blob into the content store (verified) and apply it
//!    into a private staging dir in one blocking task, checking its diff id; *and* wait for
//!    its parent (by joining the parent's flight). Then publish the staged dir on the parent.
//!    A merge: wait for every input, then have the snapshotter merge them. A diff: wait for
//!    both inputs, then build its layer from their difference (`diff_snapshot`).
//! 3. The rename into place is the commit point; the snapshot's row is recorded after it. A
//!    snapshot found already on disk with no row (a crash between the two) is complete by
//!    the snapshotter's contract and is simply recorded.
//!
//! Dropping the work (every caller gone) sets the extraction's cancel flag, so the blocking
//! task stops between tar entries and its staging dir is deleted.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cairn_snapshot::{ApplyOptions, Cancel, SnapshotError, SnapshotId, StagedLayer, apply_layer};
use futures::future::{BoxFuture, FutureExt, try_join_all};

use super::diff_snapshot::diff_snapshot;
use super::handlers::{DescHandlers, LayerPhase, LayerProgress};
use super::manager::Inner;
use crate::error::CacheError;
use crate::flight::ProgressSink;
use crate::lock::{FileLock, LockMode};
use crate::metadata::{LayerBlob, Record, RecordKind};

/// The records `top` is built from (itself included), each once, parents before children.
pub(crate) fn record_tree(mgr: &Inner, top: &Record) -> Result<Vec<Record>, CacheError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // Iterative post-order walk, so a chain of thousands of layers cannot overflow a stack.
    let mut stack = vec![(top.clone(), false)];
    while let Some((rec, expanded)) = stack.pop() {
        if expanded {
            if seen.insert(rec.id.clone()) {
                out.push(rec);
            }
            continue;
        }
        if seen.contains(&rec.id) {
            continue;
        }
        let parents = parents_of(mgr, &rec)?;
        stack.push((rec, true));
        for p in parents.into_iter().rev() {
            if !seen.contains(&p.id) {
                stack.push((p, false));
            }
        }
    }
    Ok(out)
}

/// The records whose snapshots `rec`'s snapshot is built on.
fn parents_of(mgr: &Inner, rec: &Record) -> Result<Vec<Record>, CacheError> {
    let ids: Vec<_> = match rec.kind {
        RecordKind::Layer | RecordKind::Mutable => rec.parent.iter().cloned().collect(),
        RecordKind::Merge | RecordKind::Diff => rec.parents.clone(),
    };
    ids.iter()
        .map(|id| {
            mgr.db
                .record(id)?
                .ok_or_else(|| CacheError::NoSuchRecord { record: id.clone() })
        })
        .collect()
}

pub(crate) async fn unlazy(
    mgr: Arc<Inner>,
    top: Record,
    handlers: DescHandlers,
) -> Result<(), CacheError> {
    if mgr.db.snapshot_committed(&top.snapshot_id)? {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut needs = Vec::new();
    for rec in record_tree(&mgr, &top)? {
        if mgr.db.snapshot_committed(&rec.snapshot_id)? {
            continue;
        }
        match (&rec.kind, &rec.blob) {
            (RecordKind::Layer, Some(blob)) => {
                let digest = &blob.descriptor.digest;
                if !mgr.content.contains(digest) && handlers.get(digest).is_none() {
                    needs.push(digest.clone());
                }
            }
            (RecordKind::Merge | RecordKind::Diff, _) => {}
            _ => {
                return Err(CacheError::Unsupported {
                    record: rec.id.clone(),
                    reason: "has neither files on disk nor a blob to extract".into(),
                });
            }
        }
        missing.push(rec);
    }
    if !needs.is_empty() {
        return Err(CacheError::NeedsRemoteProviders { digests: needs });
    }
    try_join_all(
        missing
            .into_iter()
            .map(|rec| record_flight(Arc::clone(&mgr), rec, handlers.clone())),
    )
    .await?;
    Ok(())
}

/// Joins (or starts) the flight that gives `rec`'s snapshot files on disk.
fn record_flight(
    mgr: Arc<Inner>,
    rec: Record,
    handlers: DescHandlers,
) -> BoxFuture<'static, Result<(), CacheError>> {
    async move {
        let key = rec.snapshot_id.clone();
        let flight = mgr.layers.clone();
        let report = handlers.clone();
        let what = format!("unlazy of snapshot {key}");
        flight
            .run_with_progress(
                key,
                move |sink| record_work(mgr, rec, handlers, sink),
                move |p| report.report(p),
            )
            .await
            .unwrap_or_else(|source| Err(CacheError::Flight { what, source }))
    }
    .boxed()
}

/// Sets a flag when dropped: how an aborted flight tells its blocking task to stop.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn record_work(
    mgr: Arc<Inner>,
    rec: Record,
    handlers: DescHandlers,
    sink: ProgressSink<LayerProgress>,
) -> Result<(), CacheError> {
    let sid = rec.snapshot_id.clone();
    let report = |phase, done| {
        if let Some(blob) = &rec.blob {
            sink.send(LayerProgress {
                digest: blob.descriptor.digest.clone(),
                phase,
                done,
                total: blob.descriptor.size,
            });
        }
    };
    let total = rec.blob.as_ref().map_or(0, |b| b.descriptor.size);
    if mgr.db.snapshot_committed(&sid)? {
        report(LayerPhase::Done, total);
        return Ok(());
    }
    let lock_path = mgr.snapshot_lock_path(&sid);
    let lock = match FileLock::try_acquire(&lock_path, LockMode::Exclusive)? {
        Some(l) => l,
        None => {
            report(LayerPhase::Waiting, 0);
            FileLock::acquire(&lock_path, LockMode::Exclusive).await?
        }
    };
    if mgr.db.snapshot_committed(&sid)? {
        lock.remove_and_release()?;
        report(LayerPhase::Done, total);
        return Ok(());
    }
    let parents = parents_of(&mgr, &rec)?;
    let parent_sids: Vec<String> = parents.iter().map(|p| p.snapshot_id.clone()).collect();
    let parents_done = try_join_all(
        parents
            .into_iter()
            .map(|p| record_flight(Arc::clone(&mgr), p, handlers.clone())),
    );
    let sn = Arc::clone(&mgr.snapshotter);
    let size = match (&rec.kind, &rec.blob) {
        (RecordKind::Layer, Some(blob)) => {
            let staged = stage_layer(&mgr, blob, &sid, &handlers, &report);
            let (_, staged) = futures::try_join!(parents_done, staged)?;
            let task_sid = sid.clone();
            let parent = parent_sids.first().cloned();
            tokio::task::spawn_blocking(move || -> Result<Option<u64>, SnapshotError> {
                let name = SnapshotId::new(&task_sid)?;
                let parent = parent.map(SnapshotId::new).transpose()?;
                match sn.commit_staged(staged, &name, parent.as_ref()) {
                    Ok(()) | Err(SnapshotError::Exists(_)) => {}
                    Err(e) => return Err(e),
                }
                Ok(sn.usage(&name).ok().map(|u| u.bytes))
            })
            .await
            .map_err(CacheError::task(format!("publishing snapshot {sid}")))?
            .map_err(CacheError::snapshot("publishing", &sid))?
        }
        (RecordKind::Merge, _) => {
            parents_done.await?;
            let task_sid = sid.clone();
            tokio::task::spawn_blocking(move || -> Result<Option<u64>, SnapshotError> {
                let key = SnapshotId::new(&task_sid)?;
                let inputs = parent_sids
                    .into_iter()
                    .map(SnapshotId::new)
                    .collect::<Result<Vec<_>, _>>()?;
                match sn.merge(&key, &inputs) {
                    Ok(()) | Err(SnapshotError::Exists(_)) => {}
                    Err(e) => return Err(e),
                }
                Ok(sn.usage(&key).ok().map(|u| u.bytes))
            })
            .await
            .map_err(CacheError::task(format!("merging into snapshot {sid}")))?
            .map_err(CacheError::snapshot("merging into", &sid))?
        }
        (RecordKind::Diff, _) => {
            parents_done.await?;
            diff_snapshot(&mgr, &rec, &parent_sids).await?
        }
        _ => {
            return Err(CacheError::Unsupported {
                record: rec.id.clone(),
                reason: "has neither files on disk nor a blob to extract".into(),
            });
        }
    };
    mgr.db.commit_snapshot(&sid, size)?;
    lock.remove_and_release()?;
    report(LayerPhase::Done, total);
    Ok(())
}

/// Fetches the layer's blob if needed and applies it into a fresh staging dir, in one
/// blocking task that stops when the returned future is dropped.
async fn stage_layer(
    mgr: &Inner,
    blob: &LayerBlob,
    sid: &str,
    handlers: &DescHandlers,
    report: &(impl Fn(LayerPhase, u64) + Sync),
) -> Result<StagedLayer, CacheError> {
    let digest = &blob.descriptor.digest;
    if !mgr.content.contains(digest) {
        let handler = handlers
            .get(digest)
            .ok_or_else(|| CacheError::NeedsRemoteProviders {
                digests: vec![digest.clone()],
            })?;
        report(LayerPhase::Downloading, 0);
        mgr.content
            .fetch(&blob.descriptor, Arc::clone(&handler.provider), |p| {
                report(LayerPhase::Downloading, p.done)
            })
            .await?;
        if !handler.image_ref.is_empty() {
            mgr.db.add_blob_source(digest, &handler.image_ref)?;
        }
    }
    report(LayerPhase::Extracting, blob.descriptor.size);
    let flag = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(Arc::clone(&flag));
    let (sn, content) = (Arc::clone(&mgr.snapshotter), mgr.content.clone());
    let (task_blob, task_sid) = (blob.clone(), sid.to_owned());
    tokio::task::spawn_blocking(move || -> Result<StagedLayer, CacheError> {
        let staged = sn
            .stage_layer()
            .map_err(CacheError::snapshot("staging", &task_sid))?;
        let file = content.open_blob(&task_blob.descriptor.digest)?;
        let opts = ApplyOptions::staged().with_cancel(Cancel::from_flag(flag));
        let stats = apply_layer(file, &staged.path(), &opts).map_err(|e| {
            CacheError::snapshot("extracting layer into", &task_sid)(SnapshotError::from(e))
        })?;
        if stats.diff_id != task_blob.diff_id {
            return Err(CacheError::DiffIdMismatch {
                blob: task_blob.descriptor.digest.clone(),
                expected: task_blob.diff_id.clone(),
                actual: stats.diff_id,
            });
        }
        Ok(staged)
    })
    .await
    .map_err(CacheError::task(format!("extracting {digest}")))?
}
