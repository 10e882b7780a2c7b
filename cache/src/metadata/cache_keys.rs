//! The solver's persistent cache-key index (cache key and output index → records), and the
//! remote sources known for each blob. Both survive restarts, so a second process hits.

use cairn_llb::Digest;
use rusqlite::params;

use super::records::RecordId;
use super::{Fail, MetadataDb, MetadataError, now};

impl MetadataDb {
    /// Records that `record` is the result `output` of the vertex with cache key `key`.
    /// Linking twice is harmless. The link goes when the record is deleted.
    pub fn link_cache_key(
        &self,
        key: &str,
        output: u32,
        record: &RecordId,
    ) -> Result<(), MetadataError> {
        self.write("linking cache key", |tx| {
            tx.execute(
                "INSERT INTO cache_keys (key, output, record_id, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO NOTHING",
                params![key, output, record.as_str(), now()],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Fail::Domain(MetadataError::NoSuchRecord(record.to_string()))
                }
                e => Fail::Sql(e),
            })?;
            Ok(())
        })
    }

    /// Records linked to `key`/`output`, most recently used first.
    pub fn cache_key_records(
        &self,
        key: &str,
        output: u32,
    ) -> Result<Vec<RecordId>, MetadataError> {
        self.read("looking up cache key", |c| {
            let mut stmt = c.prepare_cached(
                "SELECT k.record_id FROM cache_keys k JOIN records r ON r.id = k.record_id \
                 WHERE k.key = ?1 AND k.output = ?2 AND r.state = 'complete' \
                 ORDER BY r.last_used_at DESC, k.created_at DESC, k.record_id",
            )?;
            let ids = stmt
                .query_map(params![key, output], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(ids.iter().filter_map(|s| RecordId::parse(s)).collect())
        })
    }

    /// Drops every link of `key` (all outputs).
    pub fn unlink_cache_key(&self, key: &str) -> Result<usize, MetadataError> {
        self.write("unlinking cache key", |tx| {
            Ok(tx.execute("DELETE FROM cache_keys WHERE key = ?1", [key])?)
        })
    }

    /// Notes that blob `digest` can be fetched from `source` (`registry/repository`).
    pub fn add_blob_source(&self, digest: &Digest, source: &str) -> Result<(), MetadataError> {
        self.write("recording blob source", |tx| {
            tx.execute(
                "INSERT INTO blob_sources (digest, source) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![digest.as_str(), source],
            )?;
            Ok(())
        })
    }

    /// Known remote sources of `digest`, sorted.
    pub fn blob_sources(&self, digest: &Digest) -> Result<Vec<String>, MetadataError> {
        self.read("reading blob sources", |c| {
            let mut stmt = c.prepare_cached(
                "SELECT source FROM blob_sources WHERE digest = ?1 ORDER BY source",
            )?;
            Ok(stmt
                .query_map([digest.as_str()], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?)
        })
    }
}
