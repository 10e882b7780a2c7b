//! Content digests as the OCI and BuildKit worlds write them: `sha256:<64 lowercase hex>`.
//!
//! Only sha256 is accepted: it is the only algorithm BuildKit emits for ops and the only one
//! registries in practice serve. A parsed `Digest` is always well-formed, so code holding one
//! never re-validates it and can use it as a file name safely.

use std::fmt;
use std::io;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A validated `sha256:<hex>` digest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} has no algorithm prefix (expected \"sha256:<64 hex digits>\")")]
    MissingAlgorithm(String),
    #[error("digest {0:?} uses an unsupported algorithm (only sha256 is supported)")]
    UnsupportedAlgorithm(String),
    #[error("digest {0:?} must have 64 lowercase hex digits after \"sha256:\"")]
    BadHex(String),
}

impl Digest {
    /// Parses and validates a digest string.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(s.to_owned()));
        };
        if alg != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm(s.to_owned()));
        }
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::BadHex(s.to_owned()));
        }
        Ok(Digest(s.to_owned()))
    }

    /// The sha256 digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(bytes).into())
    }

    /// Builds a digest from a raw 32-byte sha256 output.
    pub fn from_sha256(raw: [u8; 32]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(raw)))
    }

    /// Always `"sha256"`.
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// The 64 hex digits, usable as a file name.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 that is also an `io::Write`, so a stream can be digested while it is
/// copied (`io::copy` into a tee) instead of being read twice.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finalize(self) -> Digest {
        Digest::from_sha256(self.inner.finalize().into())
    }
}

impl io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            Digest::of_bytes(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Hasher::new();
        io::Write::write_all(&mut h, b"").unwrap();
        assert_eq!(h.finalize(), Digest::of_bytes(b""));
    }

    #[test]
    fn rejects_malformed_digests() {
        assert!(matches!(
            Digest::parse("abc"),
            Err(DigestError::MissingAlgorithm(_))
        ));
        assert!(matches!(
            Digest::parse("md5:00"),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Digest::parse("sha256:00"),
            Err(DigestError::BadHex(_))
        ));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(matches!(Digest::parse(&upper), Err(DigestError::BadHex(_))));
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&ok).unwrap().hex(), "a".repeat(64));
    }

    #[test]
    fn serde_round_trips_as_a_string() {
        let d = Digest::of_bytes(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
