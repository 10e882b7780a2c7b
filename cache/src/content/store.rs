//! The content store: verified blobs by digest under `<root>/content/blobs/sha256/<hex>`.
//!
//! Layout of `<root>/content`:
//! - `blobs/sha256/<hex>`: committed blobs. A file here is complete and verified; nothing
//!   writes to it after the rename that put it there.
//! - `ingest/<hex>.partial` and `<hex>.lock`: a remote fetch in progress or interrupted
//!   (see `ingest` for the resume rule).
//! - `ingest/local-*.tmp`: a locally produced blob being written, locked by its writer.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cairn_llb::{Digest, Hasher};

use super::error::ContentError;
use super::ingest::{IngestProgress, fetch_blob};
use super::provider::{ContentProvider, LayoutProvider};
use crate::descriptor::Descriptor;
use crate::flight::Flight;
use crate::lock::{FileLock, LockMode};

/// A partial fetch untouched this long is swept at open instead of kept for resuming: the
/// image it belonged to has most likely been given up on.
const PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A local temp blob is only swept once unlocked *and* this old, so a writer that has
/// created its file but not yet locked it is never swept.
const TMP_MIN_AGE: Duration = Duration::from_secs(60);

pub(crate) fn blob_path(content_dir: &Path, digest: &Digest) -> PathBuf {
    content_dir
        .join("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

pub(crate) fn ingest_dir(content_dir: &Path) -> PathBuf {
    content_dir.join("ingest")
}

/// Makes a rename or unlink in `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ContentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ContentError::io("syncing directory", dir))
}

/// Verified blobs by digest. Cheap to clone; clones share the in-process single-flight.
#[derive(Debug, Clone)]
pub struct ContentStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    fetches: Flight<Digest, Result<(), ContentError>, IngestProgress>,
}

/// One committed blob, as listed for disk-usage accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `<state_root>/content` and sweeps what
    /// dead writers left in `ingest/`.
    pub fn open(state_root: &Path) -> Result<ContentStore, ContentError> {
        let dir = state_root.join("content");
        for d in [dir.join("blobs").join("sha256"), ingest_dir(&dir)] {
            std::fs::create_dir_all(&d).map_err(ContentError::io("creating directory", &d))?;
        }
        let store = ContentStore {
            inner: Arc::new(Inner {
                dir,
                fetches: Flight::new(),
            }),
        };
        store.sweep()?;
        Ok(store)
    }

    /// `<state_root>/content`.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Where blob `digest` lives once committed.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.inner.dir, digest)
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Size of a committed blob, `None` if absent.
    pub fn size_of(&self, digest: &Digest) -> Result<Option<u64>, ContentError> {
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ContentError::io("inspecting blob", path)(e)),
        }
    }

    /// Opens a committed blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound {
                    digest: digest.clone(),
                }
            } else {
                ContentError::io("opening blob", path)(e)
            }
        })
    }

    /// Reads a whole (small) blob: manifests, configs.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let mut out = Vec::new();
        io::Read::read_to_end(&mut self.open_blob(digest)?, &mut out)
            .map_err(ContentError::io("reading blob", self.blob_path(digest)))?;
        Ok(out)
    }

    /// A provider serving this store's committed blobs (for export of local blobs).
    pub fn provider(&self) -> LayoutProvider {
        LayoutProvider::new(self.inner.dir.clone())
    }

    /// Makes sure blob `desc` is in the store, fetching it from `provider` if not.
    ///
    /// Concurrent calls for one digest fetch once: in this process through a single-flight
    /// (a cancelled caller detaches; the fetch stops only when every caller has gone), across
    /// processes through the digest's ingest lock. Every waiter sees the fetch's progress
    /// through `on_progress`. The bytes are verified against `desc.size` and `desc.digest`
    /// before they are committed.
    pub async fn fetch(
        &self,
        desc: &Descriptor,
        provider: Arc<dyn ContentProvider>,
        on_progress: impl FnMut(IngestProgress),
    ) -> Result<(), ContentError> {
        if self.contains(&desc.digest) {
            return Ok(());
        }
        let dir = self.inner.dir.clone();
        let work_desc = desc.clone();
        self.inner
            .fetches
            .run_with_progress(
                desc.digest.clone(),
                move |sink| fetch_blob(dir, work_desc, provider, sink),
                on_progress,
            )
            .await
            .unwrap_or_else(|source| {
                Err(ContentError::Flight {
                    digest: desc.digest.clone(),
                    source,
                })
            })
    }

    /// Starts writing a locally produced blob (a layer computed by a diff, a manifest).
    pub fn writer(&self) -> Result<BlobWriter, ContentError> {
        let ingest = ingest_dir(&self.inner.dir);
        let tmp = tempfile::Builder::new()
            .prefix("local-")
            .suffix(".tmp")
            .tempfile_in(&ingest)
            .map_err(ContentError::io("creating temp blob in", &ingest))?;
        let (file, path) = tmp.into_parts();
        let lock =
            FileLock::try_acquire_open(file, &path, LockMode::Exclusive)?.ok_or_else(|| {
                ContentError::io("locking new temp blob", path.to_path_buf())(io::Error::other(
                    "held by another process",
                ))
            })?;
        Ok(BlobWriter {
            store: self.clone(),
            lock,
            path,
            hasher: Hasher::new(),
        })
    }

    /// Writes `bytes` as a blob and returns its digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest, ContentError> {
        let mut w = self.writer()?;
        w.write_all(bytes)
            .map_err(ContentError::io("writing temp blob", w.path.to_path_buf()))?;
        Ok(w.commit(None)?.digest)
    }

    /// Deletes a committed blob; `false` if it was not there. The caller has already removed
    /// every metadata row pointing at it (rows first, files after).
    pub fn delete(&self, digest: &Digest) -> Result<bool, ContentError> {
        let path = self.blob_path(digest);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ContentError::io("deleting blob", path)(e)),
        }
    }

    /// Every committed blob with its size, sorted by digest.
    pub fn list(&self) -> Result<Vec<BlobInfo>, ContentError> {
        let dir = self.inner.dir.join("blobs").join("sha256");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(ContentError::io("listing", &dir))? {
            let entry = entry.map_err(ContentError::io("listing", &dir))?;
            let name = entry.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
            else {
                continue; // not ours; never delete what we cannot name
            };
            let meta = entry
                .metadata()
                .map_err(ContentError::io("inspecting blob", entry.path()))?;
            out.push(BlobInfo {
                digest,
                size: meta.len(),
            });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Removes what dead writers left: unlocked temp blobs, partials of blobs that are
    /// committed by now or too old to resume, and lock files nobody holds. Partials of live
    /// fetches (lock held) and recent ones (kept for resuming) stay.
    pub fn sweep(&self) -> Result<SweepReport, ContentError> {
        let ingest = ingest_dir(&self.inner.dir);
        let mut report = SweepReport::default();
        let entries = std::fs::read_dir(&ingest).map_err(ContentError::io("listing", &ingest))?;
        let now = SystemTime::now();
        let age = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default()
        };
        for entry in entries {
            let entry = entry.map_err(ContentError::io("listing", &ingest))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if name.starts_with("local-") && name.ends_with(".tmp") {
                if age(&path) < TMP_MIN_AGE {
                    continue;
                }
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                if let Some(lock) = FileLock::try_acquire_open(file, &path, LockMode::Exclusive)? {
                    remove_if_present(&path)?;
                    drop(lock);
                    report.temp_files += 1;
                }
            } else if let Some(hex) = name.strip_suffix(".partial") {
                let Ok(digest) = Digest::parse(&format!("sha256:{hex}")) else {
                    continue;
                };
                let stale = self.contains(&digest) || age(&path) > PARTIAL_MAX_AGE;
                if !stale {
                    continue;
                }
                let lock_path = ingest.join(format!("{hex}.lock"));
                if let Some(lock) = FileLock::try_acquire(&lock_path, LockMode::Exclusive)? {
                    remove_if_present(&path)?;
                    lock.remove_and_release()?;
                    report.partials += 1;
                }
            } else if let Some(hex) = name.strip_suffix(".lock") {
                if ingest.join(format!("{hex}.partial")).exists() {
                    continue;
                }
                if let Some(lock) = FileLock::try_acquire(&path, LockMode::Exclusive)? {
                    lock.remove_and_release()?;
                }
            }
        }
        Ok(report)
    }
}

fn remove_if_present(path: &Path) -> Result<(), ContentError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ContentError::io("removing", path)(e)),
    }
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub temp_files: usize,
    pub partials: usize,
}

/// Digest and size of a blob just committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub digest: Digest,
    pub size: u64,
}

/// A blob being written locally; hashes as it writes. Dropping it without
/// [`BlobWriter::commit`] deletes the temp file.
pub struct BlobWriter {
    store: ContentStore,
    lock: FileLock,
    path: tempfile::TempPath,
    hasher: Hasher,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("path", &self.path)
            .field("len", &self.hasher.len())
            .finish_non_exhaustive()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&mut self.lock.file()).write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWriter {
    #[cfg(test)]
    pub(crate) fn path_for_tests(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// fsyncs, verifies against `expected` (digest and size) if given, and renames the blob
    /// into place. A mismatch deletes the temp file.
    pub fn commit(self, expected: Option<&Descriptor>) -> Result<Committed, ContentError> {
        let BlobWriter {
            store,
            lock,
            path,
            hasher,
        } = self;
        let size = hasher.len();
        let digest = hasher.finalize();
        if let Some(want) = expected {
            if want.size != size {
                return Err(ContentError::SizeMismatch {
                    digest: want.digest.clone(),
                    expected: want.size,
                    actual: size,
                });
            }
            if want.digest != digest {
                return Err(ContentError::DigestMismatch {
                    expected: want.digest.clone(),
                    actual: digest,
                    size,
                });
            }
        }
        lock.file()
            .sync_all()
            .map_err(ContentError::io("syncing temp blob", path.to_path_buf()))?;
        let dest = store.blob_path(&digest);
        path.persist(&dest)
            .map_err(|e| ContentError::io("renaming blob into place", &dest)(e.error))?;
        drop(lock);
        fsync_dir(dest.parent().unwrap_or(store.dir()))?;
        Ok(Committed { digest, size })
    }
}
