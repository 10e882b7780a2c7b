//! The few facts a snapshotter keeps about each snapshot (kind, parent, layer stack), in a
//! small text file per snapshot written atomically. The cache's database stays the
//! authority on which snapshots exist and why; this is only what mounting needs.
//!
//! Format, one fact per line: `kind active|view|committed`, optional `parent <id>`,
//! `input <id>` lines for a merge (its inputs, in order), then `layer <id>` lines: the
//! overlay driver's mount stack, lowest first (at most 500; the copy driver keeps none).
//! Histories (every layer a snapshot's contents came from) are not stored, they are walked
//! through `parent` and `input` links when a merge needs them, so metadata stays O(1) per
//! snapshot however long chains get.

use std::io::Write;
use std::path::Path;

use crate::error::SnapshotError;
use crate::snapshotter::{SnapshotId, SnapshotKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerEntry {
    pub id: SnapshotId,
    pub base: Option<SnapshotId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub kind: SnapshotKind,
    pub parent: Option<SnapshotId>,
    pub inputs: Vec<SnapshotId>,
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
        for l in &self.layers {
            match &l.base {
                Some(b) => s.push_str(&format!("layer {} {b}\n", l.id)),
                None => s.push_str(&format!("layer {}\n", l.id)),
            }
        }
        s
    }

    pub fn decode(text: &str, path: &Path) -> Result<Meta, SnapshotError> {
        let bad = |reason: String| SnapshotError::BadMeta {
            path: path.to_owned(),
            reason,
        };
        let id = |s: &str| SnapshotId::new(s).map_err(|_| bad(format!("bad id {s:?}")));
        let mut kind = None;
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
                (Some("layer"), Some(l), b, None) => layers.push(LayerEntry {
                    id: id(l)?,
                    base: b.map(id).transpose()?,
                }),
                _ => return Err(bad(format!("unexpected line {line:?}"))),
            }
        }
        let kind = kind.ok_or_else(|| bad("no kind line".into()))?;
        Ok(Meta {
            kind,
            parent,
            inputs,
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
            layers: vec![
                LayerEntry {
                    id: SnapshotId::new("a").unwrap(),
                    base: None,
                },
                LayerEntry {
                    id: SnapshotId::new("b").unwrap(),
                    base: Some(SnapshotId::new("a").unwrap()),
                },
            ],
        };
        assert_eq!(Meta::decode(&m.encode(), Path::new("m")).unwrap(), m);
        assert!(Meta::decode("kind weird\n", Path::new("m")).is_err());
        assert!(Meta::decode("layer ../x\nkind active\n", Path::new("m")).is_err());
        assert!(Meta::decode("", Path::new("m")).is_err());
    }
}
