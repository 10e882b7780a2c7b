//! The cache manager: one per process and state root. It opens the content store and the
//! metadata database, takes the root's shared lock and its own owner lock, sweeps what dead
//! processes left, and hands out refs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_snapshot::{SnapshotError, SnapshotId, Snapshotter};

use super::chain::{blob_chain_id, chain_id};
use super::handlers::{DescHandlers, LayerProgress};
use super::immutable::ImmutableRef;
use super::mutable::MutableRef;
use crate::content::ContentStore;
use crate::error::CacheError;
use crate::flight::Flight;
use crate::lock::{FileLock, LockMode};
use crate::metadata::{
    LayerBlob, MetadataDb, NewRecord, RecordId, RecordKind, RecordState, Removed,
};

/// Results and their bytes for one state root. Cheap to clone.
#[derive(Clone)]
pub struct CacheManager {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheManager")
            .field("root", &self.inner.root)
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) db: MetadataDb,
    pub(crate) content: ContentStore,
    pub(crate) snapshotter: Arc<dyn Snapshotter>,
    /// This process's owner id: leases and unfinished records carry it.
    pub(crate) owner: String,
    owner_lock: Option<FileLock>,
    _root_lock: FileLock,
    /// One unlazy per layer snapshot in this process.
    pub(crate) layers: Flight<String, Result<(), CacheError>, LayerProgress>,
}

/// What start-up (or [`CacheManager::sweep`]) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub dead_owners: usize,
    pub leases: usize,
    pub records: usize,
    pub snapshots: usize,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub records: usize,
    pub snapshots: usize,
    pub blobs: usize,
    /// Bytes of snapshots and blobs removed, as far as they were known.
    pub bytes: u64,
}

/// Disk use of the state root (the database itself not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub records: usize,
    pub blob_bytes: u64,
    pub snapshot_bytes: u64,
    /// Records no lease keeps, which a prune would remove.
    pub reclaimable_records: usize,
}

impl CacheManager {
    /// Opens the cache in `root` with `snapshotter` (whose own root usually lies inside).
    /// Waits while another process holds the root exclusively.
    pub fn open(
        root: &Path,
        snapshotter: Arc<dyn Snapshotter>,
    ) -> Result<CacheManager, CacheError> {
        std::fs::create_dir_all(root).map_err(CacheError::io("creating state root", root))?;
        let root_lock = FileLock::acquire_blocking(&root.join("cairn.lock"), LockMode::Shared)?;
        let owner = RecordId::random().to_string();
        let owner_lock =
            FileLock::try_acquire(&owner_lock_path(root, &owner), LockMode::Exclusive)?
                .ok_or_else(|| {
                    CacheError::io("locking owner file", owner_lock_path(root, &owner))(
                        std::io::Error::other("a fresh owner id is already locked"),
                    )
                })?;
        let content = ContentStore::open(root)?;
        let db = MetadataDb::open(root)?;
        let mgr = CacheManager {
            inner: Arc::new(Inner {
                root: root.to_owned(),
                db,
                content,
                snapshotter,
                owner,
                owner_lock: Some(owner_lock),
                _root_lock: root_lock,
                layers: Flight::new(),
            }),
        };
        let report = mgr.sweep()?;
        if report != SweepReport::default() {
            tracing::info!(
                ?report,
                "removed what interrupted runs left in the state root"
            );
        }
        Ok(mgr)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn content(&self) -> &ContentStore {
        &self.inner.content
    }

    pub fn metadata(&self) -> &MetadataDb {
        &self.inner.db
    }

    pub fn snapshotter(&self) -> &Arc<dyn Snapshotter> {
        &self.inner.snapshotter
    }

    /// This process's owner id (what its leases carry).
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// A ref on the complete record `id`.
    pub fn get(&self, id: &RecordId) -> Result<ImmutableRef, CacheError> {
        let db = &self.inner.db;
        let record = db
            .record(id)?
            .ok_or_else(|| CacheError::NoSuchRecord { record: id.clone() })?;
        if record.state != RecordState::Complete || record.kind == RecordKind::Mutable {
            return Err(CacheError::Unsupported {
                record: id.clone(),
                reason: "is not a finished, immutable result".into(),
            });
        }
        let lease = db.add_lease(id, Some(&self.inner.owner), None)?;
        db.touch(id)?;
        Ok(ImmutableRef::new(Arc::clone(&self.inner), record, lease))
    }

    /// Finds or creates the records of an image's layer chain (bottom first) and returns a
    /// ref on the top one, *without downloading anything*: new records are lazy until their
    /// files are asked for. `image_ref` (`registry/repository[:tag]`) is recorded as where
    /// the blobs can be had. An empty chain (a `scratch` image) has no ref.
    pub fn get_by_blob(
        &self,
        chain: &[LayerBlob],
        image_ref: Option<&str>,
        description: &str,
    ) -> Result<Option<ImmutableRef>, CacheError> {
        let mut layers = Vec::with_capacity(chain.len());
        let (mut parent_chain, mut parent_blob_chain) = (None, None);
        for blob in chain {
            let cid = chain_id(parent_chain.as_ref(), &blob.diff_id);
            let bcid = blob_chain_id(parent_blob_chain.as_ref(), blob);
            layers.push(NewRecord {
                kind: RecordKind::Layer,
                state: RecordState::Complete,
                owner: None,
                parent: None, // filled in by the chain insert
                parents: Vec::new(),
                blob: Some(blob.clone()),
                snapshot_id: layer_snapshot_id(&cid),
                chain_id: Some(cid.clone()),
                blob_chain_id: Some(bcid.clone()),
                description: description.to_owned(),
            });
            parent_chain = Some(cid);
            parent_blob_chain = Some(bcid);
        }
        let Some((top, lease)) = self
            .inner
            .db
            .get_or_insert_chain(&layers, &self.inner.owner)?
        else {
            return Ok(None);
        };
        if let Some(src) = image_ref {
            for blob in chain {
                self.inner
                    .db
                    .add_blob_source(&blob.descriptor.digest, src)?;
            }
        }
        self.inner.db.touch(&top.id)?;
        Ok(Some(ImmutableRef::new(Arc::clone(&self.inner), top, lease)))
    }

    /// A ref whose files are `inputs` stacked in order (BuildKit's MergeOp): later inputs
    /// win, and deletions inside an input are honoured. Nothing is copied or extracted
    /// here; the snapshot is made on first use. Its layer chain is the inputs' chains
    /// concatenated, so export reuses their blobs. One input is returned as it is.
    pub fn merge(
        &self,
        inputs: &[ImmutableRef],
        description: &str,
    ) -> Result<ImmutableRef, CacheError> {
        match inputs {
            [] => Err(CacheError::BadMerge {
                reason: "a merge needs at least one input".into(),
            }),
            [one] => Ok(one.clone()),
            _ => {
                // Named by its inputs' snapshots, so equal merges share one snapshot.
                let mut h = cairn_llb::Hasher::new();
                for i in inputs {
                    h.update(i.record().snapshot_id.as_bytes());
                    h.update(b"\n");
                }
                let snapshot_id = format!("g-{}", h.finalize().hex());
                let (record, lease) = self.inner.db.insert_record_leased(
                    &NewRecord {
                        kind: RecordKind::Merge,
                        state: RecordState::Complete,
                        owner: None,
                        parent: None,
                        parents: inputs.iter().map(|i| i.id().clone()).collect(),
                        blob: None,
                        chain_id: None,
                        blob_chain_id: None,
                        snapshot_id,
                        description: description.to_owned(),
                    },
                    &self.inner.owner,
                )?;
                Ok(ImmutableRef::new(Arc::clone(&self.inner), record, lease))
            }
        }
    }

    /// A writable snapshot on `parent` (unlazied first, with `handlers`), for an exec or a
    /// file op to write into; [`MutableRef::commit`] makes it an immutable layer.
    pub async fn new_mutable(
        &self,
        parent: Option<&ImmutableRef>,
        handlers: &DescHandlers,
        description: &str,
    ) -> Result<MutableRef, CacheError> {
        if let Some(p) = parent {
            p.extract(handlers).await?;
        }
        let snapshot_id = format!("m-{}", RecordId::random());
        let record = self.inner.db.insert_record(&NewRecord {
            kind: RecordKind::Mutable,
            state: RecordState::Incomplete,
            owner: Some(self.inner.owner.clone()),
            parent: parent.map(|p| p.id().clone()),
            parents: Vec::new(),
            blob: None,
            chain_id: None,
            blob_chain_id: None,
            snapshot_id: snapshot_id.clone(),
            description: description.to_owned(),
        })?;
        let parent_sid = parent.map(|p| p.record().snapshot_id.clone());
        let sn = Arc::clone(&self.inner.snapshotter);
        let sid = snapshot_id.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let key = SnapshotId::new(&sid)?;
            let parent = parent_sid.map(SnapshotId::new).transpose()?;
            sn.prepare(&key, parent.as_ref())
        })
        .await
        .map_err(CacheError::task(format!(
            "preparing snapshot {snapshot_id}"
        )))
        .and_then(|r| r.map_err(CacheError::snapshot("preparing", &snapshot_id)));
        match prepared {
            Ok(mounts) => Ok(MutableRef::new(Arc::clone(&self.inner), record, mounts)),
            Err(e) => {
                // Row first, files after; prepare left nothing (its contract), so only the row.
                self.inner.db.delete_record(&record.id)?;
                Err(e)
            }
        }
    }

    /// Removes what dead processes left: their leases, their unfinished records and those
    /// records' snapshots, and snapshots no record names. Runs at open; safe to run any time.
    pub fn sweep(&self) -> Result<SweepReport, CacheError> {
        let inner = &self.inner;
        let mut report = SweepReport::default();
        for owner in inner.db.owners()? {
            if owner == inner.owner || RecordId::parse(&owner).is_none() {
                continue;
            }
            let path = owner_lock_path(&inner.root, &owner);
            let Some(lock) = FileLock::try_acquire(&path, LockMode::Exclusive)? else {
                continue; // alive
            };
            let swept = inner.db.sweep_owner(&owner)?;
            report.dead_owners += 1;
            report.leases += swept.leases;
            report.records += swept.records.len();
            report.snapshots += inner.remove_files(&swept.removed)?.snapshots;
            lock.remove_and_release()?;
        }
        report.snapshots += inner.sweep_orphan_snapshots()?;
        Ok(report)
    }

    /// Deletes every record no lease reaches, children before parents, and then the
    /// snapshots and blobs nothing else uses. Reachability is decided inside each batch's
    /// transaction, so a lease another process takes meanwhile wins.
    pub fn prune(&self) -> Result<PruneReport, CacheError> {
        let inner = &self.inner;
        let mut report = PruneReport::default();
        loop {
            let (n, removed) = inner.db.prune_batch(PRUNE_BATCH)?;
            if n == 0 {
                return Ok(report);
            }
            report.records += n;
            let freed = inner.remove_files(&removed)?;
            report.snapshots += freed.snapshots;
            report.blobs += freed.blobs;
            report.bytes += freed.bytes;
        }
    }

    /// Like [`CacheManager::prune`], but stops once blobs and snapshots take at most
    /// `keep_bytes` (`cairn prune --keep-storage`): least recently used records go first,
    /// always children before their parents.
    pub fn prune_to(&self, keep_bytes: u64) -> Result<PruneReport, CacheError> {
        let inner = &self.inner;
        let usage = self.disk_usage()?;
        let mut used = usage.blob_bytes + usage.snapshot_bytes;
        let mut report = PruneReport::default();
        while used > keep_bytes {
            let Some((_, removed)) = inner.db.prune_least_recently_used()? else {
                break;
            };
            report.records += 1;
            let freed = inner.remove_files(&removed)?;
            report.snapshots += freed.snapshots;
            report.blobs += freed.blobs;
            report.bytes += freed.bytes;
            used = used.saturating_sub(freed.bytes);
        }
        Ok(report)
    }

    /// Removes records no lease keeps that were last used more than `age` ago (least
    /// recently used first, children before parents): `cairn prune --filter until=AGE`.
    pub fn prune_unused_for(&self, age: std::time::Duration) -> Result<PruneReport, CacheError> {
        let cutoff = std::time::SystemTime::now()
            .checked_sub(age)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let mut report = PruneReport::default();
        while let Some((_, removed)) = self.inner.db.prune_least_recently_used_before(cutoff)? {
            report.records += 1;
            let freed = self.inner.remove_files(&removed)?;
            report.snapshots += freed.snapshots;
            report.blobs += freed.blobs;
            report.bytes += freed.bytes;
        }
        Ok(report)
    }

    /// Bytes on disk by kind, and how many records a prune could remove.
    pub fn disk_usage(&self) -> Result<DiskUsage, CacheError> {
        let inner = &self.inner;
        let records = inner.db.records()?;
        let mut seen = HashSet::new();
        let snapshot_bytes = records
            .iter()
            .filter(|r| r.local && seen.insert(r.snapshot_id.clone()))
            .filter_map(|r| r.snapshot_size)
            .sum();
        let blob_bytes = inner.content.list()?.iter().map(|b| b.size).sum();
        Ok(DiskUsage {
            records: records.len(),
            blob_bytes,
            snapshot_bytes,
            reclaimable_records: inner.db.collectable()?.len(),
        })
    }
}

/// Records deleted per prune transaction: bounds how long other processes wait for the
/// database's write lock.
const PRUNE_BATCH: usize = 500;

/// Layer snapshots are named by chain id, so records of the same content in different
/// compressions share one snapshot.
pub(crate) fn layer_snapshot_id(chain_id: &cairn_llb::Digest) -> String {
    format!("l-{}", chain_id.hex())
}

fn owner_lock_path(root: &Path, owner: &str) -> PathBuf {
    root.join("locks")
        .join("owners")
        .join(format!("{owner}.lock"))
}

/// Counts of what [`Inner::remove_files`] removed.
#[derive(Debug, Default)]
pub(crate) struct Freed {
    snapshots: usize,
    blobs: usize,
    bytes: u64,
}

impl Inner {
    pub(crate) fn snapshot_lock_path(&self, snapshot_id: &str) -> PathBuf {
        self.root
            .join("locks")
            .join("snapshots")
            .join(format!("{snapshot_id}.lock"))
    }

    /// Removes the files of rows already deleted (rows first, files after). A snapshot
    /// another process is publishing under the same id right now is left alone: the id's
    /// lock is taken first.
    pub(crate) fn remove_files(&self, removed: &Removed) -> Result<Freed, CacheError> {
        let mut freed = Freed::default();
        for sid in &removed.snapshots {
            let Some(lock) =
                FileLock::try_acquire(&self.snapshot_lock_path(sid), LockMode::Exclusive)?
            else {
                continue;
            };
            // Someone may have re-created a record for it since our delete committed.
            if self.db.snapshot_in_use(sid)? {
                drop(lock);
                continue;
            }
            let id = SnapshotId::new(sid).map_err(CacheError::snapshot("naming", sid))?;
            let bytes = self.snapshotter.usage(&id).map(|u| u.bytes).unwrap_or(0);
            match self.snapshotter.remove(&id) {
                Ok(()) => {
                    freed.snapshots += 1;
                    freed.bytes += bytes;
                }
                Err(SnapshotError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(snapshot = %sid, error = %e, "could not remove snapshot; a later sweep retries");
                }
            }
            lock.remove_and_release()?;
        }
        for digest in &removed.blobs {
            if !self.db.records_by_blob(digest)?.is_empty() {
                continue;
            }
            let size = self.content.size_of(digest)?.unwrap_or(0);
            if self.content.delete(digest)? {
                freed.blobs += 1;
                freed.bytes += size;
            }
        }
        Ok(freed)
    }

    /// Snapshots on disk that no record names and nobody is publishing. Repeats while it
    /// makes progress, since a parent can only go after its children.
    fn sweep_orphan_snapshots(&self) -> Result<usize, CacheError> {
        let mut total = 0;
        loop {
            let referenced: HashSet<String> = self.db.referenced_snapshots()?.into_iter().collect();
            let on_disk = self
                .snapshotter
                .list()
                .map_err(CacheError::snapshot("listing", "*"))?;
            let orphans: Vec<String> = on_disk
                .iter()
                .map(|s| s.as_str().to_owned())
                .filter(|s| !referenced.contains(s))
                .collect();
            let freed = self.remove_files(&Removed {
                snapshots: orphans,
                blobs: Vec::new(),
            })?;
            total += freed.snapshots;
            if freed.snapshots == 0 {
                return Ok(total);
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A clean exit releases this process's leases and unfinished records now instead
        // of leaving them for the next start-up.
        match self.db.sweep_owner(&self.owner) {
            Ok(swept) => {
                if let Err(e) = self.remove_files(&swept.removed) {
                    tracing::warn!(error = %e, "cleaning up unfinished records at exit");
                }
            }
            Err(e) => tracing::warn!(error = %e, "releasing leases at exit"),
        }
        if let Some(lock) = self.owner_lock.take()
            && let Err(e) = lock.remove_and_release()
        {
            tracing::warn!(error = %e, "removing owner lock at exit");
        }
    }
}
