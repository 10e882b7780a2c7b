//! `get_remote`: a ref's layers as descriptors plus a provider for their bytes, for export
//! and push. Lazy blobs stay remote: the provider streams them from their source only if
//! read.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::chain::UNCOMPRESSED_ANNOTATION;
use super::handlers::DescHandlers;
use super::manager::Inner;
use crate::content::{ByteStream, ContentProvider, ContentStore, ProviderError};
use crate::descriptor::Descriptor;
use crate::error::CacheError;
use crate::metadata::Record;
use crate::reference::Reference;

/// The annotation prefix containerd uses to say which repository a blob can be mounted
/// from (`containerd.io/distribution.source.<host>` = `<repository>`).
pub const DISTRIBUTION_SOURCE_PREFIX: &str = "containerd.io/distribution.source.";

/// Layer descriptors, bottom first, and where to read them.
#[derive(Debug, Clone)]
pub struct Remote {
    pub descriptors: Vec<Descriptor>,
    pub provider: Arc<dyn ContentProvider>,
}

pub(crate) fn remote_of(
    mgr: &Inner,
    chain: &[Record],
    handlers: &DescHandlers,
) -> Result<Remote, CacheError> {
    let mut descriptors = Vec::with_capacity(chain.len());
    for rec in chain {
        let Some(blob) = &rec.blob else {
            return Err(CacheError::Unsupported {
                record: rec.id.clone(),
                reason: "has no layer blob yet (blobs are computed at export)".into(),
            });
        };
        let mut desc = blob.descriptor.clone();
        desc.annotations
            .insert(UNCOMPRESSED_ANNOTATION.to_owned(), blob.diff_id.to_string());
        for source in mgr.db.blob_sources(&desc.digest)? {
            if let Ok(r) = Reference::parse(&source) {
                desc.annotations.insert(
                    format!("{DISTRIBUTION_SOURCE_PREFIX}{}", r.registry_host()),
                    r.repository().to_owned(),
                );
            }
        }
        descriptors.push(desc);
    }
    Ok(Remote {
        descriptors,
        provider: Arc::new(RefProvider {
            content: mgr.content.clone(),
            handlers: handlers.clone(),
        }),
    })
}

/// Serves a blob from the content store when it is there, else from its handler's source.
#[derive(Debug)]
struct RefProvider {
    content: ContentStore,
    handlers: DescHandlers,
}

impl ContentProvider for RefProvider {
    fn fetch(
        &self,
        desc: &Descriptor,
        offset: u64,
    ) -> BoxFuture<'static, Result<ByteStream, ProviderError>> {
        if self.content.contains(&desc.digest) {
            return self.content.provider().fetch(desc, offset);
        }
        match self.handlers.get(&desc.digest) {
            Some(h) => h.provider.fetch(desc, offset),
            None => {
                let err = ProviderError::NotFound {
                    digest: desc.digest.clone(),
                    location: self.location(),
                };
                Box::pin(async move { Err(err) })
            }
        }
    }

    fn location(&self) -> String {
        format!(
            "content store {} or the blob's remote source",
            self.content.dir().display()
        )
    }
}
