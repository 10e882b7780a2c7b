//! `--cache-from` / `--cache-to` on the worker: an imported cache answers the engine's
//! key look-ups with lazy refs on the cache's blobs; an export collects the keys of a
//! finished solve and the layer chains of their results into one artifact.
//!
//! `mode=min` exports only steps whose results are made of the output's own layers (no
//! blob is computed or uploaded for anything else); `mode=max` exports every step's
//! result, computing blobs for intermediate layers. Steps on a local context's files
//! (the context snapshot itself) are never exported: no other machine has those files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use cairn_cache::descriptor::Descriptor;
use cairn_cache::remote::{
    CacheArtifact, CacheConfig, CacheEntry, CacheLocation, CacheResult, FORMAT_VERSION,
    LoadedCache, RemoteCacheError, fetch_cache, publish_cache,
};
use cairn_cache::snapshot::{Compression, LayerWriteOptions};
use cairn_cache::{CacheError, CacheManager, DescHandlers, ImmutableRef};
use cairn_llb::Digest;

use super::Worker;
use super::handlers::handlers_from;
use super::result::{WorkerRef, result};
use super::store::DbStore;
use crate::cache_opts::{CacheOpts, desc_handler_key};
use crate::engine::{SolveOutput, VertexKeys};
use crate::error::StorageError;
use crate::key::CacheKey;
use crate::progress::ProgressWriter;
use crate::result::{ResultRef, downcast};
use crate::storage::{CacheKeyStorage, CacheRecord, ImportedCache, ResultStore};

/// What `--cache-to` asks for.
#[derive(Debug, Clone)]
pub struct CacheExportSpec {
    pub location: CacheLocation,
    pub mode: CacheMode,
    /// Compression of blobs computed for the export (existing blobs are kept as they are).
    pub compression: Compression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    #[default]
    Min,
    Max,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExportReport {
    pub manifest: Digest,
    /// Steps exported (keys may be more: content-keyed steps have two).
    pub steps: usize,
    pub layers: usize,
}

/// Why a cache export failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheExportError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Remote(#[from] RemoteCacheError),
    #[error("loading the result of {step}: {source}")]
    Load {
        step: String,
        #[source]
        source: StorageError,
    },
}

impl Worker {
    /// Reads the cache at `location` for a solve's [`crate::SolveOptions::imports`].
    /// Only the manifest and the config are fetched.
    pub async fn import_cache(
        &self,
        location: &CacheLocation,
    ) -> Result<Arc<dyn ImportedCache>, RemoteCacheError> {
        let loaded = fetch_cache(location, self.registry()).await?;
        Ok(Arc::new(Imported::new(self.cache().clone(), loaded)))
    }

    /// Publishes the keys and results of `out` as `spec` says.
    pub async fn export_cache(
        &self,
        out: &SolveOutput,
        spec: &CacheExportSpec,
        source_date_epoch: Option<i64>,
    ) -> Result<CacheExportReport, CacheExportError> {
        let write = LayerWriteOptions {
            compression: spec.compression,
            level: None,
            source_date_epoch,
        };
        let c = self.collect(out, spec.mode, &write, false).await?;
        let handlers = self.handlers_for(out, &c.builder.digests);
        let provider = match c.refs.first() {
            Some(r) => r.get_remote(&handlers)?.provider,
            None => Arc::new(self.cache().content().provider()),
        };
        // Descriptors with their sources (so a push mounts instead of uploading).
        let mut described: HashMap<Digest, Descriptor> = HashMap::new();
        for r in &c.refs {
            for d in r.get_remote(&handlers)?.descriptors {
                described.entry(d.digest.clone()).or_insert(d);
            }
        }
        let artifact = c.builder.finish(&described);
        let layers = artifact.layers.len();
        let manifest = publish_cache(
            &spec.location,
            self.registry(),
            &artifact,
            provider.as_ref(),
            &self.cache().root().join("spool"),
        )
        .await?;
        Ok(CacheExportReport {
            manifest,
            steps: c.steps,
            layers,
        })
    }

    /// The inline cache of an image made from `out` (`--cache-to type=inline`): the
    /// steps whose results are the image's own layers, indexed by the image's layer
    /// positions. Put it in [`crate::worker::ImageMeta`]'s changes before the export;
    /// `write` must be what that export computes new blobs with.
    pub async fn inline_cache(
        &self,
        out: &SolveOutput,
        write: &LayerWriteOptions,
    ) -> Result<Option<serde_json::Value>, CacheExportError> {
        let c = self.collect(out, CacheMode::Min, write, true).await?;
        if c.steps == 0 {
            return Ok(None);
        }
        let config = c.builder.finish(&HashMap::new()).config;
        Ok(Some(serde_json::to_value(config).unwrap_or_default()))
    }

    /// [`Worker::inline_cache`] for an image output `spec` (`None` for other outputs),
    /// with the layer options that output computes blobs with.
    pub async fn inline_cache_for(
        &self,
        out: &SolveOutput,
        spec: &cairn_cache::export::ExportSpec,
        source_date_epoch: Option<i64>,
    ) -> Result<Option<serde_json::Value>, CacheExportError> {
        let Some(o) = spec.image_options() else {
            return Ok(None);
        };
        let write = LayerWriteOptions {
            compression: o.compression,
            level: o.compression_level,
            source_date_epoch,
        };
        self.inline_cache(out, &write).await
    }

    /// The steps of `out` to export and their chains. With `image_order`, the output's
    /// chain is added first, so layer indices are positions in the output image.
    async fn collect(
        &self,
        out: &SolveOutput,
        mode: CacheMode,
        write: &LayerWriteOptions,
        image_order: bool,
    ) -> Result<Collected, CacheExportError> {
        let store = DbStore::new(self.cache().clone());
        let steps = steps_with_outputs(&store, out.imports(), out.vertex_keys())?;
        let mut c = Collected {
            builder: ArtifactBuilder::default(),
            refs: Vec::new(),
            steps: 0,
        };

        // The output's layers: all that mode=min may use.
        let final_ref = downcast::<WorkerRef>(&out.result).and_then(|w| w.0.clone());
        let mut allowed = HashSet::new();
        if let Some(r) = &final_ref {
            r.ensure_blobs(write).await?;
            allowed.extend(r.layer_chain()?.into_iter().map(|rec| rec.id));
            if image_order {
                c.builder.add_image_chain(r)?;
                c.refs.push(r.clone());
            }
        }
        'steps: for (keys, outputs) in &steps {
            let mut slots = Vec::with_capacity(outputs.len());
            for o in outputs.iter() {
                let Some(r) = downcast::<WorkerRef>(o).and_then(|w| w.0.clone()) else {
                    slots.push(None);
                    continue;
                };
                let chain = match mode {
                    CacheMode::Max => r.ensure_blobs(write).await?,
                    CacheMode::Min => {
                        let chain = r.layer_chain()?;
                        if !chain
                            .iter()
                            .all(|c| allowed.contains(&c.id) && c.blob.is_some())
                        {
                            continue 'steps;
                        }
                        chain
                    }
                };
                if chain.iter().any(|c| c.blob.is_none()) {
                    continue 'steps;
                }
                slots.push(Some(r));
            }
            let mut indices = Vec::with_capacity(slots.len());
            for s in slots {
                indices.push(match s {
                    None => None,
                    Some(r) => {
                        let idx = c.builder.add_chain(&r)?;
                        c.refs.push(r);
                        Some(idx)
                    }
                });
            }
            c.builder.add_keys(keys, &indices);
            c.steps += 1;
        }
        Ok(c)
    }

    fn handlers_for(&self, out: &SolveOutput, digests: &[Digest]) -> DescHandlers {
        let keys: Vec<String> = digests.iter().map(desc_handler_key).collect();
        handlers_from(&out.ancestor_cache_opts(&keys), &ProgressWriter::discard())
    }
}

/// What [`Worker::collect`] found.
struct Collected {
    builder: ArtifactBuilder,
    refs: Vec<ImmutableRef>,
    steps: usize,
}

/// A step to export and its outputs.
type Step = (VertexKeys, Arc<Vec<ResultRef>>);

/// The exportable steps with their outputs, loading those the solve did not need (steps
/// below a cache hit) from the local cache, else from the imports (so `--cache-from X
/// --cache-to X` keeps what X had). A step whose results are nowhere is skipped.
fn steps_with_outputs(
    store: &DbStore,
    imports: &[Arc<dyn ImportedCache>],
    keys: Vec<VertexKeys>,
) -> Result<Vec<Step>, CacheExportError> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if k.machine_local {
            continue;
        }
        let outputs = match &k.outputs {
            Some(o) => Some(Arc::clone(o)),
            None => {
                let load_err = |source| CacheExportError::Load {
                    step: k.name.clone(),
                    source,
                };
                let mut found = None;
                if let Some(rec) = store.get(&k.canonical).map_err(load_err)? {
                    found = load_all(&rec, |id| store.load(id)).map_err(load_err)?;
                }
                for imp in imports {
                    if found.is_some() {
                        break;
                    }
                    if let Some(rec) = imp.get(&k.canonical) {
                        found = load_all(&rec, |id| imp.load(id)).map_err(load_err)?;
                    }
                }
                found.map(Arc::new)
            }
        };
        if let Some(o) = outputs {
            out.push((k, o));
        }
    }
    Ok(out)
}

/// Every result of `rec`, or `None` if one of them is gone.
fn load_all(
    rec: &CacheRecord,
    load: impl Fn(&str) -> Result<ResultRef, StorageError>,
) -> Result<Option<Vec<ResultRef>>, StorageError> {
    let mut loaded = Vec::with_capacity(rec.results.len());
    for id in &rec.results {
        match load(id) {
            Ok(r) => loaded.push(r),
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(loaded))
}

/// Collects layers (deduplicated by blob digest), chains and key entries.
#[derive(Default)]
struct ArtifactBuilder {
    digests: Vec<Digest>,
    diff_ids: Vec<Digest>,
    media_types: Vec<(String, u64)>,
    layer_index: HashMap<Digest, u32>,
    results: Vec<CacheResult>,
    result_index: HashMap<Vec<u32>, u32>,
    records: BTreeMap<String, CacheEntry>,
}

impl ArtifactBuilder {
    fn add_chain(&mut self, r: &ImmutableRef) -> Result<u32, CacheError> {
        self.add(r, false)
    }

    /// Adds the output image's chain with one index per position, repeated blobs
    /// included, so indices are the image's layer positions.
    fn add_image_chain(&mut self, r: &ImmutableRef) -> Result<u32, CacheError> {
        self.add(r, true)
    }

    fn add(&mut self, r: &ImmutableRef, every_position: bool) -> Result<u32, CacheError> {
        let mut layers = Vec::new();
        for rec in r.layer_chain()? {
            let Some(blob) = rec.blob else {
                return Err(CacheError::Unsupported {
                    record: rec.id,
                    reason: "has no blob to export".into(),
                });
            };
            let d = blob.descriptor.digest.clone();
            let idx = match self.layer_index.get(&d) {
                Some(i) if !every_position => *i,
                _ => {
                    let i = self.digests.len() as u32;
                    self.digests.push(d.clone());
                    self.diff_ids.push(blob.diff_id.clone());
                    self.media_types
                        .push((blob.descriptor.media_type.clone(), blob.descriptor.size));
                    self.layer_index.entry(d).or_insert(i);
                    i
                }
            };
            layers.push(idx);
        }
        let next = self.results.len() as u32;
        let idx = *self.result_index.entry(layers.clone()).or_insert(next);
        if idx == next {
            self.results.push(CacheResult { layers });
        }
        Ok(idx)
    }

    fn add_keys(&mut self, keys: &VertexKeys, outputs: &[Option<u32>]) {
        for k in [Some(&keys.canonical), keys.fast.as_ref()]
            .into_iter()
            .flatten()
        {
            self.records.insert(
                k.as_str().to_owned(),
                CacheEntry {
                    key: k.as_str().to_owned(),
                    canonical: keys.canonical.as_str().to_owned(),
                    outputs: outputs.to_vec(),
                },
            );
        }
    }

    fn finish(self, described: &HashMap<Digest, Descriptor>) -> CacheArtifact {
        let layers = self
            .digests
            .iter()
            .zip(&self.media_types)
            .map(|(d, (mt, size))| {
                described
                    .get(d)
                    .cloned()
                    .unwrap_or_else(|| Descriptor::new(mt.clone(), d.clone(), *size))
            })
            .collect();
        CacheArtifact {
            layers,
            config: CacheConfig {
                version: FORMAT_VERSION,
                diff_ids: self.diff_ids,
                results: self.results,
                records: self.records.into_values().collect(),
            },
        }
    }
}

/// An imported cache as the engine asks it: records by key, results as lazy refs.
struct Imported {
    cache: CacheManager,
    loaded: LoadedCache,
    records: HashMap<String, CacheRecord>,
    opts: CacheOpts,
    description: String,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported")
            .field("location", &self.loaded.location)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

const IMPORT_SCRATCH: &str = "import:scratch";

impl Imported {
    fn new(cache: CacheManager, loaded: LoadedCache) -> Imported {
        let records = loaded
            .config
            .records
            .iter()
            .map(|e| {
                let results = e
                    .outputs
                    .iter()
                    .map(|o| o.map_or_else(|| IMPORT_SCRATCH.to_owned(), |i| format!("import:{i}")))
                    .collect();
                (
                    e.key.clone(),
                    CacheRecord {
                        canonical: CacheKey::from_stored(e.canonical.clone()),
                        results,
                    },
                )
            })
            .collect();
        let mut opts = CacheOpts::new();
        for d in &loaded.layers {
            if let Some(h) = loaded.handlers.get(&d.digest) {
                opts.insert(desc_handler_key(&d.digest), Arc::new(h.clone()));
            }
        }
        Imported {
            description: format!("imported from cache {}", loaded.location),
            cache,
            loaded,
            records,
            opts,
        }
    }
}

impl ImportedCache for Imported {
    fn get(&self, key: &CacheKey) -> Option<CacheRecord> {
        self.records.get(key.as_str()).cloned()
    }

    fn load(&self, id: &str) -> Result<ResultRef, StorageError> {
        let not_found = || StorageError::NotFound { id: id.to_owned() };
        if id == IMPORT_SCRATCH {
            return Ok(result(None));
        }
        let index: u32 = id
            .strip_prefix("import:")
            .and_then(|i| i.parse().ok())
            .ok_or_else(not_found)?;
        let chain = self.loaded.chain(index).ok_or_else(not_found)?;
        let r = self
            .cache
            .get_by_blob(
                &chain,
                self.loaded.blob_source.as_deref(),
                &self.description,
            )
            .map_err(|e| StorageError::Backend {
                key: id.to_owned(),
                source: Arc::new(e),
            })?;
        Ok(result(r))
    }

    fn opts(&self) -> &CacheOpts {
        &self.opts
    }
}
