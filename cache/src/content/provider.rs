//! The `ContentProvider` seam: where blob bytes come from when the content store lacks them.

use std::fmt;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tokio::io::AsyncSeekExt;

use super::error::ProviderError;
use crate::descriptor::Descriptor;

/// The bytes of one blob, in order, as the source stores them (still compressed).
pub type ByteStream = BoxStream<'static, Result<Bytes, ProviderError>>;

/// A source of blob bytes: a registry (through `RegistryClient::fetch_blob`), an OCI
/// layout directory, another content store.
///
/// **Who calls it.** The content store's ingest, once per fetch attempt of one digest, and
/// exporters that stream a blob onwards (`get_remote`: a push that never reads the bytes
/// never calls it). Calls for different digests happen concurrently from any task, so
/// implementations are `Send + Sync` and keep no per-call state in `self`.
///
/// **Contract.**
/// 1. `fetch(desc, offset)` yields the bytes of `desc` from byte `offset` to the end, in
///    order, with nothing skipped or decoded. `offset` is never past `desc.size`.
/// 2. A source that cannot start in the middle answers [`ProviderError::RangeNotSupported`]
///    before yielding anything; the caller then starts again from 0. It must never yield
///    bytes from 0 when asked for a later offset.
/// 3. The provider need not verify size or digest: the content store does, on every byte,
///    before anything is committed. It may stop early with an error; what it yielded is kept
///    by the caller as a resumable partial.
/// 4. Dropping the returned future or stream cancels the transfer and leaves nothing
///    behind on the provider's side (partial files belong to the content store).
pub trait ContentProvider: Send + Sync + fmt::Debug {
    /// Opens the byte stream of `desc` from `offset`.
    fn fetch(
        &self,
        desc: &Descriptor,
        offset: u64,
    ) -> BoxFuture<'static, Result<ByteStream, ProviderError>>;

    /// A human-readable name of the source, for errors and progress (`127.0.0.1:5000/x/y`).
    fn location(&self) -> String;
}

/// Blobs laid out as `<root>/blobs/<alg>/<hex>`: an OCI image layout, or cairn's own
/// content directory (`<state root>/content`).
#[derive(Debug, Clone)]
pub struct LayoutProvider {
    root: PathBuf,
}

impl LayoutProvider {
    pub fn new(root: impl Into<PathBuf>) -> LayoutProvider {
        LayoutProvider { root: root.into() }
    }

    fn blob_path(&self, desc: &Descriptor) -> PathBuf {
        blob_path_in(&self.root, desc)
    }
}

fn blob_path_in(root: &Path, desc: &Descriptor) -> PathBuf {
    root.join("blobs")
        .join(desc.digest.algorithm())
        .join(desc.digest.hex())
}

impl ContentProvider for LayoutProvider {
    fn fetch(
        &self,
        desc: &Descriptor,
        offset: u64,
    ) -> BoxFuture<'static, Result<ByteStream, ProviderError>> {
        let path = self.blob_path(desc);
        let digest = desc.digest.clone();
        let location = self.location();
        Box::pin(async move {
            let transport = {
                let digest = digest.clone();
                let location = location.clone();
                move |e: std::io::Error| ProviderError::Transport {
                    digest: digest.clone(),
                    location: location.clone(),
                    source: Box::new(e),
                }
            };
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ProviderError::NotFound { digest, location });
                }
                Err(e) => return Err(transport(e)),
            };
            if offset > 0 {
                file.seek(SeekFrom::Start(offset))
                    .await
                    .map_err(&transport)?;
            }
            let stream =
                tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map_err(transport);
            Ok(stream.boxed())
        })
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}
