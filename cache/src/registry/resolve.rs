//! Resolving an image name: manifest (through an index when there is one), config, and
//! layer descriptors, all verified against the digests that name them.

use bytes::Bytes;
use cairn_llb::Digest;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::config::Endpoint;
use super::error::RegistryError;
use super::{Idempotent, RegistryClient, pull_scope};
use crate::descriptor::{Descriptor, ImageConfig, Index, Manifest, Platform, media_types};
use crate::reference::Reference;

/// Manifests larger than this are refused (containerd uses the same bound): they are
/// read into memory whole.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Image configs larger than this are refused.
pub const MAX_CONFIG_SIZE: u64 = 32 << 20;

/// A manifest or index exactly as the registry sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub media_type: String,
    /// sha256 of `bytes` (checked against what was asked for).
    pub digest: Digest,
    pub bytes: Bytes,
}

impl RawManifest {
    /// A descriptor pointing at these bytes.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// Everything needed to make lazy refs for an image without fetching a layer.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The reference as asked for, pinned to `digest`.
    pub reference: Reference,
    /// The digest the name resolved to: the index's when there is one (what
    /// `name@digest` means to users), else the manifest's.
    pub digest: Digest,
    pub index: Option<RawManifest>,
    pub manifest: RawManifest,
    pub parsed: Manifest,
    pub config_descriptor: Descriptor,
    /// The config blob's raw bytes (verified).
    pub config: Bytes,
    pub parsed_config: ImageConfig,
    pub layers: Vec<Descriptor>,
    /// The host (mirror or origin) that answered.
    pub endpoint: String,
}

impl RegistryClient {
    /// Resolves `reference` to an image for `platform`, trying mirrors then the origin.
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, RegistryError> {
        self.on_pull_endpoints(reference, |ep| async move {
            self.resolve_at(&ep, reference, platform).await
        })
        .await
    }

    /// Fetches the manifest or index `reference` names, verified, trying mirrors first.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> Result<RawManifest, RegistryError> {
        self.on_pull_endpoints(reference, |ep| async move {
            self.fetch_manifest_at(&ep, reference, &reference.manifest_reference(), None)
                .await
        })
        .await
    }

    /// The digest, media type and size `reference` points at, from a `HEAD` (falling
    /// back to a `GET` when the registry sends no `Docker-Content-Digest`).
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Descriptor, RegistryError> {
        self.on_pull_endpoints(reference, |ep| async move {
            self.head_manifest_at(&ep, reference).await
        })
        .await
    }

    async fn head_manifest_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
    ) -> Result<Descriptor, RegistryError> {
        let url = ep.url(&format!(
            "{}/manifests/{}",
            r.repository(),
            r.manifest_reference()
        ))?;
        let accept = media_types::ALL_MANIFESTS.join(", ");
        let resp = self
            .send(ep, &pull_scope(r.repository()), Idempotent::Yes, |c| {
                c.head(url.clone()).header(ACCEPT, accept.clone())
            })
            .await?;
        let resp = self.expect(ep, resp, &[200], &r.to_string()).await?;
        let digest = header_digest(&resp);
        let mt = content_type(&resp);
        // Not `content_length()`: for a HEAD that is the (empty) body's length.
        let len = resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match (digest, mt, len) {
            (Some(d), Some(mt), Some(len))
                if media_types::is_manifest(&mt) || media_types::is_index(&mt) =>
            {
                if let Some(want) = r.digest()
                    && *want != d
                {
                    return Err(RegistryError::DigestMismatch {
                        what: format!("manifest {r} (HEAD)"),
                        expected: want.clone(),
                        actual: d,
                    });
                }
                Ok(Descriptor::new(mt, d, len))
            }
            _ => Ok(self
                .fetch_manifest_at(ep, r, &r.manifest_reference(), None)
                .await?
                .descriptor()),
        }
    }

    async fn resolve_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, RegistryError> {
        let top = self
            .fetch_manifest_at(ep, r, &r.manifest_reference(), None)
            .await?;
        let (index, manifest) = if media_types::is_index(&top.media_type) {
            let idx: Index = parse_json(&top.bytes, || format!("index {r}"))?;
            let Some(desc) = idx.select(platform) else {
                let available = idx
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(Platform::to_spec))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(RegistryError::NoMatchingPlatform {
                    reference: r.to_string(),
                    platform: platform.to_spec(),
                    available,
                });
            };
            let m = self
                .fetch_manifest_at(ep, r, desc.digest.as_str(), Some(desc))
                .await?;
            (Some(top), m)
        } else {
            (None, top)
        };
        if !media_types::is_manifest(&manifest.media_type) {
            return Err(RegistryError::UnsupportedMediaType {
                reference: format!("{r}@{}", manifest.digest),
                media_type: manifest.media_type.clone(),
            });
        }
        let parsed: Manifest = parse_json(&manifest.bytes, || {
            format!("manifest {r}@{}", manifest.digest)
        })?;
        let config_desc = parsed.config.clone();
        if config_desc.size > MAX_CONFIG_SIZE {
            return Err(RegistryError::TooLarge {
                what: format!("config {} of {r}", config_desc.digest),
                size: config_desc.size,
                limit: MAX_CONFIG_SIZE,
            });
        }
        let config = self.fetch_blob_bytes_at(ep, r, &config_desc).await?;
        let parsed_config: ImageConfig =
            parse_json(&config, || format!("config {} of {r}", config_desc.digest))?;
        let digest = index
            .as_ref()
            .map_or(&manifest.digest, |i| &i.digest)
            .clone();
        Ok(ResolvedImage {
            reference: r.with_digest(digest.clone()),
            digest,
            index,
            layers: parsed.layers.clone(),
            parsed,
            manifest,
            config_descriptor: config_desc,
            config,
            parsed_config,
            endpoint: ep.host.clone(),
        })
    }

    /// GETs `/manifests/<tag_or_digest>` and verifies the bytes against the requested
    /// digest, the descriptor (size too) and `Docker-Content-Digest`.
    pub(crate) async fn fetch_manifest_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        tag_or_digest: &str,
        desc: Option<&Descriptor>,
    ) -> Result<RawManifest, RegistryError> {
        let what = format!(
            "manifest {}/{}@{tag_or_digest}",
            r.registry_host(),
            r.repository()
        );
        let url = ep.url(&format!("{}/manifests/{tag_or_digest}", r.repository()))?;
        let accept = match desc {
            Some(d) => d.media_type.clone(),
            None => media_types::ALL_MANIFESTS.join(", "),
        };
        let resp = self
            .send(ep, &pull_scope(r.repository()), Idempotent::Yes, |c| {
                c.get(url.clone()).header(ACCEPT, accept.clone())
            })
            .await?;
        let resp = self.expect(ep, resp, &[200], &what).await?;
        let header = header_digest(&resp);
        let ctype = content_type(&resp);
        let limit = desc.map_or(MAX_MANIFEST_SIZE, |d| d.size.min(MAX_MANIFEST_SIZE));
        let bytes = read_body(resp, limit, &what).await?;
        let digest = Digest::of_bytes(&bytes);
        let expected = match (desc, Digest::parse(tag_or_digest).ok(), header) {
            (Some(d), _, _) => Some(d.digest.clone()),
            (None, Some(d), _) => Some(d),
            (None, None, h) => h,
        };
        if let Some(exp) = expected
            && exp != digest
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: exp,
                actual: digest,
            });
        }
        if let Some(d) = desc
            && d.size != bytes.len() as u64
        {
            return Err(RegistryError::SizeMismatch {
                what,
                expected: d.size,
                actual: bytes.len() as u64,
            });
        }
        let media_type = sniff_media_type(ctype.as_deref(), &bytes)
            .or_else(|| desc.map(|d| d.media_type.clone()))
            .ok_or_else(|| RegistryError::UnsupportedMediaType {
                reference: what.clone(),
                media_type: ctype.clone().unwrap_or_default(),
            })?;
        Ok(RawManifest {
            media_type,
            digest,
            bytes,
        })
    }
}

/// Reads a whole body, refusing more than `limit` bytes (announced or actual).
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    limit: u64,
    what: &str,
) -> Result<Bytes, RegistryError> {
    let url = resp.url().to_string();
    if let Some(len) = resp.content_length()
        && len > limit
    {
        return Err(RegistryError::TooLarge {
            what: what.to_owned(),
            size: len,
            limit,
        });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|source| RegistryError::Http {
        url: url.clone(),
        source,
    })? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(RegistryError::TooLarge {
                what: what.to_owned(),
                size: out.len() as u64 + chunk.len() as u64,
                limit,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

pub(crate) fn header_digest(resp: &reqwest::Response) -> Option<Digest> {
    resp.headers()
        .get("docker-content-digest")?
        .to_str()
        .ok()
        .and_then(|s| Digest::parse(s.trim()).ok())
}

fn content_type(resp: &reqwest::Response) -> Option<String> {
    let v = resp.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or(v).trim().to_owned())
}

/// The manifest media type: the `Content-Type` when it names one, else the document's
/// own `mediaType`, else its shape (`manifests` → index, `layers` → manifest; OCI
/// allows omitting `mediaType`).
fn sniff_media_type(ctype: Option<&str>, bytes: &[u8]) -> Option<String> {
    if let Some(ct) = ctype
        && (media_types::is_manifest(ct) || media_types::is_index(ct))
    {
        return Some(ct.to_owned());
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        layers: Option<serde::de::IgnoredAny>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    match (p.media_type, p.manifests, p.layers) {
        (Some(mt), _, _) => Some(mt),
        (None, Some(_), _) => Some(media_types::OCI_INDEX.to_owned()),
        (None, None, Some(_)) => Some(media_types::OCI_MANIFEST.to_owned()),
        _ => None,
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|source| RegistryError::InvalidDocument {
        what: what(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_comes_from_header_then_body_then_shape() {
        let m = media_types::DOCKER_MANIFEST;
        assert_eq!(sniff_media_type(Some(m), b"{}").as_deref(), Some(m));
        let body = format!(r#"{{"mediaType":"{m}"}}"#);
        assert_eq!(
            sniff_media_type(Some("application/json"), body.as_bytes()).as_deref(),
            Some(m)
        );
        assert_eq!(
            sniff_media_type(None, br#"{"manifests":[]}"#).as_deref(),
            Some(media_types::OCI_INDEX)
        );
        assert_eq!(
            sniff_media_type(None, br#"{"layers":[]}"#).as_deref(),
            Some(media_types::OCI_MANIFEST)
        );
        assert_eq!(sniff_media_type(None, b"{}"), None);
        assert_eq!(sniff_media_type(None, b"not json"), None);
    }
}
