//! Pushing: existence checks, cross-repository mounts, monolithic and chunked blob
//! uploads, and manifests. Nothing the registry already holds is uploaded again.

use std::path::PathBuf;

use bytes::Bytes;
use cairn_llb::Digest;
use reqwest::Url;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use tokio::io::AsyncReadExt as _;

use super::config::Endpoint;
use super::error::RegistryError;
use super::resolve::header_digest;
use super::{BlobVerifier, Idempotent, RegistryClient, push_scope};
use crate::descriptor::Descriptor;
use crate::reference::Reference;

/// Where a blob's bytes come from when pushing.
#[derive(Debug, Clone)]
pub enum BlobData {
    Bytes(Bytes),
    /// A file read in chunks; never loaded whole when larger than the chunk size.
    File(PathBuf),
}

/// The answer to a mount request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountResult {
    /// The registry linked the blob into the target repository (`201`).
    Mounted,
    /// The registry declined and opened an upload session instead (`202`).
    UploadStarted { location: Url },
}

/// What pushing a blob did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository already had it; no bytes were sent.
    AlreadyExists,
    /// Mounted from another repository; no bytes were sent.
    Mounted,
    /// Uploaded in one `PUT`.
    Uploaded,
    /// Uploaded in this many `PATCH` chunks.
    UploadedChunked { chunks: u32 },
}

const OCTET_STREAM: &str = "application/octet-stream";

impl RegistryClient {
    /// Whether `target`'s repository already holds blob `digest` (`HEAD`).
    pub async fn blob_exists(
        &self,
        target: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let ep = self.inner.config.push_endpoint(target.registry_host())?;
        let url = ep.url(&format!("{}/blobs/{digest}", target.repository()))?;
        let resp = self
            .send(
                &ep,
                &push_scope(target.repository()),
                Idempotent::Yes,
                |c| c.head(url.clone()),
            )
            .await?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => self
                .expect(&ep, resp, &[200], &format!("blob {digest}"))
                .await
                .map(|_| true),
        }
    }

    /// Asks the registry to link `desc` from `from_repo` (same host) into `target`'s
    /// repository without sending bytes.
    pub async fn mount_blob(
        &self,
        target: &Reference,
        from_repo: &str,
        desc: &Descriptor,
    ) -> Result<MountResult, RegistryError> {
        let ep = self.inner.config.push_endpoint(target.registry_host())?;
        let mut url = ep.url(&format!("{}/blobs/uploads/", target.repository()))?;
        url.query_pairs_mut()
            .append_pair("mount", desc.digest.as_str())
            .append_pair("from", from_repo);
        let scope = format!(
            "{} repository:{from_repo}:pull",
            push_scope(target.repository())
        );
        let resp = self
            .send(&ep, &scope, Idempotent::No, |c| {
                c.post(url.clone()).header(CONTENT_LENGTH, "0")
            })
            .await?;
        let what = format!("mount of {} from {from_repo}", desc.digest);
        let resp = self.expect(&ep, resp, &[201, 202], &what).await?;
        if resp.status().as_u16() == 201 {
            return Ok(MountResult::Mounted);
        }
        Ok(MountResult::UploadStarted {
            location: location(&ep, &resp)?,
        })
    }

    /// Pushes blob `desc` to `target`'s repository unless it is there already: tries a
    /// mount from `mount_from` (a repository on the same host) first, then uploads,
    /// monolithically up to the chunk size and in chunks above it.
    pub async fn push_blob(
        &self,
        target: &Reference,
        desc: &Descriptor,
        data: BlobData,
        mount_from: Option<&str>,
    ) -> Result<PushOutcome, RegistryError> {
        if self.blob_exists(target, &desc.digest).await? {
            return Ok(PushOutcome::AlreadyExists);
        }
        let ep = self.inner.config.push_endpoint(target.registry_host())?;
        let location = match mount_from {
            Some(from) if from != target.repository() => {
                match self.mount_blob(target, from, desc).await? {
                    MountResult::Mounted => return Ok(PushOutcome::Mounted),
                    MountResult::UploadStarted { location } => Some(location),
                }
            }
            _ => None,
        };
        let location = match location {
            Some(l) => l,
            None => self.start_upload(&ep, target).await?,
        };
        let chunk = self.inner.chunk_size;
        match data {
            BlobData::Bytes(b) => {
                BlobVerifier::verify(desc, &b)?;
                if b.len() <= chunk {
                    self.put_final(&ep, target, desc, location, b).await?;
                    Ok(PushOutcome::Uploaded)
                } else {
                    // Slices share the buffer: no copy per chunk.
                    let mut chunks = (0..b.len())
                        .step_by(chunk)
                        .map(|at| b.slice(at..(at + chunk).min(b.len())));
                    let n = self
                        .upload_chunks(&ep, target, desc, location, || Ok(chunks.next()))
                        .await?;
                    Ok(PushOutcome::UploadedChunked { chunks: n })
                }
            }
            BlobData::File(path) => {
                let io = |source| RegistryError::Io {
                    digest: desc.digest.clone(),
                    source,
                };
                let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
                if desc.size <= chunk as u64 {
                    let mut buf = Vec::with_capacity(usize::try_from(desc.size).unwrap_or(0));
                    file.read_to_end(&mut buf).await.map_err(io)?;
                    BlobVerifier::verify(desc, &buf)?;
                    self.put_final(&ep, target, desc, location, Bytes::from(buf))
                        .await?;
                    return Ok(PushOutcome::Uploaded);
                }
                // Read chunk by chunk, verifying as we go so a file changed since its
                // descriptor was made fails here, naming it, not as a registry 400.
                let mut verifier = BlobVerifier::new(desc);
                let mut loc = location.clone();
                let mut offset = 0u64;
                let mut chunks = 0u32;
                let result = async {
                    loop {
                        let bytes = read_chunk(&mut file, chunk).await.map_err(io)?;
                        if bytes.is_empty() {
                            break;
                        }
                        verifier.update(&bytes)?;
                        let len = bytes.len() as u64;
                        loc = self
                            .patch_chunk(&ep, target, loc.clone(), offset, bytes)
                            .await?;
                        offset += len;
                        chunks += 1;
                    }
                    verifier.finish()?;
                    self.put_final(&ep, target, desc, loc.clone(), Bytes::new())
                        .await
                }
                .await;
                if let Err(e) = result {
                    self.cancel_upload(&ep, target, loc).await;
                    return Err(e);
                }
                Ok(PushOutcome::UploadedChunked { chunks })
            }
        }
    }

    /// Abandons an upload session (best effort: the registry also purges stale ones).
    async fn cancel_upload(&self, ep: &Endpoint, target: &Reference, location: Url) {
        let r = self
            .send(ep, &push_scope(target.repository()), Idempotent::No, |c| {
                c.delete(location.clone())
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(%location, error = %e, "cancelling upload failed");
        }
    }

    /// Opens an upload session (`POST /blobs/uploads/`).
    async fn start_upload(&self, ep: &Endpoint, target: &Reference) -> Result<Url, RegistryError> {
        let url = ep.url(&format!("{}/blobs/uploads/", target.repository()))?;
        let resp = self
            .send(ep, &push_scope(target.repository()), Idempotent::No, |c| {
                c.post(url.clone()).header(CONTENT_LENGTH, "0")
            })
            .await?;
        let resp = self
            .expect(
                ep,
                resp,
                &[202],
                &format!("upload to {}", target.repository()),
            )
            .await?;
        location(ep, &resp)
    }

    /// Sends the chunks `next` yields as `PATCH`es, then the closing `PUT`.
    async fn upload_chunks(
        &self,
        ep: &Endpoint,
        target: &Reference,
        desc: &Descriptor,
        mut location: Url,
        mut next: impl FnMut() -> Result<Option<Bytes>, RegistryError>,
    ) -> Result<u32, RegistryError> {
        let mut offset = 0u64;
        let mut n = 0u32;
        while let Some(chunk) = next()? {
            let len = chunk.len() as u64;
            location = self
                .patch_chunk(ep, target, location, offset, chunk)
                .await?;
            offset += len;
            n += 1;
        }
        self.put_final(ep, target, desc, location, Bytes::new())
            .await?;
        Ok(n)
    }

    /// `PATCH` one chunk with its `Content-Range`; returns the next upload location.
    async fn patch_chunk(
        &self,
        ep: &Endpoint,
        target: &Reference,
        location: Url,
        offset: u64,
        chunk: Bytes,
    ) -> Result<Url, RegistryError> {
        let len = chunk.len() as u64;
        let range = format!("{offset}-{}", (offset + len).saturating_sub(1));
        let resp = self
            .send(ep, &push_scope(target.repository()), Idempotent::No, |c| {
                c.patch(location.clone())
                    .header(CONTENT_TYPE, OCTET_STREAM)
                    .header(CONTENT_LENGTH, len)
                    .header("Content-Range", range.clone())
                    .body(chunk.clone())
            })
            .await?;
        let what = format!("chunk {range} of upload to {}", target.repository());
        let resp = self.expect(ep, resp, &[202], &what).await?;
        location_or(ep, &resp, location)
    }

    /// Closes an upload session with `PUT <location>?digest=…`, carrying the whole blob
    /// (monolithic upload) or nothing (after chunks).
    async fn put_final(
        &self,
        ep: &Endpoint,
        target: &Reference,
        desc: &Descriptor,
        mut location: Url,
        body: Bytes,
    ) -> Result<(), RegistryError> {
        location
            .query_pairs_mut()
            .append_pair("digest", desc.digest.as_str());
        let len = body.len();
        let resp = self
            .send(ep, &push_scope(target.repository()), Idempotent::No, |c| {
                c.put(location.clone())
                    .header(CONTENT_TYPE, OCTET_STREAM)
                    .header(CONTENT_LENGTH, len)
                    .body(body.clone())
            })
            .await?;
        let what = format!("upload of {} to {}", desc.digest, target.repository());
        self.expect(ep, resp, &[201], &what).await?;
        Ok(())
    }

    /// Puts a manifest or index under `target`'s tag (or digest), returning its digest
    /// (computed over `bytes`, and checked against the registry's answer).
    pub async fn push_manifest(
        &self,
        target: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, RegistryError> {
        let ep = self.inner.config.push_endpoint(target.registry_host())?;
        let digest = Digest::of_bytes(&bytes);
        let what = format!("manifest {target}");
        if let Some(want) = target.digest()
            && *want != digest
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: want.clone(),
                actual: digest,
            });
        }
        let reference = match (target.digest(), target.tag()) {
            (_, Some(t)) => t.to_owned(),
            (Some(d), None) => d.to_string(),
            (None, None) => digest.to_string(),
        };
        let url = ep.url(&format!("{}/manifests/{reference}", target.repository()))?;
        let resp = self
            .send(
                &ep,
                &push_scope(target.repository()),
                Idempotent::Yes,
                |c| {
                    c.put(url.clone())
                        .header(CONTENT_TYPE, media_type)
                        .body(bytes.clone())
                },
            )
            .await?;
        let resp = self.expect(&ep, resp, &[201, 200], &what).await?;
        if let Some(answered) = header_digest(&resp)
            && answered != digest
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest,
                actual: answered,
            });
        }
        Ok(digest)
    }
}

/// Reads up to `size` bytes (fewer only at end of file).
async fn read_chunk(file: &mut tokio::fs::File, size: usize) -> std::io::Result<Bytes> {
    let mut buf = vec![0u8; size];
    let mut filled = 0;
    while filled < size {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

/// The `Location` of an upload answer, resolved against the endpoint (it may be
/// relative).
fn location(ep: &Endpoint, resp: &reqwest::Response) -> Result<Url, RegistryError> {
    let url = resp.url().to_string();
    let raw = resp
        .headers()
        .get(LOCATION)
        .ok_or_else(|| RegistryError::BadHeader {
            url: url.clone(),
            header: "Location",
            value: "(missing)".into(),
        })?;
    let text = raw.to_str().map_err(|_| RegistryError::BadHeader {
        url: url.clone(),
        header: "Location",
        value: String::from_utf8_lossy(raw.as_bytes()).into_owned(),
    })?;
    ep.base.join(text).map_err(|_| RegistryError::BadHeader {
        url,
        header: "Location",
        value: text.to_owned(),
    })
}

fn location_or(
    ep: &Endpoint,
    resp: &reqwest::Response,
    fallback: Url,
) -> Result<Url, RegistryError> {
    if resp.headers().contains_key(LOCATION) {
        location(ep, resp)
    } else {
        Ok(fallback)
    }
}
