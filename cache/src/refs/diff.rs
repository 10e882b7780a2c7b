//! Diff (BuildKit's DiffOp): a ref holding the changes that turn `lower` into `upper`, so
//! that merging it onto `lower` gives `upper` and merging it onto anything else replays the
//! same changes there, deletions included.
//!
//! Two cases, as in BuildKit's `cacheManager.Diff`:
//!
//! - **`upper` is `lower` plus layers.** When `lower`'s layer chain is a prefix of
//!   `upper`'s, the diff is those extra layers and nothing is computed or downloaded: each
//!   becomes a diff record of that layer against its own parent, whose layer chain is the
//!   layer record itself (so export reuses its blob, lazy or not), and two or more are
//!   merged.
//! - **Otherwise** the diff is one new layer: a diff record of `lower` against `upper`. Both
//!   inputs are extracted first (the blob and the snapshot are made from their files, and
//!   an export must not find them lazy), but the diff itself is computed only when
//!   something needs it: its blob on export (`ensure_blobs` writes the diff of the two
//!   snapshots), its snapshot on first mount (`diff_snapshot`).
//!
//! # Deletions
//!
//! A path `lower` has and `upper` lacks is a deletion, and must stay one in the diff's
//! snapshot so a merge honours it. The snapshotter keeps a committed layer's whiteout only
//! where the stack below has the path (a whiteout over nothing means nothing), so a diff's
//! snapshot is committed on a **base** snapshot that holds an empty placeholder at every
//! deleted path: the whiteouts then hide something, survive the commit, and in a merge
//! hide the same paths of whatever lies below. Mounted alone, the diff shows no deletions
//! (the placeholders are whited out), as in BuildKit. The base belongs to a record of its
//! own, the diff record's `parent`, so the usual rules keep it while the diff lives and
//! remove it after.

use std::sync::Arc;

use super::handlers::DescHandlers;
use super::immutable::ImmutableRef;
use super::manager::{CacheManager, Inner};
use crate::error::CacheError;
use crate::metadata::{NewRecord, Record, RecordKind, RecordState};

impl CacheManager {
    /// A ref on the changes that turn `lower` into `upper` (`None` is scratch):
    /// `diff(∅, U) = U`, `diff(X, X) = ∅` and `diff(X, ∅)` deletes what `X` has. See the
    /// module doc for when anything is computed; lazy inputs are extracted through
    /// `handlers` only when the diff is not a plain run of `upper`'s layers.
    pub async fn diff(
        &self,
        lower: Option<&ImmutableRef>,
        upper: Option<&ImmutableRef>,
        handlers: &DescHandlers,
        description: &str,
    ) -> Result<Option<ImmutableRef>, CacheError> {
        let Some(lower) = lower else {
            return Ok(upper.cloned());
        };
        if let Some(upper) = upper {
            if upper.record().snapshot_id == lower.record().snapshot_id {
                return Ok(None);
            }
            let (below, chain) = (lower.layer_chain()?, upper.layer_chain()?);
            if let Some(above) = layers_above(&below, &chain) {
                return self.diff_of_layers(above, description);
            }
        }
        lower.extract(handlers).await?;
        let upper = match upper {
            Some(u) => {
                u.extract(handlers).await?;
                u.clone()
            }
            // Diffed against an empty layer, every entry of `lower` is a deletion.
            None => {
                self.new_mutable(None, handlers, description)
                    .await?
                    .commit()
                    .await?
            }
        };
        self.diff_record(lower.record(), upper.record(), description)
            .map(Some)
    }

    /// The diff of a run of layers on what lies below them: each layer's own changes,
    /// merged in order. A layer with nothing below it, or a computed diff, is its own
    /// change set.
    fn diff_of_layers(
        &self,
        above: &[Record],
        description: &str,
    ) -> Result<Option<ImmutableRef>, CacheError> {
        let mut parts = Vec::with_capacity(above.len());
        for layer in above {
            parts.push(match (&layer.kind, &layer.parent) {
                (RecordKind::Layer, Some(pid)) => {
                    let parent =
                        self.inner
                            .db
                            .record(pid)?
                            .ok_or_else(|| CacheError::NoSuchRecord {
                                record: pid.clone(),
                            })?;
                    self.diff_record(&parent, layer, description)?
                }
                _ => self.get(&layer.id)?,
            });
        }
        match parts.len() {
            0 => Ok(None),
            1 => Ok(parts.pop()),
            _ => self.merge(&parts, description).map(Some),
        }
    }

    /// A new, lazy diff record of `lower` → `upper` on a new base record (see the module
    /// doc), leased. Snapshots are named by the inputs' snapshots, so equal diffs share
    /// their files.
    fn diff_record(
        &self,
        lower: &Record,
        upper: &Record,
        description: &str,
    ) -> Result<ImmutableRef, CacheError> {
        let mut h = cairn_llb::Hasher::new();
        for s in [&lower.snapshot_id, &upper.snapshot_id] {
            h.update(s.as_bytes());
            h.update(b"\n");
        }
        let digest = h.finalize();
        let hex = digest.hex();
        let record = |kind, parents, snapshot_id, description| NewRecord {
            kind,
            state: RecordState::Complete,
            owner: None,
            parent: None,
            parents,
            blob: None,
            chain_id: None,
            blob_chain_id: None,
            snapshot_id,
            description,
        };
        let base = record(
            RecordKind::Layer,
            Vec::new(),
            format!("w-{hex}"),
            format!("{description} (deletions)"),
        );
        let diff = record(
            RecordKind::Diff,
            vec![lower.id.clone(), upper.id.clone()],
            format!("d-{hex}"),
            description.to_owned(),
        );
        let (record, lease) =
            self.inner
                .db
                .insert_on_base_leased(&base, &diff, &self.inner.owner)?;
        Ok(ImmutableRef::new(Arc::clone(&self.inner), record, lease))
    }
}

/// The records of `chain` above `below` when `below` is a prefix of it (by record).
fn layers_above<'c>(below: &[Record], chain: &'c [Record]) -> Option<&'c [Record]> {
    let prefix = chain.get(..below.len())?;
    prefix
        .iter()
        .zip(below)
        .all(|(a, b)| a.id == b.id)
        .then(|| &chain[below.len()..])
}

/// A diff record's lower and upper records.
pub(crate) fn diff_inputs(mgr: &Inner, diff: &Record) -> Result<(Record, Record), CacheError> {
    let [lower, upper] = diff.parents.as_slice() else {
        return Err(CacheError::Unsupported {
            record: diff.id.clone(),
            reason: format!(
                "a diff needs a lower and an upper input, it has {}",
                diff.parents.len()
            ),
        });
    };
    let get = |id: &crate::metadata::RecordId| {
        mgr.db
            .record(id)?
            .ok_or_else(|| CacheError::NoSuchRecord { record: id.clone() })
    };
    Ok((get(lower)?, get(upper)?))
}

/// Whether a diff is exactly its upper layer's own change set (that layer sits directly on
/// the lower input): then it exports as that layer, blob and all.
pub(crate) fn is_one_layer(lower: &Record, upper: &Record) -> bool {
    upper.kind == RecordKind::Layer && upper.parent.as_ref() == Some(&lower.id)
}
