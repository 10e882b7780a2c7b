//! The engine's key and result stores on the cache's SQLite database, so a second
//! `cairn` process hits what the first built.

use std::sync::Arc;

use cairn_cache::{CacheError, CacheManager};

use super::result::WorkerRef;
use crate::error::StorageError;
use crate::key::CacheKey;
use crate::result::ResultRef;
use crate::storage::{CacheKeyStorage, CacheRecord, ResultStore};

/// Cache keys in the `solver_keys` table; results are record ids loaded as leased refs.
#[derive(Debug, Clone)]
pub struct DbStore {
    cache: CacheManager,
}

impl DbStore {
    pub fn new(cache: CacheManager) -> Arc<DbStore> {
        Arc::new(DbStore { cache })
    }
}

fn backend(key: &str, e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::Backend {
        key: key.to_owned(),
        source: Arc::new(e),
    }
}

impl CacheKeyStorage for DbStore {
    fn get(&self, key: &CacheKey) -> Result<Option<CacheRecord>, StorageError> {
        let row = self
            .cache
            .metadata()
            .solver_key(key.as_str())
            .map_err(|e| backend(key.as_str(), e))?;
        Ok(row.map(|(canonical, results)| CacheRecord {
            canonical: CacheKey::from_stored(canonical),
            results,
        }))
    }

    fn put(&self, key: &CacheKey, record: &CacheRecord) -> Result<(), StorageError> {
        self.cache
            .metadata()
            .put_solver_key(key.as_str(), record.canonical.as_str(), &record.results)
            .map_err(|e| backend(key.as_str(), e))
    }
}

impl ResultStore for DbStore {
    fn save(&self, result: &ResultRef) -> Result<String, StorageError> {
        // The record is already in the database (refs are made there); its id is enough.
        Ok(result.id())
    }

    fn load(&self, id: &str) -> Result<ResultRef, StorageError> {
        let not_found = || StorageError::NotFound { id: id.to_owned() };
        match WorkerRef::parse_id(id).ok_or_else(not_found)? {
            None => Ok(Arc::new(WorkerRef(None))),
            Some(rid) => match self.cache.get(&rid) {
                Ok(r) => Ok(Arc::new(WorkerRef(Some(r)))),
                Err(CacheError::NoSuchRecord { .. } | CacheError::Unsupported { .. }) => {
                    Err(not_found())
                }
                Err(e) => Err(backend(id, e)),
            },
        }
    }
}
