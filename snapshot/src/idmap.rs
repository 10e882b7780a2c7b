//! UID/GID maps for ID-mapped copies (user-namespaced execs see their root as a host uid).
//!
//! A map has a text form, `u:0:100000:65536,g:0:100000:65536` (kind, container id, host id,
//! size per range), kept in snapshot metadata, and the `/proc/<pid>/uid_map` form the kernel
//! takes when the overlay driver builds an ID-mapped mount from it.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::SnapshotError;

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

/// The ranges of `inner` followed by `outer`: each piece of `inner`'s host side that falls
/// in one of `outer`'s container ranges. Ids `outer` does not cover drop out (unmapped).
fn compose(inner: &[IdMapping], outer: &[IdMapping]) -> Vec<IdMapping> {
    let mut out = Vec::new();
    for a in inner {
        for b in outer {
            let lo = u64::from(a.host).max(u64::from(b.container));
            let hi = (u64::from(a.host) + u64::from(a.size))
                .min(u64::from(b.container) + u64::from(b.size));
            let host = u64::from(b.host) + (lo.saturating_sub(u64::from(b.container)));
            let container = u64::from(a.container) + (lo.saturating_sub(u64::from(a.host)));
            // Ranges past u32 cannot be written to a uid_map; clip them.
            let hi = hi.min(lo + (u64::from(u32::MAX) + 1).saturating_sub(host.max(container)));
            if lo < hi {
                out.push(IdMapping {
                    container: container as u32,
                    host: host as u32,
                    size: (hi - lo) as u32,
                });
            }
        }
    }
    out
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

    /// `self`, then `outer`: what an ID-mapped copy of an ID-mapped copy shows. The kernel
    /// cannot stack ID-mapped mounts, so the overlay driver records the composed map.
    pub fn then(&self, outer: &IdMap) -> IdMap {
        IdMap {
            uids: compose(&self.uids, &outer.uids),
            gids: compose(&self.gids, &outer.gids),
        }
    }

    /// The lines to write to `/proc/<pid>/uid_map` (`uids == true`) or `gid_map`.
    pub(crate) fn proc_lines(&self, uids: bool) -> String {
        let ranges = if uids { &self.uids } else { &self.gids };
        ranges
            .iter()
            .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
            .collect()
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (kind, ranges) in [("u", &self.uids), ("g", &self.gids)] {
            for r in ranges {
                write!(f, "{sep}{kind}:{}:{}:{}", r.container, r.host, r.size)?;
                sep = ",";
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for IdMap {
    type Err = String;

    /// Parses the [`fmt::Display`] form; the empty string is the empty map.
    fn from_str(s: &str) -> Result<IdMap, String> {
        let mut m = IdMap::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let bad = || format!("bad id map range {part:?}");
            let f: Vec<&str> = part.split(':').collect();
            let [kind, c, h, n] = f[..] else {
                return Err(bad());
            };
            let num = |x: &str| x.parse::<u32>().map_err(|_| bad());
            let r = IdMapping {
                container: num(c)?,
                host: num(h)?,
                size: num(n)?,
            };
            match kind {
                "u" => m.uids.push(r),
                "g" => m.gids.push(r),
                _ => return Err(bad()),
            }
        }
        Ok(m)
    }
}

/// The owner `md` gets through `map`, or `Unmapped` naming `rel`: an id the map lacks
/// would show as the overflow id (65534), owned by nobody the build knows.
pub(crate) fn shifted_owner(
    map: &IdMap,
    rel: &Path,
    md: &std::fs::Metadata,
) -> Result<(u32, u32), SnapshotError> {
    let unmapped = |id| SnapshotError::Unmapped {
        path: rel.to_owned(),
        id,
    };
    let uid = map.map_uid(md.uid()).ok_or_else(|| unmapped(md.uid()))?;
    let gid = map.map_gid(md.gid()).ok_or_else(|| unmapped(md.gid()))?;
    Ok((uid, gid))
}

/// Copies the tree at `src` into the existing dir `dest` with every owner mapped through
/// `map`; data is reflinked where the file system can, hard links stay hard links. Fails on
/// an id the map lacks, naming the file, rather than leaving it owned by an unmapped
/// (overflow) id.
pub(crate) fn copy_shifted(src: &Path, dest: &Path, map: &IdMap) -> Result<(), SnapshotError> {
    crate::fsutil::copy_tree_owned(src, dest, &|rel, md| shifted_owner(map, rel, md))
}

/// Checks that every owner in the tree at `view` has a mapping (the same error
/// [`copy_shifted`] gives), reading metadata only.
pub(crate) fn check_mapped(view: &Path, map: &IdMap) -> Result<(), SnapshotError> {
    for e in walkdir::WalkDir::new(view).sort_by_file_name() {
        let e = e.map_err(|e| SnapshotError::Io {
            op: "walk",
            path: view.to_owned(),
            source: e.into(),
        })?;
        let md = e.metadata().map_err(|err| SnapshotError::Io {
            op: "stat",
            path: e.path().to_owned(),
            source: err.into(),
        })?;
        shifted_owner(map, e.path().strip_prefix(view).unwrap_or(e.path()), &md)?;
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

    #[test]
    fn composes_like_applying_both() {
        let inner = IdMap::shift(100_000, 65_536);
        let outer = IdMap::shift(1_000_000, 200_000);
        let both = inner.then(&outer);
        for id in [0, 5, 1000, 65_535] {
            assert_eq!(both.map_uid(id), Some(1_100_000 + id));
            assert_eq!(both.map_gid(id), Some(1_100_000 + id));
        }
        assert_eq!(both.map_uid(65_536), None);
        // An outer map that covers only part of the inner one's image.
        let part = inner.then(&IdMap::shift(0, 100_010));
        assert_eq!(part.map_uid(9), Some(100_009));
        assert_eq!(part.map_uid(10), None);
        assert_eq!(inner.then(&IdMap::default()), IdMap::default());
    }

    #[test]
    fn text_form_round_trips() {
        let mut m = IdMap::shift(100_000, 65_536);
        m.uids.push(IdMapping {
            container: 70_000,
            host: 5,
            size: 1,
        });
        let s = m.to_string();
        assert_eq!(s, "u:0:100000:65536,u:70000:5:1,g:0:100000:65536");
        assert_eq!(s.parse::<IdMap>().as_ref(), Ok(&m));
        assert_eq!("".parse::<IdMap>(), Ok(IdMap::default()));
        for bad in ["x:0:1:2", "u:0:1", "u:0:1:-2", "u:0:1:2:3"] {
            assert!(bad.parse::<IdMap>().is_err(), "{bad}");
        }
        assert_eq!(m.proc_lines(true), "0 100000 65536\n70000 5 1\n");
    }
}
