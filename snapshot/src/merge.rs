//! Building a snapshot's files from change sets without copying bytes: non-directories are
//! hard-linked from the source layer (they are immutable there), directories are recreated
//! with their metadata, deletions and opaque dirs are applied. Copies happen only when
//! `link(2)` says `EXDEV` or `EMLINK`, and always for device nodes and FIFOs (BuildKit
//! never links those either).
//!
//! Used for overlay merges that cannot be a plain lowerdir stack (deeper than the kernel's
//! limit), for flattening, and by the copy driver for merges and staged layers.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::apply::WhiteoutMode;
use crate::cancel::Cancel;
use crate::diff::{Change, ChangeKind};
use crate::error::SnapshotError;
use crate::fsutil::{copy_entry, copy_metadata, remove_tree};
use crate::whiteout::OVERLAY_OPAQUE_XATTR;

/// Counts of what a merge did, for the benchmark and for usage labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    pub linked: u64,
    pub copied: u64,
    pub dirs: u64,
    pub deleted: u64,
}

/// Applies `changes` (read from `source`) onto `dest`. In `Overlay` mode deletions leave a
/// whiteout and opaque dirs keep their mark, so `dest` can still be stacked as a layer and
/// the deletions stay entities for later merges.
pub(crate) fn apply_changes_linked(
    changes: &[Change],
    source: &Path,
    dest: &Path,
    mode: WhiteoutMode,
    cancel: &Cancel,
    stats: &mut MergeStats,
) -> Result<(), SnapshotError> {
    // Directory metadata is set last: creating children would bump the mtime again.
    let mut dirs: BTreeMap<PathBuf, std::fs::Metadata> = BTreeMap::new();
    for ch in changes {
        if cancel.is_cancelled() {
            return Err(SnapshotError::Cancelled);
        }
        let d = dest.join(&ch.path);
        match ch.kind {
            ChangeKind::Deleted => {
                remove_tree(&d).map_err(SnapshotError::io("remove", &d))?;
                stats.deleted += 1;
                if mode == WhiteoutMode::Overlay && d.parent().is_some_and(Path::is_dir) {
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &d,
                        rustix::fs::FileType::CharacterDevice,
                        rustix::fs::Mode::empty(),
                        0,
                    )
                    .map_err(|e| SnapshotError::Io {
                        op: "create whiteout",
                        path: d.clone(),
                        source: e.into(),
                    })?;
                }
            }
            ChangeKind::Opaque => {
                // Earlier layers' contents of this dir are hidden; this layer's come after.
                for e in std::fs::read_dir(&d).map_err(SnapshotError::io("read dir", &d))? {
                    let p = e.map_err(SnapshotError::io("read dir", &d))?.path();
                    remove_tree(&p).map_err(SnapshotError::io("remove", &p))?;
                }
                if mode == WhiteoutMode::Overlay {
                    rustix::fs::lsetxattr(
                        &d,
                        OVERLAY_OPAQUE_XATTR,
                        b"y",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .map_err(|e| SnapshotError::Io {
                        op: "mark opaque",
                        path: d.clone(),
                        source: e.into(),
                    })?;
                }
            }
            ChangeKind::Added | ChangeKind::Modified => {
                let s = source.join(&ch.path);
                let md = std::fs::symlink_metadata(&s).map_err(SnapshotError::io("stat", &s))?;
                let existing = std::fs::symlink_metadata(&d).ok();
                if md.is_dir() {
                    match existing {
                        Some(e) if e.is_dir() => {}
                        Some(_) => {
                            remove_tree(&d).map_err(SnapshotError::io("remove", &d))?;
                            std::fs::create_dir(&d).map_err(SnapshotError::io("create dir", &d))?;
                        }
                        None => {
                            std::fs::create_dir(&d).map_err(SnapshotError::io("create dir", &d))?
                        }
                    }
                    stats.dirs += 1;
                    dirs.insert(ch.path.clone(), md);
                    continue;
                }
                if md.file_type().is_char_device() && md.rdev() == 0 {
                    // An overlay whiteout read as a file (a layer seen through a tree diff).
                    continue;
                }
                if existing.is_some() {
                    remove_tree(&d).map_err(SnapshotError::io("remove", &d))?;
                }
                let linkable = md.is_file() || md.file_type().is_symlink();
                let linked = linkable
                    && match std::fs::hard_link(&s, &d) {
                        Ok(()) => true,
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::EXDEV) | Some(libc::EMLINK)
                            ) =>
                        {
                            false
                        }
                        Err(e) => {
                            return Err(SnapshotError::Io {
                                op: "hard link",
                                path: d,
                                source: e,
                            });
                        }
                    };
                if linked {
                    stats.linked += 1;
                } else {
                    copy_entry(&s, &d).map_err(SnapshotError::io("copy", &d))?;
                    stats.copied += 1;
                }
            }
        }
    }
    for (rel, md) in dirs.iter().rev() {
        let d = dest.join(rel);
        if std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) {
            copy_metadata(&source.join(rel), &d, md, None)
                .map_err(SnapshotError::io("set dir metadata", &d))?;
        }
    }
    Ok(())
}
