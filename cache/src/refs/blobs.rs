//! Layer blobs for committed layers: computed on first export from the snapshot diff
//! (the upper dir read directly where the snapshotter can), stored in the content store
//! and recorded on the layer, so later exports and pushes reuse the same bytes.

use std::sync::Arc;

use cairn_snapshot::{LayerDescriptor, LayerWriteOptions, SnapshotId};

use crate::content::Committed;

use super::chain::{UNCOMPRESSED_ANNOTATION, blob_chain_id, chain_id};
use super::immutable::ImmutableRef;
use crate::descriptor::Descriptor;
use crate::error::CacheError;
use crate::metadata::{LayerBlob, Record};

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
    /// in parallel (one blocking task each; compression is the slow part). Returns the
    /// chain, bottom first, with every blob and chain id filled in.
    pub async fn ensure_blobs(&self, opts: &LayerWriteOptions) -> Result<Vec<Record>, CacheError> {
        let mgr = Arc::clone(self.manager());
        let chain = self.layer_chain()?;
        let mut jobs = Vec::new();
        for (i, rec) in chain.iter().enumerate() {
            if rec.blob.is_some() {
                continue;
            }
            let lower = match &rec.parent {
                Some(p) => Some(
                    mgr.db
                        .record(p)?
                        .ok_or_else(|| CacheError::NoSuchRecord { record: p.clone() })?
                        .snapshot_id,
                ),
                None => None,
            };
            let (mgr, upper, opts) = (Arc::clone(&mgr), rec.snapshot_id.clone(), opts.clone());
            jobs.push(async move {
                let shown = upper.clone();
                let blob = tokio::task::spawn_blocking(move || -> Result<LayerBlob, CacheError> {
                    let snap =
                        |s: &str| SnapshotId::new(s).map_err(CacheError::snapshot("naming", s));
                    let lower = lower.as_deref().map(snap).transpose()?;
                    let upper_id = snap(&upper)?;
                    let mut writer = mgr.content.writer()?;
                    let written = mgr
                        .snapshotter
                        .write_diff(lower.as_ref(), &upper_id, &mut writer, &opts)
                        .map_err(CacheError::snapshot("writing the layer of", &upper))?;
                    let committed = writer.commit(None)?;
                    Ok(LayerBlob::written(&written, committed))
                })
                .await
                .map_err(CacheError::task(format!("computing the layer of {shown}")))??;
                Ok::<_, CacheError>((i, blob))
            });
        }
        let computed = futures::future::try_join_all(jobs).await?;
        let mut blobs: Vec<Option<LayerBlob>> = chain.iter().map(|r| r.blob.clone()).collect();
        for (i, b) in computed {
            blobs[i] = Some(b);
        }
        let mut out = Vec::with_capacity(chain.len());
        let (mut cid, mut bcid) = (None, None);
        for (rec, blob) in chain.into_iter().zip(blobs) {
            let blob = blob.ok_or_else(|| CacheError::Unsupported {
                record: rec.id.clone(),
                reason: "has no blob after computing blobs".into(),
            })?;
            let c = chain_id(cid.as_ref(), &blob.diff_id);
            let b = blob_chain_id(bcid.as_ref(), &blob);
            let rec = if rec.blob.is_none() {
                mgr.db.set_layer_blob(&rec.id, &blob, &c, &b)?
            } else {
                rec
            };
            // Computed along this chain, not read from the record: a layer inside a merge's
            // later input has ids relative to its own base, not to the merged chain.
            cid = Some(c);
            bcid = Some(b);
            out.push(rec);
        }
        Ok(out)
    }
}
