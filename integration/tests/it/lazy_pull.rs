//! Lazy refs and unlazy against a real `docker-registry`: what crosses the wire is read
//! from the registry's own access log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_cache::content::{
    ByteStream, ContentError, ContentProvider, ProviderError, RegistryProvider,
};
use cairn_cache::descriptor::{Descriptor, Platform};
use cairn_cache::reference::Reference;
use cairn_cache::refs::{DescHandler, layer_blobs, registry_handlers};
use cairn_cache::registry::{HostConfig, RegistryClient, RegistryConfig};
use cairn_cache::{CacheError, CacheManager, DescHandlers, ImmutableRef};
use cairn_integration::image::{multi_layer, small_file_path};
use cairn_integration::{
    ImageBuilder, LayerBuilder, TestImage, TestRegistry, multi_layer_image, push_image, reference,
    skip_unless,
};
use cairn_llb::Digest;
use cairn_snapshot::{DriverChoice, Snapshotter, probe};
use futures::StreamExt as _;
use futures::future::BoxFuture;

fn open_manager(root: &Path) -> CacheManager {
    let (sn, _why) = probe(&root.join("snapshots"), DriverChoice::Auto).expect("snapshotter");
    let sn: Arc<dyn Snapshotter> = Arc::new(sn);
    CacheManager::open(root, sn).expect("cache manager")
}

/// Resolves `reference` and makes (or finds) its lazy refs; returns the top ref and the
/// layer descriptors.
async fn lazy_ref(
    mgr: &CacheManager,
    client: &RegistryClient,
    reference: &Reference,
) -> (ImmutableRef, Vec<Descriptor>) {
    let resolved = client
        .resolve(reference, &Platform::host())
        .await
        .expect("resolve");
    let blobs = layer_blobs(
        &reference.to_string(),
        &resolved.layers,
        &resolved.parsed_config.rootfs.diff_ids,
    )
    .expect("layer blobs");
    let r = mgr
        .get_by_blob(&blobs, Some(&reference.to_string()), "test image")
        .expect("refs")
        .expect("image has layers");
    (r, resolved.layers)
}

/// Reads a file inside the ref's read-only mount; `None` if it does not exist.
async fn read_in(r: &ImmutableRef, path: &str) -> Option<Vec<u8>> {
    let mounts = r.mounts(&DescHandlers::new()).await.expect("mounts");
    let target = tempfile::tempdir().expect("tempdir");
    let guard = mounts.mount_at(target.path()).expect("mount");
    let got = std::fs::read(target.path().join(path)).ok();
    guard.unmount().expect("unmount");
    got
}

fn ingest_leftovers(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("content/ingest"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn resolving_and_creating_refs_downloads_no_blob() {
    let reg = skip_unless!(TestRegistry::start());
    let image = multi_layer_image();
    push_image(&reg, &image, "test/multi:latest").await;
    let root = tempfile::tempdir().expect("tempdir");
    let mgr = open_manager(root.path());
    let (r, layers) = lazy_ref(&mgr, &reg.client(), &reference(&reg, "test/multi:latest")).await;
    assert_eq!(layers.len(), image.layers.len());
    assert!(r.is_lazy().expect("lazy?"));
    assert_eq!(r.layer_chain().expect("chain").len(), image.layers.len());
    for l in &layers {
        assert_eq!(
            reg.blob_downloads(&l.digest),
            0,
            "layer {} was downloaded",
            l.digest
        );
    }
    assert!(mgr.content().list().expect("list").is_empty());
    // Without handlers the files cannot be had, and the error names every layer.
    match r.extract(&DescHandlers::new()).await {
        Err(CacheError::NeedsRemoteProviders { digests }) => {
            assert_eq!(
                digests,
                layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()
            );
        }
        other => panic!("expected NeedsRemoteProviders, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_unlazies_download_each_blob_once() {
    let reg = skip_unless!(TestRegistry::start());
    let image = multi_layer_image();
    push_image(&reg, &image, "test/multi:latest").await;
    let root = tempfile::tempdir().expect("tempdir");
    let mgr = open_manager(root.path());
    let client = reg.client();
    let name = reference(&reg, "test/multi:latest");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (mgr, client, name) = (mgr.clone(), client.clone(), name.clone());
        tasks.push(tokio::spawn(async move {
            let (r, layers) = lazy_ref(&mgr, &client, &name).await;
            let handlers = registry_handlers(&client, &name, &layers, None);
            r.extract(&handlers).await.map(|()| r)
        }));
    }
    let mut refs = Vec::new();
    for t in tasks {
        refs.push(t.await.expect("join").expect("extract"));
    }
    for l in &image.layers {
        assert_eq!(
            reg.blob_downloads(l.blob.digest()),
            1,
            "layer {}",
            l.blob.digest()
        );
    }
    let r = &refs[0];
    assert!(!r.is_lazy().expect("lazy?"));
    assert_eq!(
        read_in(r, &small_file_path(42)).await.as_deref(),
        Some(&b"small file 42\n"[..])
    );
    assert_eq!(
        read_in(r, multi_layer::DELETED).await,
        None,
        "whiteout applied"
    );
    assert!(read_in(r, multi_layer::OPAQUE_NEW_FILE).await.is_some());
    assert_eq!(
        read_in(r, &small_file_path(150)).await,
        None,
        "opaque dir hides layer 1's files"
    );
    assert!(
        ingest_leftovers(root.path()).is_empty(),
        "{:?}",
        ingest_leftovers(root.path())
    );
}

fn one_layer_image(seed: u64) -> TestImage {
    let mut l = LayerBuilder::new("payload");
    l.file(
        "payload.bin",
        0o644,
        &cairn_integration::image::prng_bytes(seed, 256 * 1024),
    );
    ImageBuilder::new().layer(l.finish()).build()
}

#[tokio::test]
async fn blob_corrupted_in_the_registry_is_refused_and_nothing_is_stored() {
    let reg = skip_unless!(TestRegistry::start());
    let image = one_layer_image(7);
    push_image(&reg, &image, "test/corrupt:latest").await;
    let digest = image.layers[0].blob.digest().clone();
    let stored = reg.blob_path(&digest);
    let mut bytes = std::fs::read(&stored).expect("registry blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&stored, &bytes).expect("corrupt");

    let root = tempfile::tempdir().expect("tempdir");
    let mgr = open_manager(root.path());
    let client = reg.client();
    let name = reference(&reg, "test/corrupt:latest");
    let (r, layers) = lazy_ref(&mgr, &client, &name).await;
    let err = r
        .extract(&registry_handlers(&client, &name, &layers, None))
        .await
        .expect_err("corrupt blob");
    match &err {
        CacheError::Content(ContentError::DigestMismatch {
            expected,
            actual,
            size,
        }) => {
            assert_eq!(expected, &digest);
            assert_eq!(actual, &Digest::of_bytes(&bytes));
            assert_eq!(*size, bytes.len() as u64);
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!mgr.content().contains(&digest));
    assert!(
        ingest_leftovers(root.path())
            .iter()
            .all(|n| !n.ends_with(".partial"))
    );
    assert!(mgr.snapshotter().list().expect("list").is_empty());
    assert!(r.is_lazy().expect("still lazy"));
}

/// Wraps a real provider: optionally slows each chunk down, and records requested offsets.
#[derive(Debug)]
struct Observed {
    inner: RegistryProvider,
    per_chunk: Duration,
    offsets: Mutex<Vec<(Digest, u64)>>,
}

impl ContentProvider for Observed {
    fn fetch(
        &self,
        desc: &Descriptor,
        offset: u64,
    ) -> BoxFuture<'static, Result<ByteStream, ProviderError>> {
        self.offsets
            .lock()
            .expect("lock")
            .push((desc.digest.clone(), offset));
        let fut = self.inner.fetch(desc, offset);
        let per_chunk = self.per_chunk;
        Box::pin(async move {
            let s = fut.await?;
            Ok(s.then(move |c| async move {
                if !per_chunk.is_zero() {
                    tokio::time::sleep(per_chunk).await;
                }
                c
            })
            .boxed())
        })
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

fn observed_handlers(
    provider: Arc<Observed>,
    name: &Reference,
    layers: &[Descriptor],
) -> DescHandlers {
    layers
        .iter()
        .map(|d| {
            (
                d.digest.clone(),
                DescHandler {
                    provider: provider.clone(),
                    progress: None,
                    image_ref: name.to_string(),
                },
            )
        })
        .collect()
}

const CHILD_ENV: &str = "CAIRN_IT_PULL_CHILD";

/// Not a test on its own: the body of the child processes that the multi-process tests
/// start (and kill). It pulls the image into the given root, slowed down per chunk as
/// `CAIRN_IT_PULL_CHILD_DELAY_MS` says, so a parent can kill it in the middle of a blob.
#[tokio::test]
#[ignore = "helper process for the multi-process pull tests"]
async fn pull_child_helper() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        // Run directly (say, with every ignored test): nothing to do without a parent.
        eprintln!(
            "{CHILD_ENV} unset: this helper only runs as a child of the multi-process pull tests"
        );
        return;
    };
    let mut parts = spec.splitn(3, '\n');
    let (Some(root), Some(host), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad {CHILD_ENV}: {spec:?}");
    };
    let mut cfg = RegistryConfig::default();
    cfg.hosts.insert(
        host.to_owned(),
        HostConfig {
            http: true,
            ..HostConfig::default()
        },
    );
    let client = RegistryClient::new(cfg).expect("client");
    let name = Reference::parse(name).expect("reference");
    let mgr = open_manager(Path::new(root));
    let (r, layers) = lazy_ref(&mgr, &client, &name).await;
    let delay_ms = std::env::var(CHILD_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let provider = Arc::new(Observed {
        inner: RegistryProvider::new(client.clone(), name.clone()),
        per_chunk: Duration::from_millis(delay_ms),
        offsets: Mutex::new(Vec::new()),
    });
    r.extract(&observed_handlers(provider, &name, &layers))
        .await
        .expect("child pull");
}

const CHILD_DELAY_ENV: &str = "CAIRN_IT_PULL_CHILD_DELAY_MS";

/// Starts the child pull process on `root`, slowed by `delay_ms` per chunk.
fn spawn_child(
    root: &Path,
    reg: &TestRegistry,
    name: &Reference,
    delay_ms: u64,
    tag: &str,
) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "lazy_pull::pull_child_helper",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{}\n{}", root.display(), reg.host(), name),
        )
        .env(CHILD_DELAY_ENV, delay_ms.to_string())
        .stdout(std::fs::File::create(root.join(format!("child-{tag}.out"))).expect("log"))
        .stderr(std::fs::File::create(root.join(format!("child-{tag}.err"))).expect("log"))
        .spawn()
        .expect("spawn child")
}

#[tokio::test]
async fn two_processes_pulling_one_image_download_each_blob_once() {
    let reg = skip_unless!(TestRegistry::start());
    let image = multi_layer_image();
    push_image(&reg, &image, "test/multi:latest").await;
    let root = tempfile::tempdir().expect("tempdir");
    let name = reference(&reg, "test/multi:latest");
    let mut children: Vec<_> = ["a", "b"]
        .iter()
        .map(|tag| (tag, spawn_child(root.path(), &reg, &name, 1, tag)))
        .collect();
    for (tag, child) in &mut children {
        let status = child.wait().expect("wait");
        assert!(
            status.success(),
            "child {tag} failed ({status}):\n{}",
            std::fs::read_to_string(root.path().join(format!("child-{tag}.err")))
                .unwrap_or_default()
        );
    }
    for l in &image.layers {
        assert_eq!(
            reg.blob_downloads(l.blob.digest()),
            1,
            "layer {}",
            l.blob.digest()
        );
    }
    let mgr = open_manager(root.path());
    let (r, _) = lazy_ref(&mgr, &reg.client(), &name).await;
    assert!(
        !r.is_lazy().expect("lazy?"),
        "both processes' work is visible"
    );
    assert_eq!(
        mgr.metadata().records().expect("records").len(),
        image.layers.len()
    );
    assert!(
        ingest_leftovers(root.path()).is_empty(),
        "{:?}",
        ingest_leftovers(root.path())
    );
}

fn largest_partial(root: &Path) -> Option<(PathBuf, u64)> {
    std::fs::read_dir(root.join("content/ingest"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .max_by_key(|(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_download_resumes_after_restart() {
    let reg = skip_unless!(TestRegistry::start());
    let image = multi_layer_image();
    push_image(&reg, &image, "test/multi:latest").await;
    let root = tempfile::tempdir().expect("tempdir");
    let name = reference(&reg, "test/multi:latest");

    let mut child = spawn_child(root.path(), &reg, &name, 20, "killed");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (partial, killed_at) = loop {
        if let Some((p, n)) = largest_partial(root.path())
            && n >= 512 * 1024
        {
            break (p, n);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "child exited ({status}) before the download got going:\n{}",
                std::fs::read_to_string(root.path().join("child-killed.err")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "child made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let hex = partial
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("partial name")
        .to_owned();
    let digest = Digest::parse(&format!("sha256:{hex}")).expect("digest");

    // Restart: the store is consistent, the partial is kept for resuming.
    let mgr = open_manager(root.path());
    assert!(!mgr.content().contains(&digest));
    let kept = std::fs::metadata(&partial).expect("partial kept").len();
    assert!(kept >= killed_at, "{kept} < {killed_at}");
    let records_before = mgr.metadata().records().expect("records").len();
    let client = reg.client();
    let (r, layers) = lazy_ref(&mgr, &client, &name).await;
    assert_eq!(
        mgr.metadata().records().expect("records").len(),
        records_before,
        "the child's records survived and are reused"
    );
    let provider = Arc::new(Observed {
        inner: RegistryProvider::new(client.clone(), name.clone()),
        per_chunk: Duration::ZERO,
        offsets: Mutex::new(Vec::new()),
    });
    r.extract(&observed_handlers(provider.clone(), &name, &layers))
        .await
        .expect("pull after restart");
    let offsets = provider.offsets.lock().expect("lock").clone();
    let resumed = offsets.iter().find(|(d, _)| d == &digest).map(|(_, o)| *o);
    assert!(
        resumed.is_some_and(|o| o > 0 && o <= kept),
        "expected a ranged fetch of {digest} from <= {kept}, got {offsets:?}"
    );
    assert!(mgr.content().contains(&digest));
    assert!(!partial.exists());
    assert_eq!(
        read_in(&r, &small_file_path(7)).await.as_deref(),
        Some(&b"small file 7\n"[..])
    );
    assert!(
        ingest_leftovers(root.path()).is_empty(),
        "{:?}",
        ingest_leftovers(root.path())
    );
}
