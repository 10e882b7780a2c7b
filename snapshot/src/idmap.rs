//! UID/GID maps for ID-mapped copies (user-namespaced execs see their root as a host uid).

/// One contiguous range: ids `container..container+size` become `host..host+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// The uid and gid maps, in the shape of `/proc/<pid>/uid_map` and the OCI runtime spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    pub uids: Vec<IdMapping>,
    pub gids: Vec<IdMapping>,
}

fn map(ranges: &[IdMapping], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.container)?;
        (off < r.size).then(|| r.host.checked_add(off)).flatten()
    })
}

impl IdMap {
    /// The same shift for users and groups: `0..size` → `host..host+size`.
    pub fn shift(host: u32, size: u32) -> IdMap {
        let m = IdMapping {
            container: 0,
            host,
            size,
        };
        IdMap {
            uids: vec![m],
            gids: vec![m],
        }
    }

    /// The host uid for a container uid; `None` if no range covers it.
    pub fn map_uid(&self, id: u32) -> Option<u32> {
        map(&self.uids, id)
    }

    pub fn map_gid(&self, id: u32) -> Option<u32> {
        map(&self.gids, id)
    }
}

/// Copies the tree at `src` into the existing dir `dest` with every owner mapped through
/// `map`; data is reflinked where the file system can. Fails on an id the map lacks, naming
/// the file, rather than leaving it owned by an unmapped (overflow) id.
pub(crate) fn copy_shifted(
    src: &std::path::Path,
    dest: &std::path::Path,
    map: &IdMap,
) -> Result<(), crate::SnapshotError> {
    use std::os::unix::fs::MetadataExt;

    use crate::SnapshotError;
    let mut dirs = Vec::new();
    for e in walkdir::WalkDir::new(src).sort_by_file_name() {
        let e = e.map_err(|e| SnapshotError::Io {
            op: "walk",
            path: src.to_owned(),
            source: e.into(),
        })?;
        let rel = e.path().strip_prefix(src).unwrap_or(e.path());
        let d = dest.join(rel);
        let md =
            std::fs::symlink_metadata(e.path()).map_err(SnapshotError::io("stat", e.path()))?;
        let uid = map.map_uid(md.uid()).ok_or(SnapshotError::Unmapped {
            path: rel.to_owned(),
            id: md.uid(),
        })?;
        let gid = map.map_gid(md.gid()).ok_or(SnapshotError::Unmapped {
            path: rel.to_owned(),
            id: md.gid(),
        })?;
        if md.is_dir() {
            if !rel.as_os_str().is_empty() {
                std::fs::create_dir(&d).map_err(SnapshotError::io("create dir", &d))?;
            }
            dirs.push((e.path().to_owned(), d, md, (uid, gid)));
            continue;
        }
        crate::fsutil::copy_entry(e.path(), &d).map_err(SnapshotError::io("copy", &d))?;
        crate::fsutil::copy_metadata(e.path(), &d, &md, Some((uid, gid)))
            .map_err(SnapshotError::io("set owner", &d))?;
    }
    for (s, d, md, owner) in dirs.iter().rev() {
        crate::fsutil::copy_metadata(s, d, md, Some(*owner))
            .map_err(SnapshotError::io("set dir metadata", d))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_inside_ranges_only() {
        let m = IdMap::shift(100_000, 65_536);
        assert_eq!(m.map_uid(0), Some(100_000));
        assert_eq!(m.map_gid(65_535), Some(165_535));
        assert_eq!(m.map_uid(65_536), None);
        let overflow = IdMap::shift(u32::MAX, 10);
        assert_eq!(overflow.map_uid(5), None);
    }
}
