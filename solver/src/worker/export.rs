//! From a solved result to an output: an image (OCI or docker archive, OCI directory,
//! registry push) assembled from the result's layer chain, or the result's files (a
//! directory or one tar stream).
//!
//! Layers that already have blobs (base image layers, layers of earlier exports) are used
//! as they are, lazy ones included: a push of a blob the registry has, or can mount from
//! another repository, never downloads it. Only layers without a blob are computed.

use std::sync::Arc;

use cairn_cache::descriptor::Platform;
use cairn_cache::export::{
    AssembleInput, BaseConfig, ConfigChanges, ExportContext, ExportResponse, ExportSpec,
    HistoryEntry, assemble, ensure_compression, export_image, export_local, export_tar_to,
};
use cairn_cache::metadata::LayerBlob;
use cairn_cache::snapshot::LayerWriteOptions;
use cairn_cache::{CacheError, DescHandlers, ImmutableRef};

use super::Worker;
use super::handlers::handlers_from;
use super::mount::Mounted;
use super::result::WorkerRef;
use crate::cache_opts::desc_handler_key;
use crate::engine::SolveOutput;
use crate::progress::ProgressWriter;
use crate::result::downcast;

/// The image config a frontend made for the result, minus its layers.
#[derive(Debug, Clone)]
pub struct ImageMeta {
    pub base: BaseConfig,
    pub changes: ConfigChanges,
    /// This build's steps, appended to the base's history.
    pub history: Vec<HistoryEntry>,
    pub platform: Option<Platform>,
}

impl Default for ImageMeta {
    fn default() -> Self {
        ImageMeta {
            base: BaseConfig::Scratch,
            changes: ConfigChanges::default(),
            history: Vec::new(),
            platform: None,
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    #[error("the solve result is not a cache result")]
    NotARef,
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Export(#[from] cairn_cache::export::ExportError),
    #[error("an image output was asked to export files")]
    NotFiles,
    #[error("mounting the result: {0}")]
    Mount(String),
}

impl Worker {
    /// Writes `out`'s result as `spec` says. Image outputs return the exporter response
    /// (the `--metadata-file` content); file outputs return `None`.
    pub async fn export(
        &self,
        out: &SolveOutput,
        spec: &ExportSpec,
        meta: &ImageMeta,
        source_date_epoch: Option<i64>,
    ) -> Result<Option<ExportResponse>, ExportFailure> {
        let r = downcast::<WorkerRef>(&out.result)
            .ok_or(ExportFailure::NotARef)?
            .0
            .clone();
        let handlers = match &r {
            Some(r) => self.export_handlers(out, r)?,
            None => DescHandlers::new(),
        };
        match spec.image_options() {
            None => {
                self.export_files(r.as_ref(), &handlers, spec, source_date_epoch)
                    .await?;
                Ok(None)
            }
            Some(options) => {
                let cache = self.cache();
                let (layers, provider) = match &r {
                    None => (
                        Vec::new(),
                        Arc::new(cache.content().provider())
                            as Arc<dyn cairn_cache::content::ContentProvider>,
                    ),
                    Some(r) => {
                        r.ensure_blobs(&LayerWriteOptions {
                            compression: options.compression,
                            level: options.compression_level,
                            source_date_epoch,
                        })
                        .await?;
                        let remote = r.get_remote(&handlers)?;
                        let chain = r.layer_chain()?;
                        let mut layers = Vec::with_capacity(chain.len());
                        for (rec, desc) in chain.iter().zip(remote.descriptors) {
                            let diff_id =
                                rec.blob
                                    .as_ref()
                                    .map(|b| b.diff_id.clone())
                                    .ok_or_else(|| CacheError::Unsupported {
                                        record: rec.id.clone(),
                                        reason: "has no blob after computing blobs".into(),
                                    })?;
                            let blob = LayerBlob {
                                descriptor: desc,
                                diff_id,
                            };
                            layers.push(
                                ensure_compression(
                                    cache.content(),
                                    Arc::clone(&remote.provider),
                                    &blob,
                                    &options,
                                )
                                .await?,
                            );
                        }
                        (layers, remote.provider)
                    }
                };
                let image = assemble(&AssembleInput {
                    base: meta.base.clone(),
                    changes: meta.changes.clone(),
                    layers,
                    history: meta.history.clone(),
                    platform: meta.platform.clone(),
                    options,
                    source_date_epoch,
                })?;
                let ctx = ExportContext {
                    provider,
                    client: Some(self.registry().clone()),
                    spool_dir: cache.root().join("spool"),
                    source_date_epoch,
                };
                Ok(Some(export_image(spec, &image, &ctx).await?))
            }
        }
    }

    /// The descriptor handlers of the result's lazy layers, found from the target up
    /// through its ancestors.
    fn export_handlers(
        &self,
        out: &SolveOutput,
        r: &ImmutableRef,
    ) -> Result<DescHandlers, CacheError> {
        let keys: Vec<String> = r
            .layer_chain()?
            .iter()
            .filter_map(|rec| rec.blob.as_ref())
            .map(|b| desc_handler_key(&b.descriptor.digest))
            .collect();
        let opts = out.ancestor_cache_opts(&keys);
        Ok(handlers_from(&opts, &ProgressWriter::discard()))
    }

    async fn export_files(
        &self,
        r: Option<&ImmutableRef>,
        handlers: &DescHandlers,
        spec: &ExportSpec,
        source_date_epoch: Option<i64>,
    ) -> Result<(), ExportFailure> {
        let root = &self.inner.mount_root;
        let mounted = match r {
            Some(r) => Mounted::new(root, "export", &r.mounts(handlers).await?),
            None => Mounted::empty(root, "export"),
        }
        .map_err(|e| ExportFailure::Mount(e.to_string()))?;
        match spec {
            ExportSpec::Local { dest } => export_local(mounted.path(), dest).await?,
            ExportSpec::Tar { dest } => {
                export_tar_to(mounted.path(), dest, source_date_epoch).await?
            }
            _ => return Err(ExportFailure::NotFiles),
        }
        mounted
            .unmount()
            .map_err(|e| ExportFailure::Mount(e.to_string()))
    }
}
