//! Resolving a `USER` string against the rootfs's `/etc/passwd` and `/etc/group`, with
//! the semantics BuildKit gets from `moby/sys/user.GetExecUser` plus its `uid:gid` fast
//! path (`executor/oci/user.go`).

use std::path::Path;

use super::error::ExecError;
use super::rootpath::Root;

/// BuildKit refuses user databases above 10 MiB; so does cairn.
const MAX_USER_FILE: u64 = 10 << 20;

/// The identity the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary group first (containerd's `ensureAdditionalGids`).
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Parses an id, refusing `u32::MAX` (it means "unchanged" to the kernel).
fn parse_id(s: &str) -> Option<u32> {
    if s == "root" {
        return Some(0);
    }
    s.parse::<u32>().ok().filter(|v| *v != u32::MAX)
}

fn parse_passwd(data: &str) -> Vec<PasswdEntry<'_>> {
    data.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let _pw = f.next();
            let uid = f.next()?.trim().parse().ok()?;
            let gid = f.next()?.trim().parse().ok()?;
            Some(PasswdEntry { name, uid, gid })
        })
        .collect()
}

fn parse_group(data: &str) -> Vec<GroupEntry<'_>> {
    data.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let _pw = f.next();
            let gid = f.next()?.trim().parse().ok()?;
            let members = f
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .collect();
            Some(GroupEntry { name, gid, members })
        })
        .collect()
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`) inside `rootfs`.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<Identity, ExecError> {
    let err = |reason: String| ExecError::User {
        user: user.to_owned(),
        rootfs: rootfs.to_owned(),
        reason,
    };
    let (spec, is_default) = if user.is_empty() {
        ("0", true)
    } else {
        (user, false)
    };

    // Both ids given numerically: no lookup at all, no supplementary groups.
    if let Some((u, g)) = spec.split_once(':')
        && let (Some(uid), Some(gid)) = (parse_id(u), parse_id(g))
    {
        return Ok(with_primary(uid, gid, Vec::new()));
    }

    let root = Root::open(rootfs).map_err(|e| err(format!("opening rootfs: {e}")))?;
    let read = |p: &str| -> Result<String, ExecError> {
        match root.read_file(p, MAX_USER_FILE) {
            Ok(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Ok(None) => Ok(String::new()),
            Err(e) => Err(err(format!("reading {p}: {e}"))),
        }
    };
    let passwd_data = read("etc/passwd")?;
    let group_data = read("etc/group")?;
    let passwd = parse_passwd(&passwd_data);
    let groups = parse_group(&group_data);

    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_num = parse_id(user_arg).filter(|_| user_arg != "root" || passwd.is_empty());
    let found = passwd
        .iter()
        .find(|p| p.name == user_arg || user_num.is_some_and(|n| n == p.uid));
    let (uid, mut gid, matched_name) = match (found, user_num) {
        (Some(p), _) => (p.uid, p.gid, Some(p.name)),
        (None, Some(n)) => (n, 0, None),
        (None, None) => {
            if is_default {
                return Ok(with_primary(0, 0, Vec::new()));
            }
            return Err(err(format!("no user {user_arg:?} in /etc/passwd")));
        }
    };

    let mut sgids = Vec::new();
    match group_arg {
        Some(g) => {
            let gnum = parse_id(g).filter(|_| g != "root" || groups.is_empty());
            match groups
                .iter()
                .find(|e| e.name == g || gnum.is_some_and(|n| n == e.gid))
            {
                Some(e) => gid = e.gid,
                None => match gnum {
                    Some(n) => gid = n,
                    None => return Err(err(format!("no group {g:?} in /etc/group"))),
                },
            }
        }
        None => {
            if let Some(name) = matched_name {
                sgids.extend(
                    groups
                        .iter()
                        .filter(|e| e.members.contains(&name))
                        .map(|e| e.gid),
                );
            }
        }
    }
    Ok(with_primary(uid, gid, sgids))
}

fn with_primary(uid: u32, gid: u32, mut sgids: Vec<u32>) -> Identity {
    if !sgids.contains(&gid) {
        sgids.insert(0, gid);
    }
    Identity {
        uid,
        gid,
        additional_gids: sgids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\nuser:x:1000:1000::/home/user:/bin/sh\nbroken line\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nuser:x:1000:\nwheel:x:10:user,other\nstaff:x:50:root\n",
        )
        .unwrap();
        d
    }

    fn id(uid: u32, gid: u32, g: &[u32]) -> Identity {
        Identity {
            uid,
            gid,
            additional_gids: g.to_vec(),
        }
    }

    #[test]
    fn resolves_the_forms_docker_accepts() {
        let d = rootfs();
        let r = |u: &str| resolve_user(d.path(), u);
        assert_eq!(r("").unwrap(), id(0, 0, &[0, 50]));
        assert_eq!(r("root").unwrap(), id(0, 0, &[0, 50]));
        assert_eq!(r("user").unwrap(), id(1000, 1000, &[1000, 10]));
        assert_eq!(r("1000").unwrap(), id(1000, 1000, &[1000, 10]));
        assert_eq!(r("1000:1000").unwrap(), id(1000, 1000, &[1000]));
        assert_eq!(r("user:wheel").unwrap(), id(1000, 10, &[10]));
        assert_eq!(r("user:50").unwrap(), id(1000, 50, &[50]));
        assert_eq!(r("4242").unwrap(), id(4242, 0, &[0]));
        assert_eq!(r("4242:77").unwrap(), id(4242, 77, &[77]));
    }

    #[test]
    fn unknown_names_are_errors_naming_the_user() {
        let d = rootfs();
        let e = resolve_user(d.path(), "nobody").unwrap_err().to_string();
        assert!(e.contains("nobody"), "{e}");
        let e = resolve_user(d.path(), "user:nogroup")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nogroup"), "{e}");
        assert!(resolve_user(d.path(), "4294967295").is_err());
    }

    #[test]
    fn empty_rootfs_defaults_to_root() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(resolve_user(d.path(), "").unwrap(), id(0, 0, &[0]));
        assert_eq!(resolve_user(d.path(), "root").unwrap(), id(0, 0, &[0]));
        assert!(resolve_user(d.path(), "user").is_err());
    }
}
