//! The few facts a snapshotter keeps about each snapshot (kind, parent, layer stack), in a
//! small text file per snapshot written atomically. The cache's database stays the
//! authority on which snapshots exist and why; this is only what mounting needs.
//!
//! Format, one fact per line: `kind active|view|committed`, optional `parent <id>`,
//! `input <id>` lines for a merge (its inputs, in order), optional `idmap <map>` for an
//! overlay ID-mapped copy (its contents are its parent's with owners shifted through `map`;
//! it has no layer of its own), then `layer <id> [<base>] [idmap=<map>]` lines: the overlay
//! driver's mount stack, lowest first (at most 500; the copy driver keeps none), each layer
//! seen through its id map if it has one. Maps use [`IdMap`]'s text form (`u:0:100000:65536,…`),
//! which contains `=`/`:` and so never reads as an id.
//! Histories (every layer a snapshot's contents came from) are not stored, they are walked
//! through `parent` and `input` links when a merge needs them, so metadata stays O(1) per
//! snapshot however long chains get.

use std::io::Write;
use std::path::Path;

use crate::error::SnapshotError;
use crate::idmap::IdMap;
use crate::snapshotter::{SnapshotId, SnapshotKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerEntry {
    pub id: SnapshotId,
    pub base: Option<SnapshotId>,
    /// Mount the layer dir through this map (a layer of an overlay ID-mapped copy).
    pub idmap: Option<IdMap>,
}

impl LayerEntry {
    pub fn plain(id: SnapshotId) -> LayerEntry {
        LayerEntry {
            id,
            base: None,
            idmap: None,
        }
    }

    /// The same layer as an ID-mapped copy through `map` shows it: maps compose, because
    /// the kernel cannot ID-map an already ID-mapped mount.
    pub fn seen_through(mut self, map: &IdMap) -> LayerEntry {
        self.idmap = Some(match self.idmap.take() {
            Some(inner) => inner.then(map),
            None => map.clone(),
        });
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub kind: SnapshotKind,
    pub parent: Option<SnapshotId>,
    pub inputs: Vec<SnapshotId>,
    /// Set on an overlay ID-mapped copy: `parent`'s contents with owners shifted.
    pub idmap: Option<IdMap>,
    pub layers: Vec<LayerEntry>,
}

pub(crate) const META_FILE: &str = "meta";

impl Meta {
    pub fn encode(&self) -> String {
        let mut s = format!("kind {}\n", self.kind.as_str());
        if let Some(p) = &self.parent {
            s.push_str(&format!("parent {p}\n"));
        }
        for i in &self.inputs {
            s.push_str(&format!("input {i}\n"));
        }
        if let Some(m) = &self.idmap {
            s.push_str(&format!("idmap {m}\n"));
        }
        for l in &self.layers {
            s.push_str(&format!("layer {}", l.id));
            if let Some(b) = &l.base {
                s.push_str(&format!(" {b}"));
            }
            if let Some(m) = &l.idmap {
                s.push_str(&format!(" idmap={m}"));
            }
            s.push('\n');
        }
        s
    }

    pub fn decode(text: &str, path: &Path) -> Result<Meta, SnapshotError> {
        let bad = |reason: String| SnapshotError::BadMeta {
            path: path.to_owned(),
            reason,
        };
        let id = |s: &str| SnapshotId::new(s).map_err(|_| bad(format!("bad id {s:?}")));
        let idmap = |s: &str| s.parse::<IdMap>().map_err(bad);
        let mut kind = None;
        let mut snapshot_map = None;
        let mut parent = None;
        let mut layers = Vec::new();
        let mut inputs = Vec::new();
        for line in text.lines() {
            let mut w = line.split(' ');
            match (w.next(), w.next(), w.next(), w.next()) {
                (Some("kind"), Some(k), None, None) => {
                    kind = Some(match k {
                        "active" => SnapshotKind::Active,
                        "view" => SnapshotKind::View,
                        "committed" => SnapshotKind::Committed,
                        k => return Err(bad(format!("unknown kind {k:?}"))),
                    })
                }
                (Some("parent"), Some(p), None, None) => parent = Some(id(p)?),
                (Some("input"), Some(i), None, None) => inputs.push(id(i)?),
                (Some("idmap"), Some(m), None, None) => snapshot_map = Some(idmap(m)?),
                (Some("layer"), Some(l), first, second) if w.next().is_none() => {
                    let mut entry = LayerEntry::plain(id(l)?);
                    // `[<base>] [idmap=<map>]`, in that order.
                    for word in [first, second].into_iter().flatten() {
                        match word.strip_prefix("idmap=") {
                            Some(m) if entry.idmap.is_none() => entry.idmap = Some(idmap(m)?),
                            None if entry.base.is_none() && entry.idmap.is_none() => {
                                entry.base = Some(id(word)?)
                            }
                            _ => return Err(bad(format!("unexpected line {line:?}"))),
                        }
                    }
                    layers.push(entry);
                }
                _ => return Err(bad(format!("unexpected line {line:?}"))),
            }
        }
        let kind = kind.ok_or_else(|| bad("no kind line".into()))?;
        Ok(Meta {
            kind,
            parent,
            inputs,
            idmap: snapshot_map,
            layers,
        })
    }

    pub fn read(dir: &Path) -> Result<Meta, SnapshotError> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(SnapshotError::io("read snapshot metadata", &path))?;
        Meta::decode(&text, &path)
    }

    /// tmp + fsync + rename + fsync dir, so a reader sees the old or the new file.
    pub fn write(&self, dir: &Path) -> Result<(), SnapshotError> {
        write_atomic(&dir.join(META_FILE), self.encode().as_bytes())
    }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(SnapshotError::io("create temp file", dir))?;
    tmp.write_all(bytes)
        .map_err(SnapshotError::io("write", tmp.path().to_owned()))?;
    tmp.as_file()
        .sync_all()
        .map_err(SnapshotError::io("fsync", tmp.path().to_owned()))?;
    tmp.persist(path).map_err(|e| SnapshotError::Io {
        op: "rename into place",
        path: path.to_owned(),
        source: e.error,
    })?;
    fsync_dir(dir)
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), SnapshotError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(SnapshotError::io("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let m = Meta {
            kind: SnapshotKind::Committed,
            parent: Some(SnapshotId::new("p").unwrap()),
            inputs: vec![SnapshotId::new("i").unwrap()],
            idmap: Some(IdMap::shift(100_000, 65_536)),
            layers: vec![
                LayerEntry::plain(SnapshotId::new("a").unwrap()),
                LayerEntry {
                    id: SnapshotId::new("b").unwrap(),
                    base: Some(SnapshotId::new("a").unwrap()),
                    idmap: None,
                },
                LayerEntry::plain(SnapshotId::new("c").unwrap())
                    .seen_through(&IdMap::shift(100_000, 65_536)),
                LayerEntry {
                    id: SnapshotId::new("d").unwrap(),
                    base: Some(SnapshotId::new("c").unwrap()),
                    idmap: Some(IdMap::shift(1, 2)),
                },
            ],
        };
        assert_eq!(Meta::decode(&m.encode(), Path::new("m")).unwrap(), m);
        // Metadata written before ID-mapped copies existed still reads.
        let old = Meta::decode("kind committed\nlayer a\nlayer b a\n", Path::new("m")).unwrap();
        assert_eq!(old.layers[1].base, Some(SnapshotId::new("a").unwrap()));
        assert_eq!(old.layers[1].idmap, None);
        for bad in [
            "layer a b c",
            "layer a b idmap=u:0:1:1 x",
            "layer a idmap=u:0:1:1 b",
        ] {
            let text = format!("kind committed\n{bad}\n");
            assert!(Meta::decode(&text, Path::new("m")).is_err(), "{bad}");
        }
        assert!(Meta::decode("kind committed\nlayer a idmap=x:1\n", Path::new("m")).is_err());
        assert!(Meta::decode("kind weird\n", Path::new("m")).is_err());
        assert!(Meta::decode("layer ../x\nkind active\n", Path::new("m")).is_err());
        assert!(Meta::decode("", Path::new("m")).is_err());
    }
}
