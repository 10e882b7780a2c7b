//! Resolving the owner of created files (`--chown`), as BuildKit's `readUser` does: by id,
//! or by name through `/etc/passwd` and `/etc/group` of an input. A name that is not
//! found gives id 0, as in BuildKit.

use std::io::Read;
use std::path::Path;

use cairn_llb::pb::{ChownOpt, UserOptKind};

use super::error::{FileOpError, io_err};
use super::root::root_path;

/// The numeric owner given to created or copied files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Files bigger than this are not user databases (BuildKit's `maxUserFileBytes`).
const MAX_USER_FILE: u64 = 10 << 20;

/// Resolves `chown`. `root_of(input)` gives the directory holding the files of the input
/// a name refers to.
pub fn resolve_owner<'a>(
    chown: Option<&ChownOpt>,
    root_of: impl Fn(i64) -> Option<&'a Path>,
) -> Result<Option<Owner>, FileOpError> {
    let Some(chown) = chown else {
        return Ok(None);
    };
    let mut owner = Owner { uid: 0, gid: 0 };
    if let Some(user) = chown.user.as_ref().and_then(|u| u.user.as_ref()) {
        match user {
            UserOptKind::ById(id) => {
                owner.uid = *id;
                owner.gid = *id;
            }
            UserOptKind::ByName(named) => {
                let root = root_of(named.input).ok_or_else(|| FileOpError::InvalidPath {
                    path: format!(
                        "user {} refers to missing input {}",
                        named.name, named.input
                    ),
                })?;
                if let Some(fields) = lookup(root, "/etc/passwd", &named.name)? {
                    owner.uid = parse_id(fields.get(2));
                    owner.gid = parse_id(fields.get(3));
                }
            }
        }
    }
    if let Some(group) = chown.group.as_ref().and_then(|u| u.user.as_ref()) {
        match group {
            UserOptKind::ById(id) => owner.gid = *id,
            UserOptKind::ByName(named) => {
                let root = root_of(named.input).ok_or_else(|| FileOpError::InvalidPath {
                    path: format!(
                        "group {} refers to missing input {}",
                        named.name, named.input
                    ),
                })?;
                if let Some(fields) = lookup(root, "/etc/group", &named.name)? {
                    owner.gid = parse_id(fields.get(2));
                }
            }
        }
    }
    Ok(Some(owner))
}

fn parse_id(s: Option<&String>) -> u32 {
    s.and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// The `:`-separated fields of the first line of `file` whose first field is `name`;
/// `None` when the file or the name is missing.
fn lookup(root: &Path, file: &str, name: &str) -> Result<Option<Vec<String>>, FileOpError> {
    let p = root_path(root, file).map_err(io_err("resolve", file))?;
    let f = match std::fs::File::open(&p) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io_err("open", file)(e)),
    };
    let meta = f.metadata().map_err(io_err("stat", file))?;
    if !meta.is_file() {
        return Err(FileOpError::InvalidPath {
            path: format!("{file} is not a regular file"),
        });
    }
    let mut text = String::new();
    f.take(MAX_USER_FILE)
        .read_to_string(&mut text)
        .map_err(io_err("read", file))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f.first().map(String::as_str) == Some(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_llb::pb::{NamedUserOpt, UserOpt};

    fn by_name(name: &str) -> Option<UserOpt> {
        Some(UserOpt {
            user: Some(UserOptKind::ByName(NamedUserOpt {
                name: name.to_owned(),
                input: 0,
            })),
        })
    }

    #[test]
    fn names_resolve_through_the_inputs_files() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(t.path().join("etc")).expect("mkdir");
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(t.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
        let root = t.path();
        let get = |c: ChownOpt| resolve_owner(Some(&c), |_| Some(root)).expect("resolves");
        assert_eq!(
            get(ChownOpt {
                user: by_name("app"),
                group: None
            }),
            Some(Owner {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            get(ChownOpt {
                user: by_name("app"),
                group: by_name("staff")
            }),
            Some(Owner { uid: 1000, gid: 50 })
        );
        assert_eq!(
            get(ChownOpt {
                user: Some(UserOpt {
                    user: Some(UserOptKind::ById(7))
                }),
                group: None
            }),
            Some(Owner { uid: 7, gid: 7 })
        );
        assert_eq!(
            get(ChownOpt {
                user: by_name("nobody-here"),
                group: None
            }),
            Some(Owner { uid: 0, gid: 0 })
        );
        assert_eq!(resolve_owner(None, |_| Some(root)).expect("none"), None);
    }
}
