//! The stat cache behind content checksums (`COPY` keys): a file's sha256 is read again
//! only when its metadata changed. Rows live in the cache database (`file_hashes`), read
//! once per scope and written in one transaction per checksum run or context copy.
//!
//! Two kinds of scope:
//!
//! - **A snapshot** (a ref's `snapshot_id`). Committed snapshots never change, so a row
//!   stays true for as long as the snapshot exists (it goes with it). The stamp is checked
//!   anyway, without the device: an overlay mount gets a new anonymous device each time,
//!   while inode numbers and times are the underlying files'.
//! - **A build context on the host** (its directory and include/exclude patterns). The
//!   context is copied into a *new* snapshot on every change (new inodes, new ctimes), so
//!   the new snapshot's rows cannot come from the old snapshot's. The copy knows which host
//!   file each copied file came from and the host file's stat (the fingerprint walk's):
//!   it takes the hash from the host row when device, inode, size, mtime and ctime all
//!   match, as walked and still after the copy (a file edited in between is never given
//!   its old hash), hashes the copy otherwise, and writes the new snapshot's rows, so the
//!   `COPY` checksum that follows hits on every file. A host row is written only for a file
//!   whose ctime is older than [`RACY`] at copy time: a write in the same clock tick as an
//!   earlier one can leave ctime unchanged (git's "racily clean" entries), and such a file
//!   is simply hashed again next time.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use cairn_cache::metadata::{FileHash, FileStamp, MetadataDb};
use sha2::{Digest as _, Sha256};

use crate::error::OpError;
use crate::ops::file::FileHashes;

/// How old a host file's ctime must be before its hash is remembered (see the module doc).
pub(crate) const RACY: Duration = Duration::from_secs(2);

fn stamp(meta: &Metadata, with_dev: bool) -> FileStamp {
    FileStamp {
        dev: if with_dev { meta.dev() } else { 0 },
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
    }
}

/// Nanoseconds since the epoch, saturating (a tar can carry a time past the year 2262; the
/// other fields of the stamp still tell such files apart).
fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

fn db_error(what: &str) -> impl FnOnce(cairn_cache::metadata::MetadataError) -> OpError + '_ {
    move |e| OpError::failed(format!("{what}: {e}"))
}

/// The rows of one scope, plus the ones learnt since they were read.
#[derive(Debug)]
pub(crate) struct ScopeHashes {
    scope: String,
    with_dev: bool,
    known: HashMap<String, FileHash>,
    learnt: Vec<(String, FileHash)>,
}

impl ScopeHashes {
    /// The rows of snapshot `snapshot_id`.
    pub(crate) fn snapshot(db: &MetadataDb, snapshot_id: &str) -> Result<ScopeHashes, OpError> {
        ScopeHashes::load(db, snapshot_id.to_owned(), false)
    }

    fn load(db: &MetadataDb, scope: String, with_dev: bool) -> Result<ScopeHashes, OpError> {
        let known = db
            .file_hashes(&scope)
            .map_err(db_error("reading the stat cache"))?;
        Ok(ScopeHashes {
            scope,
            with_dev,
            known,
            learnt: Vec::new(),
        })
    }

    /// Stores what was learnt, in one transaction.
    pub(crate) fn save(self, db: &MetadataDb) -> Result<(), OpError> {
        db.put_file_hashes(&self.scope, &self.learnt, &[])
            .map_err(db_error("writing the stat cache"))
    }

    fn lookup(&self, rel: &str, stamp: &FileStamp) -> Option<[u8; 32]> {
        self.known
            .get(rel)
            .filter(|h| h.stamp == *stamp)
            .map(|h| h.sha256)
    }
}

impl FileHashes for ScopeHashes {
    fn get(&self, rel: &Path, meta: &Metadata) -> Option<[u8; 32]> {
        self.lookup(rel.to_str()?, &stamp(meta, self.with_dev))
    }

    fn put(&mut self, rel: &Path, meta: &Metadata, sha256: [u8; 32]) {
        // A name that is not UTF-8 is not remembered (rows are keyed by text); it is
        // only read again.
        let Some(rel) = rel.to_str() else { return };
        let h = FileHash {
            stamp: stamp(meta, self.with_dev),
            sha256,
        };
        self.known.insert(rel.to_owned(), h);
        self.learnt.push((rel.to_owned(), h));
    }
}

/// What one copied file's hash check learnt (see [`ContextHashes::hash_copied`]).
#[derive(Debug)]
pub(crate) struct CopiedFile {
    rel: String,
    sha256: [u8; 32],
    copy_stamp: FileStamp,
    host_row: Option<FileHash>,
    read: bool,
}

/// What copying a build context into a new snapshot learns: the host rows (read before,
/// updated after) and the new snapshot's rows.
#[derive(Debug)]
pub(crate) struct ContextHashes {
    host: ScopeHashes,
    /// Host paths this copy saw; rows of any other path of the scope are dropped.
    seen: HashSet<String>,
    snapshot_rows: Vec<(String, FileHash)>,
    /// Host files changed after this are not remembered (see [`RACY`]).
    settled_before: SystemTime,
    /// Files whose contents had to be read (no current host row).
    pub(crate) read: usize,
}

impl ContextHashes {
    /// The host rows of context `dir` copied with filter `spec`.
    pub(crate) fn load(db: &MetadataDb, dir: &Path, spec: &str) -> Result<ContextHashes, OpError> {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        let scope = format!("host:{}\n{spec}", dir.display());
        Ok(ContextHashes {
            host: ScopeHashes::load(db, scope, true)?,
            seen: HashSet::new(),
            snapshot_rows: Vec::new(),
            settled_before: SystemTime::now() - RACY,
            read: 0,
        })
    }

    /// Notes that host file `rel` at `source` (stat `walked`, from the walk the source was
    /// keyed by) was copied to `copy`: [`ContextHashes::hash_copied`] then
    /// [`ContextHashes::record`], by path.
    #[cfg(test)]
    pub(crate) fn copied(
        &mut self,
        rel: &str,
        walked: &Metadata,
        source: &Path,
        copy: &Path,
    ) -> io::Result<()> {
        let now = std::fs::symlink_metadata(source)?;
        let copied = self.hash_copied(rel, walked, &now, &std::fs::File::open(copy)?)?;
        self.record(copied);
        Ok(())
    }

    /// The hash of host file `rel` (stat `walked`, from the walk the source was keyed by,
    /// and `now`, taken after the copy) copied to the open file `copy`. It comes from the
    /// host row when the stat now is still the walked one and the row's; otherwise the
    /// copy is read (a file that changed since the walk is never given its old hash, and
    /// its row is not updated: the copy may hold either version). Takes `&self` so the
    /// files of one context can be copied on several threads; [`ContextHashes::record`]
    /// then takes in what each learnt.
    pub(crate) fn hash_copied(
        &self,
        rel: &str,
        walked: &Metadata,
        now: &Metadata,
        copy: &std::fs::File,
    ) -> io::Result<CopiedFile> {
        use std::os::unix::fs::FileExt as _;
        let now = stamp(now, true);
        let steady = now == stamp(walked, true);
        let known = self.host.lookup(rel, &now).filter(|_| steady);
        let mut host_row = None;
        let sha256 = match known {
            Some(sum) => sum,
            None => {
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut at = 0u64;
                loop {
                    let n = copy.read_at(&mut buf, at)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    at += n as u64;
                }
                let sum: [u8; 32] = h.finalize().into();
                let changed = SystemTime::UNIX_EPOCH
                    + Duration::new(walked.ctime().max(0) as u64, walked.ctime_nsec() as u32);
                if steady && changed < self.settled_before {
                    host_row = Some(FileHash {
                        stamp: stamp(walked, true),
                        sha256: sum,
                    });
                }
                sum
            }
        };
        Ok(CopiedFile {
            rel: rel.to_owned(),
            sha256,
            copy_stamp: stamp(&copy.metadata()?, false),
            host_row,
            read: known.is_none(),
        })
    }

    /// Takes in what [`ContextHashes::hash_copied`] learnt of one file.
    pub(crate) fn record(&mut self, c: CopiedFile) {
        self.seen.insert(c.rel.clone());
        if c.read {
            self.read += 1;
        }
        if let Some(row) = c.host_row {
            self.host.known.insert(c.rel.clone(), row);
            self.host.learnt.push((c.rel.clone(), row));
        }
        self.snapshot_rows.push((
            c.rel,
            FileHash {
                stamp: c.copy_stamp,
                sha256: c.sha256,
            },
        ));
    }

    /// Stores the rows of snapshot `snapshot_id` (the copy, now committed) and the updated
    /// host rows.
    pub(crate) fn save(self, db: &MetadataDb, snapshot_id: &str) -> Result<(), OpError> {
        tracing::debug!(
            files = self.snapshot_rows.len(),
            read = self.read,
            snapshot = snapshot_id,
            "context checksums"
        );
        db.put_file_hashes(snapshot_id, &self.snapshot_rows, &[])
            .map_err(db_error("writing the stat cache"))?;
        let gone: Vec<String> = self
            .host
            .known
            .keys()
            .filter(|k| !self.seen.contains(*k))
            .cloned()
            .collect();
        db.put_file_hashes(&self.host.scope, &self.host.learnt, &gone)
            .map_err(db_error("writing the stat cache"))
    }
}

#[cfg(test)]
mod tests;
