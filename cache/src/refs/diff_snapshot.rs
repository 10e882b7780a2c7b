//! Making a diff record's snapshot on first use (unlazy): the changes `lower` → `upper`
//! written as one layer dir, committed on a base of placeholders so that its deletions
//! stay whiteouts (the module doc of `refs::diff` says why).
//!
//! The change set comes from the snapshotter (an overlay upper dir read directly when
//! `upper` is one layer on `lower`, else a double walk). `write_layer` adds the parent
//! directories the changes live in, with `upper`'s metadata: a directory the apply would
//! have to invent (0755, owned by us, dated now) would, as the top layer of a later merge,
//! hide the real one's owner and mode. The tar streams through
//! a pipe from a writer thread into the apply, uncompressed, so nothing is stored on the
//! way; the layer *blob*, when an export wants one, is written separately by
//! `ensure_blobs`.

use std::path::Path;
use std::sync::Arc;

use cairn_snapshot::{
    ApplyOptions, Change, ChangeKind, Compression, LayerWriteOptions, Mounts, SnapshotError,
    SnapshotId, Snapshotter, StagedLayer, apply_layer, write_layer,
};

use super::manager::Inner;
use crate::error::CacheError;
use crate::metadata::Record;

/// Builds diff record `rec`'s snapshot from its inputs' (`inputs`, lower and upper, on
/// disk by now) and records its base's snapshot if one was made; returns the size to
/// record for the diff's own (the caller holds its lock and records it).
pub(crate) async fn diff_snapshot(
    mgr: &Arc<Inner>,
    rec: &Record,
    inputs: &[String],
) -> Result<Option<u64>, CacheError> {
    let base_id = rec.parent.clone().ok_or_else(|| CacheError::Unsupported {
        record: rec.id.clone(),
        reason: "a diff record needs a base record".into(),
    })?;
    let base = mgr
        .db
        .record(&base_id)?
        .ok_or(CacheError::NoSuchRecord { record: base_id })?;
    let [lower, upper] = inputs else {
        return Err(CacheError::Unsupported {
            record: rec.id.clone(),
            reason: format!("a diff needs two inputs, it has {}", inputs.len()),
        });
    };
    let (sn, mount_root) = (Arc::clone(&mgr.snapshotter), mgr.root.join("mounts"));
    let names = [lower, upper, &base.snapshot_id, &rec.snapshot_id].map(|s| s.to_owned());
    let sid = rec.snapshot_id.clone();
    let (made_base, size) = tokio::task::spawn_blocking(move || {
        let [lower, upper, base, key] = names.map(SnapshotId::new);
        let (lower, upper, base, key) = (lower?, upper?, base?, key?);
        let made_base = DiffSnapshot {
            lower: &lower,
            upper: &upper,
            base: &base,
            key: &key,
            mount_root: &mount_root,
        }
        .build(sn.as_ref())?;
        Ok::<_, SnapshotError>((made_base, sn.usage(&key).ok().map(|u| u.bytes)))
    })
    .await
    .map_err(CacheError::task(format!("diffing into snapshot {sid}")))?
    .map_err(CacheError::snapshot("diffing into", &sid))?;
    if made_base {
        mgr.db.commit_snapshot(&base.snapshot_id, None)?;
    }
    Ok(size)
}

/// The snapshots a diff's snapshot is built from and into.
struct DiffSnapshot<'a> {
    lower: &'a SnapshotId,
    upper: &'a SnapshotId,
    /// Where the placeholders for deletions go; made only when there are deletions.
    base: &'a SnapshotId,
    key: &'a SnapshotId,
    /// A directory to mount `upper` under (a fresh subdirectory is used).
    mount_root: &'a Path,
}

impl DiffSnapshot<'_> {
    /// Builds and commits the snapshot; returns whether the base was made (its row must
    /// then be recorded too). Blocking. A snapshot that already exists (a crash after its
    /// rename, before its row) is complete by the snapshotter's contract and kept.
    fn build(&self, sn: &dyn Snapshotter) -> Result<bool, SnapshotError> {
        let changes = sn.diff(Some(self.lower), self.upper)?;
        let deleted: Vec<&Path> = changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .map(|c| c.path.as_path())
            .collect();
        let staged = sn.stage_layer()?;
        self.stage_changes(sn, &changes, &staged)?;
        let on_base = !deleted.is_empty();
        if on_base {
            let placeholders = sn.stage_layer()?;
            for p in &deleted {
                write_placeholder(&placeholders.path(), p)?;
            }
            keep_existing(sn.commit_staged(placeholders, self.base, None))?;
        }
        keep_existing(sn.commit_staged(staged, self.key, on_base.then_some(self.base)))?;
        Ok(on_base)
    }

    /// Applies `changes`, read from a mount of `upper`, into `staged` with overlay
    /// whiteouts.
    fn stage_changes(
        &self,
        sn: &dyn Snapshotter,
        changes: &[Change],
        staged: &StagedLayer,
    ) -> Result<(), SnapshotError> {
        let mounts = sn.mounts(self.upper)?;
        // A bind mount's source is the tree itself; an overlay stack needs mounting.
        if let Mounts::Bind { source, .. } = &mounts {
            return stream_layer(changes, source, &staged.path());
        }
        std::fs::create_dir_all(self.mount_root).map_err(|source| SnapshotError::Io {
            op: "create mount root",
            path: self.mount_root.to_owned(),
            source,
        })?;
        let dir = tempfile::Builder::new()
            .prefix("diff-")
            .tempdir_in(self.mount_root)
            .map_err(|source| SnapshotError::Io {
                op: "create mount point",
                path: self.mount_root.to_owned(),
                source,
            })?;
        let guard = mounts.mount_at(dir.path())?;
        let out = stream_layer(changes, dir.path(), &staged.path());
        guard.unmount()?;
        out
    }
}

/// Writes `changes` from `source` as an uncompressed layer tar into a pipe and applies it
/// into `dest` on this thread, so the tar is never stored.
fn stream_layer(changes: &[Change], source: &Path, dest: &Path) -> Result<(), SnapshotError> {
    let (reader, mut writer) = std::io::pipe().map_err(|source| SnapshotError::Io {
        op: "create pipe for",
        path: dest.to_owned(),
        source,
    })?;
    let opts = LayerWriteOptions {
        compression: Compression::None,
        ..LayerWriteOptions::default()
    };
    std::thread::scope(|s| {
        let written = s.spawn(move || write_layer(changes, source, &mut writer, &opts));
        // Reads to the end of the stream, so the writer never blocks on a reader gone.
        let applied = apply_layer(reader, dest, &ApplyOptions::staged());
        let written = written
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (written, applied) {
            (Ok(_), Ok(_)) => Ok(()),
            // The apply stopped reading, so the writer's pipe broke: the apply's is the cause.
            (Err(SnapshotError::WriteLayer { source, .. }), Err(a))
                if source.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                Err(a.into())
            }
            // Otherwise the writer failed first and the apply saw a cut tar.
            (Err(w), _) => Err(w),
            (Ok(_), Err(a)) => Err(a.into()),
        }
    })
}

/// An empty file at `rel` under `root`, with its parent directories: something for a
/// deletion's whiteout to hide.
fn write_placeholder(root: &Path, rel: &Path) -> Result<(), SnapshotError> {
    let p = root.join(rel);
    let io = |op| {
        let path = p.clone();
        move |source| SnapshotError::Io { op, path, source }
    };
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(io("create placeholder dir for"))?;
    }
    std::fs::File::create(&p).map_err(io("create placeholder"))?;
    Ok(())
}

fn keep_existing(r: Result<(), SnapshotError>) -> Result<(), SnapshotError> {
    match r {
        Ok(()) | Err(SnapshotError::Exists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
