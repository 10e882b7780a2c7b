//! File systems for cairn: the `Snapshotter` trait with its overlay and copy drivers,
//! layer tars applied with OCI whiteouts (staged, in parallel, refusing hostile entries),
//! merge of snapshots (overlay lowerdirs, hardlinks, copy as the fallback), diff of two
//! snapshots into a deterministic, compressed layer tar, and ID-mapped copies.
//!
//! Must not know about registries, blobs' origins or build graphs: it is handed
//! directories and byte streams.
//!
//! # How the other crates use it
//!
//! ```no_run
//! # use cairn_snapshot::*;
//! # fn f(blob: std::fs::File, out: &mut std::fs::File) -> Result<(), SnapshotError> {
//! let (sn, why) = probe("/var/lib/cairn/snapshots".as_ref(), DriverChoice::Auto)?;
//! // Unlazy: one blocking task per layer, all layers of an image in parallel.
//! let staged = sn.stage_layer()?;
//! let stats = apply_layer(blob, &staged.path(), &ApplyOptions::staged())?; // stats.diff_id
//! let base = SnapshotId::new("layer-1")?;
//! sn.commit_staged(staged, &base, None)?;
//! // Exec: a writable snapshot, mounted by the executor, then committed.
//! let mounts = sn.prepare(&SnapshotId::new("run-1")?, Some(&base))?;
//! let guard = mounts.mount_at("/some/rootfs".as_ref())?;
//! guard.unmount()?;
//! sn.commit(&SnapshotId::new("layer-2")?, &SnapshotId::new("run-1")?)?;
//! // Export: the diff as a gzip layer blob, digests computed on the way.
//! let desc = sn.write_diff(Some(&base), &SnapshotId::new("layer-2")?, out, &LayerWriteOptions::default())?;
//! # let _ = (why, stats, desc); Ok(()) }
//! ```
//!
//! All calls block; run them in `spawn_blocking`. [`Snapshotter`] states the contract.
//! Standalone helpers: [`apply_layer`] (any dir), [`write_layer`] / [`write_dir_as_layer`]
//! (any change set or dir), [`diff_dirs`] and [`overlay_upper_changes`].

//!
//! # Decisions (each checked by a test)
//!
//! - **Tar names.** A leading `/` is stripped (containerd and GNU tar do the same); a `..`
//!   component is refused, not resolved; parent directories are resolved fd-relative with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so relative symlinks inside the
//!   layer (`lib -> usr/lib`) are followed and anything leading out is an error naming the
//!   entry. Hard-link targets resolve the same way. `trusted.overlay.*` xattrs in a tar are
//!   dropped (a layer must not forge overlay redirects or opaque marks).
//! - **Layer tars written** are PAX, sorted, numeric owners only (no user/group names: the
//!   host's `/etc/passwd` is not image content), mtimes clamped to `SOURCE_DATE_EPOCH`,
//!   gzip headers without name or time: the same tree gives the same bytes.
//! - **Deletions** mean what applying the tar onto a mount of its parent means
//!   (containerd/BuildKit): when an overlay layer is committed, a whiteout is kept only if
//!   the parent has the path, and an opaque dir becomes one whiteout per child the parent
//!   had. A merge then replays each input's history: a deletion removes what that input's
//!   own history had, including from earlier inputs (moby/buildkit#2335), and both drivers
//!   agree (checked against a reference model).
//! - **Deep stacks.** Overlay mounts pass lowers one by one (`fsconfig` `lowerdir+`), so no
//!   page-size limit applies; a stack past the kernel's 500 layers is flattened into one
//!   hard-linked layer (deletions carried out). Only mounts use the flattened layer:
//!   merges replay histories walked through parent and input links, so deletions stay
//!   entities however deep the stack.
//! - **ID-mapped copies.** Overlay driver: a child of the source with no layer of its own,
//!   whose mounts show the source's layers through kernel ID-mapped mounts (no data copied,
//!   no inode written; a full copy only where the kernel cannot). Copy driver: a full copy
//!   (reflinked where the file system can) with shifted owners. Either way an id outside the
//!   map is an error naming the file, and hard links stay hard links.

mod apply;
mod cancel;
mod compression;
mod copy_driver;
mod diff;
mod error;
mod fsutil;
mod idmap;
mod idmount;
mod merge;
mod meta;
mod mount;
mod overlay;
mod pgzip;
mod probe;
mod safe_path;
mod snapshotter;
mod staging;
mod store;
mod tar_writer;
mod whiteout;

pub use apply::{ApplyOptions, ApplyStats, WhiteoutMode, apply_layer};
pub use cancel::Cancel;
pub use compression::Compression;
pub use copy_driver::CopySnapshotter;
pub use diff::{Change, ChangeKind, diff_dirs, overlay_upper_changes};
pub use error::{ApplyError, SnapshotError};
pub use idmap::{IdMap, IdMapping};
pub use merge::MergeStats;
pub use mount::{Lower, MountGuard, Mounts, OVERLAY_MAX_LOWERS};
pub use overlay::OverlaySnapshotter;
pub use probe::{AnySnapshotter, DriverChoice, overlay_works, probe};
pub use snapshotter::{SnapshotId, SnapshotInfo, SnapshotKind, Snapshotter, Usage};
pub use staging::StagedLayer;
pub use tar_writer::{LayerDescriptor, LayerWriteOptions, write_dir_as_layer, write_layer};
pub use whiteout::{OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
