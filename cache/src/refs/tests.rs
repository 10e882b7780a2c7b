//! Refs against real parts: gzip layer tars made here, an OCI-layout source directory, the
//! host's snapshotter (overlay where it works, else copy), real mounts.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_llb::Digest;
use cairn_snapshot::{DriverChoice, Snapshotter, probe};
use futures::StreamExt;
use futures::future::BoxFuture;

use super::*;
use crate::content::{ByteStream, ContentProvider, LayoutProvider, ProviderError};
use crate::descriptor::{Descriptor, media_types};
use crate::error::CacheError;
use crate::metadata::LayerBlob;

/// A gzip layer tar of `files` (path → contents), with its blob and diff id.
pub(super) fn layer(files: &[(&str, &str)]) -> (Vec<u8>, LayerBlob) {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, body.as_bytes())
            .expect("tar entry");
    }
    let tar = tar.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let blob = LayerBlob {
        descriptor: Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &gz),
        diff_id: Digest::of_bytes(&tar),
    };
    (gz, blob)
}

/// A source laid out as an OCI layout; counts how many fetches reach it.
#[derive(Debug)]
pub(super) struct Source {
    dir: tempfile::TempDir,
    fetches: Mutex<BTreeMap<Digest, usize>>,
    delay: Duration,
}

impl Source {
    pub(super) fn new(delay: Duration) -> Arc<Source> {
        Arc::new(Source {
            dir: tempfile::tempdir().expect("tempdir"),
            fetches: Mutex::new(BTreeMap::new()),
            delay,
        })
    }

    pub(super) fn put(&self, bytes: &[u8], digest: &Digest) {
        let d = self.dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(digest.hex()), bytes).expect("write");
    }

    pub(super) fn fetches(&self) -> BTreeMap<Digest, usize> {
        self.fetches.lock().expect("lock").clone()
    }

    pub(super) fn handlers(
        self: &Arc<Self>,
        blobs: &[&LayerBlob],
        progress: Option<ProgressSink>,
    ) -> DescHandlers {
        blobs
            .iter()
            .map(|b| {
                (
                    b.descriptor.digest.clone(),
                    DescHandler {
                        provider: self.clone(),
                        progress: progress.clone(),
                        image_ref: "127.0.0.1:5000/test/image:latest".into(),
                    },
                )
            })
            .collect()
    }
}

impl ContentProvider for Source {
    fn fetch(
        &self,
        desc: &Descriptor,
        offset: u64,
    ) -> BoxFuture<'static, Result<ByteStream, ProviderError>> {
        *self
            .fetches
            .lock()
            .expect("lock")
            .entry(desc.digest.clone())
            .or_default() += 1;
        let inner = LayoutProvider::new(self.dir.path()).fetch(desc, offset);
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            inner.await
        })
    }

    fn location(&self) -> String {
        self.dir.path().display().to_string()
    }
}

pub(super) struct Fixture {
    pub(super) root: tempfile::TempDir,
    pub(super) mgr: CacheManager,
}

fn open(root: &Path) -> CacheManager {
    let (sn, _why) = probe(&root.join("snapshots"), DriverChoice::Auto).expect("snapshotter");
    let sn: Arc<dyn Snapshotter> = Arc::new(sn);
    CacheManager::open(root, sn).expect("open manager")
}

pub(super) fn fixture() -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let mgr = open(root.path());
    Fixture { root, mgr }
}

/// A fixture on the driver `choice` names.
pub(super) fn fixture_on(choice: DriverChoice) -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let (sn, _why) = probe(&root.path().join("snapshots"), choice).expect("snapshotter");
    let sn: Arc<dyn Snapshotter> = Arc::new(sn);
    let mgr = CacheManager::open(root.path(), sn).expect("open manager");
    Fixture { root, mgr }
}

/// Reads `path` inside the ref's read-only mount.
pub(super) async fn read_in(
    r: &ImmutableRef,
    handlers: &DescHandlers,
    path: &str,
) -> std::io::Result<String> {
    let mounts = r.mounts(handlers).await.expect("mounts");
    let target = tempfile::tempdir().expect("tempdir");
    let guard = mounts.mount_at(target.path()).expect("mount");
    let mut s = String::new();
    let res =
        std::fs::File::open(target.path().join(path)).and_then(|mut f| f.read_to_string(&mut s));
    guard.unmount().expect("unmount");
    res.map(|_| s)
}

pub(super) fn three_layers(src: &Source) -> Vec<LayerBlob> {
    let specs: [&[(&str, &str)]; 3] = [
        &[("etc/os", "base"), ("bin/tool", "v1")],
        &[("bin/tool", "v2"), ("usr/share/doc", "docs")],
        &[("app/main", "hello")],
    ];
    specs
        .iter()
        .map(|files| {
            let (bytes, blob) = layer(files);
            src.put(&bytes, &blob.descriptor.digest);
            blob
        })
        .collect()
}

#[tokio::test]
async fn get_by_blob_makes_lazy_records_and_downloads_nothing() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let chain = three_layers(&src);
    let r = f
        .mgr
        .get_by_blob(&chain, Some("127.0.0.1:5000/test/image:latest"), "image")
        .expect("refs")
        .expect("non-empty");
    assert!(r.is_lazy().expect("lazy?"));
    assert_eq!(r.layer_chain().expect("chain").len(), 3);
    assert!(src.fetches().is_empty());
    assert!(f.mgr.content().list().expect("list").is_empty());
    // Same chain again: same records.
    let again = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    assert_eq!(again.id(), r.id());
    assert_eq!(f.mgr.metadata().records().expect("records").len(), 3);
    assert!(
        f.mgr
            .get_by_blob(&[], None, "scratch")
            .expect("empty")
            .is_none()
    );
}

#[tokio::test]
async fn extract_without_handlers_names_every_missing_blob() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let chain = three_layers(&src);
    let r = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    match r.extract(&DescHandlers::new()).await {
        Err(CacheError::NeedsRemoteProviders { digests }) => {
            let want: Vec<Digest> = chain.iter().map(|b| b.descriptor.digest.clone()).collect();
            assert_eq!(digests, want);
        }
        other => panic!("expected NeedsRemoteProviders, got {other:?}"),
    }
    // Handlers for only some layers still name the rest.
    let partial = src.handlers(&[&chain[0]], None);
    match r.extract(&partial).await {
        Err(CacheError::NeedsRemoteProviders { digests }) => {
            assert_eq!(
                digests,
                vec![
                    chain[1].descriptor.digest.clone(),
                    chain[2].descriptor.digest.clone()
                ]
            );
        }
        other => panic!("expected NeedsRemoteProviders, got {other:?}"),
    }
    assert!(src.fetches().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_fetches_verifies_and_stacks_layers() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let chain = three_layers(&src);
    let r = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink: ProgressSink = {
        let seen = Arc::clone(&seen);
        Arc::new(move |p: LayerProgress| seen.lock().expect("lock").push(p))
    };
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), Some(sink));
    r.extract(&handlers).await.expect("extract");
    assert!(!r.is_lazy().expect("lazy?"));
    assert_eq!(
        read_in(&r, &handlers, "bin/tool").await.expect("read"),
        "v2"
    );
    assert_eq!(
        read_in(&r, &handlers, "etc/os").await.expect("read"),
        "base"
    );
    assert_eq!(
        read_in(&r, &handlers, "app/main").await.expect("read"),
        "hello"
    );
    for b in &chain {
        assert!(f.mgr.content().contains(&b.descriptor.digest));
        assert!(
            seen.lock()
                .expect("lock")
                .iter()
                .any(|p| p.digest == b.descriptor.digest && p.phase == LayerPhase::Done),
            "progress for every layer"
        );
    }
    // A second extract has nothing to do.
    r.extract(&DescHandlers::new())
        .await
        .expect("already local");
    assert_eq!(
        src.fetches().values().copied().collect::<Vec<_>>(),
        vec![1, 1, 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_extracts_fetch_and_extract_each_layer_once() {
    let f = fixture();
    let src = Source::new(Duration::from_millis(50));
    let chain = three_layers(&src);
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), None);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let r = f
            .mgr
            .get_by_blob(&chain, None, "image")
            .expect("refs")
            .expect("non-empty");
        let handlers = handlers.clone();
        tasks.push(tokio::spawn(async move { r.extract(&handlers).await }));
    }
    for t in tasks {
        t.await.expect("join").expect("extract");
    }
    assert_eq!(
        src.fetches().values().copied().collect::<Vec<_>>(),
        vec![1, 1, 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_extract_leaves_the_other_running() {
    let f = fixture();
    let src = Source::new(Duration::from_millis(300));
    let chain = three_layers(&src);
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), None);
    let r = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    let first = {
        let (r, h) = (r.clone(), handlers.clone());
        tokio::spawn(async move { r.extract(&h).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = {
        let (r, h) = (r.clone(), handlers.clone());
        tokio::spawn(async move { r.extract(&h).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    assert!(first.await.is_err_and(|e| e.is_cancelled()));
    second
        .await
        .expect("join")
        .expect("second extract finishes");
    assert!(!r.is_lazy().expect("lazy?"));
    assert_eq!(
        src.fetches().values().copied().collect::<Vec<_>>(),
        vec![1, 1, 1]
    );
}

#[tokio::test]
async fn wrong_diff_id_is_refused_and_nothing_is_published() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let (bytes, mut blob) = layer(&[("a", "b")]);
    src.put(&bytes, &blob.descriptor.digest);
    let claimed = Digest::of_bytes(b"not the tar");
    blob.diff_id = claimed.clone();
    let r = f
        .mgr
        .get_by_blob(std::slice::from_ref(&blob), None, "bad")
        .expect("refs")
        .expect("non-empty");
    let err = r
        .extract(&src.handlers(&[&blob], None))
        .await
        .expect_err("mismatch");
    match err {
        CacheError::DiffIdMismatch { expected, .. } => assert_eq!(expected, claimed),
        other => panic!("expected DiffIdMismatch, got {other:?}"),
    }
    assert!(r.is_lazy().expect("lazy?"));
    assert!(f.mgr.snapshotter().list().expect("list").is_empty());
}

#[tokio::test]
async fn records_refs_and_cache_keys_survive_a_restart() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let chain = three_layers(&src);
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), None);
    let id = {
        let r = f
            .mgr
            .get_by_blob(&chain, None, "image")
            .expect("refs")
            .expect("non-empty");
        r.extract(&handlers).await.expect("extract");
        f.mgr
            .metadata()
            .link_cache_key("vertex-key", 0, r.id())
            .expect("link");
        r.id().clone()
    };
    let root = f.root;
    drop(f.mgr);
    let mgr = open(root.path());
    let hits = mgr
        .metadata()
        .cache_key_records("vertex-key", 0)
        .expect("lookup");
    assert_eq!(hits, vec![id.clone()]);
    let r = mgr.get(&id).expect("get after restart");
    assert!(!r.is_lazy().expect("lazy?"));
    assert_eq!(
        read_in(&r, &DescHandlers::new(), "bin/tool")
            .await
            .expect("read"),
        "v2"
    );
    assert_eq!(
        src.fetches().values().sum::<usize>(),
        3,
        "nothing fetched again"
    );
}

#[tokio::test]
async fn released_refs_are_pruned_with_their_files() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let chain = three_layers(&src);
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), None);
    let r = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    r.extract(&handlers).await.expect("extract");
    // While leased (the top ref keeps its parents), nothing goes.
    assert_eq!(f.mgr.prune().expect("prune"), PruneReport::default());
    let usage = f.mgr.disk_usage().expect("du");
    assert_eq!((usage.records, usage.reclaimable_records), (3, 0));
    assert!(
        usage.blob_bytes > 0 && usage.snapshot_bytes > 0,
        "{usage:?}"
    );
    drop(r);
    let report = f.mgr.prune().expect("prune");
    assert_eq!((report.records, report.snapshots, report.blobs), (3, 3, 3));
    assert!(f.mgr.snapshotter().list().expect("list").is_empty());
    assert!(f.mgr.content().list().expect("list").is_empty());
    assert!(f.mgr.metadata().records().expect("records").is_empty());
}

#[tokio::test]
async fn mutable_refs_commit_into_layers_and_vanish_when_dropped() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let chain = three_layers(&src);
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), None);
    let base = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    let m = f
        .mgr
        .new_mutable(Some(&base), &handlers, "run")
        .await
        .expect("mutable");
    {
        let target = tempfile::tempdir().expect("tempdir");
        let guard = m.mounts().mount_at(target.path()).expect("mount");
        assert_eq!(
            std::fs::read_to_string(target.path().join("bin/tool")).expect("read"),
            "v2"
        );
        std::fs::write(target.path().join("new-file"), "written").expect("write");
        guard.unmount().expect("unmount");
    }
    let committed = m.commit().await.expect("commit");
    assert_eq!(committed.record().parent.as_ref(), Some(base.id()));
    assert_eq!(
        read_in(&committed, &DescHandlers::new(), "new-file")
            .await
            .expect("read"),
        "written"
    );
    assert_eq!(
        read_in(&committed, &DescHandlers::new(), "etc/os")
            .await
            .expect("read"),
        "base"
    );
    assert_eq!(committed.layer_chain().expect("chain").len(), 4);
    assert!(matches!(
        committed.get_remote(&handlers),
        Err(CacheError::Unsupported { .. })
    ));

    let before = f.mgr.snapshotter().list().expect("list").len();
    let scratch = f
        .mgr
        .new_mutable(Some(&base), &handlers, "abandoned")
        .await
        .expect("mutable");
    assert_eq!(f.mgr.snapshotter().list().expect("list").len(), before + 1);
    let scratch_id = scratch.id().clone();
    drop(scratch);
    assert_eq!(f.mgr.snapshotter().list().expect("list").len(), before);
    assert!(
        f.mgr
            .metadata()
            .record(&scratch_id)
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn start_up_sweeps_dead_owners_and_orphan_snapshots() {
    let f = fixture();
    let dead = crate::metadata::RecordId::random().to_string();
    let rec = f
        .mgr
        .metadata()
        .insert_record(&crate::metadata::NewRecord {
            kind: crate::metadata::RecordKind::Mutable,
            state: crate::metadata::RecordState::Incomplete,
            owner: Some(dead.clone()),
            parent: None,
            parents: Vec::new(),
            blob: None,
            chain_id: None,
            blob_chain_id: None,
            snapshot_id: "m-dead".into(),
            description: String::new(),
        })
        .expect("insert");
    let sn = f.mgr.snapshotter();
    sn.prepare(
        &cairn_snapshot::SnapshotId::new("m-dead").expect("id"),
        None,
    )
    .expect("prepare");
    sn.prepare(
        &cairn_snapshot::SnapshotId::new("orphan").expect("id"),
        None,
    )
    .expect("prepare");
    // A live owner's unfinished record (ours) must survive.
    let live = f
        .mgr
        .new_mutable(None, &DescHandlers::new(), "live")
        .await
        .expect("mutable");

    let report = f.mgr.sweep().expect("sweep");
    assert_eq!(
        (report.dead_owners, report.records, report.snapshots),
        (1, 1, 2)
    );
    assert!(f.mgr.metadata().record(&rec.id).expect("read").is_none());
    assert!(f.mgr.metadata().record(live.id()).expect("read").is_some());
    assert_eq!(
        sn.list().expect("list").len(),
        1,
        "only the live mutable snapshot is left"
    );
}

#[tokio::test]
async fn get_remote_describes_lazy_layers_without_fetching() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let chain = three_layers(&src);
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), None);
    let r = f
        .mgr
        .get_by_blob(&chain, Some("127.0.0.1:5000/test/image:latest"), "image")
        .expect("refs")
        .expect("non-empty");
    let remote = r.get_remote(&handlers).expect("remote");
    assert_eq!(remote.descriptors.len(), 3);
    let d = &remote.descriptors[1];
    assert_eq!(d.digest, chain[1].descriptor.digest);
    assert_eq!(
        d.annotations.get(UNCOMPRESSED_ANNOTATION),
        Some(&chain[1].diff_id.to_string())
    );
    assert_eq!(
        d.annotations
            .get(&format!("{DISTRIBUTION_SOURCE_PREFIX}127.0.0.1:5000")),
        Some(&"test/image".to_owned())
    );
    assert!(src.fetches().is_empty(), "describing fetches nothing");
    // Reading streams from the source, still without storing anything locally.
    let mut stream = remote.provider.fetch(d, 0).await.expect("open");
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.expect("chunk").len() as u64;
    }
    assert_eq!(n, d.size);
    assert_eq!(src.fetches().values().sum::<usize>(), 1);
    assert!(f.mgr.content().list().expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_every_extract_leaves_nothing_half_done() {
    let f = fixture();
    let src = Source::new(Duration::from_millis(400));
    let chain = three_layers(&src);
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), None);
    let r = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    let task = {
        let (r, h) = (r.clone(), handlers.clone());
        tokio::spawn(async move { r.extract(&h).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.mgr.inner.layers.in_flight(), 0, "layer flights aborted");
    assert!(r.is_lazy().expect("lazy?"));
    assert!(f.mgr.snapshotter().list().expect("list").is_empty());
    // Nothing stuck: a new extract completes.
    r.extract(&handlers).await.expect("extract after cancel");
    assert!(!r.is_lazy().expect("lazy?"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_on_one_root_fetch_and_extract_once() {
    // Two managers in one process have separate single-flights, like two processes: only
    // the file locks keep them from doing the work twice.
    let f = fixture();
    let other = open(f.root.path());
    let src = Source::new(Duration::from_millis(50));
    let chain = three_layers(&src);
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), None);
    let a = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    let b = other
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    assert_eq!(a.id(), b.id(), "one set of records");
    let (ra, rb) = tokio::join!(a.extract(&handlers), b.extract(&handlers));
    ra.expect("a");
    rb.expect("b");
    assert_eq!(
        src.fetches().values().copied().collect::<Vec<_>>(),
        vec![1, 1, 1]
    );
    assert_eq!(f.mgr.snapshotter().list().expect("list").len(), 3);
    assert_eq!(
        read_in(&b, &handlers, "bin/tool").await.expect("read"),
        "v2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_refs_stack_their_inputs_lazily_and_reuse_their_blobs() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let a_chain = three_layers(&src);
    let (b_bytes, b_blob) = layer(&[("bin/tool", "from-b"), ("b-only", "b")]);
    src.put(&b_bytes, &b_blob.descriptor.digest);
    let a = f
        .mgr
        .get_by_blob(&a_chain, None, "a")
        .expect("refs")
        .expect("non-empty");
    let b = f
        .mgr
        .get_by_blob(std::slice::from_ref(&b_blob), None, "b")
        .expect("refs")
        .expect("non-empty");
    assert!(matches!(
        f.mgr.merge(&[], "none"),
        Err(CacheError::BadMerge { .. })
    ));
    assert_eq!(
        f.mgr
            .merge(std::slice::from_ref(&a), "one")
            .expect("merge")
            .id(),
        a.id()
    );

    let m = f.mgr.merge(&[a.clone(), b.clone()], "a+b").expect("merge");
    assert!(m.is_lazy().expect("lazy?"));
    let chain: Vec<Digest> = m
        .layer_chain()
        .expect("chain")
        .iter()
        .map(|r| r.blob.as_ref().expect("blob").descriptor.digest.clone())
        .collect();
    let mut want: Vec<Digest> = a_chain
        .iter()
        .map(|b| b.descriptor.digest.clone())
        .collect();
    want.push(b_blob.descriptor.digest.clone());
    assert_eq!(
        chain, want,
        "merge chain is the inputs' chains concatenated"
    );
    match m.extract(&DescHandlers::new()).await {
        Err(CacheError::NeedsRemoteProviders { digests }) => assert_eq!(digests.len(), 4),
        other => panic!("expected NeedsRemoteProviders, got {other:?}"),
    }
    let mut all: Vec<&LayerBlob> = a_chain.iter().collect();
    all.push(&b_blob);
    let handlers = src.handlers(&all, None);
    assert_eq!(
        read_in(&m, &handlers, "bin/tool").await.expect("read"),
        "from-b"
    );
    assert_eq!(
        read_in(&m, &handlers, "etc/os").await.expect("read"),
        "base"
    );
    assert_eq!(read_in(&m, &handlers, "b-only").await.expect("read"), "b");
    assert!(!m.is_lazy().expect("lazy?"));
    assert!(!a.is_lazy().expect("inputs were extracted on the way"));
    assert_eq!(
        m.get_remote(&handlers).expect("remote").descriptors.len(),
        4
    );

    // The merge keeps its inputs alive; once every ref is gone, all of it is pruned.
    drop((a, b));
    assert_eq!(f.mgr.prune().expect("prune").records, 0);
    drop(m);
    let report = f.mgr.prune().expect("prune");
    assert_eq!(report.records, 5);
    assert!(f.mgr.snapshotter().list().expect("list").is_empty());
}

#[tokio::test]
async fn prune_to_a_size_removes_least_recently_used_records_first() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (bytes, blob) = layer(&[(&format!("f{i}"), &"x".repeat(20_000))]);
        src.put(&bytes, &blob.descriptor.digest);
        let r = f
            .mgr
            .get_by_blob(std::slice::from_ref(&blob), None, "img")
            .expect("refs")
            .expect("non-empty");
        r.extract(&src.handlers(&[&blob], None))
            .await
            .expect("extract");
        ids.push(r.id().clone());
    }
    // Use the first one again, so the second is now the least recently used.
    std::thread::sleep(Duration::from_millis(1100));
    drop(f.mgr.get(&ids[0]).expect("get"));
    let before = f.mgr.disk_usage().expect("du");
    let total = before.blob_bytes + before.snapshot_bytes;
    assert_eq!(
        f.mgr.prune_to(u64::MAX).expect("prune"),
        PruneReport::default()
    );
    let report = f.mgr.prune_to(total - 1).expect("prune");
    assert_eq!(report.records, 1);
    assert!(report.bytes > 0);
    let left: Vec<_> = f
        .mgr
        .metadata()
        .records()
        .expect("records")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(!left.contains(&ids[1]), "least recently used goes first");
    assert!(left.contains(&ids[0]) && left.contains(&ids[2]));
    assert_eq!(f.mgr.prune_to(0).expect("prune").records, 2);
    assert!(f.mgr.content().list().expect("list").is_empty());
}

#[tokio::test]
async fn get_remote_reads_local_blobs_from_the_store() {
    let f = fixture();
    let src = Source::new(Duration::ZERO);
    let chain = three_layers(&src);
    let handlers = src.handlers(&chain.iter().collect::<Vec<_>>(), None);
    let r = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    r.extract(&handlers).await.expect("extract");
    let fetched = src.fetches().values().sum::<usize>();
    // No handlers needed any more: every blob is local.
    let remote = r.get_remote(&DescHandlers::new()).expect("remote");
    for d in &remote.descriptors {
        let mut s = remote.provider.fetch(d, 0).await.expect("open");
        let mut bytes = Vec::new();
        while let Some(c) = s.next().await {
            bytes.extend_from_slice(&c.expect("chunk"));
        }
        assert_eq!(Digest::of_bytes(&bytes), d.digest);
    }
    assert_eq!(
        src.fetches().values().sum::<usize>(),
        fetched,
        "served locally"
    );
}

/// Commits a layer on `parent` with `files` (path → contents) written through its mount.
pub(super) async fn commit_files(
    mgr: &CacheManager,
    parent: Option<&ImmutableRef>,
    files: &[(&str, &str)],
) -> ImmutableRef {
    commit_changes(mgr, parent, files, &[]).await
}

/// Commits a layer on `parent` that writes `writes` (path → contents) and removes
/// `removes` through its mount.
pub(super) async fn commit_changes(
    mgr: &CacheManager,
    parent: Option<&ImmutableRef>,
    writes: &[(&str, &str)],
    removes: &[&str],
) -> ImmutableRef {
    let m = mgr
        .new_mutable(parent, &DescHandlers::new(), "run")
        .await
        .expect("mutable");
    let target = tempfile::tempdir().expect("tempdir");
    let guard = m.mounts().mount_at(target.path()).expect("mount");
    for (path, body) in writes {
        let p = target.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, body).expect("write");
    }
    for path in removes {
        let p = target.path().join(path);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).expect("rm -r");
        } else {
            std::fs::remove_file(&p).expect("rm");
        }
    }
    guard.unmount().expect("unmount");
    m.commit().await.expect("commit")
}

/// The regular files of a gzip layer blob in the content store (path → contents), after
/// checking that its diff id is the digest of the tar inside.
pub(super) fn blob_files(mgr: &CacheManager, blob: &LayerBlob) -> BTreeMap<String, String> {
    assert_eq!(blob.descriptor.media_type, media_types::OCI_LAYER_GZIP);
    let gz = mgr
        .content()
        .read(&blob.descriptor.digest)
        .expect("blob stored");
    assert_eq!(Digest::of_bytes(&gz), blob.descriptor.digest);
    assert_eq!(gz.len() as u64, blob.descriptor.size);
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .expect("valid gzip");
    assert_eq!(
        Digest::of_bytes(&tar),
        blob.diff_id,
        "diff id is the tar's digest"
    );
    let mut files = BTreeMap::new();
    for entry in tar::Archive::new(&tar[..]).entries().expect("valid tar") {
        let mut entry = entry.expect("entry");
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut body = String::new();
        entry.read_to_string(&mut body).expect("read");
        files.insert(path, body);
    }
    files
}

pub(super) fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(p, b)| ((*p).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_blobs_computes_a_committed_layer_once() {
    let f = fixture();
    let r = commit_files(&f.mgr, None, &[("etc/hello", "world")]).await;
    assert!(r.record().blob.is_none(), "commit makes no blob");
    assert!(matches!(
        r.get_remote(&DescHandlers::new()),
        Err(CacheError::Unsupported { .. })
    ));

    let chain = r
        .ensure_blobs(&cairn_snapshot::LayerWriteOptions::default())
        .await
        .expect("ensure blobs");
    assert_eq!(chain.len(), 1);
    assert_eq!(&chain[0].id, r.id());
    let blob = chain[0].blob.clone().expect("blob");
    assert_eq!(blob_files(&f.mgr, &blob), files(&[("etc/hello", "world")]));
    assert_eq!(
        chain[0].chain_id.as_ref(),
        Some(&blob.diff_id),
        "a base layer's own"
    );
    assert_eq!(chain[0].blob_chain_id, Some(blob_chain_id(None, &blob)));
    let stored = f
        .mgr
        .metadata()
        .record(r.id())
        .expect("read")
        .expect("some");
    assert_eq!(stored.blob.as_ref(), Some(&blob));

    // The same ref (made before the blob existed) now describes it.
    let remote = r.get_remote(&DescHandlers::new()).expect("remote");
    assert_eq!(remote.descriptors.len(), 1);
    assert_eq!(remote.descriptors[0].digest, blob.descriptor.digest);
    assert_eq!(
        remote.descriptors[0]
            .annotations
            .get(UNCOMPRESSED_ANNOTATION),
        Some(&blob.diff_id.to_string())
    );

    // Nothing new: asked for zstd this time, the gzip blob stays and no blob is added.
    let blobs_before = f.mgr.content().list().expect("list");
    let again = r
        .ensure_blobs(&cairn_snapshot::LayerWriteOptions {
            compression: cairn_snapshot::Compression::Zstd,
            ..Default::default()
        })
        .await
        .expect("second call");
    assert_eq!(again, chain);
    assert_eq!(f.mgr.content().list().expect("list"), blobs_before);

    // Concurrent callers agree on one blob.
    let r2 = commit_files(&f.mgr, None, &[("x", "y")]).await;
    let opts = cairn_snapshot::LayerWriteOptions::default();
    let (a, b) = tokio::join!(r2.ensure_blobs(&opts), r2.ensure_blobs(&opts));
    assert_eq!(a.expect("a"), b.expect("b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_blobs_gives_a_stack_of_committed_layers_its_chain_ids() {
    let f = fixture();
    let lower = commit_files(&f.mgr, None, &[("a", "1"), ("keep", "k")]).await;
    let upper = commit_files(&f.mgr, Some(&lower), &[("b", "2")]).await;
    let chain = upper
        .ensure_blobs(&cairn_snapshot::LayerWriteOptions::default())
        .await
        .expect("ensure blobs");
    assert_eq!(
        chain.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![lower.id().clone(), upper.id().clone()]
    );
    let (b0, b1) = (
        chain[0].blob.clone().expect("blob"),
        chain[1].blob.clone().expect("blob"),
    );
    assert_eq!(blob_files(&f.mgr, &b0), files(&[("a", "1"), ("keep", "k")]));
    assert_eq!(
        blob_files(&f.mgr, &b1),
        files(&[("b", "2")]),
        "only what the upper layer changed"
    );
    let c0 = chain_id(None, &b0.diff_id);
    assert_eq!(chain[0].chain_id.as_ref(), Some(&c0));
    assert_eq!(
        chain[1].chain_id,
        Some(chain_id(Some(&c0), &b1.diff_id)),
        "chain_id(parent's, diff id)"
    );
    let bc0 = blob_chain_id(None, &b0);
    assert_eq!(chain[0].blob_chain_id.as_ref(), Some(&bc0));
    assert_eq!(chain[1].blob_chain_id, Some(blob_chain_id(Some(&bc0), &b1)));
    // The lower layer's own ref sees the blob computed through the upper one.
    let remote = lower.get_remote(&DescHandlers::new()).expect("remote");
    assert_eq!(remote.descriptors[0].digest, b0.descriptor.digest);
    assert_eq!(
        upper
            .get_remote(&DescHandlers::new())
            .expect("remote")
            .descriptors
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_blobs_keeps_each_layers_own_chain_ids_across_a_merge() {
    let f = fixture();
    let a = commit_files(&f.mgr, None, &[("a", "1")]).await;
    let b = commit_files(&f.mgr, None, &[("b", "2")]).await;
    let m = f.mgr.merge(&[a.clone(), b.clone()], "a+b").expect("merge");
    let top = commit_files(&f.mgr, Some(&m), &[("t", "3")]).await;
    let chain = top
        .ensure_blobs(&cairn_snapshot::LayerWriteOptions::default())
        .await
        .expect("ensure blobs");
    assert_eq!(
        chain.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![a.id().clone(), b.id().clone(), top.id().clone()]
    );
    let blobs: Vec<LayerBlob> = chain
        .iter()
        .map(|r| r.blob.clone().expect("blob"))
        .collect();
    assert_eq!(
        blob_files(&f.mgr, &blobs[2]),
        files(&[("t", "3")]),
        "a layer on a merge is diffed against the merge"
    );
    // `b` is a base layer of its own: being merged above `a` does not change its record.
    assert_eq!(chain[1].chain_id.as_ref(), Some(&blobs[1].diff_id));
    assert_eq!(chain[1].blob_chain_id, Some(blob_chain_id(None, &blobs[1])));
    // The layer on the merge sits on the merged stack.
    let merged = chain_id(Some(&blobs[0].diff_id), &blobs[1].diff_id);
    assert_eq!(
        chain[2].chain_id,
        Some(chain_id(Some(&merged), &blobs[2].diff_id))
    );
    let merged_blobs = blob_chain_id(Some(&blob_chain_id(None, &blobs[0])), &blobs[1]);
    assert_eq!(
        chain[2].blob_chain_id,
        Some(blob_chain_id(Some(&merged_blobs), &blobs[2]))
    );
    assert_eq!(
        m.get_remote(&DescHandlers::new())
            .expect("remote")
            .descriptors
            .len(),
        2
    );
}
