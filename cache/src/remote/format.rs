//! The cache config: which keys lead to which layer chains. It travels as the config blob
//! of an OCI image manifest whose layers are every blob the chains use, so a registry
//! keeps the blobs alive as long as the cache tag points at the manifest, and cross-repo
//! mounts work for them as for image layers.
//!
//! Keys are the solver's (sha256 over op digests, input keys and content checksums):
//! nothing in them names a host path, a time or a random id, so another machine computing
//! the same step computes the same key.

use std::collections::HashSet;

use cairn_llb::Digest;
use serde::{Deserialize, Serialize};

use super::error::RemoteCacheError;
use crate::descriptor::{Manifest, media_types};

/// The config blob's media type; a manifest with another config type is not a cache.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cairn.cache.config.v1+json";

/// The image-config field that holds an inline cache (`--cache-to type=inline`): a
/// [`CacheConfig`] whose layer indices are the image's own layers.
pub const INLINE_FIELD: &str = "cairn.cache.v1";

/// Readers refuse configs of another version (and fall back to building).
pub const FORMAT_VERSION: u32 = 1;

/// The whole config. `layers[i]` is the diff id of the manifest's `layers[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheConfig {
    pub version: u32,
    /// Uncompressed digests, aligned with the manifest's layers.
    pub diff_ids: Vec<Digest>,
    /// Layer chains, bottom first, as indices into the manifest's layers.
    pub results: Vec<CacheResult>,
    pub records: Vec<CacheEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheResult {
    pub layers: Vec<u32>,
}

/// One key of one step: its outputs, each an index into `results` or `None` for an
/// empty (scratch) output. A step reached by a definition key and by a content key has
/// one entry per key, both naming the same `canonical` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheEntry {
    pub key: String,
    pub canonical: String,
    pub outputs: Vec<Option<u32>>,
}

impl CacheConfig {
    /// Parses and checks a config against the manifest that carries it: every index in
    /// range, one diff id per layer, layer media types only, keys that look like keys.
    pub fn parse(
        location: &str,
        bytes: &[u8],
        manifest: &Manifest,
    ) -> Result<CacheConfig, RemoteCacheError> {
        let bad = |r: String| RemoteCacheError::invalid(location, r);
        let cfg: CacheConfig = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("the cache config is not valid: {e}")))?;
        if cfg.version != FORMAT_VERSION {
            return Err(bad(format!(
                "cache format version {} (this cairn reads version {FORMAT_VERSION})",
                cfg.version
            )));
        }
        if cfg.diff_ids.len() != manifest.layers.len() {
            return Err(bad(format!(
                "the manifest lists {} layers but the config {} diff ids",
                manifest.layers.len(),
                cfg.diff_ids.len()
            )));
        }
        if let Some(l) = manifest
            .layers
            .iter()
            .find(|l| !media_types::is_layer(&l.media_type))
        {
            return Err(bad(format!(
                "blob {} has media type {:?}, not a layer",
                l.digest, l.media_type
            )));
        }
        let n_layers = manifest.layers.len();
        for (i, r) in cfg.results.iter().enumerate() {
            if let Some(l) = r.layers.iter().find(|l| **l as usize >= n_layers) {
                return Err(bad(format!(
                    "result {i} names layer {l}, but there are {n_layers}"
                )));
            }
        }
        let n_results = cfg.results.len();
        let mut seen = HashSet::new();
        for e in &cfg.records {
            for k in [&e.key, &e.canonical] {
                if Digest::parse(k).is_err() {
                    return Err(bad(format!("key {k:?} is not a sha256 digest")));
                }
            }
            if !seen.insert(e.key.as_str()) {
                return Err(bad(format!("key {} is listed twice", e.key)));
            }
            if let Some(r) = e
                .outputs
                .iter()
                .flatten()
                .find(|r| **r as usize >= n_results)
            {
                return Err(bad(format!(
                    "key {} names result {r}, but there are {n_results}",
                    e.key
                )));
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::Descriptor;

    fn manifest(layers: usize) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.into()),
            config: Descriptor::of_bytes(CONFIG_MEDIA_TYPE, b"{}"),
            layers: (0..layers)
                .map(|i| Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &[i as u8]))
                .collect(),
            subject: None,
            annotations: Default::default(),
        }
    }

    fn key(s: &str) -> String {
        Digest::of_bytes(s.as_bytes()).to_string()
    }

    fn config() -> CacheConfig {
        CacheConfig {
            version: FORMAT_VERSION,
            diff_ids: vec![Digest::of_bytes(b"d0"), Digest::of_bytes(b"d1")],
            results: vec![CacheResult { layers: vec![0, 1] }],
            records: vec![CacheEntry {
                key: key("a"),
                canonical: key("a"),
                outputs: vec![Some(0), None],
            }],
        }
    }

    #[test]
    fn a_valid_config_round_trips() {
        let bytes = serde_json::to_vec(&config()).unwrap();
        let got = CacheConfig::parse("here", &bytes, &manifest(2)).unwrap();
        assert_eq!(got, config());
    }

    #[test]
    fn bad_configs_are_refused_naming_the_part() {
        type Change = Box<dyn Fn(&mut CacheConfig)>;
        let cases: Vec<(Change, usize, &str)> = vec![
            (Box::new(|c| c.version = 9), 2, "version 9"),
            (Box::new(|_| {}), 3, "3 layers but the config 2"),
            (
                Box::new(|c| c.results[0].layers.push(7)),
                2,
                "names layer 7",
            ),
            (
                Box::new(|c| c.records[0].outputs = vec![Some(4)]),
                2,
                "names result 4",
            ),
            (
                Box::new(|c| c.records[0].key = "/tmp/x".into()),
                2,
                "not a sha256",
            ),
            (
                Box::new(|c| {
                    let dup = c.records[0].clone();
                    c.records.push(dup)
                }),
                2,
                "listed twice",
            ),
        ];
        for (change, layers, want) in cases {
            let mut c = config();
            change(&mut c);
            let bytes = serde_json::to_vec(&c).unwrap();
            let err = CacheConfig::parse("reg/x:cache", &bytes, &manifest(layers)).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want) && msg.contains("reg/x:cache"), "{msg}");
        }
        let err = CacheConfig::parse("c", b"{not json", &manifest(2)).unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
        let mut m = manifest(2);
        m.layers[1].media_type = "text/plain".into();
        let bytes = serde_json::to_vec(&config()).unwrap();
        let err = CacheConfig::parse("c", &bytes, &m).unwrap_err();
        assert!(err.to_string().contains("not a layer"), "{err}");
    }
}
