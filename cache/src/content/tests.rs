use std::io::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cairn_llb::Digest;
use futures::future::BoxFuture;
use futures::stream::StreamExt;

use super::*;
use crate::descriptor::{Descriptor, media_types};

/// A source directory laid out like an OCI layout, holding `blobs`.
struct Source {
    dir: tempfile::TempDir,
}

impl Source {
    fn new() -> Source {
        Source {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Stores `bytes` under `name_digest` (which may deliberately not be their digest).
    fn put_as(&self, name_digest: &Digest, bytes: &[u8]) {
        let dir = self.dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name_digest.hex()), bytes).expect("write");
    }

    fn put(&self, bytes: &[u8]) -> Descriptor {
        let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, bytes);
        self.put_as(&desc.digest, bytes);
        desc
    }

    fn provider(&self) -> LayoutProvider {
        LayoutProvider::new(self.dir.path())
    }
}

/// Wraps a real provider: counts fetches and their offsets, can slow down, stop after a
/// number of bytes (as a dropped connection would), or refuse ranges.
#[derive(Debug)]
struct Instrumented {
    inner: LayoutProvider,
    offsets: Mutex<Vec<u64>>,
    delay_per_chunk: Duration,
    fail_after: Mutex<Option<u64>>,
    refuse_ranges: bool,
}

impl Instrumented {
    fn new(inner: LayoutProvider) -> Instrumented {
        Instrumented {
            inner,
            offsets: Mutex::new(Vec::new()),
            delay_per_chunk: Duration::ZERO,
            fail_after: Mutex::new(None),
            refuse_ranges: false,
        }
    }

    fn offsets(&self) -> Vec<u64> {
        self.offsets.lock().expect("lock").clone()
    }
}

impl ContentProvider for Instrumented {
    fn fetch(
        &self,
        desc: &Descriptor,
        offset: u64,
    ) -> BoxFuture<'static, Result<ByteStream, ProviderError>> {
        self.offsets.lock().expect("lock").push(offset);
        if self.refuse_ranges && offset > 0 {
            let err = ProviderError::RangeNotSupported {
                digest: desc.digest.clone(),
                location: self.location(),
                offset,
            };
            return Box::pin(async move { Err(err) });
        }
        let fut = self.inner.fetch(desc, offset);
        let delay = self.delay_per_chunk;
        let fail_after = self.fail_after.lock().expect("lock").take();
        let digest = desc.digest.clone();
        let location = self.location();
        Box::pin(async move {
            let stream = fut.await?;
            // Re-chunk into small pieces so that cut-offs and delays are fine-grained.
            let mut sent = 0u64;
            let stream = stream
                .flat_map(|r| {
                    let items: Vec<Result<Bytes, ProviderError>> = match r {
                        Ok(b) => (0..b.len())
                            .step_by(1024)
                            .map(|i| Ok(b.slice(i..(i + 1024).min(b.len()))))
                            .collect(),
                        Err(e) => vec![Err(e)],
                    };
                    futures::stream::iter(items)
                })
                .then(move |r| async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    r
                })
                .map(move |r| {
                    let b = r?;
                    sent += b.len() as u64;
                    match fail_after {
                        Some(limit) if sent > limit => Err(ProviderError::Transport {
                            digest: digest.clone(),
                            location: location.clone(),
                            source: "connection reset".into(),
                        }),
                        _ => Ok(b),
                    }
                });
            Ok(stream.boxed())
        })
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn ingest_entries(store: &ContentStore) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.dir().join("ingest"))
        .expect("ingest dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn fetch_commits_a_verified_blob() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let src = Source::new();
    let bytes = payload(300_000, 1);
    let desc = src.put(&bytes);
    let mut last = None;
    store
        .fetch(&desc, Arc::new(src.provider()), |p| last = Some(p))
        .await
        .expect("fetch");
    assert_eq!(store.read(&desc.digest).expect("read"), bytes);
    assert_eq!(
        store.size_of(&desc.digest).expect("size"),
        Some(bytes.len() as u64)
    );
    let last = last.expect("progress reported");
    assert_eq!(
        (last.done, last.total),
        (bytes.len() as u64, bytes.len() as u64)
    );
    assert!(
        ingest_entries(&store).is_empty(),
        "{:?}",
        ingest_entries(&store)
    );
    assert_eq!(
        store.list().expect("list"),
        vec![BlobInfo {
            digest: desc.digest.clone(),
            size: bytes.len() as u64
        }]
    );
}

#[tokio::test]
async fn digest_mismatch_names_both_digests_and_leaves_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let src = Source::new();
    let good = payload(5000, 2);
    let bad = payload(5000, 3);
    let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &good);
    src.put_as(&desc.digest, &bad);
    let err = store
        .fetch(&desc, Arc::new(src.provider()), |_| {})
        .await
        .expect_err("must fail");
    match &err {
        ContentError::DigestMismatch {
            expected,
            actual,
            size,
        } => {
            assert_eq!(expected, &desc.digest);
            assert_eq!(actual, &Digest::of_bytes(&bad));
            assert_eq!(*size, 5000);
        }
        other => panic!("wrong error {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(desc.digest.as_str()) && msg.contains(Digest::of_bytes(&bad).as_str()),
        "{msg}"
    );
    assert!(!store.contains(&desc.digest));
    assert!(
        ingest_entries(&store)
            .iter()
            .all(|n| !n.ends_with(".partial")),
        "{:?}",
        ingest_entries(&store)
    );
    assert!(store.list().expect("list").is_empty());
}

#[tokio::test]
async fn size_mismatch_in_either_direction_leaves_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let src = Source::new();
    let bytes = payload(4000, 4);
    let real = src.put(&bytes);
    for claimed in [3000u64, 5000] {
        let desc = Descriptor::new(real.media_type.clone(), real.digest.clone(), claimed);
        let err = store
            .fetch(&desc, Arc::new(src.provider()), |_| {})
            .await
            .expect_err("must fail");
        match err {
            ContentError::SizeMismatch {
                expected, actual, ..
            } => {
                assert_eq!(expected, claimed);
                if claimed < 4000 {
                    assert!(actual > claimed);
                } else {
                    assert_eq!(actual, 4000);
                }
            }
            other => panic!("wrong error {other:?}"),
        }
        assert!(!store.contains(&desc.digest));
        assert!(
            ingest_entries(&store)
                .iter()
                .all(|n| !n.ends_with(".partial"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_in_one_process_download_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let src = Source::new();
    let desc = src.put(&payload(64 * 1024, 5));
    let mut p = Instrumented::new(src.provider());
    p.delay_per_chunk = Duration::from_millis(2);
    let provider = Arc::new(p);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let desc = desc.clone();
        let provider: Arc<dyn ContentProvider> = provider.clone();
        tasks.push(tokio::spawn(async move {
            store.fetch(&desc, provider, |_| {}).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("fetch");
    }
    assert_eq!(provider.offsets(), vec![0]);
    assert!(store.contains(&desc.digest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_root_download_once() {
    // Two opens of one root have separate single-flights, like two processes: only the
    // ingest lock keeps them from fetching twice.
    let root = tempfile::tempdir().expect("tempdir");
    let a = ContentStore::open(root.path()).expect("open a");
    let b = ContentStore::open(root.path()).expect("open b");
    let src = Source::new();
    let desc = src.put(&payload(64 * 1024, 6));
    let mut p = Instrumented::new(src.provider());
    p.delay_per_chunk = Duration::from_millis(2);
    let provider = Arc::new(p);
    let (pa, pb): (Arc<dyn ContentProvider>, Arc<dyn ContentProvider>) =
        (provider.clone(), provider.clone());
    let (ra, rb) = tokio::join!(a.fetch(&desc, pa, |_| {}), b.fetch(&desc, pb, |_| {}));
    ra.expect("a");
    rb.expect("b");
    assert_eq!(provider.offsets(), vec![0]);
}

#[tokio::test]
async fn interrupted_fetch_resumes_from_the_partial() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let src = Source::new();
    let bytes = payload(100 * 1024, 7);
    let desc = src.put(&bytes);
    let p = Instrumented::new(src.provider());
    *p.fail_after.lock().expect("lock") = Some(40 * 1024);
    let provider = Arc::new(p);
    let err = store
        .fetch(&desc, provider.clone(), |_| {})
        .await
        .expect_err("cut off");
    assert!(matches!(err, ContentError::Provider { .. }), "{err:?}");
    let partial = store
        .dir()
        .join("ingest")
        .join(format!("{}.partial", desc.digest.hex()));
    assert_eq!(
        std::fs::metadata(&partial).expect("partial kept").len(),
        40 * 1024
    );
    // A fresh open (a restarted process) keeps the partial and resumes from it.
    let store = ContentStore::open(root.path()).expect("reopen");
    let mut resumed = None;
    store
        .fetch(&desc, provider.clone(), |p| resumed = Some(p.resumed_from))
        .await
        .expect("resume");
    assert_eq!(provider.offsets(), vec![0, 40 * 1024]);
    assert_eq!(resumed, Some(40 * 1024));
    assert_eq!(store.read(&desc.digest).expect("read"), bytes);
    assert!(!partial.exists());
}

#[tokio::test]
async fn refused_range_restarts_from_zero() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let src = Source::new();
    let bytes = payload(10_000, 8);
    let desc = src.put(&bytes);
    let partial = store
        .dir()
        .join("ingest")
        .join(format!("{}.partial", desc.digest.hex()));
    std::fs::write(&partial, &bytes[..3000]).expect("seed partial");
    let mut p = Instrumented::new(src.provider());
    p.refuse_ranges = true;
    let provider = Arc::new(p);
    store
        .fetch(&desc, provider.clone(), |_| {})
        .await
        .expect("fetch");
    assert_eq!(provider.offsets(), vec![3000, 0]);
    assert_eq!(store.read(&desc.digest).expect("read"), bytes);
}

#[tokio::test]
async fn corrupt_partial_is_discarded_and_refetched() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let src = Source::new();
    let bytes = payload(10_000, 9);
    let desc = src.put(&bytes);
    let partial = store
        .dir()
        .join("ingest")
        .join(format!("{}.partial", desc.digest.hex()));
    std::fs::write(&partial, vec![0u8; 3000]).expect("seed garbage partial");
    let provider = Arc::new(Instrumented::new(src.provider()));
    store
        .fetch(&desc, provider.clone(), |_| {})
        .await
        .expect("fetch");
    assert_eq!(provider.offsets(), vec![3000, 0]);
    assert_eq!(store.read(&desc.digest).expect("read"), bytes);
}

#[tokio::test]
async fn missing_source_blob_is_a_provider_error_naming_the_digest() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let src = Source::new();
    let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, b"never stored");
    let err = store
        .fetch(&desc, Arc::new(src.provider()), |_| {})
        .await
        .expect_err("absent");
    match &err {
        ContentError::Provider { digest, source } => {
            assert_eq!(digest, &desc.digest);
            assert!(matches!(**source, ProviderError::NotFound { .. }));
        }
        other => panic!("wrong error {other:?}"),
    }
}

#[test]
fn writer_commits_verifies_and_cleans_up() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let mut w = store.writer().expect("writer");
    w.write_all(b"hello ").expect("write");
    w.write_all(b"world").expect("write");
    assert_eq!(w.len(), 11);
    let c = w.commit(None).expect("commit");
    assert_eq!(c.digest, Digest::of_bytes(b"hello world"));
    assert_eq!(store.read(&c.digest).expect("read"), b"hello world");

    let wrong = Descriptor::of_bytes(media_types::OCI_CONFIG, b"something else");
    let mut w = store.writer().expect("writer");
    w.write_all(b"hello world").expect("write");
    let err = w.commit(Some(&wrong)).expect_err("mismatch");
    assert!(matches!(err, ContentError::SizeMismatch { .. }), "{err:?}");

    let mut w = store.writer().expect("writer");
    w.write_all(b"abandoned").expect("write");
    drop(w);
    assert!(
        ingest_entries(&store).is_empty(),
        "{:?}",
        ingest_entries(&store)
    );
    assert!(!store.contains(&Digest::of_bytes(b"abandoned")));
    assert!(store.delete(&c.digest).expect("delete"));
    assert!(!store.delete(&c.digest).expect("delete twice"));
}

#[test]
fn sweep_removes_dead_leftovers_and_keeps_live_and_resumable_ones() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let ingest = store.dir().join("ingest");
    let old = SystemTime::now() - Duration::from_secs(3600);
    let age = |p: &std::path::Path, t: SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .expect("open")
            .set_modified(t)
            .expect("set mtime");
    };
    // A dead local writer's temp file, old enough.
    let dead_tmp = ingest.join("local-dead.tmp");
    std::fs::write(&dead_tmp, b"x").expect("write");
    age(&dead_tmp, old);
    // A live writer's temp file (locked), old too.
    let live = store.writer().expect("writer");
    age(live.path_for_tests(), old);
    // A recent resumable partial, and one whose blob is committed already.
    let committed = store.write_bytes(b"done").expect("write");
    let keep = ingest.join(format!("{}.partial", Digest::of_bytes(b"other").hex()));
    std::fs::write(&keep, b"ot").expect("write");
    let stale = ingest.join(format!("{}.partial", committed.hex()));
    std::fs::write(&stale, b"do").expect("write");
    // A lock file nobody holds.
    let orphan_lock = ingest.join(format!("{}.lock", Digest::of_bytes(b"zzz").hex()));
    std::fs::write(&orphan_lock, b"").expect("write");

    let report = store.sweep().expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            temp_files: 1,
            partials: 1
        }
    );
    assert!(!dead_tmp.exists());
    assert!(live.path_for_tests().exists());
    assert!(keep.exists());
    assert!(!stale.exists());
    assert!(!orphan_lock.exists());
    drop(live);
}

#[tokio::test]
async fn a_whole_partial_is_verified_and_committed_without_fetching() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(root.path()).expect("open");
    let src = Source::new();
    let bytes = payload(10_000, 10);
    let desc = src.put(&bytes);
    let partial = store
        .dir()
        .join("ingest")
        .join(format!("{}.partial", desc.digest.hex()));
    std::fs::write(&partial, &bytes).expect("seed whole partial");
    let provider = Arc::new(Instrumented::new(src.provider()));
    store
        .fetch(&desc, provider.clone(), |_| {})
        .await
        .expect("fetch");
    assert!(provider.offsets().is_empty(), "{:?}", provider.offsets());
    assert_eq!(store.read(&desc.digest).expect("read"), bytes);
    assert!(!partial.exists());
}
