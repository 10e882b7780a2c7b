//! Image options as buildx takes them inside `--output`: `compression`,
//! `compression-level`, `force-compression`, `oci-mediatypes`.

use cairn_snapshot::Compression;

use super::error::SpecError;

/// A layer compression (`uncompressed`, `gzip`, `zstd`).
pub type CompressionKind = Compression;

/// How layers and manifests of an exported image are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageOptions {
    /// Compression of layers computed for this export.
    pub compression: Compression,
    /// gzip 0-9 or zstd 1-22; the compressor's default when `None`.
    pub compression_level: Option<i32>,
    /// Recompress existing layers whose compression differs (never done otherwise).
    pub force_compression: bool,
    /// OCI media types (`true`) or Docker schema2 (`false`).
    pub oci_mediatypes: bool,
}

impl Default for ImageOptions {
    fn default() -> ImageOptions {
        ImageOptions {
            compression: Compression::Gzip,
            compression_level: None,
            force_compression: false,
            oci_mediatypes: true,
        }
    }
}

impl ImageOptions {
    /// The defaults of the `docker` exporter: Docker media types, as `docker load` expects.
    pub fn docker() -> ImageOptions {
        ImageOptions {
            oci_mediatypes: false,
            ..ImageOptions::default()
        }
    }

    /// Whether manifests use OCI media types after all: zstd layers have no Docker media
    /// type, so asking for them turns OCI types on (BuildKit does the same, with a warning).
    pub fn effective_oci_mediatypes(&self) -> bool {
        self.oci_mediatypes || self.compression == Compression::Zstd
    }

    /// Takes `key=value` if it is an image option. `Ok(false)`: not an image option.
    pub(crate) fn apply(
        &mut self,
        kind: &'static str,
        key: &str,
        value: &str,
    ) -> Result<bool, SpecError> {
        let bad = |expected: &'static str| SpecError::BadValue {
            kind,
            key: key.to_owned(),
            value: value.to_owned(),
            expected,
        };
        match key {
            "compression" => {
                self.compression = match value {
                    "gzip" => Compression::Gzip,
                    "zstd" => Compression::Zstd,
                    "uncompressed" => Compression::None,
                    _ => return Err(bad("one of gzip, zstd, uncompressed")),
                }
            }
            "compression-level" => {
                self.compression_level = Some(value.parse::<i32>().map_err(|_| bad("an integer"))?);
            }
            "force-compression" => {
                self.force_compression = parse_bool(value).ok_or_else(|| bad("true or false"))?
            }
            "oci-mediatypes" => {
                self.oci_mediatypes = parse_bool(value).ok_or_else(|| bad("true or false"))?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the level against the chosen compression (done once all keys are read, since
    /// buildx accepts them in any order).
    pub(crate) fn validate(&self, kind: &'static str) -> Result<(), SpecError> {
        let Some(level) = self.compression_level else {
            return Ok(());
        };
        let (ok, expected) = match self.compression {
            Compression::Gzip => ((0..=9).contains(&level), "0-9 for gzip"),
            Compression::Zstd => ((1..=22).contains(&level), "1-22 for zstd"),
            Compression::None => (true, ""),
        };
        if ok {
            Ok(())
        } else {
            Err(SpecError::BadValue {
                kind,
                key: "compression-level".into(),
                value: level.to_string(),
                expected,
            })
        }
    }
}

/// Go's `strconv.ParseBool`, which buildx uses for boolean attributes.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_image_options() {
        let mut o = ImageOptions::default();
        assert!(o.apply("oci", "compression", "zstd").unwrap());
        assert!(o.apply("oci", "compression-level", "19").unwrap());
        assert!(o.apply("oci", "force-compression", "true").unwrap());
        assert!(o.apply("oci", "oci-mediatypes", "false").unwrap());
        assert!(!o.apply("oci", "dest", "x").unwrap());
        o.validate("oci").unwrap();
        assert_eq!(o.compression, Compression::Zstd);
        assert!(o.force_compression);
        assert!(!o.oci_mediatypes);
        assert!(o.effective_oci_mediatypes(), "zstd forces OCI media types");
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        let mut o = ImageOptions::default();
        let e = o.apply("image", "compression", "lz4").unwrap_err();
        assert_eq!(
            e.to_string(),
            "output type image: compression=\"lz4\" is not one of gzip, zstd, uncompressed"
        );
        assert!(o.apply("image", "oci-mediatypes", "yes").is_err());
        o.apply("image", "compression-level", "12").unwrap();
        assert!(
            o.validate("image")
                .unwrap_err()
                .to_string()
                .contains("0-9 for gzip")
        );
    }
}
