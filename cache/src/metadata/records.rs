//! Records: one result of the cache (a layer, a merge, a diff, or a mutable scratch
//! snapshot), with its blob, its parents and the snapshot that holds its files.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_llb::{Digest, Hasher};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::{Fail, MetadataDb, MetadataError, now};
use crate::descriptor::Descriptor;

/// A record's id: 32 hex digits, random, unique across processes sharing a root.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(String);

impl RecordId {
    /// A fresh id. Unique without coordination: it digests the process id, the time in
    /// nanoseconds and a per-process counter.
    pub fn random() -> RecordId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = Hasher::new();
        h.update(&std::process::id().to_le_bytes());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.update(&nanos.to_le_bytes());
        h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        RecordId(h.finalize().hex()[..32].to_owned())
    }

    /// Accepts only what [`RecordId::random`] makes, so an id is always a safe file name.
    pub fn parse(s: &str) -> Option<RecordId> {
        (s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| RecordId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({})", self.0)
    }
}

/// What a record is (BuildKit's `cacheRecord.kind()`, plus mutable scratch space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// One layer on an optional parent layer: an image layer or a committed exec result.
    Layer,
    /// The ordered union of its parents.
    Merge,
    /// The changes from parent 0 (lower) to parent 1 (upper).
    Diff,
    /// A writable snapshot being built; never shared, never cached.
    Mutable,
}

impl RecordKind {
    fn as_str(self) -> &'static str {
        match self {
            RecordKind::Layer => "layer",
            RecordKind::Merge => "merge",
            RecordKind::Diff => "diff",
            RecordKind::Mutable => "mutable",
        }
    }

    fn parse(s: &str) -> Option<RecordKind> {
        Some(match s {
            "layer" => RecordKind::Layer,
            "merge" => RecordKind::Merge,
            "diff" => RecordKind::Diff,
            "mutable" => RecordKind::Mutable,
            _ => return None,
        })
    }
}

/// Whether the operation that creates a record has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Complete,
    /// Being built by its owner process; removed at start-up once that owner is dead.
    Incomplete,
}

/// A layer blob with the digest of its uncompressed tar (the `diff_id`), which the image
/// config lists and chain ids are computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

/// A record as stored, plus whether its snapshot is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: RecordId,
    pub kind: RecordKind,
    pub state: RecordState,
    pub owner: Option<String>,
    /// A layer's parent layer; a diff's base (the record whose snapshot its own is
    /// committed on so that its deletions are kept, see `refs::diff`).
    pub parent: Option<RecordId>,
    /// A merge's inputs in order, or a diff's `[lower, upper]`.
    pub parents: Vec<RecordId>,
    pub blob: Option<LayerBlob>,
    pub chain_id: Option<Digest>,
    pub blob_chain_id: Option<Digest>,
    /// The snapshot holding this record's files (shared by records of equal content).
    pub snapshot_id: String,
    /// Whether that snapshot is committed on disk; `false` means the record is lazy.
    pub local: bool,
    pub snapshot_size: Option<u64>,
    pub description: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub usage_count: i64,
}

/// What to insert.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub kind: RecordKind,
    pub state: RecordState,
    pub owner: Option<String>,
    pub parent: Option<RecordId>,
    pub parents: Vec<RecordId>,
    pub blob: Option<LayerBlob>,
    pub chain_id: Option<Digest>,
    pub blob_chain_id: Option<Digest>,
    pub snapshot_id: String,
    pub description: String,
}

/// What deleting a record freed, for the caller to remove from disk *after* the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Snapshots no remaining record uses.
    pub snapshots: Vec<String>,
    /// Blobs no remaining record uses.
    pub blobs: Vec<Digest>,
}

const COLUMNS: &str = "r.id, r.kind, r.state, r.owner, r.parent, r.blob_descriptor, r.diff_id, \
     r.chain_id, r.blob_chain_id, r.snapshot_id, s.id IS NOT NULL, s.size, r.description, \
     r.created_at, r.last_used_at, r.usage_count";
const FROM: &str = "records r LEFT JOIN snapshots s ON s.id = r.snapshot_id";

fn corrupt(id: &str, reason: impl Into<String>) -> Fail {
    Fail::Domain(MetadataError::Corrupt {
        id: id.to_owned(),
        reason: reason.into(),
    })
}

fn digest_col(id: &str, what: &str, v: Option<String>) -> Result<Option<Digest>, Fail> {
    v.map(|s| Digest::parse(&s).map_err(|e| corrupt(id, format!("{what}: {e}"))))
        .transpose()
}

/// Raw columns of one row, converted outside the rusqlite row callback so conversion
/// errors keep their own type.
struct RawRow {
    id: String,
    kind: String,
    state: String,
    owner: Option<String>,
    parent: Option<String>,
    blob_descriptor: Option<String>,
    diff_id: Option<String>,
    chain_id: Option<String>,
    blob_chain_id: Option<String>,
    snapshot_id: String,
    local: bool,
    snapshot_size: Option<u64>,
    description: String,
    created_at: i64,
    last_used_at: i64,
    usage_count: i64,
}

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: row.get(0)?,
        kind: row.get(1)?,
        state: row.get(2)?,
        owner: row.get(3)?,
        parent: row.get(4)?,
        blob_descriptor: row.get(5)?,
        diff_id: row.get(6)?,
        chain_id: row.get(7)?,
        blob_chain_id: row.get(8)?,
        snapshot_id: row.get(9)?,
        local: row.get(10)?,
        snapshot_size: row.get(11)?,
        description: row.get(12)?,
        created_at: row.get(13)?,
        last_used_at: row.get(14)?,
        usage_count: row.get(15)?,
    })
}

fn record_id(owner: &str, s: String) -> Result<RecordId, Fail> {
    RecordId::parse(&s).ok_or_else(|| corrupt(owner, format!("bad record id {s:?}")))
}

fn convert(tx: &rusqlite::Connection, r: RawRow) -> Result<Record, Fail> {
    let id = &r.id;
    let kind =
        RecordKind::parse(&r.kind).ok_or_else(|| corrupt(id, format!("kind {:?}", r.kind)))?;
    let state = match r.state.as_str() {
        "complete" => RecordState::Complete,
        "incomplete" => RecordState::Incomplete,
        other => return Err(corrupt(id, format!("state {other:?}"))),
    };
    let blob = match (r.blob_descriptor, digest_col(id, "diff_id", r.diff_id)?) {
        (Some(json), Some(diff_id)) => {
            let descriptor: Descriptor = serde_json::from_str(&json)
                .map_err(|e| corrupt(id, format!("blob descriptor: {e}")))?;
            Some(LayerBlob {
                descriptor,
                diff_id,
            })
        }
        (None, None) => None,
        _ => {
            return Err(corrupt(
                id,
                "blob descriptor and diff_id must be set together",
            ));
        }
    };
    let mut stmt =
        tx.prepare_cached("SELECT parent FROM record_parents WHERE child = ?1 ORDER BY position")?;
    let parents = stmt
        .query_map([id], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(|p| record_id(id, p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Record {
        id: record_id(id, r.id.clone())?,
        kind,
        state,
        owner: r.owner,
        parent: r.parent.map(|p| record_id(id, p)).transpose()?,
        parents,
        blob,
        chain_id: digest_col(id, "chain_id", r.chain_id)?,
        blob_chain_id: digest_col(id, "blob_chain_id", r.blob_chain_id)?,
        snapshot_id: r.snapshot_id,
        local: r.local,
        snapshot_size: r.snapshot_size,
        description: r.description,
        created_at: r.created_at,
        last_used_at: r.last_used_at,
        usage_count: r.usage_count,
    })
}

pub(super) fn get(tx: &rusqlite::Connection, id: &RecordId) -> Result<Option<Record>, Fail> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE r.id = ?1");
    let raw = tx.query_row(&sql, [id.as_str()], raw).optional()?;
    raw.map(|r| convert(tx, r)).transpose()
}

fn query(
    tx: &rusqlite::Connection,
    where_: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Record>, Fail> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE {where_} ORDER BY r.created_at, r.id");
    let mut stmt = tx.prepare(&sql)?;
    let raws = stmt
        .query_map(params, raw)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raws.into_iter().map(|r| convert(tx, r)).collect()
}

fn insert(tx: &Transaction<'_>, new: &NewRecord) -> Result<RecordId, Fail> {
    let id = RecordId::random();
    let t = now();
    let descriptor = new
        .blob
        .as_ref()
        .map(|b| serde_json::to_string(&b.descriptor))
        .transpose()
        .map_err(|e| corrupt(id.as_str(), format!("encoding blob descriptor: {e}")))?;
    tx.execute(
        "INSERT INTO records (id, kind, state, owner, parent, blob_digest, blob_media_type, \
         blob_size, blob_descriptor, diff_id, chain_id, blob_chain_id, snapshot_id, description, \
         created_at, last_used_at, usage_count) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, 0)",
        params![
            id.as_str(),
            new.kind.as_str(),
            match new.state {
                RecordState::Complete => "complete",
                RecordState::Incomplete => "incomplete",
            },
            new.owner,
            new.parent.as_ref().map(RecordId::as_str),
            new.blob.as_ref().map(|b| b.descriptor.digest.as_str()),
            new.blob.as_ref().map(|b| b.descriptor.media_type.as_str()),
            new.blob.as_ref().map(|b| b.descriptor.size),
            descriptor,
            new.blob.as_ref().map(|b| b.diff_id.as_str()),
            new.chain_id.as_ref().map(Digest::as_str),
            new.blob_chain_id.as_ref().map(Digest::as_str),
            new.snapshot_id,
            new.description,
            t,
        ],
    )?;
    for (pos, p) in new.parents.iter().enumerate() {
        tx.execute(
            "INSERT INTO record_parents (child, position, parent) VALUES (?1, ?2, ?3)",
            params![id.as_str(), pos as i64, p.as_str()],
        )?;
    }
    Ok(id)
}

impl MetadataDb {
    pub fn record(&self, id: &RecordId) -> Result<Option<Record>, MetadataError> {
        self.read("reading record", |c| get(c, id))
    }

    /// Every record, oldest first.
    pub fn records(&self) -> Result<Vec<Record>, MetadataError> {
        self.read("listing records", |c| query(c, "1", []))
    }

    /// Inserts a record and returns it.
    pub fn insert_record(&self, new: &NewRecord) -> Result<Record, MetadataError> {
        self.write("inserting record", |tx| {
            let id = insert(tx, new)?;
            get(tx, &id)?.ok_or_else(|| Fail::Domain(MetadataError::NoSuchRecord(id.to_string())))
        })
    }

    /// Inserts a record and leases it for `owner` in one transaction, so no prune in
    /// another process can take it before the lease exists.
    pub fn insert_record_leased(
        &self,
        new: &NewRecord,
        owner: &str,
    ) -> Result<(Record, super::LeaseId), MetadataError> {
        self.write("inserting leased record", |tx| {
            let id = insert(tx, new)?;
            leased(tx, &id, owner)
        })
    }

    /// Inserts `base` and then `top` with `base` as its parent, and leases `top` for
    /// `owner`, in one transaction: `base` has no lease of its own, so a prune in another
    /// process could take it between two transactions. How a diff record is made on the
    /// record that holds its deletions.
    pub fn insert_on_base_leased(
        &self,
        base: &NewRecord,
        top: &NewRecord,
        owner: &str,
    ) -> Result<(Record, super::LeaseId), MetadataError> {
        self.write("inserting leased record on its base", |tx| {
            let base_id = insert(tx, base)?;
            let mut top = top.clone();
            top.parent = Some(base_id);
            let id = insert(tx, &top)?;
            leased(tx, &id, owner)
        })
    }

    /// The complete layer record with `blob_chain_id`, or a new one made by `make` — in one
    /// transaction, so processes racing to create the same layer agree on one record.
    pub fn get_or_insert_layer(
        &self,
        blob_chain_id: &Digest,
        make: impl FnOnce() -> NewRecord,
    ) -> Result<Record, MetadataError> {
        self.write("finding or creating layer record", |tx| {
            let found = query(
                tx,
                "r.blob_chain_id = ?1 AND r.kind = 'layer' AND r.state = 'complete'",
                [blob_chain_id.as_str()],
            )?;
            if let Some(r) = found.into_iter().next() {
                return Ok(r);
            }
            let id = insert(tx, &make())?;
            get(tx, &id)?.ok_or_else(|| Fail::Domain(MetadataError::NoSuchRecord(id.to_string())))
        })
    }

    /// For each layer of a chain (bottom first; each one's `parent` is set here to the
    /// record below it): the complete layer record with its `blob_chain_id`, or a new one.
    /// In one transaction that also leases the top record for `owner`, so no prune in
    /// another process can delete a layer between its lookup and the lease. `None` for an
    /// empty chain.
    pub fn get_or_insert_chain(
        &self,
        layers: &[NewRecord],
        owner: &str,
    ) -> Result<Option<(Record, super::LeaseId)>, MetadataError> {
        self.write("finding or creating layer chain", |tx| {
            let mut parent: Option<Record> = None;
            for layer in layers {
                let Some(bcid) = &layer.blob_chain_id else {
                    return Err(corrupt("(new)", "layer without blob chain id"));
                };
                let found = query(
                    tx,
                    "r.blob_chain_id = ?1 AND r.kind = 'layer' AND r.state = 'complete'",
                    [bcid.as_str()],
                )?
                .into_iter()
                .next();
                let rec = match found {
                    Some(r) => r,
                    None => {
                        let mut new = layer.clone();
                        new.parent = parent.as_ref().map(|p| p.id.clone());
                        let id = insert(tx, &new)?;
                        get(tx, &id)?.ok_or_else(|| {
                            Fail::Domain(MetadataError::NoSuchRecord(id.to_string()))
                        })?
                    }
                };
                parent = Some(rec);
            }
            let Some(top) = parent else { return Ok(None) };
            tx.execute(
                "INSERT INTO leases (record_id, owner, name, created_at) VALUES (?1, ?2, NULL, ?3)",
                params![top.id.as_str(), owner, now()],
            )?;
            Ok(Some((top, super::LeaseId(tx.last_insert_rowid()))))
        })
    }

    /// Commits a mutable record whose snapshot has just been committed on disk as
    /// `snapshot_id`: records the snapshot, turns the record into a complete layer and
    /// leases it for `owner`, in one transaction.
    pub fn commit_mutable(
        &self,
        id: &RecordId,
        snapshot_id: &str,
        size: Option<u64>,
        owner: &str,
    ) -> Result<(Record, super::LeaseId), MetadataError> {
        self.write("committing mutable record", |tx| {
            tx.execute(
                "INSERT INTO snapshots (id, size, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET size = coalesce(excluded.size, size)",
                params![snapshot_id, size, now()],
            )?;
            let n = tx.execute(
                "UPDATE records SET state = 'complete', owner = NULL, kind = 'layer', snapshot_id = ?2 \
                 WHERE id = ?1 AND kind = 'mutable'",
                params![id.as_str(), snapshot_id],
            )?;
            if n == 0 {
                return Err(Fail::Domain(MetadataError::NoSuchRecord(id.to_string())));
            }
            leased(tx, id, owner)
        })
    }

    /// Gives a committed layer (or a computed diff, which exports as one layer) that had no
    /// blob the one just computed for it, with its chain ids. A record that got a blob
    /// meanwhile (a concurrent export) keeps its own: the first blob wins, so every export
    /// of it names the same bytes.
    pub fn set_layer_blob(
        &self,
        id: &RecordId,
        blob: &LayerBlob,
        chain_id: &Digest,
        blob_chain_id: &Digest,
    ) -> Result<Record, MetadataError> {
        let descriptor =
            serde_json::to_string(&blob.descriptor).map_err(|e| MetadataError::Corrupt {
                id: id.to_string(),
                reason: format!("encoding blob descriptor: {e}"),
            })?;
        self.write("recording layer blob", |tx| {
            tx.execute(
                "UPDATE records SET blob_digest = ?2, blob_media_type = ?3, blob_size = ?4, \
                 blob_descriptor = ?5, diff_id = ?6, chain_id = ?7, blob_chain_id = ?8 \
                 WHERE id = ?1 AND kind IN ('layer', 'diff') AND blob_digest IS NULL",
                params![
                    id.as_str(),
                    blob.descriptor.digest.as_str(),
                    blob.descriptor.media_type.as_str(),
                    blob.descriptor.size,
                    descriptor,
                    blob.diff_id.as_str(),
                    chain_id.as_str(),
                    blob_chain_id.as_str(),
                ],
            )?;
            get(tx, id)?.ok_or_else(|| Fail::Domain(MetadataError::NoSuchRecord(id.to_string())))
        })
    }

    /// Records whose blob is `digest`.
    pub fn records_by_blob(&self, digest: &Digest) -> Result<Vec<Record>, MetadataError> {
        self.read("finding records by blob", |c| {
            query(c, "r.blob_digest = ?1", [digest.as_str()])
        })
    }

    /// Notes that snapshot `id` is committed on disk (after its rename into place).
    pub fn commit_snapshot(
        &self,
        snapshot_id: &str,
        size: Option<u64>,
    ) -> Result<(), MetadataError> {
        self.write("recording committed snapshot", |tx| {
            tx.execute(
                "INSERT INTO snapshots (id, size, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET size = coalesce(excluded.size, size)",
                params![snapshot_id, size, now()],
            )?;
            Ok(())
        })
    }

    pub fn snapshot_committed(&self, snapshot_id: &str) -> Result<bool, MetadataError> {
        self.read("reading snapshot", |c| {
            Ok(c.query_row(
                "SELECT 1 FROM snapshots WHERE id = ?1",
                [snapshot_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }

    /// Whether any record names snapshot `id`, or it is recorded as committed.
    pub fn snapshot_in_use(&self, snapshot_id: &str) -> Result<bool, MetadataError> {
        self.read("checking snapshot use", |c| {
            Ok(c.query_row(
                "SELECT 1 FROM records WHERE snapshot_id = ?1 UNION ALL SELECT 1 FROM snapshots WHERE id = ?1 LIMIT 1",
                [snapshot_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }

    /// Snapshot ids that some record names (committed or not).
    pub fn referenced_snapshots(&self) -> Result<Vec<String>, MetadataError> {
        self.read("listing referenced snapshots", |c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT snapshot_id FROM records UNION SELECT id FROM snapshots",
            )?;
            Ok(stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?)
        })
    }

    /// Turns an incomplete record complete (and ownerless), optionally pointing it at a new
    /// snapshot and kind — how a mutable record is committed.
    pub fn complete_record(
        &self,
        id: &RecordId,
        kind: RecordKind,
        snapshot_id: &str,
    ) -> Result<Record, MetadataError> {
        self.write("completing record", |tx| {
            let n = tx.execute(
                "UPDATE records SET state = 'complete', owner = NULL, kind = ?2, snapshot_id = ?3 \
                 WHERE id = ?1",
                params![id.as_str(), kind.as_str(), snapshot_id],
            )?;
            if n == 0 {
                return Err(Fail::Domain(MetadataError::NoSuchRecord(id.to_string())));
            }
            get(tx, id)?.ok_or_else(|| Fail::Domain(MetadataError::NoSuchRecord(id.to_string())))
        })
    }

    /// Marks a record used now.
    pub fn touch(&self, id: &RecordId) -> Result<(), MetadataError> {
        self.write("touching record", |tx| {
            tx.execute(
                "UPDATE records SET last_used_at = ?2, usage_count = usage_count + 1 WHERE id = ?1",
                params![id.as_str(), now()],
            )?;
            Ok(())
        })
    }

    /// The layer records from the bottom of the chain up to `id` (a layer record).
    pub fn layer_ancestry(&self, id: &RecordId) -> Result<Vec<Record>, MetadataError> {
        self.read("reading layer chain", |c| {
            let mut chain = Vec::new();
            let mut next = Some(id.clone());
            while let Some(cur) = next {
                let r = get(c, &cur)?
                    .ok_or_else(|| Fail::Domain(MetadataError::NoSuchRecord(cur.to_string())))?;
                if chain.len() > 100_000 {
                    return Err(corrupt(id.as_str(), "parent chain does not end"));
                }
                next = r.parent.clone();
                chain.push(r);
            }
            chain.reverse();
            Ok(chain)
        })
    }

    /// Deletes a record, refusing while another record builds on it. Returns what is no
    /// longer used by anyone, for the caller to remove from disk after this commit.
    pub fn delete_record(&self, id: &RecordId) -> Result<Removed, MetadataError> {
        self.write("deleting record", |tx| delete_in(tx, id))
    }
}

/// Leases record `id` for `owner` inside `tx`; returns the record and the lease.
fn leased(
    tx: &Transaction<'_>,
    id: &RecordId,
    owner: &str,
) -> Result<(Record, super::LeaseId), Fail> {
    tx.execute(
        "INSERT INTO leases (record_id, owner, name, created_at) VALUES (?1, ?2, NULL, ?3)",
        params![id.as_str(), owner, now()],
    )?;
    let lease = super::LeaseId(tx.last_insert_rowid());
    let rec =
        get(tx, id)?.ok_or_else(|| Fail::Domain(MetadataError::NoSuchRecord(id.to_string())))?;
    Ok((rec, lease))
}

pub(super) fn delete_in(tx: &Transaction<'_>, id: &RecordId) -> Result<Removed, Fail> {
    let Some(rec) = get(tx, id)? else {
        return Err(Fail::Domain(MetadataError::NoSuchRecord(id.to_string())));
    };
    let mut users: Vec<String> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id FROM records WHERE parent = ?1 UNION SELECT child FROM record_parents WHERE parent = ?1",
        )?;
        stmt.query_map([id.as_str()], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?
    };
    if !users.is_empty() {
        users.sort();
        return Err(Fail::Domain(MetadataError::InUse {
            id: id.to_string(),
            users: users.join(", "),
        }));
    }
    tx.execute("DELETE FROM records WHERE id = ?1", [id.as_str()])?;
    let mut removed = Removed::default();
    let still: bool = tx
        .query_row(
            "SELECT 1 FROM records WHERE snapshot_id = ?1 LIMIT 1",
            [&rec.snapshot_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !still {
        tx.execute("DELETE FROM snapshots WHERE id = ?1", [&rec.snapshot_id])?;
        tx.execute(
            "DELETE FROM file_hashes WHERE scope = ?1",
            [&rec.snapshot_id],
        )?;
        removed.snapshots.push(rec.snapshot_id.clone());
    }
    if let Some(blob) = &rec.blob {
        let d = &blob.descriptor.digest;
        let used: bool = tx
            .query_row(
                "SELECT 1 FROM records WHERE blob_digest = ?1 LIMIT 1",
                [d.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !used {
            removed.blobs.push(d.clone());
        }
    }
    Ok(removed)
}
