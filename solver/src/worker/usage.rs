//! `cairn du` and `cairn prune` on the worker's state root: what the cache holds, what a
//! prune could free, and the prune itself (records no build keeps, then cache mounts).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use cairn_cache::CacheError;
use cairn_cache::lock::{FileLock, LockMode};
use cairn_cache::metadata::RecordKind;

use super::Worker;

/// One cached record as `du` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEntry {
    pub id: String,
    pub kind: &'static str,
    pub description: String,
    /// Bytes of its snapshot on disk (`None` while lazy or unmeasured).
    pub size: Option<u64>,
    /// Files on disk (`false`: a lazy layer known only by descriptor).
    pub local: bool,
    /// Its snapshot is also another record's (counted once in totals).
    pub shared: bool,
    /// No build or named lease keeps it: a prune removes it.
    pub reclaimable: bool,
    /// Seconds since the epoch.
    pub last_used: i64,
    pub usage_count: i64,
}

/// Everything `du` reports.
#[derive(Debug, Clone, Default)]
pub struct UsageReport {
    pub entries: Vec<UsageEntry>,
    pub blob_bytes: u64,
    pub snapshot_bytes: u64,
    pub reclaimable_bytes: u64,
    pub cache_mount_bytes: u64,
}

impl UsageReport {
    pub fn total_bytes(&self) -> u64 {
        self.blob_bytes + self.snapshot_bytes + self.cache_mount_bytes
    }
}

/// What to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    /// Also remove `RUN --mount=type=cache` directories no build is using.
    pub all: bool,
    /// Stop once the cache takes at most this many bytes (least recently used first).
    pub keep_storage: Option<u64>,
    /// Only records unused for longer than this.
    pub unused_for: Option<Duration>,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneSummary {
    pub records: usize,
    pub cache_mounts: usize,
    pub bytes: u64,
}

impl Worker {
    /// What the state root holds, most recently used first.
    pub fn disk_usage(&self) -> Result<UsageReport, CacheError> {
        let cache = self.cache();
        let records = cache.metadata().records().map_err(CacheError::from)?;
        let reclaimable: HashSet<String> = cache
            .metadata()
            .collectable()
            .map_err(CacheError::from)?
            .into_iter()
            .map(|r| r.id.to_string())
            .collect();
        let mut per_snapshot: HashMap<&str, usize> = HashMap::new();
        for r in &records {
            *per_snapshot.entry(r.snapshot_id.as_str()).or_default() += 1;
        }
        let usage = cache.disk_usage()?;
        let mut counted = HashSet::new();
        let mut reclaimable_bytes = 0;
        let mut entries: Vec<UsageEntry> = records
            .iter()
            .map(|r| {
                let id = r.id.to_string();
                let is_reclaimable = reclaimable.contains(&id);
                if is_reclaimable
                    && r.local
                    && per_snapshot.get(r.snapshot_id.as_str()) == Some(&1)
                    && counted.insert(r.snapshot_id.clone())
                {
                    reclaimable_bytes += r.snapshot_size.unwrap_or(0);
                }
                UsageEntry {
                    kind: match r.kind {
                        RecordKind::Layer => "layer",
                        RecordKind::Merge => "merge",
                        RecordKind::Diff => "diff",
                        RecordKind::Mutable => "mutable",
                    },
                    description: r.description.clone(),
                    size: if r.local { r.snapshot_size } else { None },
                    local: r.local,
                    shared: per_snapshot
                        .get(r.snapshot_id.as_str())
                        .copied()
                        .unwrap_or(0)
                        > 1,
                    reclaimable: is_reclaimable,
                    last_used: r.last_used_at,
                    usage_count: r.usage_count,
                    id,
                }
            })
            .collect();
        entries.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.id.cmp(&b.id)));
        Ok(UsageReport {
            entries,
            blob_bytes: usage.blob_bytes,
            snapshot_bytes: usage.snapshot_bytes,
            reclaimable_bytes,
            cache_mount_bytes: dir_bytes(&self.inner.cache_mount_root),
        })
    }

    /// Removes what `req` asks for; what a running build holds is never touched.
    pub fn prune(&self, req: &PruneRequest) -> Result<PruneSummary, CacheError> {
        let cache = self.cache();
        let report = match (req.keep_storage, req.unused_for) {
            (Some(keep), _) => cache.prune_to(keep)?,
            (None, Some(age)) => cache.prune_unused_for(age)?,
            (None, None) => cache.prune()?,
        };
        let mut out = PruneSummary {
            records: report.records,
            cache_mounts: 0,
            bytes: report.bytes,
        };
        if req.all {
            let (n, bytes) = prune_cache_mounts(&self.inner.cache_mount_root)?;
            out.cache_mounts = n;
            out.bytes += bytes;
        }
        Ok(out)
    }
}

/// Removes every cache-mount directory whose lock can be taken exclusively (no build
/// uses it). The lock is held while the directory goes.
fn prune_cache_mounts(root: &Path) -> Result<(usize, u64), CacheError> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Ok((0, 0));
    };
    let (mut n, mut bytes) = (0, 0);
    for e in rd.flatten() {
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        if path.extension().is_some_and(|x| x == "removing") {
            // Left by a prune that was interrupted mid-removal.
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        let lock_path = path.with_extension("lock");
        let Some(lock) = FileLock::try_acquire(&lock_path, LockMode::Exclusive)? else {
            continue;
        };
        let size = dir_bytes(&path);
        // Renamed aside first, so a crash mid-removal never leaves a half cache mount
        // under its real name.
        let doomed = path.with_extension("removing");
        if std::fs::rename(&path, &doomed).is_ok() {
            let _ = std::fs::remove_dir_all(&doomed);
            n += 1;
            bytes += size;
        }
        drop(lock);
    }
    Ok((n, bytes))
}

/// Bytes of the regular files under `dir` (hard links counted once).
fn dir_bytes(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && seen.insert((m.dev(), m.ino())))
        .map(|m| m.blocks() * 512)
        .sum()
}
