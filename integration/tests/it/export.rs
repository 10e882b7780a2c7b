//! Image export end to end: layers computed from real directories (one with a whiteout),
//! assembled, written as OCI and docker archives that `skopeo` and `umoci` read, pushed to
//! a real registry (with cross-repository mounts and no re-uploads), reproducible under
//! `SOURCE_DATE_EPOCH`.

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_cache::content::{ByteStream, ContentProvider, ContentStore, ProviderError};
use cairn_cache::descriptor::{Descriptor, Platform};
use cairn_cache::export::{
    AssembleInput, AssembledImage, BaseConfig, BlobPush, ConfigChanges, Dest, ExportContext,
    ExportSpec, HistoryEntry, ImageNames, ImageOptions, assemble, compute_layer,
    distribution_source_key, ensure_compression, export_image, push_image, write_docker_archive_to,
    write_metadata_file, write_oci_archive_to,
};
use cairn_cache::metadata::LayerBlob;
use cairn_integration::{TestRegistry, reference, require_tool, skip_unless};
use futures::future::BoxFuture;
use serde_json::Value;

const EPOCH: i64 = 1_700_000_000;

/// A provider that counts what it is asked for, and can refuse everything (to prove a
/// code path never reads bytes).
#[derive(Debug)]
struct CountingProvider {
    inner: Arc<dyn ContentProvider>,
    fetches: AtomicUsize,
    refuse: bool,
}

impl ContentProvider for CountingProvider {
    fn fetch(
        &self,
        desc: &Descriptor,
        offset: u64,
    ) -> BoxFuture<'static, Result<ByteStream, ProviderError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.refuse {
            let digest = desc.digest.clone();
            let location = self.location();
            return Box::pin(async move { Err(ProviderError::NotFound { digest, location }) });
        }
        self.inner.fetch(desc, offset)
    }

    fn location(&self) -> String {
        format!("counting({})", self.inner.location())
    }
}

/// Two snapshots on disk: `base` (files, modes, a symlink, a file the next layer deletes)
/// and `top` (base minus `etc/removed`, plus a new file).
fn write_trees(root: &Path) -> (PathBuf, PathBuf) {
    let base = root.join("base");
    fs::create_dir_all(base.join("etc")).unwrap();
    fs::create_dir_all(base.join("bin")).unwrap();
    fs::write(base.join("etc/config"), b"key=value\n").unwrap();
    fs::set_permissions(base.join("etc/config"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(base.join("etc/removed"), b"gone in the next layer\n").unwrap();
    fs::write(base.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(base.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("../bin/tool", base.join("etc/tool-link")).unwrap();
    let top = root.join("top");
    let out = Command::new("cp")
        .arg("-a")
        .arg(&base)
        .arg(&top)
        .status()
        .unwrap();
    assert!(out.success());
    fs::remove_file(top.join("etc/removed")).unwrap();
    fs::write(top.join("etc/added"), b"new\n").unwrap();
    (base, top)
}

struct Built {
    dir: tempfile::TempDir,
    store: ContentStore,
    image: AssembledImage,
    layers: Vec<LayerBlob>,
}

async fn build(options: ImageOptions) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let (base, top) = write_trees(dir.path());
    let store = ContentStore::open(&dir.path().join("state")).unwrap();
    let l1 = compute_layer(&store, None, &base, &options, Some(EPOCH))
        .await
        .unwrap();
    let l2 = compute_layer(&store, Some(&base), &top, &options, Some(EPOCH))
        .await
        .unwrap();
    let layers = vec![l1, l2];
    let image = assemble(&AssembleInput {
        base: BaseConfig::Scratch,
        changes: ConfigChanges {
            env: vec!["PATH=/bin".into()],
            cmd: Some(vec!["/bin/tool".into()]),
            labels: [("org.example".to_owned(), "yes".to_owned())].into(),
            ..ConfigChanges::default()
        },
        layers: layers.clone(),
        history: vec![
            HistoryEntry {
                created_by: "COPY base /".into(),
                comment: None,
                empty_layer: false,
            },
            HistoryEntry {
                created_by: "ENV PATH=/bin".into(),
                comment: None,
                empty_layer: true,
            },
            HistoryEntry {
                created_by: "RUN rm /etc/removed".into(),
                comment: None,
                empty_layer: false,
            },
        ],
        platform: Some(Platform::new("linux", "amd64")),
        options,
        source_date_epoch: Some(EPOCH),
    })
    .unwrap();
    Built {
        dir,
        store,
        image,
        layers,
    }
}

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{cmd:?} output: {e}"))
}

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn layer_digests(image: &AssembledImage) -> Vec<String> {
    image.layers.iter().map(|l| l.digest.to_string()).collect()
}

#[tokio::test]
async fn oci_archive_is_read_by_skopeo_and_unpacked_by_umoci() {
    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let umoci = skip_unless!(require_tool("umoci", "umoci"));
    let b = build(ImageOptions::default()).await;
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("image.tar");
    let names = ImageNames::parse(&["example.com/export/test:v1"]).unwrap();
    write_oci_archive_to(
        &Dest::Path(archive.clone()),
        &b.image,
        &names,
        &b.store.provider(),
        Some(EPOCH),
    )
    .await
    .unwrap();

    let inspect = run_json(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("oci-archive:{}", archive.display())),
    );
    assert_eq!(inspect["Digest"], b.image.manifest.digest.as_str());
    let layers: Vec<String> = inspect["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(layers, layer_digests(&b.image));
    assert_eq!(inspect["Labels"]["org.example"], "yes");
    assert_eq!(inspect["Architecture"], "amd64");

    let layout = out.path().join("layout");
    run_ok(
        Command::new(&skopeo)
            .arg("copy")
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("oci:{}:t", layout.display())),
    );
    let bundle = out.path().join("bundle");
    run_ok(
        Command::new(&umoci)
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:t", layout.display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(fs::read(rootfs.join("etc/config")).unwrap(), b"key=value\n");
    assert_eq!(
        fs::metadata(rootfs.join("etc/config"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o640
    );
    assert_eq!(
        fs::metadata(rootfs.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(
        fs::read_link(rootfs.join("etc/tool-link")).unwrap(),
        Path::new("../bin/tool")
    );
    assert_eq!(fs::read(rootfs.join("etc/added")).unwrap(), b"new\n");
    assert!(
        !rootfs.join("etc/removed").exists(),
        "the whited-out file is absent"
    );
    let leftovers: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().starts_with(".cairn")),
        "{leftovers:?}"
    );
}

#[tokio::test]
async fn docker_archive_is_read_by_skopeo() {
    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let b = build(ImageOptions::docker()).await;
    assert!(!b.image.is_oci());
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("docker.tar");
    let names = ImageNames::parse(&["export/docker:v2"]).unwrap();
    write_docker_archive_to(
        &Dest::Path(archive.clone()),
        &b.image,
        &names,
        &b.store.provider(),
        Some(EPOCH),
    )
    .await
    .unwrap();

    let inspect = run_json(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("docker-archive:{}", archive.display())),
    );
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(inspect["Env"][0], "PATH=/bin");
    let config = run_json(
        Command::new(&skopeo)
            .arg("inspect")
            .arg("--config")
            .arg(format!("docker-archive:{}", archive.display())),
    );
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let want: Vec<&str> = b.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(diff_ids, want);
    assert_eq!(config["history"].as_array().unwrap().len(), 3);
    // The tag is found by name, as `docker load` would show it.
    run_json(Command::new(&skopeo).arg("inspect").arg(format!(
        "docker-archive:{}:export/docker:v2",
        archive.display()
    )));
}

#[tokio::test]
async fn source_date_epoch_gives_identical_images_and_archives() {
    let a = build(ImageOptions::default()).await;
    let b = build(ImageOptions::default()).await;
    assert_eq!(a.image.manifest.digest, b.image.manifest.digest);
    assert_eq!(a.image.manifest_bytes, b.image.manifest_bytes);
    let out = tempfile::tempdir().unwrap();
    let names = ImageNames::parse(&["x/y:z"]).unwrap();
    let (pa, pb) = (out.path().join("a.tar"), out.path().join("b.tar"));
    write_oci_archive_to(
        &Dest::Path(pa.clone()),
        &a.image,
        &names,
        &a.store.provider(),
        Some(EPOCH),
    )
    .await
    .unwrap();
    write_oci_archive_to(
        &Dest::Path(pb.clone()),
        &b.image,
        &names,
        &b.store.provider(),
        Some(EPOCH),
    )
    .await
    .unwrap();
    assert_eq!(fs::read(pa).unwrap(), fs::read(pb).unwrap());
}

#[tokio::test]
async fn push_matches_skopeo_and_second_push_uploads_nothing() {
    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let registry = skip_unless!(TestRegistry::start());
    let b = build(ImageOptions::default()).await;
    let client = registry.client();
    let target = reference(&registry, "export/pushed:v1");
    let spool = b.dir.path().join("spool");
    let provider = b.store.provider();
    let first = push_image(
        &client,
        std::slice::from_ref(&target),
        &b.image,
        &provider,
        &spool,
    )
    .await
    .unwrap();
    assert_eq!(first[0].manifest_digest, b.image.manifest.digest);
    assert_eq!(first[0].uploaded(), 3, "two layers and the config");

    let inspect = run_json(
        Command::new(&skopeo)
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{target}")),
    );
    assert_eq!(inspect["Digest"], b.image.manifest.digest.as_str());

    let uploads_before = registry.blob_upload_requests();
    let counting = CountingProvider {
        inner: Arc::new(provider),
        fetches: AtomicUsize::new(0),
        refuse: false,
    };
    let second = push_image(
        &client,
        std::slice::from_ref(&target),
        &b.image,
        &counting,
        &spool,
    )
    .await
    .unwrap();
    assert_eq!(second[0].uploaded(), 0);
    assert!(
        second[0]
            .layers
            .iter()
            .all(|(_, p)| *p == BlobPush::Existed),
        "{:?}",
        second[0].layers
    );
    assert_eq!(
        counting.fetches.load(Ordering::SeqCst),
        0,
        "no blob was read"
    );
    assert_eq!(
        registry.blob_upload_requests(),
        uploads_before,
        "no upload requests"
    );
}

#[tokio::test]
async fn cross_repository_mount_reads_and_uploads_nothing() {
    let registry = skip_unless!(TestRegistry::start());
    let b = build(ImageOptions::default()).await;
    let client = registry.client();
    let repo_a = reference(&registry, "export/base:v1");
    let spool = b.dir.path().join("spool");
    push_image(
        &client,
        std::slice::from_ref(&repo_a),
        &b.image,
        &b.store.provider(),
        &spool,
    )
    .await
    .unwrap();

    // The same layers as lazy blobs known to live in repository A of this registry.
    let mut image = b.image.clone();
    for s in &mut image.layer_sources {
        s.annotations.insert(
            distribution_source_key(&registry.host()),
            repo_a.repository().to_owned(),
        );
    }
    let refusing = CountingProvider {
        inner: Arc::new(b.store.provider()),
        fetches: AtomicUsize::new(0),
        refuse: true,
    };
    let repo_b = reference(&registry, "export/other:v1");
    // The config is small and new to B only through its digest; push it via A's mount too.
    let report = push_image(
        &client,
        std::slice::from_ref(&repo_b),
        &image,
        &refusing,
        &spool,
    )
    .await
    .unwrap();
    for (digest, outcome) in &report[0].layers {
        assert_eq!(
            *outcome,
            BlobPush::Mounted {
                from: repo_a.repository().to_owned()
            },
            "{digest}"
        );
    }
    assert_eq!(
        refusing.fetches.load(Ordering::SeqCst),
        0,
        "lazy blobs were never read"
    );
    let requests = registry.requests();
    for l in &image.layers {
        assert_eq!(
            requests
                .iter()
                .filter(|e| e.is_blob_download(&l.digest))
                .count(),
            0,
            "download of {}",
            l.digest
        );
        assert_eq!(
            requests
                .iter()
                .filter(|e| e.is_blob_upload(Some(&l.digest)))
                .count(),
            1,
            "only A's upload of {}",
            l.digest
        );
    }
    assert_eq!(report[0].manifest_digest, image.manifest.digest);
}

#[test]
fn output_spec_errors_name_what_is_wrong() {
    let e = ExportSpec::parse("type=lcoal,dest=out").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"unknown output type "lcoal"; did you mean "local"?"#
    );
    let e = ExportSpec::parse("type=oci,dest=o.tar,bogus=1").unwrap_err();
    assert_eq!(e.to_string(), r#"output type oci: unknown key "bogus""#);
    assert!(matches!(
        ExportSpec::parse("type=docker,dest=-,name=a").unwrap(),
        ExportSpec::Docker {
            dest: Dest::Stdout,
            ..
        }
    ));
}

#[tokio::test]
async fn oci_layout_directory_holds_two_images_skopeo_reads_both() {
    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let gz = build(ImageOptions::default()).await;
    // A second, different image: the first layer only, another config.
    let changes_image = assemble(&AssembleInput {
        base: BaseConfig::Scratch,
        changes: ConfigChanges {
            user: Some("1000".into()),
            ..ConfigChanges::default()
        },
        layers: gz.layers[..1].to_vec(),
        history: Vec::new(),
        platform: Some(Platform::new("linux", "amd64")),
        options: ImageOptions::default(),
        source_date_epoch: Some(EPOCH),
    })
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let ctx = ExportContext {
        provider: Arc::new(gz.store.provider()),
        client: None,
        spool_dir: out.path().join("spool"),
        source_date_epoch: Some(EPOCH),
    };
    let first = ExportSpec::parse(&format!(
        "type=oci,dest={},tar=false,name=ex/a:one",
        layout.display()
    ))
    .unwrap();
    let second = ExportSpec::parse(&format!(
        "type=oci,dest={},tar=false,name=ex/a:two",
        layout.display()
    ))
    .unwrap();
    export_image(&first, &gz.image, &ctx).await.unwrap();
    export_image(&second, &changes_image, &ctx).await.unwrap();
    let one = run_json(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("oci:{}:one", layout.display())),
    );
    let two = run_json(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("oci:{}:two", layout.display())),
    );
    assert_eq!(one["Digest"], gz.image.manifest.digest.as_str());
    assert_eq!(two["Digest"], changes_image.manifest.digest.as_str());
    assert_eq!(two["Layers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn forced_zstd_layers_unpack_with_umoci() {
    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let umoci = skip_unless!(require_tool("umoci", "umoci"));
    let gz = build(ImageOptions::default()).await;
    let zstd_options = ImageOptions {
        compression: cairn_snapshot::Compression::Zstd,
        force_compression: true,
        ..ImageOptions::default()
    };
    let provider: Arc<dyn ContentProvider> = Arc::new(gz.store.provider());
    let mut layers = Vec::new();
    for l in &gz.layers {
        layers.push(
            ensure_compression(&gz.store, provider.clone(), l, &zstd_options)
                .await
                .unwrap(),
        );
    }
    let image = assemble(&AssembleInput {
        base: BaseConfig::Scratch,
        changes: ConfigChanges::default(),
        layers,
        history: Vec::new(),
        platform: Some(Platform::new("linux", "amd64")),
        options: zstd_options,
        source_date_epoch: Some(EPOCH),
    })
    .unwrap();
    assert!(
        image
            .layers
            .iter()
            .all(|l| l.media_type == "application/vnd.oci.image.layer.v1.tar+zstd")
    );
    assert_eq!(
        image.diff_ids, gz.image.diff_ids,
        "recompression keeps the diff ids"
    );
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("z.tar");
    write_oci_archive_to(
        &Dest::Path(archive.clone()),
        &image,
        &ImageNames::default(),
        &gz.store.provider(),
        None,
    )
    .await
    .unwrap();
    let layout = out.path().join("layout");
    // umoci 0.4.7 cannot read zstd layers: skopeo (containers/image) recompresses them as
    // gzip, which also checks that the zstd frames are valid and give the declared diff ids.
    run_ok(
        Command::new(&skopeo)
            .arg("copy")
            .args(["--dest-compress", "--dest-compress-format", "gzip"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("oci:{}:z", layout.display())),
    );
    let bundle = out.path().join("bundle");
    run_ok(
        Command::new(&umoci)
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:z", layout.display()))
            .arg(&bundle),
    );
    assert_eq!(fs::read(bundle.join("rootfs/etc/added")).unwrap(), b"new\n");
    assert!(!bundle.join("rootfs/etc/removed").exists());
}

#[tokio::test]
async fn image_output_pushes_and_writes_buildx_metadata() {
    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let registry = skip_unless!(TestRegistry::start());
    let b = build(ImageOptions::default()).await;
    let name = format!("{}/export/meta:v1", registry.host());
    let spec = ExportSpec::parse(&format!("type=registry,name={name}")).unwrap();
    let ctx = ExportContext {
        provider: Arc::new(b.store.provider()),
        client: Some(registry.client()),
        spool_dir: b.dir.path().join("spool"),
        source_date_epoch: Some(EPOCH),
    };
    let resp = export_image(&spec, &b.image, &ctx).await.unwrap();
    let meta_path = b.dir.path().join("metadata.json");
    write_metadata_file(&meta_path, &resp.metadata).unwrap();
    let meta: Value = serde_json::from_slice(&fs::read(&meta_path).unwrap()).unwrap();
    let inspect = run_json(
        Command::new(&skopeo)
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{name}")),
    );
    assert_eq!(meta["containerimage.digest"], inspect["Digest"]);
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        meta["containerimage.config.digest"],
        b.image.config.digest.as_str()
    );
    assert_eq!(meta["image.name"], name);
}

/// `podman load` is not installed here; buildah reads archives with the same
/// containers/image and containers/storage code, into a private store.
#[tokio::test]
async fn docker_archive_loads_into_containers_storage_with_buildah() {
    let buildah = skip_unless!(require_tool("buildah", "buildah"));
    let b = build(ImageOptions::docker()).await;
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("docker.tar");
    let names = ImageNames::parse(&["export/loaded:v3"]).unwrap();
    write_docker_archive_to(
        &Dest::Path(archive.clone()),
        &b.image,
        &names,
        &b.store.provider(),
        Some(EPOCH),
    )
    .await
    .unwrap();
    let root = out.path().to_path_buf();
    let store = || {
        let mut c = Command::new(&buildah);
        c.arg("--root")
            .arg(root.join("root"))
            .arg("--runroot")
            .arg(root.join("run"));
        c.args(["--storage-driver", "vfs"]);
        c
    };
    run_ok(
        store()
            .args(["pull", "-q"])
            .arg(format!("docker-archive:{}", archive.display())),
    );
    let images = run_json(store().args(["images", "--json"]));
    let listed = images.to_string();
    assert!(listed.contains("export/loaded:v3"), "{listed}");
    // containers/image names an image by its config digest.
    let id = images[0]["id"].as_str().unwrap_or_default().to_owned();
    assert!(
        !id.is_empty() && b.image.config.digest.hex().starts_with(&id),
        "{listed}"
    );
    let from = store()
        .args(["from", "--pull-never", &id])
        .output()
        .unwrap();
    assert!(
        from.status.success(),
        "buildah from: {}\nimages: {listed}",
        String::from_utf8_lossy(&from.stderr)
    );
    let container = String::from_utf8(from.stdout).unwrap();
    let mount = store().arg("mount").arg(container.trim()).output().unwrap();
    assert!(
        mount.status.success(),
        "{}",
        String::from_utf8_lossy(&mount.stderr)
    );
    let rootfs = PathBuf::from(String::from_utf8(mount.stdout).unwrap().trim());
    assert_eq!(fs::read(rootfs.join("etc/config")).unwrap(), b"key=value\n");
    assert_eq!(
        fs::read_link(rootfs.join("etc/tool-link")).unwrap(),
        Path::new("../bin/tool")
    );
    assert!(!rootfs.join("etc/removed").exists());
    run_ok(store().arg("umount").arg(container.trim()));
    run_ok(store().arg("rm").arg(container.trim()));
}

#[tokio::test]
async fn second_name_on_the_same_registry_mounts_from_the_first() {
    let registry = skip_unless!(TestRegistry::start());
    let b = build(ImageOptions::default()).await;
    let targets = [
        reference(&registry, "export/first:v1"),
        reference(&registry, "export/second:v1"),
    ];
    let reports = push_image(
        &registry.client(),
        &targets,
        &b.image,
        &b.store.provider(),
        &b.dir.path().join("spool"),
    )
    .await
    .unwrap();
    assert_eq!(reports[0].uploaded(), 3);
    for (digest, outcome) in &reports[1].layers {
        assert_eq!(
            *outcome,
            BlobPush::Mounted {
                from: "export/first".into()
            },
            "{digest}"
        );
    }
    assert_eq!(reports[1].manifest_digest, b.image.manifest.digest);
    let requests = registry.requests();
    for l in &b.image.layers {
        assert_eq!(
            requests
                .iter()
                .filter(|e| e.is_blob_upload(Some(&l.digest)))
                .count(),
            1,
            "{}",
            l.digest
        );
    }
}
