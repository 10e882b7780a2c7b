//! Pushing an assembled image: layers the repository has are skipped (`HEAD`); layers
//! known to be in another repository of the same registry are mounted across
//! repositories and never read; the rest are uploaded from the content provider; then the
//! config, and the manifest last, so a tag never points at an incomplete image.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use cairn_llb::{Digest, Hasher};
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::io::AsyncWriteExt as _;

use super::assemble::AssembledImage;
use super::error::ExportError;
use super::layer::distribution_source_key;
use crate::content::ContentProvider;
use crate::descriptor::{Descriptor, media_types as mt};
use crate::reference::Reference;
use crate::registry::{BlobData, MountResult, PushOutcome, RegistryClient, RegistryError};

/// Blobs up to this size are held in memory for upload; larger ones are spooled to a file
/// so memory stays bounded.
const IN_MEMORY_MAX: u64 = 16 << 20;
/// Layers pushed at once.
const PARALLEL_LAYERS: usize = 3;

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobPush {
    /// The repository had it; nothing was sent or read.
    Existed,
    /// Linked from this repository of the same registry; nothing was sent or read.
    Mounted { from: String },
    /// Bytes were read from the provider and sent.
    Uploaded,
    /// A non-distributable layer: never pushed, its bytes live at its URLs.
    NonDistributable,
}

/// The result of pushing one image to one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub target: Reference,
    pub manifest_digest: Digest,
    /// Per layer, in manifest order.
    pub layers: Vec<(Digest, BlobPush)>,
    pub config: BlobPush,
}

impl PushReport {
    /// How many blobs had their bytes sent.
    pub fn uploaded(&self) -> usize {
        self.layers
            .iter()
            .map(|(_, p)| p)
            .chain([&self.config])
            .filter(|p| **p == BlobPush::Uploaded)
            .count()
    }
}

/// Pushes `image` under each of `targets`, in order. A later target on the same registry
/// mounts layers from the earlier ones. `spool_dir` holds temp copies of large blobs while
/// they upload (inside the state root: nothing else is written).
pub async fn push_image(
    client: &RegistryClient,
    targets: &[Reference],
    image: &AssembledImage,
    provider: &dyn ContentProvider,
    spool_dir: &Path,
) -> Result<Vec<PushReport>, ExportError> {
    let mut sources = image.layer_sources.clone();
    let mut reports = Vec::with_capacity(targets.len());
    for target in targets {
        let report = push_one(client, target, image, &sources, provider, spool_dir).await?;
        let key = distribution_source_key(target.registry_host());
        for s in &mut sources {
            let entry = s.annotations.entry(key.clone()).or_default();
            if !entry.split(',').any(|r| r == target.repository()) {
                if !entry.is_empty() {
                    entry.push(',');
                }
                entry.push_str(target.repository());
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

async fn push_one(
    client: &RegistryClient,
    target: &Reference,
    image: &AssembledImage,
    sources: &[Descriptor],
    provider: &dyn ContentProvider,
    spool_dir: &Path,
) -> Result<PushReport, ExportError> {
    let err = |what: String| {
        let target = target.to_string();
        move |source: RegistryError| ExportError::Push {
            what,
            target,
            source: Box::new(source),
        }
    };
    let layers: Vec<(Digest, BlobPush)> = futures::stream::iter(image.layers.iter().zip(sources))
        .map(|(layer, source)| async move {
            let outcome = push_layer(client, target, layer, source, provider, spool_dir).await?;
            Ok::<_, ExportError>((layer.digest.clone(), outcome))
        })
        .buffered(PARALLEL_LAYERS)
        .try_collect()
        .await?;
    let config = client
        .push_blob(
            target,
            &image.config,
            BlobData::Bytes(image.config_bytes.clone()),
            None,
        )
        .await
        .map_err(err(format!("config {}", image.config.digest)))?;
    let manifest_digest = client
        .push_manifest(
            target,
            &image.manifest.media_type,
            image.manifest_bytes.clone(),
        )
        .await
        .map_err(err(format!("manifest {}", image.manifest.digest)))?;
    Ok(PushReport {
        target: target.clone(),
        manifest_digest,
        layers,
        config: outcome(config),
    })
}

fn outcome(o: PushOutcome) -> BlobPush {
    match o {
        PushOutcome::AlreadyExists => BlobPush::Existed,
        PushOutcome::Mounted => BlobPush::Mounted {
            from: String::new(),
        },
        PushOutcome::Uploaded | PushOutcome::UploadedChunked { .. } => BlobPush::Uploaded,
    }
}

async fn push_layer(
    client: &RegistryClient,
    target: &Reference,
    layer: &Descriptor,
    source: &Descriptor,
    provider: &dyn ContentProvider,
    spool_dir: &Path,
) -> Result<BlobPush, ExportError> {
    let what = format!("layer {}", layer.digest);
    let err = |source: RegistryError| ExportError::Push {
        what: what.clone(),
        target: target.to_string(),
        source: Box::new(source),
    };
    if mt::is_non_distributable(&layer.media_type) {
        return Ok(BlobPush::NonDistributable);
    }
    if client
        .blob_exists(target, &layer.digest)
        .await
        .map_err(err)?
    {
        return Ok(BlobPush::Existed);
    }
    let repos = source
        .annotations
        .get(&distribution_source_key(target.registry_host()));
    for from in repos
        .into_iter()
        .flat_map(|r| r.split(','))
        .filter(|r| !r.is_empty() && *r != target.repository())
    {
        match client.mount_blob(target, from, layer).await {
            Ok(MountResult::Mounted) => {
                return Ok(BlobPush::Mounted {
                    from: from.to_owned(),
                });
            }
            // The registry opened an upload session instead; it expires unused, and the
            // upload below opens its own once the bytes are at hand.
            Ok(MountResult::UploadStarted { .. }) => {}
            Err(e) => {
                tracing::debug!(digest = %layer.digest, from, error = %e, "cross-repository mount failed")
            }
        }
    }
    let (data, _spool) = read_blob(layer, provider, spool_dir, IN_MEMORY_MAX).await?;
    client
        .push_blob(target, layer, data, None)
        .await
        .map_err(err)?;
    Ok(BlobPush::Uploaded)
}

/// The blob's bytes for upload, verified: in memory when small, else in a temp file (kept
/// alive by the returned guard).
async fn read_blob(
    desc: &Descriptor,
    provider: &dyn ContentProvider,
    spool_dir: &Path,
    in_memory_max: u64,
) -> Result<(BlobData, Option<tempfile::TempPath>), ExportError> {
    let perr = |source| ExportError::Provider {
        digest: desc.digest.clone(),
        source: Box::new(source),
    };
    let mut stream = provider.fetch(desc, 0).await.map_err(perr)?;
    let mut hasher = Hasher::new();
    let check = |hasher: &Hasher| hasher.len() <= desc.size;
    if desc.size <= in_memory_max {
        let mut buf = BytesMut::with_capacity(usize::try_from(desc.size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(perr)?;
            hasher.update(&chunk);
            if !check(&hasher) {
                break;
            }
            buf.extend_from_slice(&chunk);
        }
        verify(desc, hasher)?;
        return Ok((BlobData::Bytes(Bytes::from(buf)), None));
    }
    tokio::fs::create_dir_all(spool_dir)
        .await
        .map_err(ExportError::io("creating", spool_dir))?;
    let tmp = tempfile::Builder::new()
        .prefix(".cairn-push-")
        .tempfile_in(spool_dir)
        .map_err(ExportError::io("creating temp file in", spool_dir))?;
    let (file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(perr)?;
        hasher.update(&chunk);
        if !check(&hasher) {
            break;
        }
        file.write_all(&chunk)
            .await
            .map_err(ExportError::io("writing", path.to_path_buf()))?;
    }
    file.flush()
        .await
        .map_err(ExportError::io("writing", path.to_path_buf()))?;
    verify(desc, hasher)?;
    Ok((BlobData::File(path.to_path_buf()), Some(path)))
}

fn verify(desc: &Descriptor, hasher: Hasher) -> Result<(), ExportError> {
    let size = hasher.len();
    let actual = hasher.finalize();
    if size != desc.size || actual != desc.digest {
        return Err(ExportError::BlobMismatch {
            expected: desc.digest.clone(),
            expected_size: desc.size,
            actual,
            size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ContentStore;

    #[tokio::test]
    async fn blobs_are_read_into_memory_or_spooled_and_verified() {
        let root = tempfile::tempdir().unwrap();
        let store = ContentStore::open(root.path()).unwrap();
        let bytes = vec![42u8; 5000];
        let digest = store.write_bytes(&bytes).unwrap();
        let desc = Descriptor::new(mt::OCI_LAYER_TAR, digest, bytes.len() as u64);
        let spool = root.path().join("spool");
        let provider = store.provider();

        let (data, guard) = read_blob(&desc, &provider, &spool, 1 << 20).await.unwrap();
        assert!(matches!(data, BlobData::Bytes(ref b) if b[..] == bytes[..]));
        assert!(guard.is_none());

        let (data, guard) = read_blob(&desc, &provider, &spool, 100).await.unwrap();
        let BlobData::File(path) = data else {
            panic!("expected a spooled file")
        };
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        drop(guard);
        assert!(!path.exists(), "the spool file goes with its guard");

        let mut wrong = desc.clone();
        wrong.size = 4999;
        for max in [1 << 20, 100] {
            let e = read_blob(&wrong, &provider, &spool, max).await.unwrap_err();
            assert!(
                matches!(e, ExportError::BlobMismatch { size: 5000, .. }),
                "{e}"
            );
        }
        assert_eq!(
            std::fs::read_dir(&spool).unwrap().count(),
            0,
            "failed spools are removed"
        );
    }
}
