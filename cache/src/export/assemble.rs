//! Image assembly: base config + config changes + layer chain → image config and manifest,
//! each serialised once, canonically, with the digest of those bytes.

use bytes::Bytes;
use cairn_llb::Digest;
use serde_json::{Map, Value, json};

use super::config::ConfigChanges;
use super::error::ExportError;
use super::json::canonical_json;
use super::options::ImageOptions;
use super::time::{build_time, parse_rfc3339, rfc3339};
use crate::descriptor::{Descriptor, ImageConfig, Platform, media_types as mt};
use crate::metadata::LayerBlob;

/// Docker's media type for an uncompressed layer (absent from `media_types`, which lists
/// what registries serve; `docker save` archives use it).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The config an image starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum BaseConfig {
    /// `FROM scratch`.
    Scratch,
    /// The base image's config blob as received; fields cairn does not model are kept.
    Raw(Bytes),
    Typed(Box<ImageConfig>),
}

/// One build step for the image history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryEntry {
    pub created_by: String,
    pub comment: Option<String>,
    /// The step changed only metadata and has no layer.
    pub empty_layer: bool,
}

/// Everything an image is made from.
#[derive(Debug, Clone)]
pub struct AssembleInput {
    pub base: BaseConfig,
    pub changes: ConfigChanges,
    /// The result's whole layer chain, bottom first (base layers included).
    pub layers: Vec<LayerBlob>,
    /// This build's steps, appended to the base's history.
    pub history: Vec<HistoryEntry>,
    /// The target platform; the base config's, else the host's, when `None`.
    pub platform: Option<Platform>,
    pub options: ImageOptions,
    /// Fixes `created` and this build's history times, for reproducible digests.
    pub source_date_epoch: Option<i64>,
}

/// An assembled image: manifest and config bytes with their descriptors, and the layers.
#[derive(Debug, Clone, PartialEq)]
pub struct AssembledImage {
    pub manifest: Descriptor,
    pub manifest_bytes: Bytes,
    pub config: Descriptor,
    pub config_bytes: Bytes,
    /// The layer descriptors as the manifest lists them.
    pub layers: Vec<Descriptor>,
    /// The same layers as the chain gave them, with internal annotations (diff id,
    /// distribution source) that a push uses and the manifest does not carry.
    pub layer_sources: Vec<Descriptor>,
    pub diff_ids: Vec<Digest>,
    pub platform: Platform,
}

impl AssembledImage {
    pub fn manifest_digest(&self) -> &Digest {
        &self.manifest.digest
    }

    /// Whether manifests and config use OCI media types (else Docker schema2).
    pub fn is_oci(&self) -> bool {
        self.manifest.media_type == mt::OCI_MANIFEST
    }
}

/// The comment on history entries invented for layers that had none.
const FILLER_COMMENT: &str = "cairn.exporter.image.v0";

/// Builds the image config and manifest.
pub fn assemble(input: &AssembleInput) -> Result<AssembledImage, ExportError> {
    let mut cfg = match &input.base {
        BaseConfig::Scratch => Map::new(),
        BaseConfig::Raw(raw) => {
            match serde_json::from_slice::<Value>(raw).map_err(ExportError::BaseConfig)? {
                Value::Object(m) => m,
                _ => return Err(ExportError::BaseConfigNotObject),
            }
        }
        BaseConfig::Typed(c) => match serde_json::to_value(c).map_err(|e| ExportError::Encode {
            what: "base image config",
            source: e,
        })? {
            Value::Object(m) => m,
            _ => return Err(ExportError::BaseConfigNotObject),
        },
    };
    // zstd layers have no Docker media type: any of them makes the whole image OCI.
    let oci = input.options.effective_oci_mediatypes()
        || input
            .layers
            .iter()
            .any(|l| l.descriptor.media_type == mt::OCI_LAYER_ZSTD);
    let (secs, nanos) = build_time(input.source_date_epoch);
    let created = rfc3339(secs, nanos);

    let platform = input
        .platform
        .clone()
        .unwrap_or_else(|| base_platform(&cfg).unwrap_or_else(Platform::host));
    cfg.insert("architecture".into(), json!(platform.architecture));
    cfg.insert("os".into(), json!(platform.os));
    set_opt(&mut cfg, "variant", platform.variant.as_deref());
    set_opt(&mut cfg, "os.version", platform.os_version.as_deref());

    let mut runtime = match cfg.remove("config") {
        Some(Value::Object(m)) => m,
        Some(Value::Null) | None => Map::new(),
        Some(_) => {
            return Err(ExportError::BadConfigField {
                field: "config",
                reason: "is not an object".into(),
            });
        }
    };
    input.changes.apply(&mut runtime);
    cfg.insert("config".into(), Value::Object(runtime));
    // These describe the container that built the *base* image; carried over they would
    // claim this image was built by that container.
    cfg.remove("container");
    cfg.remove("container_config");
    // The base's cache describes the base's build, not this one.
    cfg.remove(crate::remote::INLINE_FIELD);
    if let Some(c) = &input.changes.inline_cache {
        cfg.insert(crate::remote::INLINE_FIELD.into(), c.clone());
    }

    let diff_ids: Vec<Digest> = input.layers.iter().map(|l| l.diff_id.clone()).collect();
    cfg.insert("rootfs".into(), json!({"type": "layers", "diff_ids": diff_ids.iter().map(Digest::as_str).collect::<Vec<_>>()}));

    let mut history = match cfg.remove("history") {
        Some(Value::Array(a)) => a,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => {
            return Err(ExportError::BadConfigField {
                field: "history",
                reason: "is not an array".into(),
            });
        }
    };
    for h in &input.history {
        let mut m = Map::new();
        m.insert("created".into(), json!(created));
        m.insert("created_by".into(), json!(h.created_by));
        set_opt(&mut m, "comment", h.comment.as_deref());
        if h.empty_layer {
            m.insert("empty_layer".into(), json!(true));
        }
        history.push(Value::Object(m));
    }
    if let Some(epoch) = input.source_date_epoch {
        clamp_history(&mut history, epoch, &created);
    }
    align_history(&mut history, diff_ids.len(), &created);
    cfg.insert("history".into(), Value::Array(history));
    cfg.insert("created".into(), json!(created));

    let config_bytes = Bytes::from(canonical_json(&Value::Object(cfg)));
    let config = Descriptor::of_bytes(
        if oci {
            mt::OCI_CONFIG
        } else {
            mt::DOCKER_CONFIG
        },
        &config_bytes,
    );

    let mut layers = Vec::with_capacity(input.layers.len());
    for (index, l) in input.layers.iter().enumerate() {
        layers.push(manifest_layer(index, &l.descriptor, oci)?);
    }
    let manifest_type = if oci {
        mt::OCI_MANIFEST
    } else {
        mt::DOCKER_MANIFEST
    };
    let manifest_value = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": serde_json::to_value(&config).map_err(|e| ExportError::Encode { what: "manifest", source: e })?,
        "layers": serde_json::to_value(&layers).map_err(|e| ExportError::Encode { what: "manifest", source: e })?,
    });
    let manifest_bytes = Bytes::from(canonical_json(&manifest_value));
    let manifest = Descriptor::of_bytes(manifest_type, &manifest_bytes);
    Ok(AssembledImage {
        manifest,
        manifest_bytes,
        config,
        config_bytes,
        layers,
        layer_sources: input.layers.iter().map(|l| l.descriptor.clone()).collect(),
        diff_ids,
        platform,
    })
}

fn set_opt(m: &mut Map<String, Value>, key: &str, v: Option<&str>) {
    match v {
        Some(v) => m.insert(key.into(), json!(v)),
        None => m.remove(key),
    };
}

fn base_platform(cfg: &Map<String, Value>) -> Option<Platform> {
    let s = |k: &str| {
        cfg.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut p = Platform::new(s("os")?, s("architecture")?);
    p.variant = s("variant");
    p.os_version = s("os.version");
    Some(p)
}

/// With `SOURCE_DATE_EPOCH`, no history entry claims a time after it: later or missing
/// times (base entries included) become the epoch, so the image does not depend on when
/// its base was built relative to the epoch. Times that do not parse are left alone.
fn clamp_history(history: &mut [Value], epoch: i64, epoch_str: &str) {
    for h in history.iter_mut() {
        let Value::Object(m) = h else { continue };
        let later = match m.get("created").and_then(Value::as_str) {
            None => true,
            Some(t) => parse_rfc3339(t).is_some_and(|s| s > epoch),
        };
        if later {
            m.insert("created".into(), json!(epoch_str));
        }
    }
}

/// Makes the non-empty history entries as many as the layers, as BuildKit does: surplus
/// ones (oldest first) become empty, and missing ones are invented at the bottom.
fn align_history(history: &mut Vec<Value>, layers: usize, created: &str) {
    let is_empty = |h: &Value| {
        h.get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let mut non_empty = history.iter().filter(|h| !is_empty(h)).count();
    for h in history.iter_mut() {
        if non_empty <= layers {
            break;
        }
        if let Value::Object(m) = h
            && !m
                .get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        {
            m.insert("empty_layer".into(), json!(true));
            non_empty -= 1;
        }
    }
    if non_empty < layers {
        let filler = json!({"created": created, "created_by": "", "comment": FILLER_COMMENT});
        let missing = layers - non_empty;
        history.splice(0..0, std::iter::repeat_n(filler, missing));
    }
}

/// The manifest's descriptor of a chain layer: media type in the manifest's family,
/// internal `containerd.io/` annotations dropped (they are local bookkeeping).
fn manifest_layer(index: usize, d: &Descriptor, oci: bool) -> Result<Descriptor, ExportError> {
    let media_type = match (d.media_type.as_str(), oci) {
        (mt::OCI_LAYER_GZIP | mt::DOCKER_LAYER_GZIP, true) => mt::OCI_LAYER_GZIP,
        (mt::OCI_LAYER_GZIP | mt::DOCKER_LAYER_GZIP, false) => mt::DOCKER_LAYER_GZIP,
        (mt::OCI_LAYER_TAR | DOCKER_LAYER_TAR, true) => mt::OCI_LAYER_TAR,
        (mt::OCI_LAYER_TAR | DOCKER_LAYER_TAR, false) => DOCKER_LAYER_TAR,
        (mt::OCI_LAYER_NONDIST_GZIP | mt::DOCKER_LAYER_FOREIGN, true) => mt::OCI_LAYER_NONDIST_GZIP,
        (mt::OCI_LAYER_NONDIST_GZIP | mt::DOCKER_LAYER_FOREIGN, false) => mt::DOCKER_LAYER_FOREIGN,
        (mt::OCI_LAYER_ZSTD | mt::OCI_LAYER_NONDIST_TAR, true) => d.media_type.as_str(),
        (other, _) if mt::is_layer(other) => {
            // zstd / non-distributable tar have no Docker type: keep OCI types on them,
            // as BuildKit does for zstd blobs in a Docker-typed manifest.
            other
        }
        _ => {
            return Err(ExportError::NotALayer {
                index,
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
            });
        }
    };
    let mut out = d.clone();
    out.media_type = media_type.to_owned();
    out.annotations
        .retain(|k, _| !k.starts_with("containerd.io/"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::Manifest;

    fn layer(n: u8) -> LayerBlob {
        let mut descriptor = Descriptor::of_bytes(mt::OCI_LAYER_GZIP, &[n; 8]);
        descriptor.annotations.insert(
            "containerd.io/uncompressed".into(),
            Digest::of_bytes(&[n]).to_string(),
        );
        LayerBlob {
            descriptor,
            diff_id: Digest::of_bytes(&[n]),
        }
    }

    fn input() -> AssembleInput {
        AssembleInput {
            base: BaseConfig::Raw(Bytes::from_static(
                br#"{"architecture":"arm64","variant":"v8","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]},
                   "history":[{"created":"2020-01-01T00:00:00Z","created_by":"ADD base"},{"created":"2030-01-01T00:00:00Z","created_by":"CMD x","empty_layer":true}],"container_config":{"Cmd":["x"]},"extra":{"b":1,"a":2}}"#,
            )),
            changes: ConfigChanges { cmd: Some(vec!["sh".into()]), ..ConfigChanges::default() },
            layers: vec![layer(1), layer(2)],
            history: vec![
                HistoryEntry { created_by: "ENV A=1".into(), comment: None, empty_layer: true },
                HistoryEntry { created_by: "COPY . /".into(), comment: Some("buildkit.dockerfile.v0".into()), empty_layer: false },
            ],
            platform: None,
            options: ImageOptions::default(),
            source_date_epoch: Some(1_700_000_000),
        }
    }

    #[test]
    fn builds_an_oci_image_with_aligned_history_and_exact_digests() {
        let img = assemble(&input()).unwrap();
        assert_eq!(img.manifest.digest, Digest::of_bytes(&img.manifest_bytes));
        assert_eq!(img.config.digest, Digest::of_bytes(&img.config_bytes));
        let m: Manifest = serde_json::from_slice(&img.manifest_bytes).unwrap();
        assert_eq!(m.media_type.as_deref(), Some(mt::OCI_MANIFEST));
        assert_eq!(m.config, img.config);
        assert_eq!(m.layers.len(), 2);
        assert!(
            m.layers[0].annotations.is_empty(),
            "internal annotations are not in the manifest"
        );
        let c: Value = serde_json::from_slice(&img.config_bytes).unwrap();
        assert_eq!(c["created"], "2023-11-14T22:13:20Z");
        assert_eq!(c["architecture"], "arm64");
        assert_eq!(c["variant"], "v8");
        assert_eq!(c["config"]["Cmd"], json!(["sh"]));
        assert_eq!(c["config"]["Env"], json!(["PATH=/bin"]));
        assert_eq!(c["extra"], json!({"a": 2, "b": 1}));
        assert!(c.get("container_config").is_none());
        assert_eq!(c["rootfs"]["diff_ids"][1], Digest::of_bytes(&[2]).as_str());
        let h = c["history"].as_array().unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(
            h[0]["created"], "2020-01-01T00:00:00Z",
            "base history before the epoch kept"
        );
        assert_eq!(
            h[1]["created"], "2023-11-14T22:13:20Z",
            "base history after the epoch clamped"
        );
        assert_eq!(h[2]["empty_layer"], true);
        assert_eq!(h[2]["created"], "2023-11-14T22:13:20Z");
        assert_eq!(h[3]["comment"], "buildkit.dockerfile.v0");
        assert!(h[3].get("empty_layer").is_none());
    }

    #[test]
    fn same_inputs_with_epoch_give_the_same_digest_and_changes_change_it() {
        let a = assemble(&input()).unwrap();
        let b = assemble(&input()).unwrap();
        assert_eq!(a.manifest.digest, b.manifest.digest);
        let mut other = input();
        other.source_date_epoch = Some(1_700_000_001);
        assert_ne!(assemble(&other).unwrap().manifest.digest, a.manifest.digest);
    }

    #[test]
    fn docker_mediatypes_and_zstd_forcing_oci() {
        let mut i = input();
        i.options.oci_mediatypes = false;
        let img = assemble(&i).unwrap();
        assert_eq!(img.manifest.media_type, mt::DOCKER_MANIFEST);
        assert_eq!(img.config.media_type, mt::DOCKER_CONFIG);
        assert_eq!(img.layers[0].media_type, mt::DOCKER_LAYER_GZIP);
        assert!(!img.is_oci());
        i.options.compression = cairn_snapshot::Compression::Zstd;
        assert!(assemble(&i).unwrap().is_oci());
        let mut i = input();
        i.options.oci_mediatypes = false;
        i.layers[1].descriptor.media_type = mt::OCI_LAYER_ZSTD.into();
        let img = assemble(&i).unwrap();
        assert!(img.is_oci(), "an existing zstd layer makes the image OCI");
        assert_eq!(img.layers[0].media_type, mt::OCI_LAYER_GZIP);
    }

    #[test]
    fn history_is_padded_or_trimmed_to_the_layer_count() {
        let mut i = input();
        i.history.clear();
        let c: Value = serde_json::from_slice(&assemble(&i).unwrap().config_bytes).unwrap();
        let h = c["history"].as_array().unwrap();
        assert_eq!(
            h.len(),
            3,
            "one filler for the layer the base history lacks"
        );
        assert_eq!(h[0]["comment"], FILLER_COMMENT);
        let mut i = input();
        i.layers.truncate(1);
        let c: Value = serde_json::from_slice(&assemble(&i).unwrap().config_bytes).unwrap();
        let h = c["history"].as_array().unwrap();
        assert_eq!(h[0]["empty_layer"], true, "oldest surplus entry made empty");
        assert!(h[3].get("empty_layer").is_none());
    }

    #[test]
    fn a_typed_base_config_is_used_like_a_raw_one() {
        let mut i = input();
        let BaseConfig::Raw(raw) = &i.base else {
            unreachable!()
        };
        let typed: ImageConfig = serde_json::from_slice(raw).unwrap();
        i.base = BaseConfig::Typed(Box::new(typed));
        let c: Value = serde_json::from_slice(&assemble(&i).unwrap().config_bytes).unwrap();
        assert_eq!(c["variant"], "v8");
        assert_eq!(c["config"]["Env"], json!(["PATH=/bin"]));
        assert_eq!(c["history"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut i = input();
        i.base = BaseConfig::Raw(Bytes::from_static(b"[1]"));
        assert!(matches!(
            assemble(&i),
            Err(ExportError::BaseConfigNotObject)
        ));
        i.base = BaseConfig::Raw(Bytes::from_static(b"{"));
        assert!(matches!(assemble(&i), Err(ExportError::BaseConfig(_))));
        i.base = BaseConfig::Raw(Bytes::from_static(br#"{"history":5}"#));
        assert!(matches!(
            assemble(&i),
            Err(ExportError::BadConfigField {
                field: "history",
                ..
            })
        ));
        let mut i = input();
        i.layers[0].descriptor.media_type = mt::OCI_CONFIG.into();
        assert!(matches!(
            assemble(&i),
            Err(ExportError::NotALayer { index: 0, .. })
        ));
        let mut i = input();
        i.base = BaseConfig::Scratch;
        i.platform = Some(Platform::new("linux", "s390x"));
        let c: Value = serde_json::from_slice(&assemble(&i).unwrap().config_bytes).unwrap();
        assert_eq!(c["architecture"], "s390x");
        assert!(c.get("variant").is_none());
    }
}
