//! Image archives: an OCI image layout (as a tar or a directory) and a `docker save`-style
//! tar (Docker 25+ writes both at once: the OCI layout files plus `manifest.json` and
//! `repositories`, so `docker load`, `podman load` and `skopeo` all read it).
//!
//! Tars are written entry by entry with async I/O: a blob streams from its provider into
//! the output, verified on the way, never loaded whole. Entries are in a fixed order with
//! fixed metadata (mode 0644/0755, owner 0, the build's time), so the same image gives the
//! same archive bytes.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use cairn_llb::Hasher;
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use super::assemble::AssembledImage;
use super::error::ExportError;
use super::json::canonical_json;
use super::spec::Dest;
use crate::content::ContentProvider;
use crate::descriptor::{Descriptor, media_types as mt};
use crate::reference::{DOCKER_HUB, Reference};

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Image names, parsed and normalised once for every writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageNames(Vec<Reference>);

impl ImageNames {
    /// Parses `names` (`busybox`, `host:5000/a/b:t`); the tag defaults to `latest`.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<ImageNames, ExportError> {
        names
            .iter()
            .map(|n| {
                let n = n.as_ref();
                Reference::parse(n).map_err(|source| ExportError::Name {
                    name: n.to_owned(),
                    source: Box::new(source),
                })
            })
            .collect::<Result<_, _>>()
            .map(ImageNames)
    }

    pub fn references(&self) -> &[Reference] {
        &self.0
    }
}

/// The short form Docker shows and `RepoTags` holds (`busybox:latest`, `x/y:1`,
/// `host:5000/a:t`).
fn familiar(r: &Reference) -> String {
    let repo = if r.registry_host() == DOCKER_HUB {
        r.repository()
            .strip_prefix("library/")
            .unwrap_or(r.repository())
            .to_owned()
    } else {
        r.name()
    };
    format!("{repo}:{}", r.tag().unwrap_or("latest"))
}

/// `repo[:tag]` with the canonical host (`docker.io/library/busybox:latest`).
fn full_name(r: &Reference) -> String {
    match (r.tag(), r.digest()) {
        (Some(t), _) => format!("{}:{t}", r.name()),
        (None, Some(d)) => format!("{}@{d}", r.name()),
        (None, None) => format!("{}:latest", r.name()),
    }
}

fn blob_path(d: &Descriptor) -> String {
    format!("blobs/{}/{}", d.digest.algorithm(), d.digest.hex())
}

/// `index.json`: one entry per name (or one unnamed entry), with the names as containerd
/// and the OCI spec annotate them.
fn index_json(image: &AssembledImage, names: &ImageNames) -> Bytes {
    let mut base = image.manifest.clone();
    base.platform = Some(image.platform.clone());
    let entries: Vec<Descriptor> = if names.0.is_empty() {
        vec![base]
    } else {
        names
            .0
            .iter()
            .map(|r| {
                let mut d = base.clone();
                d.annotations.insert(CONTAINERD_NAME.into(), full_name(r));
                d.annotations
                    .insert(REF_NAME.into(), r.tag().unwrap_or("latest").to_owned());
                d
            })
            .collect()
    };
    let v = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": entries.iter().map(|d| serde_json::to_value(d).unwrap_or(Value::Null)).collect::<Vec<_>>(),
    });
    Bytes::from(canonical_json(&v))
}

/// `manifest.json` and `repositories` of a docker archive.
fn docker_files(image: &AssembledImage, names: &ImageNames) -> (Bytes, Bytes) {
    let tags: Vec<String> = names.0.iter().map(familiar).collect();
    let manifest = json!([{
        "Config": blob_path(&image.config),
        "RepoTags": tags,
        "Layers": image.layers.iter().map(blob_path).collect::<Vec<_>>(),
    }]);
    // The legacy map of repository → tag → top layer id; readers use manifest.json.
    let mut repos = serde_json::Map::new();
    if let Some(top) = image.layers.last() {
        for r in &names.0 {
            let repo = familiar(r);
            let (repo, tag) = repo.rsplit_once(':').unwrap_or((&repo, "latest"));
            let entry = repos.entry(repo.to_owned()).or_insert_with(|| json!({}));
            if let Value::Object(m) = entry {
                m.insert(tag.to_owned(), json!(top.digest.hex()));
            }
        }
    }
    (
        Bytes::from(canonical_json(&manifest)),
        Bytes::from(canonical_json(&Value::Object(repos))),
    )
}

/// Writes a tar stream entry by entry.
struct TarOut<W> {
    out: W,
    mtime: u64,
    what: String,
}

impl<W: AsyncWrite + Unpin> TarOut<W> {
    fn header(&self, path: &str, size: u64, dir: bool) -> Result<tar::Header, ExportError> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).map_err(|source| ExportError::Output {
            what: format!("{} entry {path}", self.what),
            source,
        })?;
        h.set_size(size);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_cksum();
        Ok(h)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        let what = &self.what;
        self.out
            .write_all(bytes)
            .await
            .map_err(|source| ExportError::Output {
                what: what.clone(),
                source,
            })
    }

    async fn dir(&mut self, path: &str) -> Result<(), ExportError> {
        let h = self.header(path, 0, true)?;
        self.write(h.as_bytes()).await
    }

    async fn file(&mut self, path: &str, bytes: &[u8]) -> Result<(), ExportError> {
        let h = self.header(path, bytes.len() as u64, false)?;
        self.write(h.as_bytes()).await?;
        self.write(bytes).await?;
        self.pad(bytes.len() as u64).await
    }

    async fn pad(&mut self, size: u64) -> Result<(), ExportError> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.write(&[0u8; 512][..512 - rem]).await?;
        }
        Ok(())
    }

    /// Streams blob `desc` from `provider` as a file entry, verifying size and digest.
    async fn blob(
        &mut self,
        desc: &Descriptor,
        provider: &dyn ContentProvider,
    ) -> Result<(), ExportError> {
        let h = self.header(&blob_path(desc), desc.size, false)?;
        self.write(h.as_bytes()).await?;
        let mut hasher = Hasher::new();
        let mut stream = provider
            .fetch(desc, 0)
            .await
            .map_err(|source| ExportError::Provider {
                digest: desc.digest.clone(),
                source: Box::new(source),
            })?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| ExportError::Provider {
                digest: desc.digest.clone(),
                source: Box::new(source),
            })?;
            hasher.update(&chunk);
            if hasher.len() > desc.size {
                return Err(mismatch(desc, hasher));
            }
            self.write(&chunk).await?;
        }
        if hasher.len() != desc.size {
            return Err(mismatch(desc, hasher));
        }
        let size = hasher.len();
        let actual = hasher.finalize();
        if actual != desc.digest {
            return Err(ExportError::BlobMismatch {
                expected: desc.digest.clone(),
                expected_size: desc.size,
                actual,
                size,
            });
        }
        self.pad(desc.size).await
    }

    async fn finish(mut self) -> Result<W, ExportError> {
        self.write(&[0u8; 1024]).await?;
        let what = self.what.clone();
        self.out
            .flush()
            .await
            .map_err(|source| ExportError::Output { what, source })?;
        Ok(self.out)
    }
}

fn mismatch(desc: &Descriptor, hasher: Hasher) -> ExportError {
    let size = hasher.len();
    ExportError::BlobMismatch {
        expected: desc.digest.clone(),
        expected_size: desc.size,
        actual: hasher.finalize(),
        size,
    }
}

/// The archive's timestamp: the image's `created` when it parses as whole seconds of a
/// `SOURCE_DATE_EPOCH` build, else 0. Archive metadata never affects image digests.
fn archive_mtime(epoch: Option<i64>) -> u64 {
    epoch.and_then(|e| u64::try_from(e).ok()).unwrap_or(0)
}

/// Blobs in layout order: layers, config, manifest (deduplicated: an image may repeat a
/// layer).
async fn write_layout_entries<W: AsyncWrite + Unpin>(
    t: &mut TarOut<W>,
    image: &AssembledImage,
    names: &ImageNames,
    provider: &dyn ContentProvider,
) -> Result<(), ExportError> {
    t.file("oci-layout", OCI_LAYOUT).await?;
    t.file("index.json", &index_json(image, names)).await?;
    t.dir("blobs/").await?;
    t.dir("blobs/sha256/").await?;
    let mut seen = std::collections::HashSet::new();
    for l in &image.layers {
        if seen.insert(l.digest.clone()) {
            t.blob(l, provider).await?;
        }
    }
    t.file(&blob_path(&image.config), &image.config_bytes)
        .await?;
    t.file(&blob_path(&image.manifest), &image.manifest_bytes)
        .await?;
    Ok(())
}

/// Writes `image` as an OCI layout tar to `out`.
pub async fn write_oci_archive<W: AsyncWrite + Unpin>(
    out: W,
    image: &AssembledImage,
    names: &ImageNames,
    provider: &dyn ContentProvider,
    source_date_epoch: Option<i64>,
) -> Result<W, ExportError> {
    let mut t = TarOut {
        out,
        mtime: archive_mtime(source_date_epoch),
        what: "OCI archive".into(),
    };
    write_layout_entries(&mut t, image, names, provider).await?;
    t.finish().await
}

/// Writes `image` as a docker archive to `out`: the OCI layout plus `manifest.json` and
/// `repositories`.
pub async fn write_docker_archive<W: AsyncWrite + Unpin>(
    out: W,
    image: &AssembledImage,
    names: &ImageNames,
    provider: &dyn ContentProvider,
    source_date_epoch: Option<i64>,
) -> Result<W, ExportError> {
    let mut t = TarOut {
        out,
        mtime: archive_mtime(source_date_epoch),
        what: "docker archive".into(),
    };
    write_layout_entries(&mut t, image, names, provider).await?;
    let (manifest, repositories) = docker_files(image, names);
    t.file("manifest.json", &manifest).await?;
    t.file("repositories", &repositories).await?;
    t.finish().await
}

/// Writes an archive to `dest`: stdout, or a temp file beside the path renamed over it
/// once complete and synced.
async fn to_dest<F, Fut>(dest: &Dest, write: F) -> Result<(), ExportError>
where
    F: FnOnce(Box<dyn AsyncWrite + Unpin + Send>) -> Fut,
    Fut: std::future::Future<Output = Result<Box<dyn AsyncWrite + Unpin + Send>, ExportError>>,
{
    match dest {
        Dest::Stdout => {
            write(Box::new(tokio::io::stdout())).await?;
            Ok(())
        }
        Dest::Path(path) => {
            if let Some(file) = open_special(path)? {
                write(Box::new(tokio::fs::File::from_std(file))).await?;
                return Ok(());
            }
            let dir = parent_dir(path);
            std::fs::create_dir_all(&dir).map_err(ExportError::io("creating", &dir))?;
            let tmp = tempfile::Builder::new()
                .prefix(".cairn-export-")
                .tempfile_in(&dir)
                .map_err(ExportError::io("creating temp file in", &dir))?;
            let (file, tmp_path) = tmp.into_parts();
            let out = write(Box::new(tokio::fs::File::from_std(file))).await?;
            drop(out);
            let file = std::fs::File::open(&tmp_path)
                .map_err(ExportError::io("reopening", tmp_path.to_path_buf()))?;
            file.sync_all()
                .map_err(ExportError::io("syncing", tmp_path.to_path_buf()))?;
            tmp_path
                .persist(path)
                .map_err(|e| ExportError::io("renaming export into place at", path)(e.error))?;
            sync_dir(&dir);
            Ok(())
        }
    }
}

/// A destination that is a device or a pipe (`/dev/null`, `/dev/stdout`, a FIFO) is
/// written in place: renaming a temp file over it would replace the device.
pub(crate) fn open_special(path: &Path) -> Result<Option<std::fs::File>, ExportError> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map(Some)
            .map_err(ExportError::io("opening", path)),
        _ => Ok(None),
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Best effort: the rename is done; a failed directory fsync only weakens durability.
pub(crate) fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "syncing directory after export");
    }
}

/// [`write_oci_archive`] to a file (atomically) or stdout.
pub async fn write_oci_archive_to(
    dest: &Dest,
    image: &AssembledImage,
    names: &ImageNames,
    provider: &dyn ContentProvider,
    source_date_epoch: Option<i64>,
) -> Result<(), ExportError> {
    to_dest(dest, |w| {
        write_oci_archive(w, image, names, provider, source_date_epoch)
    })
    .await
}

/// [`write_docker_archive`] to a file (atomically) or stdout.
pub async fn write_docker_archive_to(
    dest: &Dest,
    image: &AssembledImage,
    names: &ImageNames,
    provider: &dyn ContentProvider,
    source_date_epoch: Option<i64>,
) -> Result<(), ExportError> {
    to_dest(dest, |w| {
        write_docker_archive(w, image, names, provider, source_date_epoch)
    })
    .await
}

/// Writes `image` into the OCI layout directory `dir`, creating it if needed and adding to
/// what is there: blobs already present are kept, each new file is written under a temp
/// name and renamed, and `index.json` (replaced last) gains this image's entries while
/// keeping other images' entries.
pub async fn write_oci_dir(
    dir: &Path,
    image: &AssembledImage,
    names: &ImageNames,
    provider: &dyn ContentProvider,
) -> Result<(), ExportError> {
    let blobs = dir.join("blobs").join("sha256");
    tokio::fs::create_dir_all(&blobs)
        .await
        .map_err(ExportError::io("creating", &blobs))?;
    for l in &image.layers {
        let path = dir.join(blob_path(l));
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            continue;
        }
        // A temp file that removes itself if the copy fails or this future is dropped.
        let (file, tmp) = tempfile::Builder::new()
            .prefix(".cairn-blob-")
            .tempfile_in(&blobs)
            .map_err(ExportError::io("creating temp file in", &blobs))?
            .into_parts();
        let mut t = BlobFile {
            out: tokio::fs::File::from_std(file),
            path: tmp.to_path_buf(),
        };
        t.copy(l, provider).await?;
        tmp.persist(&path)
            .map_err(|e| ExportError::io("renaming blob into place at", &path)(e.error))?;
    }
    write_file_atomic(&dir.join(blob_path(&image.config)), &image.config_bytes).await?;
    write_file_atomic(&dir.join(blob_path(&image.manifest)), &image.manifest_bytes).await?;
    write_file_atomic(&dir.join("oci-layout"), OCI_LAYOUT).await?;
    let index_path = dir.join("index.json");
    let ours: Value = serde_json::from_slice(&index_json(image, names)).unwrap_or(Value::Null);
    let mut merged = match tokio::fs::read(&index_path).await {
        Ok(raw) => serde_json::from_slice::<Value>(&raw).map_err(|e| ExportError::Io {
            op: "parsing existing",
            path: index_path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ours.clone(),
        Err(e) => return Err(ExportError::io("reading", &index_path)(e)),
    };
    if let (Some(old), Some(new)) = (
        merged.get_mut("manifests").and_then(Value::as_array_mut),
        ours["manifests"].as_array(),
    ) {
        // An entry with one of our names now points at this image.
        let our_names: Vec<&Value> = new
            .iter()
            .filter_map(|d| d.get("annotations").and_then(|a| a.get(REF_NAME)))
            .collect();
        old.retain(|d| {
            let same_digest = d.get("digest") == Some(&json!(image.manifest.digest.as_str()));
            let name = d.get("annotations").and_then(|a| a.get(REF_NAME));
            !same_digest && !name.is_some_and(|n| our_names.contains(&n))
        });
        old.extend(new.iter().cloned());
    }
    write_file_atomic(&index_path, &canonical_json(&merged)).await?;
    sync_dir(dir);
    Ok(())
}

struct BlobFile {
    out: tokio::fs::File,
    path: PathBuf,
}

impl BlobFile {
    async fn copy(
        &mut self,
        desc: &Descriptor,
        provider: &dyn ContentProvider,
    ) -> Result<(), ExportError> {
        let mut hasher = Hasher::new();
        let mut stream = provider
            .fetch(desc, 0)
            .await
            .map_err(|source| ExportError::Provider {
                digest: desc.digest.clone(),
                source: Box::new(source),
            })?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| ExportError::Provider {
                digest: desc.digest.clone(),
                source: Box::new(source),
            })?;
            hasher.update(&chunk);
            if hasher.len() > desc.size {
                return Err(mismatch(desc, hasher));
            }
            self.out
                .write_all(&chunk)
                .await
                .map_err(ExportError::io("writing", &self.path))?;
        }
        if hasher.len() != desc.size {
            return Err(mismatch(desc, hasher));
        }
        let size = hasher.len();
        let actual = hasher.finalize();
        if actual != desc.digest {
            return Err(ExportError::BlobMismatch {
                expected: desc.digest.clone(),
                expected_size: desc.size,
                actual,
                size,
            });
        }
        self.out
            .sync_all()
            .await
            .map_err(ExportError::io("syncing", &self.path))
    }
}

async fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let path = path.to_path_buf();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || {
        let dir = parent_dir(&path);
        let mut tmp = tempfile::Builder::new()
            .prefix(".cairn-export-")
            .tempfile_in(&dir)
            .map_err(ExportError::io("creating temp file in", &dir))?;
        std::io::Write::write_all(&mut tmp, &bytes)
            .map_err(ExportError::io("writing", tmp.path().to_path_buf()))?;
        tmp.as_file()
            .sync_all()
            .map_err(ExportError::io("syncing", tmp.path().to_path_buf()))?;
        tmp.persist(&path)
            .map_err(|e| ExportError::io("renaming into place at", &path)(e.error))?;
        Ok(())
    })
    .await
    .map_err(ExportError::Join)?
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::content::{ByteStream, ProviderError};
    use crate::export::{AssembleInput, BaseConfig, ConfigChanges, ImageOptions, assemble};
    use crate::metadata::LayerBlob;
    use futures::future::BoxFuture;

    /// Serves fixed bytes for every digest (right or wrong).
    #[derive(Debug)]
    struct Fixed(Bytes);

    impl ContentProvider for Fixed {
        fn fetch(
            &self,
            _: &Descriptor,
            _: u64,
        ) -> BoxFuture<'static, Result<ByteStream, ProviderError>> {
            let b = self.0.clone();
            Box::pin(async move { Ok(futures::stream::iter([Ok(b)]).boxed()) })
        }
        fn location(&self) -> String {
            "fixed".into()
        }
    }

    fn image_with_layer(bytes: &'static [u8]) -> AssembledImage {
        let descriptor = Descriptor::of_bytes(mt::OCI_LAYER_TAR, bytes);
        let diff_id = descriptor.digest.clone();
        assemble(&AssembleInput {
            base: BaseConfig::Scratch,
            changes: ConfigChanges::default(),
            layers: vec![LayerBlob {
                descriptor,
                diff_id,
            }],
            history: Vec::new(),
            platform: None,
            options: ImageOptions::default(),
            source_date_epoch: Some(0),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn docker_archive_lists_layout_and_docker_files() {
        let image = image_with_layer(b"layer-bytes");
        let names = ImageNames::parse(&["busybox:1", "127.0.0.1:5000/x/y"]).unwrap();
        let out = write_docker_archive(
            Vec::new(),
            &image,
            &names,
            &Fixed(Bytes::from_static(b"layer-bytes")),
            Some(7),
        )
        .await
        .unwrap();
        let mut ar = tar::Archive::new(&out[..]);
        let mut files = BTreeMap::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 7);
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut body).unwrap();
            files.insert(e.path().unwrap().to_string_lossy().into_owned(), body);
        }
        let layer_path = blob_path(&image.layers[0]);
        assert_eq!(files[&layer_path], b"layer-bytes");
        assert_eq!(files[&blob_path(&image.manifest)], image.manifest_bytes);
        let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["Config"], blob_path(&image.config));
        assert_eq!(manifest[0]["Layers"][0], layer_path);
        assert_eq!(
            manifest[0]["RepoTags"],
            json!(["busybox:1", "127.0.0.1:5000/x/y:latest"])
        );
        let repos: Value = serde_json::from_slice(&files["repositories"]).unwrap();
        assert_eq!(repos["busybox"]["1"], image.layers[0].digest.hex());
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"][CONTAINERD_NAME],
            "docker.io/library/busybox:1"
        );
        assert_eq!(index["manifests"][1]["annotations"][REF_NAME], "latest");
        assert_eq!(files["oci-layout"], OCI_LAYOUT);
    }

    #[tokio::test]
    async fn a_blob_that_does_not_verify_fails_and_leaves_no_destination() {
        let image = image_with_layer(b"layer-bytes");
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("out.tar");
        for wrong in [&b"other-bytes"[..], b"short", b"far-too-many-bytes"] {
            let e = write_oci_archive_to(
                &Dest::Path(dest.clone()),
                &image,
                &ImageNames::default(),
                &Fixed(Bytes::copy_from_slice(wrong)),
                None,
            )
            .await
            .unwrap_err();
            assert!(matches!(e, ExportError::BlobMismatch { .. }), "{e}");
            assert_eq!(
                std::fs::read_dir(t.path()).unwrap().count(),
                0,
                "nothing left behind"
            );
        }
        let e = write_oci_dir(
            &t.path().join("dir"),
            &image,
            &ImageNames::default(),
            &Fixed(Bytes::from_static(b"x")),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ExportError::BlobMismatch { .. }), "{e}");
        assert!(!t.path().join("dir/index.json").exists());
    }

    #[test]
    fn familiar_and_full_names_follow_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(familiar(&r), "busybox:latest");
        assert_eq!(full_name(&r), "docker.io/library/busybox:latest");
        let r = Reference::parse("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!(familiar(&r), "127.0.0.1:5000/a/b:v1");
        let r = Reference::parse("me/app:2").unwrap();
        assert_eq!(familiar(&r), "me/app:2");
        assert!(ImageNames::parse(&["Bad Name"]).is_err());
    }
}
