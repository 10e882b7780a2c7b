//! Fetching blobs: streamed from a byte offset with progress, or read whole and verified
//! for small documents such as configs.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cairn_llb::{Digest, Hasher};
use futures::{Stream, StreamExt as _};
use reqwest::header::RANGE;

use super::config::Endpoint;
use super::error::RegistryError;
use super::resolve::read_body;
use super::{Idempotent, RegistryClient, pull_scope};
use crate::descriptor::Descriptor;
use crate::reference::Reference;

/// Called with (bytes received so far including the starting offset, total size) as a
/// blob streams in.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// The body of a blob from `offset` on. Bytes are not verified: feed them to a
/// [`BlobVerifier`] (together with any bytes before `offset`).
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>,
    /// The host (mirror or origin) serving the bytes.
    pub endpoint: String,
    /// Where in the blob the first byte of this stream lies.
    pub offset: u64,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("endpoint", &self.endpoint)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, RegistryError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Checks bytes against a descriptor's size and digest as they pass.
#[derive(Clone)]
pub struct BlobVerifier {
    hasher: Hasher,
    expected: Digest,
    size: u64,
    what: String,
}

impl BlobVerifier {
    pub fn new(desc: &Descriptor) -> BlobVerifier {
        BlobVerifier {
            hasher: Hasher::new(),
            expected: desc.digest.clone(),
            size: desc.size,
            what: format!("blob {}", desc.digest),
        }
    }

    /// Feeds bytes; fails as soon as more than the declared size arrives.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), RegistryError> {
        self.hasher.update(bytes);
        if self.hasher.len() > self.size {
            return Err(RegistryError::SizeMismatch {
                what: self.what.clone(),
                expected: self.size,
                actual: self.hasher.len(),
            });
        }
        Ok(())
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Checks the size and digest of everything fed.
    pub fn finish(self) -> Result<(), RegistryError> {
        if self.hasher.len() != self.size {
            return Err(RegistryError::SizeMismatch {
                what: self.what,
                expected: self.size,
                actual: self.hasher.len(),
            });
        }
        let actual = self.hasher.finalize();
        if actual != self.expected {
            return Err(RegistryError::DigestMismatch {
                what: self.what,
                expected: self.expected,
                actual,
            });
        }
        Ok(())
    }

    /// Checks a whole blob held in memory.
    pub fn verify(desc: &Descriptor, bytes: &[u8]) -> Result<(), RegistryError> {
        let mut v = BlobVerifier::new(desc);
        v.update(bytes)?;
        v.finish()
    }
}

impl RegistryClient {
    /// Streams blob `desc` of `reference`'s repository from byte `offset` (a `Range`
    /// request; a server that ignores it has the skipped prefix dropped here). Mirrors are
    /// tried in order, then the origin.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        offset: u64,
        progress: Option<ProgressFn>,
    ) -> Result<BlobStream, RegistryError> {
        self.on_pull_endpoints(reference, |ep| {
            let progress = progress.clone();
            async move {
                self.fetch_blob_at(&ep, reference, desc, offset, progress)
                    .await
            }
        })
        .await
    }

    /// Reads a whole blob into memory and verifies it (for configs and other small
    /// documents; refuses blobs over `limit` bytes).
    pub async fn fetch_blob_bytes(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        limit: u64,
    ) -> Result<Bytes, RegistryError> {
        if desc.size > limit {
            return Err(RegistryError::TooLarge {
                what: format!("blob {}", desc.digest),
                size: desc.size,
                limit,
            });
        }
        self.on_pull_endpoints(reference, |ep| async move {
            self.fetch_blob_bytes_at(&ep, reference, desc).await
        })
        .await
    }

    pub(crate) async fn fetch_blob_bytes_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        desc: &Descriptor,
    ) -> Result<Bytes, RegistryError> {
        let what = format!(
            "blob {}/{}@{}",
            r.registry_host(),
            r.repository(),
            desc.digest
        );
        let resp = self.blob_request(ep, r, desc, 0).await?;
        let bytes = read_body(resp, desc.size, &what).await?;
        BlobVerifier::verify(desc, &bytes)?;
        Ok(bytes)
    }

    async fn blob_request(
        &self,
        ep: &Endpoint,
        r: &Reference,
        desc: &Descriptor,
        offset: u64,
    ) -> Result<reqwest::Response, RegistryError> {
        let what = format!(
            "blob {}/{}@{}",
            r.registry_host(),
            r.repository(),
            desc.digest
        );
        let url = ep.url(&format!("{}/blobs/{}", r.repository(), desc.digest))?;
        let resp = self
            .send(ep, &pull_scope(r.repository()), Idempotent::Yes, |c| {
                let rb = c.get(url.clone());
                if offset > 0 {
                    rb.header(RANGE, format!("bytes={offset}-"))
                } else {
                    rb
                }
            })
            .await?;
        self.expect(ep, resp, &[200, 206], &what).await
    }

    async fn fetch_blob_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        desc: &Descriptor,
        offset: u64,
        progress: Option<ProgressFn>,
    ) -> Result<BlobStream, RegistryError> {
        if offset > desc.size {
            return Err(RegistryError::SizeMismatch {
                what: format!("resume offset of blob {}", desc.digest),
                expected: desc.size,
                actual: offset,
            });
        }
        let resp = self.blob_request(ep, r, desc, offset).await?;
        let url = resp.url().to_string();
        // Bytes of the body to drop before the wanted offset.
        let mut skip = if resp.status().as_u16() == 206 {
            let start = content_range_start(&resp).ok_or_else(|| RegistryError::BadHeader {
                url: url.clone(),
                header: "Content-Range",
                value: resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("(missing)")
                    .to_owned(),
            })?;
            if start != offset {
                return Err(RegistryError::BadHeader {
                    url,
                    header: "Content-Range",
                    value: format!("starts at {start}, asked for {offset}"),
                });
            }
            0
        } else {
            offset
        };
        let total = desc.size;
        let digest = desc.digest.clone();
        let mut done = offset;
        let body = resp.bytes_stream().map(move |chunk| {
            let mut chunk = chunk.map_err(|source| RegistryError::Http {
                url: url.clone(),
                source,
            })?;
            if skip > 0 {
                let n = skip.min(chunk.len() as u64);
                skip -= n;
                // n <= chunk.len(), so the cast cannot truncate.
                chunk = chunk.slice(n as usize..);
            }
            done += chunk.len() as u64;
            if done > total {
                return Err(RegistryError::SizeMismatch {
                    what: format!("blob {digest} from {url}"),
                    expected: total,
                    actual: done,
                });
            }
            if let Some(p) = &progress {
                p(done, total);
            }
            Ok(chunk)
        });
        let body = body.filter(|c| futures::future::ready(!matches!(c, Ok(b) if b.is_empty())));
        Ok(BlobStream {
            inner: Box::pin(body),
            endpoint: ep.host.clone(),
            offset,
        })
    }
}

/// The first byte position in `Content-Range: bytes <start>-<end>/<total>`.
fn content_range_start(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get("content-range")?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::media_types;

    #[test]
    fn verifier_checks_size_and_digest() {
        let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, b"hello world");
        let mut v = BlobVerifier::new(&desc);
        v.update(b"hello ").unwrap();
        v.update(b"world").unwrap();
        assert_eq!(v.len(), 11);
        v.finish().unwrap();

        let short = BlobVerifier::verify(&desc, b"hello");
        assert!(matches!(
            short,
            Err(RegistryError::SizeMismatch {
                expected: 11,
                actual: 5,
                ..
            })
        ));
        let mut v = BlobVerifier::new(&desc);
        assert!(v.update(b"hello world!").is_err());
        let wrong = BlobVerifier::verify(&desc, b"hello_world");
        match wrong {
            Err(RegistryError::DigestMismatch {
                expected, actual, ..
            }) => {
                assert_eq!(expected, desc.digest);
                assert_eq!(actual, Digest::of_bytes(b"hello_world"));
            }
            other => panic!("expected a digest mismatch, got {other:?}"),
        }
    }
}
