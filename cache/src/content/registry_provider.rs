//! The registry-backed `ContentProvider`: streams a blob of one repository through
//! `RegistryClient::fetch_blob` (mirrors first, `Range` from the resume offset).

use futures::StreamExt;
use futures::future::BoxFuture;

use super::error::ProviderError;
use super::provider::{ByteStream, ContentProvider};
use crate::descriptor::Descriptor;
use crate::reference::Reference;
use crate::registry::{RegistryClient, RegistryError};

/// Blobs of `reference`'s repository, from its registry (or the registry's mirrors).
#[derive(Clone)]
pub struct RegistryProvider {
    client: RegistryClient,
    reference: Reference,
}

impl std::fmt::Debug for RegistryProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryProvider")
            .field("reference", &self.reference.to_string())
            .finish_non_exhaustive()
    }
}

impl RegistryProvider {
    pub fn new(client: RegistryClient, reference: Reference) -> RegistryProvider {
        RegistryProvider { client, reference }
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }
}

fn convert(desc: &Descriptor, location: &str, e: RegistryError) -> ProviderError {
    match e {
        RegistryError::NotFound { .. } => ProviderError::NotFound {
            digest: desc.digest.clone(),
            location: location.to_owned(),
        },
        other => ProviderError::Transport {
            digest: desc.digest.clone(),
            location: location.to_owned(),
            source: Box::new(other),
        },
    }
}

impl ContentProvider for RegistryProvider {
    fn fetch(
        &self,
        desc: &Descriptor,
        offset: u64,
    ) -> BoxFuture<'static, Result<ByteStream, ProviderError>> {
        let client = self.client.clone();
        let reference = self.reference.clone();
        let desc = desc.clone();
        let location = self.location();
        Box::pin(async move {
            // The client drops a skipped prefix itself when a server ignores `Range`, so
            // this provider never needs to answer `RangeNotSupported`.
            let stream = client
                .fetch_blob(&reference, &desc, offset, None)
                .await
                .map_err(|e| convert(&desc, &location, e))?;
            Ok(stream
                .map(move |chunk| chunk.map_err(|e| convert(&desc, &location, e)))
                .boxed())
        })
    }

    fn location(&self) -> String {
        format!(
            "{}/{}",
            self.reference.registry_host(),
            self.reference.repository()
        )
    }
}
