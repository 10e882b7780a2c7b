//! The stat cache against real files, a real cache database and (for snapshots) real
//! overlay mounts: the checksum is the same cold or warm, a rewrite is always seen, a
//! context copy seeds its snapshot's rows. The timing test prints numbers (`--no-capture`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_cache::metadata::MetadataDb;
use cairn_cache::snapshot::{DriverChoice, Snapshotter, probe};
use cairn_cache::{CacheManager, DescHandlers};
use cairn_llb::Digest;

use sha2::Digest as _;

use super::{ContextHashes, ScopeHashes};
use crate::ops::file::op::checksum_sources;
use crate::ops::file::{FileHashes, NoHashes};

/// Counts the files a checksum had to read (every `put` is a miss).
struct Counting<'a> {
    inner: &'a mut dyn FileHashes,
    read: usize,
}

impl FileHashes for Counting<'_> {
    fn get(&self, rel: &Path, meta: &std::fs::Metadata) -> Option<[u8; 32]> {
        self.inner.get(rel, meta)
    }

    fn put(&mut self, rel: &Path, meta: &std::fs::Metadata, sha256: [u8; 32]) {
        self.read += 1;
        self.inner.put(rel, meta, sha256);
    }
}

fn sources() -> Vec<(String, bool, bool)> {
    vec![("/".into(), false, false)]
}

/// The checksum of `root` through `hashes`, and how many files it read.
fn sum(root: &Path, hashes: &mut dyn FileHashes) -> (Digest, usize) {
    let mut c = Counting {
        inner: hashes,
        read: 0,
    };
    let d = checksum_sources(root, &sources(), &mut c).expect("checksum");
    (d, c.read)
}

/// The checksum of `root` with scope `scope`'s rows, which are then saved.
fn sum_scoped(db: &MetadataDb, scope: &str, root: &Path) -> (Digest, usize) {
    let mut h = ScopeHashes::snapshot(db, scope).expect("load");
    let out = sum(root, &mut h);
    h.save(db).expect("save");
    out
}

fn write_tree(root: &Path, files: usize, size: usize) {
    for i in 0..files {
        let p = root.join(format!("d{}/f{i}", i % 50));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let body: Vec<u8> = (0..size).map(|b| (b * 31 + i * 7) as u8).collect();
        std::fs::write(&p, body).expect("write");
    }
}

fn set_mtime(p: &Path, secs: i64) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::empty(),
    )
    .expect("utimensat");
}

#[test]
fn the_digest_is_the_same_cold_and_warm_and_a_rewrite_is_seen() {
    let (tree, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db = MetadataDb::open(state.path()).unwrap();
    write_tree(tree.path(), 20, 100);
    std::os::unix::fs::symlink("d0/f0", tree.path().join("link")).unwrap();
    let (plain, _) = sum(tree.path(), &mut NoHashes);

    assert_eq!(
        sum_scoped(&db, "s", tree.path()),
        (plain.clone(), 20),
        "cold reads all"
    );
    assert_eq!(
        sum_scoped(&db, "s", tree.path()),
        (plain.clone(), 0),
        "warm reads none"
    );

    // Same size, new contents and a new mtime: read again, and the digest moves.
    let f = tree.path().join("d3/f3");
    let old = std::fs::symlink_metadata(&f).unwrap();
    std::fs::write(&f, vec![b'x'; 100]).unwrap();
    set_mtime(&f, old.mtime_secs() + 10);
    let (changed, read) = sum_scoped(&db, "s", tree.path());
    assert_eq!(read, 1);
    assert_ne!(changed, plain);
    assert_eq!(changed, sum(tree.path(), &mut NoHashes).0);

    // Same size and the old mtime put back (`touch -r`): the ctime still tells.
    std::fs::write(&f, vec![b'y'; 100]).unwrap();
    set_mtime(&f, old.mtime_secs() + 10);
    let (again, read) = sum_scoped(&db, "s", tree.path());
    assert_eq!(read, 1);
    assert_ne!(again, changed);
    assert_eq!(again, sum(tree.path(), &mut NoHashes).0);
}

trait MtimeSecs {
    fn mtime_secs(&self) -> i64;
}

impl MtimeSecs for std::fs::Metadata {
    fn mtime_secs(&self) -> i64 {
        std::os::unix::fs::MetadataExt::mtime(self)
    }
}

/// Copies `host` into `dest` as the local source does, telling `hashes`.
fn copy_context(host: &Path, dest: &Path, hashes: &mut ContextHashes) {
    for e in walkdir::WalkDir::new(host).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(host).unwrap();
        let target = dest.join(rel);
        let meta = e.metadata().unwrap();
        if meta.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            hashes
                .copied(rel.to_str().unwrap(), &meta, e.path(), &target)
                .unwrap();
        }
    }
}

/// One context copy into a fresh directory standing for a fresh snapshot `scope`; returns
/// the copy, its checksum, and how many files the copy and then the checksum read.
fn copy_and_sum(
    db: &MetadataDb,
    host: &Path,
    scope: &str,
) -> (tempfile::TempDir, Digest, usize, usize) {
    let dest = tempfile::tempdir().unwrap();
    let mut hashes = ContextHashes::load(db, host, "spec").unwrap();
    // The files were written just now; let them count as settled (see `RACY`).
    hashes.settled_before = std::time::SystemTime::now() + Duration::from_secs(1);
    copy_context(host, dest.path(), &mut hashes);
    let copy_read = hashes.read;
    hashes.save(db, scope).unwrap();
    let (d, read) = sum_scoped(db, scope, dest.path());
    (dest, d, copy_read, read)
}

#[test]
fn a_context_copy_seeds_its_snapshot_and_rereads_only_changed_host_files() {
    let (host, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db = MetadataDb::open(state.path()).unwrap();
    write_tree(host.path(), 30, 64);
    let (copy, first, copy_read, read) = copy_and_sum(&db, host.path(), "snap-1");
    assert_eq!(
        (copy_read, read),
        (30, 0),
        "the checksum of a fresh copy reads nothing"
    );
    assert_eq!(first, sum(copy.path(), &mut NoHashes).0);
    assert_eq!(db.file_hashes(&host_scope(host.path())).unwrap().len(), 30);

    // One host file rewritten (same size), one removed: the next copy reads only the one.
    std::fs::write(host.path().join("d7/f7"), vec![0u8; 64]).unwrap();
    std::fs::remove_file(host.path().join("d8/f8")).unwrap();
    let (copy, second, copy_read, read) = copy_and_sum(&db, host.path(), "snap-2");
    assert_eq!((copy_read, read), (1, 0));
    assert_eq!(second, sum(copy.path(), &mut NoHashes).0);
    assert_ne!(second, first);
    assert_eq!(
        db.file_hashes(&host_scope(host.path())).unwrap().len(),
        29,
        "the removed file's row is dropped"
    );

    // A file changed within the racy window is read but not remembered.
    let mut racy = ContextHashes::load(&db, host.path(), "spec").unwrap();
    let (src, dst) = (host.path().join("d1/f1"), copy.path().join("d1/f1"));
    std::fs::write(&src, vec![1u8; 64]).unwrap();
    std::fs::copy(&src, &dst).unwrap();
    racy.copied("d1/f1", &std::fs::metadata(&src).unwrap(), &src, &dst)
        .unwrap();
    assert_eq!(racy.read, 1);
    assert!(racy.host.learnt.is_empty());

    // A file that changes between the walk and the copy is read from the copy, never
    // given the hash its walked stat has in the host row.
    let mut moved = ContextHashes::load(&db, host.path(), "spec").unwrap();
    moved.settled_before = std::time::SystemTime::now() + Duration::from_secs(1);
    let (src, dst) = (host.path().join("d2/f2"), copy.path().join("d2/f2"));
    let walked = std::fs::metadata(&src).unwrap();
    std::fs::write(&src, vec![9u8; 64]).unwrap();
    std::fs::copy(&src, &dst).unwrap();
    moved.copied("d2/f2", &walked, &src, &dst).unwrap();
    assert_eq!(moved.read, 1);
    assert!(
        moved.host.learnt.is_empty(),
        "the walked stat no longer describes it"
    );
    let want: [u8; 32] = sha2::Sha256::digest(vec![9u8; 64]).into();
    assert_eq!(moved.snapshot_rows[0].1.sha256, want);
}

fn host_scope(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap();
    format!("host:{}\nspec", dir.display())
}

/// A committed snapshot with `files` files of `size` bytes, on the host's snapshotter.
async fn snapshot_tree(
    root: &Path,
    files: usize,
    size: usize,
) -> (CacheManager, cairn_cache::ImmutableRef) {
    let (sn, _) = probe(&root.join("snapshots"), DriverChoice::Auto).expect("snapshotter");
    let sn: Arc<dyn Snapshotter> = Arc::new(sn);
    let mgr = CacheManager::open(root, sn).expect("cache");
    let m = mgr
        .new_mutable(None, &DescHandlers::new(), "tree")
        .await
        .expect("mutable");
    let dir = tempfile::tempdir().unwrap();
    let guard = m.mounts().mount_at(dir.path()).expect("mount");
    write_tree(dir.path(), files, size);
    guard.unmount().expect("unmount");
    let r = m.commit().await.expect("commit");
    (mgr, r)
}

/// The checksum of a fresh mount of `r` with its snapshot's rows.
async fn sum_mounted(
    mgr: &CacheManager,
    r: &cairn_cache::ImmutableRef,
) -> (Digest, usize, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let guard = r
        .mounts(&DescHandlers::new())
        .await
        .expect("mounts")
        .mount_at(dir.path())
        .expect("mount");
    let start = Instant::now();
    let (d, read) = sum_scoped(mgr.metadata(), &r.record().snapshot_id, dir.path());
    let took = start.elapsed();
    guard.unmount().expect("unmount");
    (d, read, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_hits_across_mounts() {
    let state = tempfile::tempdir().unwrap();
    let (mgr, r) = snapshot_tree(state.path(), 40, 10).await;
    let (cold, read, _) = sum_mounted(&mgr, &r).await;
    assert_eq!(read, 40);
    // A new mount (overlay: a new device number) still hits on every file.
    let (warm, read, _) = sum_mounted(&mgr, &r).await;
    assert_eq!((warm, read), (cold, 0));
}

/// The local source's path: a context copied through the writable mount of a fresh
/// snapshot seeds rows that the read-only mount of the committed snapshot hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_copied_into_a_snapshot_hits_through_its_later_mounts() {
    let (host, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_tree(host.path(), 25, 10);
    let (sn, _) = probe(&state.path().join("snapshots"), DriverChoice::Auto).expect("snapshotter");
    let sn: Arc<dyn Snapshotter> = Arc::new(sn);
    let mgr = CacheManager::open(state.path(), sn).expect("cache");
    let m = mgr
        .new_mutable(None, &DescHandlers::new(), "context")
        .await
        .expect("mutable");
    let mut hashes = ContextHashes::load(mgr.metadata(), host.path(), "spec").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let guard = m.mounts().mount_at(dir.path()).expect("mount");
    copy_context(host.path(), dir.path(), &mut hashes);
    guard.unmount().expect("unmount");
    let r = m.commit().await.expect("commit");
    hashes
        .save(mgr.metadata(), &r.record().snapshot_id)
        .unwrap();
    let (d, read, _) = sum_mounted(&mgr, &r).await;
    assert_eq!(read, 0, "{}", mgr.snapshotter().name());
    assert_eq!(d, sum(host.path(), &mut NoHashes).0);
}

fn root_path() -> PathBuf {
    std::env::var_os("CAIRN_TIMING_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// Cold against warm on 5,000 files / 64 MiB: the checksum of a committed snapshot (no
/// stat cache, cold, warm), and a context copy seeding a new snapshot's rows (every file
/// read, then none). Prints; asserts only that the digests agree. `cargo nextest run -p
/// cairn-solver --run-ignored only stat_cache_timing --no-capture` (`CAIRN_TIMING_DIR`
/// times on another disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing: run by hand"]
async fn stat_cache_timing() {
    const FILES: usize = 5_000;
    const SIZE: usize = 64 * 1024 * 1024 / FILES;
    let state = tempfile::tempdir_in(root_path()).unwrap();
    let (mgr, r) = snapshot_tree(state.path(), FILES, SIZE).await;
    let dir = tempfile::tempdir().unwrap();
    let guard = r
        .mounts(&DescHandlers::new())
        .await
        .unwrap()
        .mount_at(dir.path())
        .unwrap();
    let start = Instant::now();
    let plain = sum(dir.path(), &mut NoHashes).0;
    let plain_t = start.elapsed();
    guard.unmount().unwrap();
    let (cold, cold_read, cold_t) = sum_mounted(&mgr, &r).await;
    let (warm, warm_read, warm_t) = sum_mounted(&mgr, &r).await;
    assert_eq!((&cold, &warm), (&plain, &plain));
    println!(
        "checksum of a snapshot, {FILES} files / 64 MiB ({}): no stat cache {plain_t:.2?}, \
         cold {cold_t:.2?} ({cold_read} read), warm {warm_t:.2?} ({warm_read} read)",
        mgr.snapshotter().name()
    );

    // A build context copied into a new snapshot, then keyed by a `COPY` of all of it:
    // before the stat cache every build read every byte in the checksum; now the copy
    // reads only files without a current host row and the checksum reads nothing.
    let host = tempfile::tempdir_in(root_path()).unwrap();
    write_tree(host.path(), FILES, SIZE);
    let db = mgr.metadata();
    let mut dests = Vec::new();
    for round in ["first build", "rebuild, 1 file changed"] {
        if round != "first build" {
            std::fs::write(host.path().join("d1/f1"), vec![7u8; SIZE]).unwrap();
        }
        let dest = tempfile::tempdir_in(root_path()).unwrap();
        let mut hashes = ContextHashes::load(db, host.path(), "spec").unwrap();
        hashes.settled_before = std::time::SystemTime::now() + Duration::from_secs(1);
        let start = Instant::now();
        copy_context(host.path(), dest.path(), &mut hashes);
        let read = hashes.read;
        hashes.save(db, round).unwrap();
        let copy_t = start.elapsed();
        let start = Instant::now();
        let (seeded, reread) = sum_scoped(db, round, dest.path());
        let sum_t = start.elapsed();
        let start = Instant::now();
        let (plain, _) = sum(dest.path(), &mut NoHashes);
        let plain_t = start.elapsed();
        assert_eq!((seeded, reread), (plain, 0));
        println!(
            "context of {FILES} files / 64 MiB, {round}: copy + checksums {copy_t:.2?} \
             ({read} read), COPY checksum {sum_t:.2?} (without the stat cache {plain_t:.2?})"
        );
        // Kept until the end: deleting 64 MiB on a `discard` file system stalls creation.
        dests.push(dest);
    }
}
