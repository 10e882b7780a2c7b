//! Where cairn keeps its state and which config file it reads.
//!
//! Resolution order (DESIGN.md "The CLI contract"): the flag, then the environment
//! variable, then the default. The inputs are passed in rather than read here, so each
//! rule is tested without touching the process environment.

use std::path::{Path, PathBuf};

/// The state root: content store, snapshots and metadata DB all live under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRoot {
    pub path: PathBuf,
    /// Which rule chose the path, for `--debug` logs and error messages.
    pub source: RootSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSource {
    Flag,
    Env,
    /// `/var/lib/cairn`, chosen because the process runs as root.
    SystemDefault,
    /// `$XDG_DATA_HOME/cairn` (or `~/.local/share/cairn`) for an unprivileged user.
    UserDefault,
}

/// Everything the root and config rules look at.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub root_flag: Option<PathBuf>,
    pub config_flag: Option<PathBuf>,
    pub cairn_root: Option<PathBuf>,
    pub cairn_config: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub is_root: bool,
}

impl Inputs {
    /// The inputs of this process: its flags, environment and effective uid.
    pub fn from_process(root_flag: Option<PathBuf>, config_flag: Option<PathBuf>) -> Inputs {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Inputs {
            root_flag,
            config_flag,
            cairn_root: var("CAIRN_ROOT"),
            cairn_config: var("CAIRN_CONFIG"),
            xdg_data_home: var("XDG_DATA_HOME"),
            home: var("HOME"),
            is_root: effective_uid_is_root(),
        }
    }
}

/// Whether the effective user is root, read from `/proc/self/status` so the CLI needs no
/// syscall crate of its own.
fn effective_uid_is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0")
}

/// The state root could not be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error(
        "no state root: not running as root and neither --root, $CAIRN_ROOT, $XDG_DATA_HOME nor $HOME is set"
    )]
    NoDefault,
    #[error("{what} {path:?} is not an absolute path")]
    Relative { what: &'static str, path: PathBuf },
}

/// Resolves the state root: `--root`, else `$CAIRN_ROOT`, else `/var/lib/cairn` for
/// root, else `$XDG_DATA_HOME/cairn` (falling back to `~/.local/share/cairn` as the XDG
/// spec says).
pub fn state_root(inputs: &Inputs) -> Result<StateRoot, RootError> {
    // A relative --root or $CAIRN_ROOT means relative to the cwd, made absolute here once:
    // paths under the root are handed to runc, which resolves a relative rootfs against
    // the bundle directory, not the cwd.
    if let Some(p) = &inputs.root_flag {
        return Ok(StateRoot {
            path: absolute(p),
            source: RootSource::Flag,
        });
    }
    if let Some(p) = &inputs.cairn_root {
        return Ok(StateRoot {
            path: absolute(p),
            source: RootSource::Env,
        });
    }
    if inputs.is_root {
        return Ok(StateRoot {
            path: PathBuf::from("/var/lib/cairn"),
            source: RootSource::SystemDefault,
        });
    }
    let data_home = match (&inputs.xdg_data_home, &inputs.home) {
        // The XDG spec says a relative $XDG_DATA_HOME is invalid and must be ignored.
        (Some(x), _) if x.is_absolute() => x.clone(),
        (_, Some(h)) if h.is_absolute() => h.join(".local/share"),
        (_, Some(h)) => {
            return Err(RootError::Relative {
                what: "$HOME",
                path: h.clone(),
            });
        }
        _ => return Err(RootError::NoDefault),
    };
    Ok(StateRoot {
        path: data_home.join("cairn"),
        source: RootSource::UserDefault,
    })
}

/// `p` against the cwd, without touching the file system (the root may not exist yet).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The config file to read, and whether the user named it (a named file must exist;
/// the default `<root>/cairn.toml` may be absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    pub path: PathBuf,
    pub explicit: bool,
}

/// Resolves the config file: `--config`, else `$CAIRN_CONFIG`, else `<root>/cairn.toml`.
pub fn config_path(inputs: &Inputs, root: &Path) -> ConfigPath {
    match inputs.config_flag.as_ref().or(inputs.cairn_config.as_ref()) {
        Some(p) => ConfigPath {
            path: p.clone(),
            explicit: true,
        },
        None => ConfigPath {
            path: root.join("cairn.toml"),
            explicit: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Inputs {
        Inputs {
            xdg_data_home: Some("/home/u/.data".into()),
            home: Some("/home/u".into()),
            ..Inputs::default()
        }
    }

    #[test]
    fn root_follows_flag_then_env_then_default() {
        let mut i = user();
        i.root_flag = Some("/flag".into());
        i.cairn_root = Some("/env".into());
        assert_eq!(
            state_root(&i).unwrap(),
            StateRoot {
                path: "/flag".into(),
                source: RootSource::Flag
            }
        );
        i.root_flag = None;
        assert_eq!(state_root(&i).unwrap().path, PathBuf::from("/env"));
        i.cairn_root = None;
        assert_eq!(
            state_root(&i).unwrap(),
            StateRoot {
                path: "/home/u/.data/cairn".into(),
                source: RootSource::UserDefault
            }
        );
        i.is_root = true;
        assert_eq!(
            state_root(&i).unwrap(),
            StateRoot {
                path: "/var/lib/cairn".into(),
                source: RootSource::SystemDefault
            }
        );
    }

    #[test]
    fn a_relative_root_is_made_absolute_against_the_cwd() {
        let cwd = std::env::current_dir().unwrap();
        let mut i = user();
        i.root_flag = Some("state".into());
        assert_eq!(state_root(&i).unwrap().path, cwd.join("state"));
        i.root_flag = None;
        i.cairn_root = Some("env-state".into());
        assert_eq!(state_root(&i).unwrap().path, cwd.join("env-state"));
    }

    #[test]
    fn user_default_falls_back_to_home() {
        let mut i = user();
        i.xdg_data_home = Some("relative/data".into());
        assert_eq!(
            state_root(&i).unwrap().path,
            PathBuf::from("/home/u/.local/share/cairn")
        );
        i.xdg_data_home = None;
        assert_eq!(
            state_root(&i).unwrap().path,
            PathBuf::from("/home/u/.local/share/cairn")
        );
        i.home = None;
        assert_eq!(state_root(&i), Err(RootError::NoDefault));
        i.home = Some("rel".into());
        assert!(matches!(state_root(&i), Err(RootError::Relative { .. })));
    }

    #[test]
    fn config_follows_flag_then_env_then_root() {
        let mut i = user();
        let root = Path::new("/r");
        assert_eq!(
            config_path(&i, root),
            ConfigPath {
                path: "/r/cairn.toml".into(),
                explicit: false
            }
        );
        i.cairn_config = Some("/env.toml".into());
        assert_eq!(
            config_path(&i, root),
            ConfigPath {
                path: "/env.toml".into(),
                explicit: true
            }
        );
        i.config_flag = Some("/flag.toml".into());
        assert_eq!(config_path(&i, root).path, PathBuf::from("/flag.toml"));
    }

    #[test]
    fn process_inputs_read_the_real_uid() {
        // This test runs as root on the CI machine and as a user elsewhere; either way
        // the answer must agree with /proc.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let euid = uid_line.split_whitespace().nth(2).unwrap();
        assert_eq!(Inputs::from_process(None, None).is_root, euid == "0");
    }
}
