//! Layer blobs for committed layers: computed on first export from the snapshot diff
//! (the upper dir read directly where the snapshotter can), stored in the content store
//! and recorded on the layer, so later exports and pushes reuse the same bytes.
//!
//! A layer's blob is the diff from its parent's snapshot (a layer's, or a merge's that the
//! layer was built on) to its own, and a computed diff's is the diff of its two inputs'
//! snapshots, so every missing blob of a chain can be computed at once.
//! Its chain ids are then recorded bottom first, each from the stack the layer itself sits
//! on. That stack is not always the chain being exported: a layer inside a merge's second
//! input sits on that input's layers only, and its record must say so, because
//! `get_by_blob` reuses layer records by blob chain id.
//!
//! Concurrent callers (tasks or processes) may compute the same blob twice; the row update
//! only fills a record that has no blob yet, so the first blob wins and everyone reads it
//! back. With equal options the second computation produces the same bytes (layer tars and
//! gzip headers are deterministic), so nothing is left over. Cancelling a caller lets the
//! blocking tasks run to their end; a blob they stored without a row is the blob the next
//! call with the same options stores again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cairn_llb::Digest;
use cairn_snapshot::{LayerDescriptor, LayerWriteOptions, SnapshotId};

use super::chain::{UNCOMPRESSED_ANNOTATION, blob_chain_id, chain_id};
use super::diff::diff_inputs;
use super::immutable::{ImmutableRef, layer_chain_of};
use super::manager::Inner;
use crate::content::Committed;
use crate::descriptor::Descriptor;
use crate::error::CacheError;
use crate::metadata::{LayerBlob, Record, RecordId, RecordKind};

impl LayerBlob {
    /// The blob a layer writer just stored: its descriptor carries the diff id under
    /// containerd's annotation, as pulled layers' descriptors do.
    pub(crate) fn written(written: &LayerDescriptor, committed: Committed) -> LayerBlob {
        let mut descriptor =
            Descriptor::new(written.media_type(), committed.digest, committed.size);
        descriptor
            .annotations
            .insert(UNCOMPRESSED_ANNOTATION.into(), written.diff_id.to_string());
        LayerBlob {
            descriptor,
            diff_id: written.diff_id.clone(),
        }
    }
}

impl ImmutableRef {
    /// Makes sure every layer of this ref's chain has a blob, computing the missing ones
    /// in parallel (one blocking task each; compression is the slow part) and recording
    /// each with its chain ids. Returns the chain, bottom first, as now stored.
    ///
    /// `opts` apply only to blobs computed here: a layer that has a blob keeps it,
    /// whatever its compression (export converts when it must), and a lazy layer's
    /// snapshot is never read.
    pub async fn ensure_blobs(&self, opts: &LayerWriteOptions) -> Result<Vec<Record>, CacheError> {
        let mgr = Arc::clone(self.manager());
        let chain = self.layer_chain()?;
        // A record appears twice when a merge takes the same input twice; compute it once.
        let mut seen = HashSet::new();
        let missing: Vec<&Record> = chain
            .iter()
            .filter(|r| r.blob.is_none() && seen.insert(r.id.clone()))
            .collect();
        if missing.is_empty() {
            return Ok(chain);
        }
        let mut jobs = Vec::with_capacity(missing.len());
        for rec in missing {
            let (lower, upper) = diff_sides(&mgr, rec)?;
            jobs.push(compute_blob(
                Arc::clone(&mgr),
                rec.id.clone(),
                lower,
                upper,
                opts.clone(),
            ));
        }
        let mut computed: HashMap<RecordId, LayerBlob> = futures::future::try_join_all(jobs)
            .await?
            .into_iter()
            .collect();
        // Bottom first: a layer's chain ids need those of the layers below it, recorded
        // by the time it is reached.
        let mut out = Vec::with_capacity(chain.len());
        for rec in chain {
            let Some(blob) = computed.remove(&rec.id) else {
                // Had a blob already, or was recorded at its first place in the chain.
                out.push(match rec.blob {
                    Some(_) => rec,
                    None => mgr
                        .db
                        .record(&rec.id)?
                        .ok_or_else(|| CacheError::NoSuchRecord { record: rec.id })?,
                });
                continue;
            };
            // A computed diff is a layer on nothing (its `parent` is only its base).
            let (below, below_blobs) = match rec.kind {
                RecordKind::Diff => (None, None),
                _ => stack_ids(&mgr, rec.parent.as_ref())?,
            };
            let cid = chain_id(below.as_ref(), &blob.diff_id);
            let bcid = blob_chain_id(below_blobs.as_ref(), &blob);
            out.push(mgr.db.set_layer_blob(&rec.id, &blob, &cid, &bcid)?);
        }
        Ok(out)
    }
}

/// The snapshots `rec`'s blob is the diff of, lower (`None` for a base layer) and upper,
/// after checking that they are on disk: a layer's parent's and its own, a computed diff's
/// lower and upper inputs'.
fn diff_sides(mgr: &Inner, rec: &Record) -> Result<(Option<String>, String), CacheError> {
    let no_files = |record: &RecordId, what: &str| CacheError::Unsupported {
        record: record.clone(),
        reason: format!("{what}, so no layer blob can be computed"),
    };
    if rec.kind == RecordKind::Diff {
        let (lower, upper) = diff_inputs(mgr, rec)?;
        for side in [&lower, &upper] {
            if !mgr.db.snapshot_committed(&side.snapshot_id)? {
                return Err(no_files(
                    &rec.id,
                    &format!("its input {} has no files on disk", side.id),
                ));
            }
        }
        return Ok((Some(lower.snapshot_id), upper.snapshot_id));
    }
    if !mgr.db.snapshot_committed(&rec.snapshot_id)? {
        return Err(no_files(
            &rec.id,
            "has neither a blob nor its files on disk",
        ));
    }
    let Some(pid) = &rec.parent else {
        return Ok((None, rec.snapshot_id.clone()));
    };
    let parent = mgr
        .db
        .record(pid)?
        .ok_or_else(|| CacheError::NoSuchRecord {
            record: pid.clone(),
        })?;
    if !mgr.db.snapshot_committed(&parent.snapshot_id)? {
        return Err(no_files(
            &rec.id,
            &format!("its parent {pid} has no files on disk"),
        ));
    }
    Ok((Some(parent.snapshot_id), rec.snapshot_id.clone()))
}

/// Writes the diff `lower` → `upper` into the content store, in one blocking task.
async fn compute_blob(
    mgr: Arc<Inner>,
    id: RecordId,
    lower: Option<String>,
    upper: String,
    opts: LayerWriteOptions,
) -> Result<(RecordId, LayerBlob), CacheError> {
    let what = format!("computing the layer blob of snapshot {upper}");
    let blob = tokio::task::spawn_blocking(move || -> Result<LayerBlob, CacheError> {
        let snap = |s: &str| SnapshotId::new(s).map_err(CacheError::snapshot("naming", s));
        let lower = lower.as_deref().map(snap).transpose()?;
        let upper_id = snap(&upper)?;
        let mut writer = mgr.content.writer()?;
        let written = mgr
            .snapshotter
            .write_diff(lower.as_ref(), &upper_id, &mut writer, &opts)
            .map_err(CacheError::snapshot("writing the layer blob of", &upper))?;
        // The store hashes what it was given; it must be what the layer writer reports.
        let expected = Descriptor::new(written.media_type(), written.digest.clone(), written.size);
        let committed = writer.commit(Some(&expected))?;
        Ok(LayerBlob::written(&written, committed))
    })
    .await
    .map_err(CacheError::task(what))??;
    Ok((id, blob))
}

/// The chain id and blob chain id of the stack a layer sits on: its parent layer's own,
/// or, for a layer built on a merge (which records none), folded over the merge's layers.
/// `None`s for a base layer.
fn stack_ids(
    mgr: &Inner,
    parent: Option<&RecordId>,
) -> Result<(Option<Digest>, Option<Digest>), CacheError> {
    let Some(pid) = parent else {
        return Ok((None, None));
    };
    let parent = mgr
        .db
        .record(pid)?
        .ok_or_else(|| CacheError::NoSuchRecord {
            record: pid.clone(),
        })?;
    if let (RecordKind::Layer, Some(c), Some(b)) =
        (parent.kind, &parent.chain_id, &parent.blob_chain_id)
    {
        return Ok((Some(c.clone()), Some(b.clone())));
    }
    let (mut c, mut b) = (None, None);
    for layer in layer_chain_of(mgr, &parent)? {
        let blob = layer.blob.as_ref().ok_or_else(|| CacheError::Unsupported {
            record: layer.id.clone(),
            reason: "has no layer blob, which the chain ids of the layers above it need".into(),
        })?;
        c = Some(chain_id(c.as_ref(), &blob.diff_id));
        b = Some(blob_chain_id(b.as_ref(), blob));
    }
    Ok((c, b))
}
