//! Cache keys: what identifies a vertex's result independently of how it was reached.
//!
//! A key is a sha256 over a length-prefixed encoding of the op's cache-map digest and, for
//! each input in order, either the input's own key (plus the selector of the part of it
//! the op reads) or a checksum of the input's content. Keys built from definitions alone
//! are "fast"; keys that need an input's content are "slow". A key whose ingredients
//! include a `random:` digest is itself random: it is never stored, so such work always
//! runs (BuildKit does the same for session-bound sources).

use std::fmt;

use cairn_llb::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The stable identity of a result in the cache, `sha256:<hex>` or `random:<hex>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CacheKey(String);

impl CacheKey {
    /// A key that matches nothing, not even itself in another solve.
    pub fn random() -> CacheKey {
        let mut bytes = [0u8; 16];
        fill_random(&mut bytes);
        CacheKey(format!("random:{}", hex::encode(bytes)))
    }

    /// Rebuilds a key from its stored string form (for storage backends).
    pub fn from_stored(s: impl Into<String>) -> CacheKey {
        CacheKey(s.into())
    }

    pub fn is_random(&self) -> bool {
        self.0.starts_with("random:")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of output `index` of the vertex whose key is `self`; downstream vertices
    /// build their keys from these.
    pub fn output(&self, index: u32) -> CacheKey {
        if self.is_random() {
            return CacheKey(format!("{}@{index}", self.0));
        }
        let mut b = KeyBuilder::new("cairn.edge.v0");
        b.str(&self.0).u64(u64::from(index));
        b.finish()
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.0)
    }
}

/// Whether `d` (an op's cache-map digest) marks work that must never be cached.
pub fn is_random_digest(d: &str) -> bool {
    d.starts_with("random:")
}

/// Length-prefixed hashing, so `("ab","c")` and `("a","bc")` never collide.
pub(crate) struct KeyBuilder {
    h: Sha256,
}

impl KeyBuilder {
    pub(crate) fn new(domain: &str) -> KeyBuilder {
        let mut b = KeyBuilder { h: Sha256::new() };
        b.str(domain);
        b
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub(crate) fn bytes(&mut self, s: &[u8]) -> &mut Self {
        self.h.update((s.len() as u64).to_le_bytes());
        self.h.update(s);
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.h.update(v.to_le_bytes());
        self
    }

    pub(crate) fn finish(self) -> CacheKey {
        CacheKey(Digest::from_sha256(self.h.finalize().into()).to_string())
    }
}

/// Random bytes without a dependency: hashes the time, a process-wide counter and a
/// stack address. Random keys only need to be unique, not unpredictable.
fn fill_random(out: &mut [u8; 16]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(n.to_le_bytes());
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update((out.as_ptr() as usize).to_le_bytes());
    let d = h.finalize();
    out.copy_from_slice(&d[..16]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_separates_fields() {
        let mut a = KeyBuilder::new("t");
        a.str("ab").str("c");
        let mut b = KeyBuilder::new("t");
        b.str("a").str("bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn random_keys_differ_and_stay_random_per_output() {
        let a = CacheKey::random();
        let b = CacheKey::random();
        assert_ne!(a, b);
        assert!(a.is_random());
        assert!(a.output(1).is_random());
        let fixed = CacheKey::from_stored("sha256:00");
        assert_ne!(fixed.output(0), fixed.output(1));
        assert!(fixed.output(0).as_str().starts_with("sha256:"));
    }
}
