//! `docker-image://` sources: resolve the name to a manifest once per build, key the
//! vertex by the image's layers (two tags of one image share results), and hand out lazy
//! refs: nothing is downloaded until some op needs the files. Each layer's descriptor
//! handler is attached as a cache option, for descendants to find through the ancestor
//! walk.

use std::sync::Arc;

use cairn_cache::descriptor::Platform;
use cairn_cache::metadata::LayerBlob;
use cairn_cache::reference::Reference;
use cairn_cache::refs::{chain_id, layer_blobs, registry_handlers};
use cairn_llb::Digest;
use cairn_llb::definition::LoadedOp;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use super::Inner;
use super::result::result;
use crate::cache_opts::{CacheOpts, desc_handler_key};
use crate::error::OpError;
use crate::op::{CacheMap, ExecCtx, Op, OpCtx};
use crate::result::ResultRef;

pub(crate) struct ImageSourceOp {
    inner: Arc<Inner>,
    reference: Reference,
    platform: Platform,
    resolved: OnceCell<Resolved>,
}

struct Resolved {
    /// The name pinned to the resolved manifest digest (recorded as the blobs' source).
    pinned: Reference,
    /// The repository that actually served the image (a mirror, maybe): a push to that
    /// registry can mount the blobs from there instead of uploading them.
    served_from: Reference,
    blobs: Vec<LayerBlob>,
    key: Digest,
}

impl ImageSourceOp {
    pub(crate) fn new(
        inner: Arc<Inner>,
        op: &LoadedOp,
        name: &str,
        platform: Platform,
    ) -> Result<ImageSourceOp, OpError> {
        let reference = Reference::parse(name).map_err(|e| {
            OpError::failed(format!(
                "image source {}: bad reference {name:?}: {e}",
                op.digest()
            ))
        })?;
        Ok(ImageSourceOp {
            inner,
            reference,
            platform,
            resolved: OnceCell::new(),
        })
    }

    async fn resolved(&self) -> Result<&Resolved, OpError> {
        self.resolved
            .get_or_try_init(|| async {
                let img = self.inner.resolve(&self.reference, &self.platform).await?;
                let shown = self.reference.to_string();
                let blobs = layer_blobs(&shown, &img.layers, &img.parsed_config.rootfs.diff_ids)
                    .map_err(OpError::from)?;
                // Keyed by content: the top chain id, or the config for an image without
                // layers. A retag or a mirror of the same image hits the same results.
                let mut top = None;
                for b in &blobs {
                    top = Some(chain_id(top.as_ref(), &b.diff_id));
                }
                let basis = match top {
                    Some(c) => format!("docker-image layers {c}"),
                    None => format!("docker-image config {}", img.config_descriptor.digest),
                };
                let pinned = self.reference.with_digest(img.digest.clone());
                Ok::<_, OpError>(Resolved {
                    served_from: pinned.on_host(&img.endpoint),
                    pinned,
                    blobs,
                    key: Digest::of_bytes(basis.as_bytes()),
                })
            })
            .await
    }
}

impl Op for ImageSourceOp {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        async move {
            let r = self.resolved().await?;
            let descs: Vec<_> = r.blobs.iter().map(|b| b.descriptor.clone()).collect();
            let handlers = registry_handlers(&self.inner.registry, &r.pinned, &descs, None);
            let mut opts = CacheOpts::new();
            for d in &descs {
                if let Some(h) = handlers.get(&d.digest) {
                    opts.insert(desc_handler_key(&d.digest), Arc::new(h.clone()));
                }
            }
            Ok(CacheMap {
                digest: Some(r.key.clone()),
                deps: Vec::new(),
                opts,
                machine_local: false,
            })
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        _inputs: Vec<ResultRef>,
    ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>> {
        async move {
            let r = self.resolved().await?;
            let cache = &self.inner.cache;
            let top = cache
                .get_by_blob(&r.blobs, Some(&r.served_from.to_string()), &ctx.name)
                .map_err(OpError::from)?;
            if r.served_from != r.pinned {
                for b in &r.blobs {
                    cache
                        .metadata()
                        .add_blob_source(&b.descriptor.digest, &r.pinned.to_string())
                        .map_err(|e| OpError::other(cairn_cache::CacheError::from(e)))?;
                }
            }
            Ok(vec![result(top)])
        }
        .boxed()
    }
}
