//! OCI content descriptors, platforms, and the manifest, index and image-config documents
//! that registries serve, for both OCI and Docker schema2 media types.
//!
//! These structs are for *reading* fields and for *building* new documents. They are never
//! the truth about bytes already received: a manifest's digest is always computed over the
//! raw bytes the registry sent (unknown fields and key order would change a re-encoding),
//! so callers keep `(raw bytes, digest, decoded struct)` together.

use std::collections::BTreeMap;

use cairn_llb::Digest;
use serde::{Deserialize, Serialize};

/// Media types cairn reads and writes.
pub mod media_types {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_NONDIST_TAR: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_FOREIGN: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    /// Every manifest-ish type, in the order sent in `Accept` headers.
    pub const ALL_MANIFESTS: [&str; 4] = [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ];

    /// A single-image manifest (not a list).
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }

    /// A multi-platform list (OCI index or Docker manifest list).
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }

    /// A layer of any supported compression, distributable or not.
    pub fn is_layer(mt: &str) -> bool {
        matches!(
            mt,
            OCI_LAYER_TAR
                | OCI_LAYER_GZIP
                | OCI_LAYER_ZSTD
                | OCI_LAYER_NONDIST_TAR
                | OCI_LAYER_NONDIST_GZIP
                | DOCKER_LAYER_GZIP
                | DOCKER_LAYER_FOREIGN
        )
    }

    /// Foreign / non-distributable layers are never pushed (registries refuse or ignore
    /// them; their bytes live at `urls`).
    pub fn is_non_distributable(mt: &str) -> bool {
        matches!(
            mt,
            OCI_LAYER_NONDIST_TAR | OCI_LAYER_NONDIST_GZIP | DOCKER_LAYER_FOREIGN
        )
    }
}

/// Points at content by digest and size, the unit every registry and store call takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with no annotations, urls or platform.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
            platform: None,
        }
    }

    /// The descriptor of `bytes` (digest and size computed here).
    pub fn of_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of_bytes(bytes), bytes.len() as u64)
    }
}

/// The platform an image runs on, as OCI index entries and image configs spell it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
}

impl Platform {
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Platform {
        Platform {
            architecture: architecture.into(),
            os: os.into(),
            variant: None,
            os_version: None,
            os_features: Vec::new(),
        }
    }

    /// The platform of this build of cairn, using Go's `GOARCH` names because that is
    /// what every image index uses (`x86_64` is `amd64`, `aarch64` is `arm64/v8`).
    pub fn host() -> Platform {
        let (arch, variant) = go_arch(std::env::consts::ARCH);
        let mut p = Platform::new(std::env::consts::OS, arch);
        p.variant = variant.map(str::to_owned);
        p
    }

    /// The `os/arch[/variant]` form used by `--platform`.
    pub fn to_spec(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Whether an index entry for `candidate` can run where `self` is wanted.
    ///
    /// OS and architecture must be equal. A missing variant on either side matches (many
    /// indexes omit `v8` for arm64), and `arm64` treats `v8` and none as the same.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        match (&self.variant, &candidate.variant) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

/// Maps a Rust `target_arch` to Go's `GOARCH` and default variant.
fn go_arch(rust_arch: &str) -> (&str, Option<&'static str>) {
    match rust_arch {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "powerpc64" => ("ppc64", None),
        "riscv64" => ("riscv64", None),
        "s390x" => ("s390x", None),
        "loongarch64" => ("loong64", None),
        "mips64" => ("mips64", None),
        other => (other, None),
    }
}

/// Parses the `os/arch[/variant]` form users write in `--platform`.
impl std::str::FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || PlatformError(s.to_owned());
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(*os, *arch)),
            [os, arch, variant] => {
                let mut p = Platform::new(*os, *arch);
                p.variant = Some((*variant).to_owned());
                Ok(p)
            }
            _ => Err(bad()),
        }
    }
}

/// A platform string that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("platform {0:?} is not of the form os/arch[/variant]")]
pub struct PlatformError(pub String);

/// An image manifest (OCI or Docker schema2): one config and an ordered layer list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index or Docker manifest list: per-platform manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// The first entry whose platform matches `want`, in index order (as containerd does
    /// for a single platform). Entries without a platform never match.
    pub fn select(&self, want: &Platform) -> Option<&Descriptor> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
    }
}

/// The image configuration blob (OCI `config.v1` / Docker `container.image.v1`).
///
/// Only the fields cairn reads or writes; the raw blob stays the truth.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

impl ImageConfig {
    /// The platform this config declares.
    pub fn platform(&self) -> Platform {
        let mut p = Platform::new(self.os.clone(), self.architecture.clone());
        p.variant = self.variant.clone();
        p.os_version = self.os_version.clone();
        p
    }
}

/// The runtime defaults of an image (`config` inside the image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// The uncompressed layer digests, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One build step in the image history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of_bytes(s.as_bytes())
    }

    #[test]
    fn descriptor_serialises_as_oci_json_and_skips_empty_fields() {
        let desc = Descriptor::new(media_types::OCI_LAYER_GZIP, d("a"), 3);
        let json = serde_json::to_value(&desc).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "mediaType": media_types::OCI_LAYER_GZIP,
                "digest": d("a").as_str(),
                "size": 3,
            })
        );
        let mut full = desc.clone();
        full.annotations.insert("k".into(), "v".into());
        full.urls.push("https://x".into());
        let mut p = Platform::new("linux", "arm64");
        p.variant = Some("v8".into());
        p.os_version = Some("10".into());
        p.os_features = vec!["f".into()];
        full.platform = Some(p);
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["platform"]["os.version"], "10");
        assert_eq!(json["platform"]["os.features"][0], "f");
        assert_eq!(json["annotations"]["k"], "v");
        let back: Descriptor = serde_json::from_value(json).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn host_platform_uses_go_names() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            (h.architecture.as_str(), h.variant.as_deref()),
            ("amd64", None)
        );
        #[cfg(target_arch = "aarch64")]
        assert_eq!(
            (h.architecture.as_str(), h.variant.as_deref()),
            ("arm64", Some("v8"))
        );
        assert_eq!(go_arch("x86"), ("386", None));
    }

    #[test]
    fn platform_parse_and_match() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_spec(), "linux/arm64/v8");
        assert!(p.matches(&Platform::new("linux", "arm64")));
        let mut v7 = Platform::new("linux", "arm64");
        v7.variant = Some("v7".into());
        assert!(!p.matches(&v7));
        assert!(!p.matches(&Platform::new("linux", "amd64")));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v8".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }

    #[test]
    fn reads_a_docker_schema2_manifest_and_ignores_unknown_fields() {
        let raw = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":7,"digest":"{}"}},
            "layers":[{{"mediaType":"{}","size":9,"digest":"{}","extra":1}}],"future":true}}"#,
            media_types::DOCKER_MANIFEST,
            media_types::DOCKER_CONFIG,
            d("c"),
            media_types::DOCKER_LAYER_GZIP,
            d("l"),
        );
        let m: Manifest = serde_json::from_str(&raw).unwrap();
        assert_eq!(m.config.digest, d("c"));
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].size, 9);
        assert!(media_types::is_layer(&m.layers[0].media_type));
    }

    #[test]
    fn index_selects_by_platform_in_order() {
        let mut a = Descriptor::new(media_types::OCI_MANIFEST, d("amd"), 1);
        a.platform = Some(Platform::new("linux", "amd64"));
        let mut b = Descriptor::new(media_types::OCI_MANIFEST, d("arm"), 1);
        b.platform = Some("linux/arm64/v8".parse().unwrap());
        let none = Descriptor::new(media_types::OCI_MANIFEST, d("none"), 1);
        let idx = Index {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.into()),
            manifests: vec![none, a, b],
            annotations: BTreeMap::new(),
        };
        assert_eq!(
            idx.select(&Platform::new("linux", "arm64")).unwrap().digest,
            d("arm")
        );
        assert_eq!(
            idx.select(&Platform::new("linux", "amd64")).unwrap().digest,
            d("amd")
        );
        assert!(idx.select(&Platform::new("windows", "amd64")).is_none());
    }

    #[test]
    fn image_config_round_trips_docker_field_names() {
        let raw = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/"}},
            "rootfs":{{"type":"layers","diff_ids":["{}"]}},"history":[{{"created_by":"x","empty_layer":true}}]}}"#,
            d("x")
        );
        let c: ImageConfig = serde_json::from_str(&raw).unwrap();
        assert_eq!(c.platform(), Platform::new("linux", "amd64"));
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.env.as_deref(), Some(&["PATH=/bin".to_owned()][..]));
        assert_eq!(cc.working_dir.as_deref(), Some("/"));
        assert_eq!(c.rootfs.diff_ids, vec![d("x")]);
        assert!(c.history[0].empty_layer);
        let again = serde_json::to_value(&c).unwrap();
        assert_eq!(again["config"]["Cmd"][0], "sh");
        assert_eq!(again["rootfs"]["type"], "layers");
    }
}
