//! The stat cache of content checksums: the sha256 of a regular file's bytes, remembered
//! with the metadata the file had when it was read, so that keying a `COPY` by content
//! re-reads only files whose metadata changed.
//!
//! Rows are grouped by scope: a committed snapshot's id (its files never change; the rows
//! go when the snapshot's row goes) or a host directory (a build context, whose files
//! change under us: a row is trusted only while size, times, inode and device all match,
//! and a changed file's write moves its ctime). The caller decides what a scope is; this
//! module only stores rows durably and cheaply: one read of a whole scope, one transaction
//! per batch of new rows.

use std::collections::HashMap;

use rusqlite::params;

use super::{Fail, MetadataDb, MetadataError};

/// What identifies one version of a file: if any of these changed, so may its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// 0 where the device number is not stable (a snapshot seen through an overlay mount
    /// gets a new anonymous device on every mount).
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// One remembered checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHash {
    pub stamp: FileStamp,
    pub sha256: [u8; 32],
}

impl MetadataDb {
    /// Every row of `scope`, by path.
    pub fn file_hashes(&self, scope: &str) -> Result<HashMap<String, FileHash>, MetadataError> {
        self.read("reading file checksums", |c| {
            let mut stmt = c.prepare_cached(
                "SELECT path, dev, ino, size, mtime_ns, ctime_ns, sha256 FROM file_hashes \
                 WHERE scope = ?1",
            )?;
            let rows = stmt
                .query_map([scope], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        FileStamp {
                            dev: r.get::<_, i64>(1)? as u64,
                            ino: r.get::<_, i64>(2)? as u64,
                            size: r.get::<_, i64>(3)? as u64,
                            mtime_ns: r.get(4)?,
                            ctime_ns: r.get(5)?,
                        },
                        r.get::<_, Vec<u8>>(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(path, stamp, sha)| {
                    let sha256 = <[u8; 32]>::try_from(sha.as_slice()).map_err(|_| {
                        Fail::Domain(MetadataError::Corrupt {
                            id: format!("file checksum {scope}:{path}"),
                            reason: format!("checksum has {} bytes, not 32", sha.len()),
                        })
                    })?;
                    Ok((path, FileHash { stamp, sha256 }))
                })
                .collect()
        })
    }

    /// Stores (replacing) rows of `scope` and drops its rows for `gone` paths, in one
    /// transaction.
    pub fn put_file_hashes(
        &self,
        scope: &str,
        rows: &[(String, FileHash)],
        gone: &[String],
    ) -> Result<(), MetadataError> {
        if rows.is_empty() && gone.is_empty() {
            return Ok(());
        }
        self.write("storing file checksums", |tx| {
            let mut put = tx.prepare_cached(
                "INSERT INTO file_hashes (scope, path, dev, ino, size, mtime_ns, ctime_ns, sha256) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (scope, path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, \
                 size = excluded.size, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, \
                 sha256 = excluded.sha256",
            )?;
            for (path, h) in rows {
                let s = &h.stamp;
                put.execute(params![
                    scope,
                    path,
                    s.dev as i64,
                    s.ino as i64,
                    s.size as i64,
                    s.mtime_ns,
                    s.ctime_ns,
                    &h.sha256[..],
                ])?;
            }
            let mut del =
                tx.prepare_cached("DELETE FROM file_hashes WHERE scope = ?1 AND path = ?2")?;
            for path in gone {
                del.execute(params![scope, path])?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> FileHash {
        FileHash {
            stamp: FileStamp {
                dev: 1,
                ino: u64::MAX, // stored as a negative i64 and read back
                size: n.into(),
                mtime_ns: -5,
                ctime_ns: 7,
            },
            sha256: [n; 32],
        }
    }

    #[test]
    fn rows_survive_a_reopen_are_replaced_and_dropped_per_scope() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = MetadataDb::open(dir.path()).unwrap();
            assert!(db.file_hashes("s").unwrap().is_empty());
            db.put_file_hashes("s", &[("a".into(), hash(1)), ("b".into(), hash(2))], &[])
                .unwrap();
            db.put_file_hashes("other", &[("a".into(), hash(9))], &[])
                .unwrap();
            db.put_file_hashes("s", &[("a".into(), hash(3))], &["b".into()])
                .unwrap();
        }
        let db = MetadataDb::open(dir.path()).unwrap();
        let s = db.file_hashes("s").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s["a"], hash(3));
        assert_eq!(db.file_hashes("other").unwrap()["a"], hash(9));
    }
}
