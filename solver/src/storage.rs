//! Where cache keys and results live between solves.
//!
//! Two seams: [`CacheKeyStorage`] maps keys to records (the cache's SQLite table will
//! implement it, so a second process hits what the first stored), and [`ResultStore`]
//! turns result ids back into results. [`MemoryCache`] implements both in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::StorageError;
use crate::key::CacheKey;
use crate::result::ResultRef;

/// What a key leads to: the results of every output of the vertex, and the key that
/// downstream vertices must build on.
///
/// `canonical` exists because one result can be reached through several keys (the
/// definition-based one and the content-based one). Whichever key hits, downstream keys
/// are built from `canonical`, so two builds agree on them however they got here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    pub canonical: CacheKey,
    pub results: Vec<String>,
}

/// Key → record storage.
///
/// Contract: called concurrently from many tasks and solves; `get` after a `put` returned
/// in any thread sees the record; `put` of an existing key replaces it. Random keys are
/// never passed in. Calls are synchronous and must be quick (an indexed lookup).
pub trait CacheKeyStorage: Send + Sync {
    fn get(&self, key: &CacheKey) -> Result<Option<CacheRecord>, StorageError>;
    fn put(&self, key: &CacheKey, record: &CacheRecord) -> Result<(), StorageError>;
}

/// Result id ↔ result.
///
/// Contract: `save` makes the result loadable by the returned id for as long as a key
/// refers to it; `load` of an id that is gone returns [`StorageError::NotFound`], which
/// the engine treats as a cache miss. Safe to call concurrently.
pub trait ResultStore: Send + Sync {
    fn save(&self, result: &ResultRef) -> Result<String, StorageError>;
    fn load(&self, id: &str) -> Result<ResultRef, StorageError>;
}

/// Keys and results brought in from outside this machine's cache (a `--cache-from`
/// import), consulted after the local storage misses.
///
/// Contract: `get` is a quick in-memory look-up; the ids in the records it returns are
/// only meaningful to this import's `load`, which makes the results (lazy refs: nothing
/// is downloaded) and may be called concurrently. `opts` holds what descendants need to
/// fetch the results' lazy content (descriptor handlers), found after the ancestor walk.
pub trait ImportedCache: Send + Sync + std::fmt::Debug {
    fn get(&self, key: &CacheKey) -> Option<CacheRecord>;
    fn load(&self, id: &str) -> Result<ResultRef, StorageError>;
    fn opts(&self) -> &crate::cache_opts::CacheOpts;
}

/// An in-process cache for tests, benchmarks and `--no-state` runs.
#[derive(Debug, Default)]
pub struct MemoryCache {
    keys: Mutex<HashMap<CacheKey, CacheRecord>>,
    results: Mutex<HashMap<String, ResultRef>>,
}

impl MemoryCache {
    pub fn new() -> Arc<MemoryCache> {
        Arc::new(MemoryCache::default())
    }

    /// Number of stored keys.
    pub fn key_count(&self) -> usize {
        lock(&self.keys).len()
    }

    /// Forgets a result, as a prune would.
    pub fn drop_result(&self, id: &str) {
        lock(&self.results).remove(id);
    }
}

impl CacheKeyStorage for MemoryCache {
    fn get(&self, key: &CacheKey) -> Result<Option<CacheRecord>, StorageError> {
        Ok(lock(&self.keys).get(key).cloned())
    }

    fn put(&self, key: &CacheKey, record: &CacheRecord) -> Result<(), StorageError> {
        lock(&self.keys).insert(key.clone(), record.clone());
        Ok(())
    }
}

impl ResultStore for MemoryCache {
    fn save(&self, result: &ResultRef) -> Result<String, StorageError> {
        let id = result.id();
        lock(&self.results).insert(id.clone(), Arc::clone(result));
        Ok(id)
    }

    fn load(&self, id: &str) -> Result<ResultRef, StorageError> {
        lock(&self.results)
            .get(id)
            .cloned()
            .ok_or_else(|| StorageError::NotFound { id: id.to_owned() })
    }
}

/// The maps are only held for a single insert or lookup, so a poisoned lock still guards
/// a consistent map.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
