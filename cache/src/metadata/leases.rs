//! Leases keep records (and, through parent links, everything they build on) from being
//! collected. A lease with an owner belongs to a live process and dies with it; one without
//! is persistent and named.

use rusqlite::params;

use super::records::{Record, RecordId, Removed, delete_in, get};
use super::{Fail, MetadataDb, MetadataError, now};

/// One lease row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

/// What sweeping dead owners removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerSweep {
    pub leases: usize,
    /// Incomplete records of dead owners, deleted; their files are the caller's to remove.
    pub records: Vec<Record>,
    pub removed: Removed,
}

/// Records reachable from a lease or from an unfinished operation, through layer parents
/// and merge/diff inputs: none of these may be collected.
const LIVE: &str = "WITH RECURSIVE live(id) AS ( \
        SELECT record_id FROM leases \
        UNION SELECT id FROM records WHERE state = 'incomplete' \
        UNION SELECT r.parent FROM records r JOIN live ON r.id = live.id WHERE r.parent IS NOT NULL \
        UNION SELECT p.parent FROM record_parents p JOIN live ON p.child = live.id \
    )";

impl MetadataDb {
    /// Adds a lease on `record` held by process `owner` (or persistent, if `None`).
    pub fn add_lease(
        &self,
        record: &RecordId,
        owner: Option<&str>,
        name: Option<&str>,
    ) -> Result<LeaseId, MetadataError> {
        self.write("adding lease", |tx| {
            if get(tx, record)?.is_none() {
                return Err(Fail::Domain(MetadataError::NoSuchRecord(
                    record.to_string(),
                )));
            }
            tx.execute(
                "INSERT INTO leases (record_id, owner, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![record.as_str(), owner, name, now()],
            )?;
            Ok(LeaseId(tx.last_insert_rowid()))
        })
    }

    /// Releases one lease; releasing an already released one is not an error (a process
    /// sweep may have got there first).
    pub fn release_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.write("releasing lease", |tx| {
            tx.execute("DELETE FROM leases WHERE id = ?1", [lease.0])?;
            Ok(())
        })
    }

    /// Releases the persistent lease `name` on every record.
    pub fn release_named_lease(&self, name: &str) -> Result<usize, MetadataError> {
        self.write("releasing named lease", |tx| {
            Ok(tx.execute(
                "DELETE FROM leases WHERE owner IS NULL AND name = ?1",
                [name],
            )?)
        })
    }

    /// Number of leases directly on `record`.
    pub fn lease_count(&self, record: &RecordId) -> Result<u64, MetadataError> {
        self.read("counting leases", |c| {
            Ok(c.query_row(
                "SELECT count(*) FROM leases WHERE record_id = ?1",
                [record.as_str()],
                |r| r.get(0),
            )?)
        })
    }

    /// Owners that have leases or incomplete records.
    pub fn owners(&self) -> Result<Vec<String>, MetadataError> {
        self.read("listing owners", |c| {
            let mut stmt = c.prepare(
                "SELECT owner FROM leases WHERE owner IS NOT NULL \
                 UNION SELECT owner FROM records WHERE owner IS NOT NULL ORDER BY 1",
            )?;
            Ok(stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?)
        })
    }

    /// Drops the leases and incomplete records of `owner`, a process known to be dead.
    /// Incomplete records are deleted children first.
    pub fn sweep_owner(&self, owner: &str) -> Result<OwnerSweep, MetadataError> {
        self.write("sweeping a dead process's leases", |tx| {
            let leases = tx.execute("DELETE FROM leases WHERE owner = ?1", [owner])?;
            let mut out = OwnerSweep {
                leases,
                ..OwnerSweep::default()
            };
            loop {
                // Incomplete records of this owner that nothing else builds on.
                let mut stmt = tx.prepare(
                    "SELECT id FROM records r WHERE owner = ?1 AND state = 'incomplete' \
                     AND NOT EXISTS (SELECT 1 FROM records c WHERE c.parent = r.id) \
                     AND NOT EXISTS (SELECT 1 FROM record_parents p WHERE p.parent = r.id)",
                )?;
                let ids = stmt
                    .query_map([owner], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                drop(stmt);
                if ids.is_empty() {
                    break;
                }
                for id in ids {
                    let Some(rid) = RecordId::parse(&id) else {
                        return Err(Fail::Domain(MetadataError::Corrupt {
                            id,
                            reason: "bad record id".into(),
                        }));
                    };
                    if let Some(rec) = get(tx, &rid)? {
                        let removed = delete_in(tx, &rid)?;
                        out.removed.snapshots.extend(removed.snapshots);
                        out.removed.blobs.extend(removed.blobs);
                        out.records.push(rec);
                    }
                }
            }
            Ok(out)
        })
    }

    /// Complete records that no lease reaches, oldest use first: what a prune may delete.
    pub fn collectable(&self) -> Result<Vec<Record>, MetadataError> {
        self.read("finding collectable records", |c| {
            let sql = format!("{LIVE} SELECT id FROM records WHERE id NOT IN (SELECT id FROM live) ORDER BY last_used_at, id");
            let mut stmt = c.prepare(&sql)?;
            let ids = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(rid) = RecordId::parse(&id)
                    && let Some(r) = get(c, &rid)?
                {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    /// Deletes the least recently used collectable record that nothing builds on, if any
    /// (one transaction; reachability decided inside it). For size-bounded prunes, which
    /// stop as soon as the cache fits.
    pub fn prune_least_recently_used(&self) -> Result<Option<(Record, Removed)>, MetadataError> {
        self.prune_least_recently_used_before(i64::MAX)
    }

    /// [`MetadataDb::prune_least_recently_used`], only among records last used before
    /// `cutoff` (seconds since the epoch): `prune --filter until=24h`.
    pub fn prune_least_recently_used_before(
        &self,
        cutoff: i64,
    ) -> Result<Option<(Record, Removed)>, MetadataError> {
        self.write("pruning least recently used record", |tx| {
            let sql = format!(
                "{LIVE} SELECT id FROM records r WHERE id NOT IN (SELECT id FROM live) \
                 AND last_used_at < ?1 \
                 AND NOT EXISTS (SELECT 1 FROM records c WHERE c.parent = r.id) \
                 AND NOT EXISTS (SELECT 1 FROM record_parents p WHERE p.parent = r.id) \
                 ORDER BY last_used_at, rowid LIMIT 1"
            );
            let id: Option<String> =
                rusqlite::OptionalExtension::optional(tx.query_row(&sql, [cutoff], |r| r.get(0)))?;
            let Some(rid) = id.as_deref().and_then(RecordId::parse) else {
                return Ok(None);
            };
            let Some(rec) = get(tx, &rid)? else {
                return Ok(None);
            };
            let removed = delete_in(tx, &rid)?;
            Ok(Some((rec, removed)))
        })
    }

    /// Deletes up to `limit` collectable records in one transaction (reachability is
    /// computed inside it, so a lease another process takes meanwhile wins) and returns how
    /// many went and what they freed. Records go newest row first: a child is always
    /// inserted after its parent, so children go before parents and no deletion is refused.
    /// Call again until it returns 0.
    pub fn prune_batch(&self, limit: usize) -> Result<(usize, Removed), MetadataError> {
        self.write("pruning records", |tx| {
            let sql = format!(
                "{LIVE} SELECT id FROM records WHERE id NOT IN (SELECT id FROM live) \
                 ORDER BY rowid DESC LIMIT ?1"
            );
            let ids = {
                let mut stmt = tx.prepare(&sql)?;
                stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let mut removed = Removed::default();
            let mut n = 0;
            for id in ids {
                let Some(rid) = RecordId::parse(&id) else {
                    continue;
                };
                match delete_in(tx, &rid) {
                    Ok(r) => {
                        n += 1;
                        removed.snapshots.extend(r.snapshots);
                        removed.blobs.extend(r.blobs);
                    }
                    // Out of order after all (a row id reused): the next batch gets it.
                    Err(Fail::Domain(MetadataError::InUse { .. })) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((n, removed))
        })
    }
}
