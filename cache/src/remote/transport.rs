//! Where a cache artifact lives: a registry tag, or an OCI layout directory (a tag in its
//! `index.json`). Publishing reuses the image writers, so a registry gets the same blob
//! handling as an image push (existing blobs skipped, same-registry blobs mounted) and a
//! directory the same temp-then-rename writes; reading fetches only the manifest and the
//! config, and hands out one descriptor handler per layer for lazy refs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cairn_llb::Digest;
use serde_json::json;

use super::error::RemoteCacheError;
use super::format::{CONFIG_MEDIA_TYPE, CacheConfig, INLINE_FIELD};
use crate::content::{ContentProvider, LayoutProvider};
use crate::descriptor::{Descriptor, Index, Manifest, Platform, media_types};
use crate::export::{AssembledImage, ImageNames, canonical_json, push_image, write_oci_dir};
use crate::metadata::LayerBlob;
use crate::reference::Reference;
use crate::refs::{DescHandler, DescHandlers, registry_handlers};
use crate::registry::RegistryClient;
use crate::registry::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Where `--cache-to` writes and `--cache-from` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// `type=registry,ref=…`
    Registry(Reference),
    /// `type=local,dest=…` / `src=…`, under the tag `tag` (default `latest`).
    Local { dir: PathBuf, tag: String },
}

impl CacheLocation {
    /// `type=registry,ref=NAME`: a registry reference (tag `latest` when none is given).
    pub fn registry(name: &str) -> Result<CacheLocation, RemoteCacheError> {
        Reference::parse(name)
            .map(CacheLocation::Registry)
            .map_err(|e| RemoteCacheError::invalid(name, format!("bad reference: {e}")))
    }

    /// `type=local`: an OCI layout directory and the tag in it.
    pub fn local(dir: impl Into<PathBuf>, tag: Option<&str>) -> CacheLocation {
        CacheLocation::Local {
            dir: dir.into(),
            tag: tag.filter(|t| !t.is_empty()).unwrap_or("latest").to_owned(),
        }
    }
}

impl fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "{r}"),
            CacheLocation::Local { dir, tag } => write!(f, "{}:{tag}", dir.display()),
        }
    }
}

/// A cache read back: its config and a handler per layer (nothing else fetched).
#[derive(Debug, Clone)]
pub struct LoadedCache {
    pub location: String,
    pub manifest_digest: Digest,
    pub config: CacheConfig,
    /// The manifest's layers, aligned with `config.diff_ids`.
    pub layers: Vec<Descriptor>,
    pub handlers: DescHandlers,
    /// Recorded as the blobs' source on refs made from this cache, so a push to the same
    /// registry mounts them instead of uploading (`None` for a directory).
    pub blob_source: Option<String>,
}

impl LoadedCache {
    /// The layer chain of result `index`, bottom first; `None` if out of range (a parsed
    /// config has none).
    pub fn chain(&self, index: u32) -> Option<Vec<LayerBlob>> {
        let r = self.config.results.get(index as usize)?;
        r.layers
            .iter()
            .map(|l| {
                let i = *l as usize;
                Some(LayerBlob {
                    descriptor: self.layers.get(i)?.clone(),
                    diff_id: self.config.diff_ids.get(i)?.clone(),
                })
            })
            .collect()
    }
}

/// What to publish: the blobs (as a ref's remote describes them, annotations included, so
/// a push finds where each can be mounted from) and the config that indexes them.
#[derive(Debug, Clone)]
pub struct CacheArtifact {
    pub layers: Vec<Descriptor>,
    pub config: CacheConfig,
}

/// Reads the cache at `loc`: the manifest and the config, both verified.
pub async fn fetch_cache(
    loc: &CacheLocation,
    client: &RegistryClient,
) -> Result<LoadedCache, RemoteCacheError> {
    let location = loc.to_string();
    match loc {
        CacheLocation::Registry(reference) => {
            let reg = |what: &str| {
                let location = location.clone();
                let what = what.to_owned();
                move |e: crate::registry::RegistryError| {
                    if matches!(
                        e,
                        crate::registry::RegistryError::NotFound { .. }
                            | crate::registry::RegistryError::ServerError { status: 404, .. }
                    ) {
                        RemoteCacheError::NotFound { location }
                    } else {
                        RemoteCacheError::Registry {
                            location,
                            what,
                            source: Box::new(e),
                        }
                    }
                }
            };
            let raw = client
                .fetch_manifest(reference)
                .await
                .map_err(reg("fetching the manifest"))?;
            let manifest = parse_manifest(&location, &raw.media_type, &raw.bytes)?;
            let config = client
                .fetch_blob_bytes(reference, &manifest.config, MAX_CONFIG_SIZE)
                .await
                .map_err(reg("fetching the cache config"))?;
            let config = if manifest.config.media_type == CONFIG_MEDIA_TYPE {
                CacheConfig::parse(&location, &config, &manifest)?
            } else {
                inline_config(&location, &config, &manifest)?
            };
            let pinned = reference.with_digest(raw.digest.clone());
            Ok(LoadedCache {
                handlers: registry_handlers(client, &pinned, &manifest.layers, None),
                blob_source: Some(reference.to_string()),
                location,
                manifest_digest: raw.digest,
                config,
                layers: manifest.layers,
            })
        }
        CacheLocation::Local { dir, tag } => {
            let index_path = dir.join("index.json");
            let index = match tokio::fs::read(&index_path).await {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(RemoteCacheError::NotFound { location });
                }
                Err(source) => {
                    return Err(RemoteCacheError::Io {
                        location,
                        what: "index.json".into(),
                        source,
                    });
                }
            };
            let index: Index = serde_json::from_slice(&index).map_err(|e| {
                RemoteCacheError::invalid(&location, format!("index.json is not valid: {e}"))
            })?;
            let entry = index
                .manifests
                .iter()
                .find(|d| d.annotations.get(REF_NAME) == Some(tag))
                .ok_or_else(|| RemoteCacheError::NotFound {
                    location: location.clone(),
                })?;
            let bytes = read_blob(dir, &location, entry, MAX_MANIFEST_SIZE).await?;
            let manifest = parse_manifest(&location, &entry.media_type, &bytes)?;
            let config = read_blob(dir, &location, &manifest.config, MAX_CONFIG_SIZE).await?;
            let config = CacheConfig::parse(&location, &config, &manifest)?;
            let provider: Arc<dyn ContentProvider> = Arc::new(LayoutProvider::new(dir.clone()));
            let handlers = manifest
                .layers
                .iter()
                .map(|d| {
                    (
                        d.digest.clone(),
                        DescHandler {
                            provider: Arc::clone(&provider),
                            progress: None,
                            image_ref: String::new(),
                        },
                    )
                })
                .collect();
            Ok(LoadedCache {
                location,
                manifest_digest: entry.digest.clone(),
                config,
                layers: manifest.layers,
                handlers,
                blob_source: None,
            })
        }
    }
}

/// A cache manifest, or an image manifest (whose config may hold an inline cache).
fn parse_manifest(
    location: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<Manifest, RemoteCacheError> {
    if !media_types::is_manifest(media_type) {
        return Err(RemoteCacheError::invalid(
            location,
            format!("is a {media_type:?}, not a cache or image manifest"),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| {
        RemoteCacheError::invalid(location, format!("the manifest is not valid: {e}"))
    })?;
    let mt = manifest.config.media_type.as_str();
    if mt != CONFIG_MEDIA_TYPE && mt != media_types::OCI_CONFIG && mt != media_types::DOCKER_CONFIG
    {
        return Err(RemoteCacheError::invalid(
            location,
            format!(
                "is not a cairn cache (its config is a {mt:?}, expected {CONFIG_MEDIA_TYPE:?})"
            ),
        ));
    }
    Ok(manifest)
}

/// The inline cache of an image config (`--cache-to type=inline`), checked against the
/// image's own layers.
fn inline_config(
    location: &str,
    config: &[u8],
    manifest: &Manifest,
) -> Result<CacheConfig, RemoteCacheError> {
    let image: serde_json::Value = serde_json::from_slice(config).map_err(|e| {
        RemoteCacheError::invalid(location, format!("the image config is not valid JSON: {e}"))
    })?;
    let Some(inline) = image.get(INLINE_FIELD) else {
        return Err(RemoteCacheError::invalid(
            location,
            "is an image without an inline cache, not a cairn cache \
             (build it with --cache-to type=inline)",
        ));
    };
    let bytes = serde_json::to_vec(inline).unwrap_or_default();
    let cfg = CacheConfig::parse(location, &bytes, manifest)?;
    let rootfs: Vec<&str> = image["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    if !cfg
        .diff_ids
        .iter()
        .map(Digest::as_str)
        .eq(rootfs.iter().copied())
    {
        return Err(RemoteCacheError::invalid(
            location,
            "the inline cache's diff ids are not the image's",
        ));
    }
    Ok(cfg)
}

/// A small blob of an OCI layout, verified against its descriptor.
async fn read_blob(
    dir: &Path,
    location: &str,
    desc: &Descriptor,
    limit: u64,
) -> Result<Bytes, RemoteCacheError> {
    if desc.size > limit {
        return Err(RemoteCacheError::invalid(
            location,
            format!(
                "blob {} is {} bytes (limit {limit})",
                desc.digest, desc.size
            ),
        ));
    }
    let path = dir
        .join("blobs")
        .join(desc.digest.algorithm())
        .join(desc.digest.hex());
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|source| RemoteCacheError::Io {
            location: location.to_owned(),
            what: format!("blob {}", desc.digest),
            source,
        })?;
    let got = Digest::of_bytes(&bytes);
    if got != desc.digest {
        return Err(RemoteCacheError::invalid(
            location,
            format!("blob {} has digest {got} (corrupt)", desc.digest),
        ));
    }
    Ok(Bytes::from(bytes))
}

/// Writes `artifact` to `loc`: blobs first (missing ones fetched through `provider`), then
/// the config, then the manifest and its tag, so a reader never sees a tag whose blobs are
/// missing. Returns the manifest digest.
pub async fn publish_cache(
    loc: &CacheLocation,
    client: &RegistryClient,
    artifact: &CacheArtifact,
    provider: &dyn ContentProvider,
    spool_dir: &Path,
) -> Result<Digest, RemoteCacheError> {
    let location = loc.to_string();
    let write_err = |e| RemoteCacheError::Write {
        location: location.clone(),
        source: Box::new(e),
    };
    let image = assemble_artifact(artifact);
    match loc {
        CacheLocation::Registry(reference) => {
            push_image(
                client,
                std::slice::from_ref(reference),
                &image,
                provider,
                spool_dir,
            )
            .await
            .map_err(write_err)?;
        }
        CacheLocation::Local { dir, tag } => {
            let names = ImageNames::parse(&[format!("cairn-cache:{tag}")]).map_err(write_err)?;
            write_oci_dir(dir, &image, &names, provider)
                .await
                .map_err(write_err)?;
        }
    }
    Ok(image.manifest.digest)
}

/// The artifact as the image writers take it: an OCI manifest with the cache config as
/// its config. Manifest layers carry no annotations (the config has the diff ids), so
/// the same cache gives the same bytes.
fn assemble_artifact(artifact: &CacheArtifact) -> AssembledImage {
    let config_bytes = Bytes::from(canonical_json(
        &serde_json::to_value(&artifact.config).unwrap_or_default(),
    ));
    let config = Descriptor::of_bytes(CONFIG_MEDIA_TYPE, &config_bytes);
    let layers: Vec<Descriptor> = artifact
        .layers
        .iter()
        .map(|d| Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": config,
        "layers": layers,
    });
    let manifest_bytes = Bytes::from(canonical_json(&manifest));
    AssembledImage {
        manifest: Descriptor::of_bytes(media_types::OCI_MANIFEST, &manifest_bytes),
        manifest_bytes,
        config,
        config_bytes,
        layers,
        layer_sources: artifact.layers.clone(),
        diff_ids: artifact.config.diff_ids.clone(),
        platform: Platform::host(),
    }
}
